//! Stage 6b, write: make `out/` equal to the emitted tree, or say how it differs (`--check`).
//!
//! Safety first, then speed. Nothing is written unless something changed. Otherwise the new
//! `out/` is assembled in a staging directory beside it, unchanged files hard-linked rather
//! than rewritten, and swapped in with one atomic `renameat2(RENAME_EXCHANGE)`: a crash, a full
//! disk or an error leaves the previous `out/` whole. Files that devbox-gen did not generate
//! are carried over and reported, never deleted; symbolic links are never followed.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{GENERATED_MARKER, OutTree};

/// What is in `out/` now. Only names are held: contents are read when compared, so a
/// 10,000-user `out/` is never in memory twice.
#[derive(Debug, Default)]
pub struct Existing {
    out: PathBuf,
    /// Files devbox-gen generated (they start with the marker line), relative to out/.
    pub generated: BTreeSet<String>,
    /// Anything else, by relative path: kept, reported.
    pub foreign: Vec<String>,
}

impl Existing {
    /// The contents of a generated file (`None` if it vanished meanwhile).
    pub fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.out.join(path)).ok()
    }

    /// Every generated file with its contents (for `diff`, which shows them).
    pub fn tree(&self) -> OutTree {
        self.tree_of(|_| true)
    }

    /// Only the home volumes' files: what `build` needs to refuse impossible changes.
    pub fn home_volume_tree(&self) -> OutTree {
        self.tree_of(|path| path.rsplit('/').next().is_some_and(|file| file.starts_with("persistentvolumeclaim-")))
    }

    fn tree_of(&self, wanted: impl Fn(&str) -> bool + Sync) -> OutTree {
        let files = self
            .generated
            .par_iter()
            .filter(|path| wanted(path))
            .filter_map(|path| self.read(path).map(|text| (path.clone(), text)))
            .collect();
        OutTree { files }
    }
}

/// How `out/` must change to match the emitted tree.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    pub fn count(&self) -> usize {
        self.created.len() + self.updated.len() + self.removed.len()
    }

    /// One line per file, `out/`-relative paths, in path order.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<(String, &str)> = Vec::new();
        lines.extend(self.created.iter().map(|p| (p.clone(), "create")));
        lines.extend(self.updated.iter().map(|p| (p.clone(), "update")));
        lines.extend(self.removed.iter().map(|p| (p.clone(), "remove")));
        lines.sort();
        lines.into_iter().map(|(path, verb)| format!("{verb} out/{path}")).collect()
    }
}

pub fn out_dir(root: &Path) -> PathBuf {
    root.join("out")
}

/// Lists `out/` without following links, telling generated files from anyone else's.
pub fn read_existing(root: &Path) -> Result<Existing, Diagnostics> {
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
    walk(&out, "", &mut existing)?;
    Ok(existing)
}

fn walk(dir: &Path, prefix: &str, existing: &mut Existing) -> Result<(), Diagnostics> {
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot read", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let file_type = entry.file_type().map_err(|e| io_error("cannot read", &entry.path(), &e))?;
        if file_type.is_dir() {
            walk(&entry.path(), &relative, existing)?;
        } else if file_type.is_file() && starts_with_marker(&entry.path()) {
            existing.generated.insert(relative);
        } else {
            existing.foreign.push(relative); // links and sockets are carried over, never followed
        }
    }
    Ok(())
}

fn starts_with_marker(path: &Path) -> bool {
    let mut head = [0u8; GENERATED_MARKER.len()];
    fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == GENERATED_MARKER.as_bytes()
}

/// Compares every file of `tree` with `out/`, reading the old contents in parallel.
pub fn changes(existing: &Existing, tree: &OutTree) -> Changes {
    let verdicts: Vec<(&String, Option<bool>)> = tree
        .files
        .par_iter()
        .map(|(path, text)| {
            let same = existing.generated.contains(path).then(|| existing.read(path).as_deref() == Some(text.as_str()));
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
    changes.removed = existing.generated.iter().filter(|p| !tree.files.contains_key(*p)).cloned().collect();
    changes
}

/// Warnings for files in `out/` that devbox-gen did not write.
pub fn foreign_warnings(existing: &Existing) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for path in &existing.foreign {
        diagnostics.push(
            Diagnostic::warning(format!("out/{path} was not generated by devbox-gen; it is kept"))
                .in_path(format!("out/{path}"))
                .help("out/ is generated: move hand-written manifests elsewhere, or delete the file if it is stale"),
        );
    }
    diagnostics
}

/// Makes `out/` match `tree`. Writes nothing when nothing changed.
pub fn apply(root: &Path, existing: &Existing, tree: &OutTree, changes: &Changes) -> Result<(), Diagnostics> {
    if changes.is_empty() {
        return Ok(());
    }
    let out = out_dir(root);
    let staging = tempfile::Builder::new()
        .prefix(".out.devbox-gen-")
        .tempdir_in(root)
        .map_err(|e| io_error("cannot create a staging directory", root, &e))?;
    stage(&out, staging.path(), existing, tree, changes).map_err(|e| io_error("cannot write the new out/", staging.path(), &e))?;
    swap_in(staging.path(), &out).map_err(|e| io_error("cannot replace out/", &out, &e))?;
    // `staging` now holds the previous out/; dropping it removes it.
    drop(staging);
    Ok(())
}

fn stage(out: &Path, staging: &Path, existing: &Existing, tree: &OutTree, changes: &Changes) -> io::Result<()> {
    set_directory_mode(staging)?;
    let all: Vec<&String> = tree.files.keys().chain(&existing.foreign).collect();
    let directories: BTreeSet<&str> = all.iter().filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir)).collect();
    for directory in directories {
        fs::create_dir_all(staging.join(directory))?;
    }
    let rewritten: BTreeSet<&String> = changes.created.iter().chain(&changes.updated).collect();
    tree.files.par_iter().try_for_each(|(path, text)| {
        let target = staging.join(path);
        // A hard link keeps an unchanged file's inode and mtime: "rebuilding rewrites no file".
        if rewritten.contains(path) || fs::hard_link(out.join(path), &target).is_err() {
            fs::write(&target, text)?;
        }
        Ok::<(), io::Error>(())
    })?;
    for path in &existing.foreign {
        let (source, target) = (out.join(path), staging.join(path));
        if fs::hard_link(&source, &target).is_err() {
            if source.symlink_metadata()?.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
            } else {
                fs::copy(&source, &target)?;
            }
        }
    }
    Ok(())
}

/// Temporary directories are private (0700); out/ is an ordinary, shared directory.
fn set_directory_mode(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn swap_in(staging: &Path, out: &Path) -> io::Result<()> {
    if out.symlink_metadata().is_err() {
        return fs::rename(staging, out);
    }
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staging, CWD, out, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_EXCHANGE: two renames, a moment without out/ in between.
        Err(_) => {
            let aside = staging.with_extension("previous");
            fs::rename(out, &aside)?;
            fs::rename(staging, out)?;
            fs::rename(&aside, staging)
        }
    }
}

fn io_error(what: &str, path: &Path, error: &io::Error) -> Diagnostics {
    Diagnostic::error(format!("{what} {}: {error}", path.display()))
        .in_path(path.display().to_string())
        .help("check the permissions and free space of the config repo; out/ was left as it was")
        .into()
}
