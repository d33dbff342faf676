//! Stage 8, write: make `out/` equal to the emitted tree, or say how it differs (`--check`).
//!
//! Safety first, then speed. Nothing is written unless something changed, and the cost follows
//! the size of the change:
//! - A new `out/`, or a change to more than a quarter of its files (a template or default
//!   every box inherits): the new `out/` is assembled in a staging directory beside it,
//!   unchanged files hard-linked rather than rewritten, and swapped in with one atomic
//!   `renameat2(RENAME_EXCHANGE)`. A crash, a full disk or an error leaves the previous `out/`
//!   whole.
//! - A smaller change (a PR that edits a few users): each changed file is written beside its
//!   target, and once all are, each is renamed over its target, so every file is always whole
//!   and a failure while writing leaves out/ as it was; removed files are unlinked. A build
//!   interrupted by a signal finishes the renames first ([`crate::interrupt`]); one killed
//!   outright during them leaves some bundles new and some old, and the next build finishes it.
//!
//! Files that devbox-gen did not generate are carried over and reported, never deleted;
//! symbolic links are never followed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::cache::{BuildCache, Digest, Seen, Stamp};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{self, GENERATED_MARKER, OutTree};
use crate::interrupt;
use crate::pipeline::Compiled;

/// What is in `out/` now. Only names and hashes are held: contents are read again when they
/// must be shown, so a 10,000-user `out/` is never in memory twice.
#[derive(Debug, Default)]
pub(crate) struct Existing {
    out: PathBuf,
    /// Files devbox-gen generated (they start with the marker line), relative to out/, with
    /// their stamp and the hash of their bytes.
    pub generated: BTreeMap<String, Seen>,
    /// Anything else, by relative path: kept, reported.
    pub foreign: Vec<String>,
}

impl Existing {
    /// Whether the file of `out/` at `path` is a symbolic link (which nothing of devbox-gen's is).
    fn is_link(&self, path: &str) -> bool {
        fs::symlink_metadata(self.out.join(path)).is_ok_and(|metadata| metadata.file_type().is_symlink())
    }

    /// The contents of a generated file (`None` if it vanished meanwhile).
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.out.join(path)).ok()
    }

    /// Whether `out/` holds exactly these bytes at `path`, as a file devbox-gen generated.
    pub(crate) fn holds(&self, path: &str, digest: Digest) -> bool {
        self.generated.get(path).is_some_and(|seen| seen.digest == digest)
    }

    /// The home volumes' files of these users' bundles: what `build` needs to refuse impossible
    /// changes to the bundles it rendered.
    pub(crate) fn home_volume_tree(&self, users: &BTreeSet<&str>) -> OutTree {
        let mut tree = self.tree_of(|path| is_claim_of(path, users));
        tree.files.extend(self.hand_made_claims(users).files);
        tree
    }

    /// The claim files of these users' bundles that devbox-gen did not generate (no header):
    /// someone edited one by hand, and the header went with the edit. The build replaces them
    /// and warns, but what they say may be what the cluster holds, so the checks of what a
    /// claim cannot become hold against them too. Regular files only, never followed, and no
    /// bigger than a claim can plausibly be.
    pub(crate) fn hand_made_claims(&self, users: &BTreeSet<&str>) -> OutTree {
        let files = self
            .foreign
            .iter()
            .filter(|path| is_claim_of(path, users))
            .filter_map(|path| Some((path.clone(), self.read_regular(path, MAX_CLAIM_BYTES as u64)?)))
            .collect();
        OutTree { files }
    }

    /// The hand-written manifests at `paths` (from [`foreign_files`]), as `diff --base` shows
    /// and checks them: regular files only, never followed, none over [`MAX_FOREIGN_BYTES`];
    /// one it cannot read stands as [`UNREAD_FOREIGN`], so it is still named.
    pub(crate) fn foreign_tree(&self, paths: &[String]) -> OutTree {
        let read = |path: &String| self.read_regular(path, MAX_FOREIGN_BYTES).unwrap_or_else(|| UNREAD_FOREIGN.to_string());
        OutTree { files: paths.iter().map(|path| (path.clone(), read(path))).collect() }
    }

    /// The text of a file of `out/` devbox-gen did not write: a regular file only (a link is
    /// never followed), of at most `max` bytes, in UTF-8.
    fn read_regular(&self, path: &str, max: u64) -> Option<String> {
        let full = self.out.join(path);
        fs::symlink_metadata(&full).ok().filter(|metadata| metadata.is_file() && metadata.len() <= max)?;
        fs::read_to_string(full).ok()
    }

    /// The generated files `wanted` picks, with their contents (for `diff`, which shows those
    /// that differ).
    pub(crate) fn tree_of(&self, wanted: impl Fn(&str) -> bool + Sync) -> OutTree {
        let paths: Vec<&String> = self.generated.keys().filter(|path| wanted(path)).collect();
        let files = paths.into_par_iter().filter_map(|path| self.read(path).map(|text| (path.clone(), text))).collect();
        OutTree { files }
    }
}

/// The largest hand-written manifest `diff --base` reads to show and check; a larger one is
/// named, not shown.
pub(crate) const MAX_FOREIGN_BYTES: u64 = 1024 * 1024;

/// What stands for a hand-written manifest `diff` could not read as text.
pub(crate) const UNREAD_FOREIGN: &str = "# devbox-gen did not read this file: a link, not UTF-8, or over 1 MiB\n";

/// The largest claim file without a header that is read as one: a claim is well under 1 KiB.
pub(crate) const MAX_CLAIM_BYTES: usize = 64 * 1024;

/// Whether `path` names a file Argo CD or Flux would read as manifests: Argo CD's directory
/// source takes `*.yaml`, `*.yml`, `*.json` and `*.jsonnet`, which it evaluates (argo-cd
/// `reposerver/repository/repository.go`, `manifestFile`), and kustomize-controller's
/// generated kustomization the YAML and JSON files of its path.
pub(crate) fn is_manifest(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    [".yaml", ".yml", ".json", ".jsonnet"].iter().any(|extension| name.ends_with(extension))
}

/// Whether `path` is a PersistentVolumeClaim's file in the bundle of one of `users`.
pub(crate) fn is_claim_of(path: &str, users: &BTreeSet<&str>) -> bool {
    is_claim_file(path) && emit::bundle_of(path).is_some_and(|user| users.contains(user))
}

/// Whether `path` is named like a PersistentVolumeClaim's file.
pub(crate) fn is_claim_file(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|file| file.starts_with("persistentvolumeclaim-"))
}

/// How the name of a [`Staging`] directory starts.
const STAGING_PREFIX: &str = ".out.devbox-gen-";

/// A new `out/` being assembled in a directory beside the old one, written to by the compile
/// while other boxes are still rendering; [`apply`] completes it and swaps it in. Dropped
/// without that (an error), it is removed, and `out/` was never touched.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: tempfile::TempDir,
    /// Removed if the build is interrupted before it completes.
    _temporary: interrupt::Temporary,
    /// The stamps of the files written so far, in the order bundles finished (sorted once, in
    /// [`apply`], rather than into a tree under the lock by every writer).
    written: Mutex<Vec<(String, Seen)>>,
}

impl Staging {
    pub(crate) fn new(root: &Path) -> Result<Self, Diagnostics> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(root)
            .map_err(|e| io_error("cannot create a staging directory", root, &e))?;
        set_directory_mode(dir.path()).map_err(|e| io_error("cannot create a staging directory", root, &e))?;
        let temporary = interrupt::temporary(vec![dir.path().to_path_buf()]);
        Ok(Self { dir, _temporary: temporary, written: Mutex::new(Vec::new()) })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes one bundle's files (they share a directory).
    pub(crate) fn write_bundle(&self, files: &[(String, String)]) -> Result<(), Diagnostics> {
        let _writing = interrupt::writing();
        let mut stamps = Vec::with_capacity(files.len());
        let mut made = BTreeSet::new();
        for (path, text) in files {
            let target = self.path().join(path);
            let written = (|| {
                if let Some(parent) = target.parent()
                    && made.insert(parent.to_path_buf())
                {
                    fs::create_dir_all(parent)?;
                }
                write_seen(&target, text)
            })();
            let seen = written.map_err(|e| io_error("cannot write the new out/", &target, &e))?;
            stamps.push((path.clone(), seen));
        }
        self.written
            .lock()
            .map_err(|_| io_error("cannot write the new out/", self.path(), &io::Error::other("a writer panicked")))?
            .extend(stamps);
        Ok(())
    }
}

/// How `out/` must change to match the emitted tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    pub(crate) fn count(&self) -> usize {
        self.created.len() + self.updated.len() + self.removed.len()
    }

    /// One line per file, `out/`-relative paths, in path order.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines: Vec<(String, &str)> = Vec::new();
        lines.extend(self.created.iter().map(|p| (p.clone(), "create")));
        lines.extend(self.updated.iter().map(|p| (p.clone(), "update")));
        lines.extend(self.removed.iter().map(|p| (p.clone(), "remove")));
        lines.sort();
        lines.into_iter().map(|(path, verb)| format!("{verb} out/{path}")).collect()
    }
}

pub(crate) fn out_dir(root: &Path) -> PathBuf {
    root.join("out")
}

/// Lists `out/` without following links, telling generated files from anyone else's. Files
/// the cache vouches for are only stat'ed; the rest are read and hashed, in parallel.
pub(crate) fn read_existing(root: &Path, cache: &BuildCache) -> Result<Existing, Diagnostics> {
    let out = out_dir(root);
    let mut existing = Existing { out: out.clone(), ..Existing::default() };
    match out.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(existing),
        Err(e) => return Err(io_error("cannot read out/", &out, &e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Diagnostic::error("out/ is a symbolic link")
                .in_path(out.display().to_string())
                .help("devbox-gen only writes inside the config repo: replace the link with a directory")
                .into());
        }
        Ok(m) if !m.is_dir() => {
            return Err(Diagnostic::error("out/ is not a directory").in_path(out.display().to_string()).help("move the file away").into());
        }
        Ok(_) => {}
    }
    let listed = walk(&out)?;
    existing.foreign = listed.foreign;
    let seen: Vec<(String, Option<Seen>)> = listed
        .files
        .into_par_iter()
        .map(|(relative, stamp)| {
            let seen =
                look_at(&out.join(&relative), &relative, stamp, cache).map_err(|e| io_error("cannot read", &out.join(&relative), &e))?;
            Ok((relative, seen))
        })
        .collect::<Result<_, Diagnostics>>()?;
    for (relative, seen) in seen {
        match seen {
            Some(seen) => {
                existing.generated.insert(relative, seen);
            }
            None => existing.foreign.push(relative),
        }
    }
    existing.foreign.sort();
    Ok(existing)
}

/// The hash of a file devbox-gen generated, stamped `stamp`; `None` for anyone else's file.
/// Read only when the cache does not vouch for the stamp.
fn look_at(path: &Path, relative: &str, stamp: Stamp, cache: &BuildCache) -> io::Result<Option<Seen>> {
    if let Some(digest) = cache.digest_if_unchanged(relative, stamp) {
        return Ok(Some(Seen { stamp, digest }));
    }
    let bytes = fs::read(path)?;
    let ours = bytes.starts_with(GENERATED_MARKER.as_bytes()) || is_leftover(relative);
    Ok(ours.then(|| Seen { stamp, digest: Digest::of(&bytes) }))
}

/// The ending of the temporary files an update in place writes beside their targets.
const TEMPORARY_SUFFIX: &str = ".devbox-gen-tmp";

/// A temporary file an update in place left behind (killed before it renamed it): devbox-gen's
/// own, to remove, even when it is empty or cut short and so lacks the marker.
fn is_leftover(relative: &str) -> bool {
    let name = relative.rsplit_once('/').map_or(relative, |(_, name)| name);
    name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX)
}

/// What `walk` finds under `out/`: regular files with their stamps, and everything else.
#[derive(Default)]
struct Listing {
    files: Vec<(String, Stamp)>,
    foreign: Vec<String>,
    /// Directories still to list: (path, `out/`-relative path).
    directories: Vec<(PathBuf, String)>,
}

/// Lists `out/`: regular files go to `files`, stamped; links, sockets and the like to
/// `foreign`, never followed. Level by level, the directories of a level in parallel, and each
/// file stamped through its directory entry (`fstatat` on the open directory, not a lookup of
/// its whole path): at 10,000 bundles, stamping by path was a quarter of a no-op build. Not by
/// recursion, which on the pool's threads would overflow their stacks in a deep tree.
fn walk(out: &Path) -> Result<Listing, Diagnostics> {
    let mut listing = Listing::default();
    let mut level = vec![(out.to_path_buf(), String::new())];
    while !level.is_empty() {
        let listed: Vec<Result<Listing, Diagnostics>> = level.into_par_iter().map(|(dir, prefix)| list_directory(&dir, &prefix)).collect();
        level = Vec::new();
        // In listing order, so that of several unreadable directories the same one is named.
        for found in listed {
            let found = found?;
            listing.files.extend(found.files);
            listing.foreign.extend(found.foreign);
            level.extend(found.directories);
        }
    }
    Ok(listing)
}

/// One directory of `out/`: its files, and its subdirectories still to list.
fn list_directory(dir: &Path, prefix: &str) -> Result<Listing, Diagnostics> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, &e))?;
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let file_type = entry.file_type().map_err(|e| io_error("cannot read", &entry.path(), &e))?;
        if file_type.is_dir() {
            listing.directories.push((entry.path(), relative));
        } else if file_type.is_file() {
            // DirEntry::metadata does not follow links, like symlink_metadata.
            let metadata = entry.metadata().map_err(|e| io_error("cannot read", &entry.path(), &e))?;
            listing.files.push((relative, Stamp::of(&metadata)));
        } else {
            listing.foreign.push(relative);
        }
    }
    Ok(listing)
}

/// Compares every file of the compiled tree with `out/` by hash. Its `kept` files are known to be
/// in `out/` already, unchanged; its `staged` ones are new.
pub(crate) fn changes(existing: &Existing, compiled: &Compiled) -> Changes {
    let (tree, kept) = (&compiled.tree, &compiled.kept);
    let verdicts: Vec<(&String, Option<bool>)> = tree
        .files
        .par_iter()
        .map(|(path, text)| {
            let same = existing.generated.get(path).map(|seen| seen.digest == Digest::of(text.as_bytes()));
            (path, same)
        })
        .collect();
    let mut changes = Changes::default();
    for (path, same) in verdicts {
        match same {
            None => changes.created.push(path.clone()),
            Some(false) => changes.updated.push(path.clone()),
            Some(true) => {}
        }
    }
    changes.created.extend(compiled.staged.iter().filter(|path| !existing.generated.contains_key(*path)).cloned());
    changes.created.sort();
    changes.removed = existing
        .generated
        .keys()
        .filter(|p| !tree.files.contains_key(*p) && !kept.contains(*p) && !compiled.staged.contains(*p))
        .cloned()
        .collect();
    changes
}

/// The files of `out/` devbox-gen did not write: a warning for each, and those of them that
/// Argo CD or Flux would read as manifests and that the build keeps (`build --check` fails
/// while they are there).
pub(crate) fn foreign_files(existing: &Existing, compiled: &Compiled) -> (Diagnostics, Vec<String>) {
    if existing.foreign.is_empty() {
        return (Diagnostics::default(), Vec::new());
    }
    // Only now: at 10,000 boxes the set holds 100,000 paths.
    let written: rustc_hash::FxHashSet<&str> = compiled
        .tree
        .files
        .keys()
        .map(String::as_str)
        .chain(compiled.bundles.values().flat_map(|record| record.files.iter().map(String::as_str)))
        .collect();
    let manifests = existing
        .foreign
        .iter()
        .filter(|path| !written.contains(path.as_str()) && (is_manifest(path) || existing.is_link(path)))
        .cloned()
        .collect();
    (foreign_warnings(existing, |path| written.contains(path)), manifests)
}

/// Warnings for files in `out/` that devbox-gen did not write.
/// `writes`: whether the build writes a file of its own at a path of out/.
fn foreign_warnings(existing: &Existing, writes: impl Fn(&str) -> bool) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for path in &existing.foreign {
        let warning = if writes(path) {
            Diagnostic::warning(format!(
                "out/{path} was not generated by devbox-gen (a link, or a file without its header); the build replaces it"
            ))
            .help("out/ is generated: a link there is replaced by the file, never followed, and a hand edit by what users/ says")
        } else {
            let warning = Diagnostic::warning(format!("out/{path} was not generated by devbox-gen; it is kept"))
                .help("out/ is generated: move hand-written manifests elsewhere, or delete the file if it is stale");
            // A bundle's kustomization.yaml lists only what devbox-gen wrote, and that list is
            // what Argo CD and Flux apply of the directory.
            let in_bundle = path.rsplit_once('/').is_some_and(|(dir, _)| writes(&format!("{dir}/kustomization.yaml")));
            match (is_manifest(path), in_bundle) {
                // Argo CD's repo-server refuses a whole repository that holds a link pointing
                // outside it (`checkOutOfBoundsSymlinks`), which would stop every Application.
                _ if existing.is_link(path) => warning.help("a link in out/ stops every Argo CD Application of the repository if it points outside it (the repo-server refuses such a repository), so `build --check` fails while it is there"),
                (false, _) => warning,
                (true, true) => warning.help("its bundle's kustomization.yaml does not list it, so Argo CD and Flux do not apply it; `build --check` fails while it is there all the same"),
                (true, false) => warning.help("Argo CD or Flux may apply it as it is, so `build --check` fails while it is there"),
            }
        };
        diagnostics.push(warning.in_path(format!("out/{path}")));
    }
    diagnostics
}

/// Makes `out/` match the compiled tree. Writes nothing when nothing changed; completes and
/// swaps in `staging` when the compile started one. Returns the stamps of the files it wrote.
pub(crate) fn apply(
    root: &Path,
    existing: &Existing,
    compiled: &Compiled,
    changes: &Changes,
    staging: Option<Staging>,
) -> Result<BTreeMap<String, Seen>, Diagnostics> {
    if changes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = out_dir(root);
    if let Some(conflict) = foreign_in_the_way(&out, &compiled.tree, &compiled.kept, &existing.foreign) {
        return Err(conflict);
    }
    if staging.is_none() && out.is_dir() && changes.count() * 4 <= existing.generated.len() {
        return update_in_place(&out, &compiled.tree, changes);
    }
    let staging = match staging {
        Some(staging) => staging,
        None => Staging::new(root)?,
    };
    let written = stage(&out, staging.path(), existing, &compiled.tree, &compiled.kept, changes)
        .map_err(|e| io_error("cannot write the new out/", staging.path(), &e))?;
    swap_in(staging.path(), &out).map_err(|e| io_error("cannot replace out/", &out, &e))?;
    let mut staged = std::mem::take(&mut *staging.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    // Sorted on both cores, then collected as two sorted runs, which costs one merge: `extend`
    // would insert 100,000 paths one by one at 10,000 boxes. Each path is written once.
    staged.par_sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    let written: BTreeMap<String, Seen> = written.into_iter().chain(staged).collect();
    // `staging` now holds the previous out/ (if there was one); dropping it removes it.
    drop(staging);
    Ok(written)
}

/// The start of the message of an in-place update that failed after replacing some files:
/// the one failure of `build` after which out/ is not as it was.
pub(crate) const PARTLY_UPDATED: &str = "cannot finish updating out/";

/// Writes each created or updated file beside its target and renames it over, and unlinks the
/// removed ones (and the directories they leave empty). In two steps, so that a failure leaves
/// out/ as it was: every new file is written first, and only once all are does any replace its
/// target. What would stop a rename (a directory where a file goes, a file where a directory
/// goes) is refused before anything is written.
fn update_in_place(out: &Path, tree: &OutTree, changes: &Changes) -> Result<BTreeMap<String, Seen>, Diagnostics> {
    let targets: Vec<&String> = changes.created.iter().chain(&changes.updated).collect();
    for path in &targets {
        let target = out.join(path);
        if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            return Err(in_the_way(&target, "a directory", "a file"));
        }
        let ancestors = target.ancestors().skip(1).take_while(|dir| *dir != out);
        if let Some(file) = ancestors.filter(|dir| dir.symlink_metadata().is_ok_and(|m| !m.is_dir())).last() {
            return Err(in_the_way(file, "a file", "a directory"));
        }
    }
    // Made for new bundles; removed again, deepest first, if the update does not happen.
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    for path in &targets {
        let ancestors = out.join(path).ancestors().skip(1).take_while(|dir| *dir != out).map(Path::to_path_buf).collect::<Vec<_>>();
        made.extend(ancestors.into_iter().filter(|dir| dir.symlink_metadata().is_err()));
    }
    // Named by number, not after the target: a target's name may already be as long as a file
    // name can be. A crash can leave one behind; the next build removes it ([`is_leftover`]).
    let temporaries: Vec<PathBuf> = targets
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let target = out.join(path);
            target.parent().unwrap_or(out).join(format!(".{}-{index}{TEMPORARY_SUFFIX}", std::process::id()))
        })
        .collect();
    let _temporaries = interrupt::temporary(temporaries.clone());
    let written: Vec<io::Result<(String, PathBuf, Seen)>> = targets
        .par_iter()
        .zip(&temporaries)
        .map(|(path, temporary)| {
            let _writing = interrupt::writing();
            fs::create_dir_all(temporary.parent().unwrap_or(out))?;
            // A rename keeps the file's inode and mtime: the temporary's stamp is the target's.
            let seen = write_seen(temporary, &tree.files[*path])?;
            Ok(((*path).clone(), temporary.clone(), seen))
        })
        .collect();
    if let Some(error) = written.iter().find_map(|result| result.as_ref().err()) {
        let message = io_error("cannot update", out, error);
        // Every one, written or not: a disk that filled up fails a write after its file exists.
        for temporary in &temporaries {
            let _ = fs::remove_file(temporary);
        }
        for dir in made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        return Err(message);
    }
    let partly = |path: &Path, error: &io::Error| -> Diagnostics {
        Diagnostic::error(format!("{PARTLY_UPDATED} at {}: {error}", path.display()))
            .in_path(path.display().to_string())
            .help("some files of out/ are new and some old: fix the cause and run `devbox-gen build` again, which finishes the update")
            .into()
    };
    // Interrupted, the renames are finished first: out/ is then all new, not part new.
    let _writing = interrupt::writing();
    let mut stamps = BTreeMap::new();
    for (path, temporary, seen) in written.into_iter().flatten() {
        let target = out.join(&path);
        fs::rename(&temporary, &target).map_err(|e| partly(&target, &e))?;
        stamps.insert(path, seen);
    }
    for path in &changes.removed {
        let target = out.join(path);
        fs::remove_file(&target).map_err(|e| partly(&target, &e))?;
        let mut directory = target.parent();
        while let Some(dir) = directory.filter(|dir| *dir != out) {
            if fs::remove_dir(dir).is_err() {
                break; // not empty
            }
            directory = dir.parent();
        }
    }
    Ok(stamps)
}

/// A file of out/ that devbox-gen did not generate (it is kept) where the new out/ needs a
/// directory, or inside a directory where it needs a file.
fn foreign_in_the_way(out: &Path, tree: &OutTree, kept: &BTreeSet<String>, foreign: &[String]) -> Option<Diagnostics> {
    let files: BTreeSet<&str> = tree.files.keys().chain(kept).map(String::as_str).collect();
    let directories: BTreeSet<&str> = files.iter().flat_map(|path| path.match_indices('/').map(move |(end, _)| &path[..end])).collect();
    foreign.iter().find_map(|path| {
        if directories.contains(path.as_str()) {
            return Some(in_the_way(&out.join(path), "a file", "a directory"));
        }
        let file = path.match_indices('/').map(|(end, _)| &path[..end]).find(|dir| files.contains(dir))?;
        Some(in_the_way(&out.join(file), &format!("a directory (holding {path})"), "a file"))
    })
}

/// Something in out/ where the build must put something else.
fn in_the_way(path: &Path, what: &str, needed: &str) -> Diagnostics {
    Diagnostic::error(format!("{} is {what}, where the build puts {needed}", path.display()))
        .in_path(path.display().to_string())
        .help("move it out of out/ (out/ holds what devbox-gen generates), then build again; out/ was left as it was")
        .into()
}

fn stage(
    out: &Path,
    staging: &Path,
    existing: &Existing,
    tree: &OutTree,
    kept: &BTreeSet<String>,
    changes: &Changes,
) -> io::Result<BTreeMap<String, Seen>> {
    let writing = interrupt::writing();
    let all: Vec<&String> = tree.files.keys().chain(kept).chain(&existing.foreign).collect();
    let directories: BTreeSet<&str> = all.iter().filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir)).collect();
    for directory in directories {
        fs::create_dir_all(staging.join(directory))?;
    }
    drop(writing);
    let rewritten: BTreeSet<&String> = changes.created.iter().chain(&changes.updated).collect();
    let written = tree
        .files
        .par_iter()
        .map(|(path, text)| {
            let _writing = interrupt::writing();
            let target = staging.join(path);
            // A hard link keeps an unchanged file's inode and mtime: "rebuilding rewrites no file".
            if !rewritten.contains(path) && fs::hard_link(out.join(path), &target).is_ok() {
                return Ok(None);
            }
            Ok(Some((path.clone(), write_seen(&target, text)?)))
        })
        .filter_map(Result::transpose)
        .collect::<io::Result<BTreeMap<String, Seen>>>()?;
    let _writing = interrupt::writing();
    kept.par_iter().try_for_each(|path| {
        let target = staging.join(path);
        fs::hard_link(out.join(path), &target).or_else(|_| fs::copy(out.join(path), &target).map(drop))
    })?;
    for path in &existing.foreign {
        let (source, target) = (out.join(path), staging.join(path));
        // A foreign file where the build wrote one of its own is replaced, not carried over.
        if target.symlink_metadata().is_ok() {
            continue;
        }
        if fs::hard_link(&source, &target).is_err() {
            if source.symlink_metadata()?.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
            } else {
                fs::copy(&source, &target)?;
            }
        }
    }
    Ok(written)
}

/// Creates a file with `text` and returns what the next build's cache records of it: its stamp,
/// read from the open file (no second walk of the path, one `statx` fewer per file written),
/// and the hash of `text`, taken by the thread that wrote it.
fn write_seen(path: &Path, text: &str) -> io::Result<Seen> {
    let mut file = fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    Ok(Seen { stamp: Stamp::of(&file.metadata()?), digest: Digest::of(text.as_bytes()) })
}

/// Temporary directories are private (0700); out/ is an ordinary, shared directory.
fn set_directory_mode(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// Puts `staging` in place of `out`, and the previous `out` (if any) at `staging`.
fn swap_in(staging: &Path, out: &Path) -> io::Result<()> {
    let _writing = interrupt::writing();
    if out.symlink_metadata().is_err() {
        return fs::rename(staging, out);
    }
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staging, CWD, out, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        // A kernel or filesystem without RENAME_EXCHANGE: two renames, a moment without out/
        // in between. Any other error (permissions, a missing directory) is the answer.
        Err(errno) if exchange_unsupported(errno) => {
            let aside = staging.with_extension("previous");
            fs::rename(out, &aside)?;
            if let Err(error) = fs::rename(staging, out) {
                // Put the previous out/ back rather than leave none.
                let _ = fs::rename(&aside, out);
                return Err(error);
            }
            fs::rename(&aside, staging)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// What `renameat2(RENAME_EXCHANGE)` answers where it is not supported: `EINVAL` (a filesystem
/// without it), `ENOSYS` (a kernel without `renameat2`), `EOPNOTSUPP`.
fn exchange_unsupported(errno: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&errno)
}

fn io_error(what: &str, path: &Path, error: &io::Error) -> Diagnostics {
    Diagnostic::error(format!("{what} {}: {error}", path.display()))
        .in_path(path.display().to_string())
        .help("check the permissions and free space of the config repo; out/ was left as it was")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The no-op build trusts these stamps instead of reading the files: they must be what a
    /// later `stat` of the path sees, also after the rename of an in-place update.
    #[test]
    fn the_stamp_of_a_written_file_is_what_stat_sees_after_a_rename() {
        let root = tempfile::tempdir().unwrap();
        let (temporary, target) = (root.path().join(".a.tmp"), root.path().join("a.yaml"));
        let Seen { stamp, digest } = write_seen(&temporary, "kind: ConfigMap\n").unwrap();
        assert_eq!(stamp, Stamp::of(&temporary.symlink_metadata().unwrap()));
        fs::rename(&temporary, &target).unwrap();
        assert_eq!(stamp, Stamp::of(&target.symlink_metadata().unwrap()));
        assert_eq!(stamp.len, 16);
        assert_eq!(digest, Digest::of(&fs::read(&target).unwrap()));
    }

    #[test]
    fn swap_in_exchanges_the_directories() {
        let root = tempfile::tempdir().unwrap();
        let (staging, out) = (root.path().join("staging"), root.path().join("out"));
        fs::create_dir(&staging).unwrap();
        fs::create_dir(&out).unwrap();
        fs::write(staging.join("new"), "new").unwrap();
        fs::write(out.join("old"), "old").unwrap();
        swap_in(&staging, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("new")).unwrap(), "new");
        assert_eq!(fs::read_to_string(staging.join("old")).unwrap(), "old");
    }

    #[test]
    fn swap_in_fails_without_moving_out_when_the_exchange_fails() {
        // ENOENT is not "unsupported": no fallback, which would have moved out/ aside first.
        let root = tempfile::tempdir().unwrap();
        let (staging, out) = (root.path().join("staging"), root.path().join("out"));
        fs::create_dir(&out).unwrap();
        fs::write(out.join("old"), "old").unwrap();
        let error = swap_in(&staging, &out).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert_eq!(fs::read_to_string(out.join("old")).unwrap(), "old");
        assert!(!root.path().join("staging.previous").exists());
    }

    #[test]
    fn only_unsupported_exchanges_fall_back_to_two_renames() {
        use rustix::io::Errno;
        for errno in [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP] {
            assert!(exchange_unsupported(errno), "{errno}");
        }
        for errno in [Errno::NOENT, Errno::ACCESS, Errno::PERM, Errno::XDEV, Errno::NOSPC, Errno::BUSY] {
            assert!(!exchange_unsupported(errno), "{errno}");
        }
    }
}
