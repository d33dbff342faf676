//! `diff --base REF`: the `out/` committed at another revision, read from git's object store
//! (`ls-tree`, then one `cat-file --batch` for every file), so neither the work tree nor the
//! index is touched and a CI job can compare a PR with `origin/main` in place.
//!
//! Files git already holds byte for byte, as its object ids show, are not read at all, so a
//! one-user PR reads one user's files.
//!
//! The config repo may sit anywhere inside the git repository (`rev-parse --show-prefix`). As
//! for `out/` on disk, only files that start with the generated marker count; the rest are
//! someone else's, except claim files that lost the marker to a hand edit, which the checks of
//! what a home claim cannot become still hold against, and the base side of the hand-written
//! manifests the branch keeps in `out/`, which Argo CD and Flux apply as they are.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{GENERATED_MARKER, OutTree};
use crate::git::{Failure, git};
use crate::write::{MAX_CLAIM_BYTES, MAX_FOREIGN_BYTES, UNREAD_FOREIGN, is_claim_file};

/// `out/` at a revision, as far as it differs from a compiled tree.
#[derive(Debug, Default)]
pub(crate) struct OutAt {
    /// Said of the comparison itself: the base is not where this branch left it, or has no
    /// `out/` where this config repo keeps it.
    pub notes: Vec<Diagnostic>,
    /// The generated files that differ from the compiled tree (or are not in it).
    pub differing: OutTree,
    /// Paths whose blob is byte for byte the compiled file: not read.
    pub same: Vec<String>,
    /// Files named like a PersistentVolumeClaim's that do not start with the marker (edited by
    /// hand), at most [`MAX_CLAIM_BYTES`] each.
    pub hand_made_claims: OutTree,
}

/// The object id git gives a blob of these bytes (SHA-1 repositories).
pub(crate) fn blob_id(bytes: &[u8]) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hasher.digest().to_string()
}

/// The generated files of `out/` at `rev`, relative to `out/` like [`crate::write::read_existing`],
/// and those of the `hand_written` manifests the work tree keeps there, except those that are
/// byte for byte the file of `compiled` at the same path: git's object ids say so without
/// reading them. No `out/` at that revision (the PR that adds the first
/// user) is an empty tree.
pub(crate) fn read_out_at(root: &Path, rev: &str, compiled: &OutTree, hand_written: &BTreeSet<String>) -> Result<OutAt, Diagnostics> {
    if rev.is_empty() || rev.starts_with('-') || rev.contains(|c: char| c.is_control() || c == ' ') {
        return Err(Diagnostic::error(format!("`{}` is not a git revision", rev.escape_debug()))
            .help("give a branch, tag or commit, e.g. `--base origin/main`")
            .into());
    }
    let prefix = git(root, &["rev-parse", "--show-prefix"], None).map_err(|e| match e {
        Failure::Spawn(e) => no_git(&e),
        Failure::Exit(message) => match Failure::dubious_ownership(&message) {
            Some(repository) => Diagnostic::error(format!(
                "`--base {rev}` reads out/ from git, but git refuses to read {repository}: another user owns it"
            ))
            .help(Failure::trust_help(repository))
            .help("in a CI job that runs in a container (GitHub's `container:`, GitLab's Docker executor), the checkout often belongs to another user than the job's: run that command before devbox-gen")
            .into(),
            None => Failure::lines(&message)
                .fold(
                    Diagnostic::error(format!("`--base {rev}` reads out/ from git, but {} is not in a git repository", root.display())),
                    Diagnostic::help,
                )
                .help("leave out `--base` to compare with out/ on disk")
                .into(),
        },
    })?;
    let prefix = String::from_utf8_lossy(&prefix).trim_end_matches('\n').to_string();
    let commit = git(root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")], None).map_err(|e| match e {
        Failure::Spawn(e) => no_git(&e),
        Failure::Exit(_) => Diagnostic::error(format!("no commit `{rev}` in the git repository"))
            .help("check the name (`git branch --all`); a remote branch needs its remote: `origin/main`")
            .help("in CI, fetch it first: a shallow checkout has only the PR's commit (actions/checkout with `fetch-depth: 0`, or `git fetch origin +refs/heads/main:refs/remotes/origin/main`, which a single-branch clone needs spelled out; `--base FETCH_HEAD` works after any fetch)")
            .into(),
    })?;
    let commit = String::from_utf8_lossy(&commit).trim().to_string();
    let mut at = OutAt::default();
    // A branch behind its base shows what was merged there since as undone by this change. A
    // shallow clone cuts the history that would tell: there, nothing is said.
    let shallow = git(root, &["rev-parse", "--is-shallow-repository"], None).is_ok_and(|out| out.starts_with(b"true"));
    let behind = git(root, &["merge-base", "--is-ancestor", &commit, "HEAD"], None).is_err()
        && git(root, &["rev-parse", "--verify", "--quiet", "HEAD"], None).is_ok();
    if shallow && behind {
        at.notes.push(
            Diagnostic::warning(format!("this clone is shallow: whether `{rev}` has commits this branch lacks cannot be told"))
                .help(format!("if it has, what they changed in out/ shows here as undone by this change (a user added there shows as removed): fetch the history (`git fetch --unshallow`), or compare with where the branch left `{rev}`"))
                .help("in CI, check out with the history: actions/checkout with `fetch-depth: 0`, GitLab with `GIT_DEPTH: \"0\"`"),
        );
    }
    if !shallow && behind {
        at.notes.push(
            Diagnostic::warning(format!("`{rev}` has commits this branch lacks: what they changed in out/ shows here as undone by it"))
                .help(format!("merge or rebase onto `{rev}` first, or compare with where the branch left it: `--base \"$(git merge-base {rev} HEAD)\"`"))
                .help("in CI, compare the merge result: GitHub's pull_request checkout is one; GitLab's merged results pipelines give one"),
        );
    }
    let mut out = format!("{commit}:{prefix}out");
    let is_tree = |out: &str| git(root, &["cat-file", "-t", out], None).is_ok_and(|kind| kind == b"tree\n");
    // A change that moves the config repo ([repo] path) is compared with out/ where it was.
    if !is_tree(&out)
        && let Some(moved_from) = moved_from(root, &commit, &prefix)
        && is_tree(&format!("{commit}:{moved_from}out"))
    {
        at.notes.push(Diagnostic::warning(format!(
            "the config repo moves from {} to {} in this change: compared with out/ where it was at `{rev}`",
            if moved_from.is_empty() { "the repository's top" } else { moved_from.trim_end_matches('/') },
            if prefix.is_empty() { "the repository's top" } else { prefix.trim_end_matches('/') },
        )));
        out = format!("{commit}:{moved_from}out");
    }
    if !is_tree(&out) {
        at.notes.push(
            Diagnostic::warning(format!("`{rev}` has no out/ at {prefix}out: every file of out/ shows as new"))
                .help("if this change moves the config repo ([repo] path), Argo CD and Flux still read the old path until their objects change: apply the new out/_gitops/ by hand once"),
        );
        return Ok(at);
    }
    let listing = git(root, &["ls-tree", "-r", "-z", "--full-tree", &out], None).map_err(|e| failed(rev, e))?;
    let mut paths = Vec::new();
    let mut ids = String::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        // `<mode> SP <type> SP <object> TAB <path>`; links (120000) and submodules are not ours.
        let Some(tab) = entry.iter().position(|b| *b == b'\t') else { continue };
        let (meta, path) = (String::from_utf8_lossy(&entry[..tab]), &entry[tab + 1..]);
        let mut fields = meta.split(' ');
        let (Some(mode), Some(kind), Some(object)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let Ok(path) = std::str::from_utf8(path) else { continue };
        if !matches!(mode, "100644" | "100755") || kind != "blob" {
            continue;
        }
        if compiled.files.get(path).is_some_and(|text| blob_id(text.as_bytes()) == object) {
            at.same.push(path.to_string());
            continue;
        }
        paths.push(path.to_string());
        ids.push_str(object);
        ids.push('\n');
    }
    if paths.is_empty() {
        return Ok(at);
    }
    let batch = git(root, &["cat-file", "--batch"], Some(ids.into_bytes())).map_err(|e| failed(rev, e))?;
    let tree = &mut at.differing;
    let mut rest = batch.as_slice();
    for path in paths {
        // `<object> SP <type> SP <size> LF <contents> LF`
        let Some(newline) = rest.iter().position(|b| *b == b'\n') else { break };
        let header = String::from_utf8_lossy(&rest[..newline]).to_string();
        rest = &rest[newline + 1..];
        let Some(size) = header.rsplit(' ').next().and_then(|s| s.parse::<usize>().ok()) else { continue };
        let Some(contents) = rest.get(..size) else { break };
        rest = rest.get(size + 1..).unwrap_or_default();
        let Ok(text) = std::str::from_utf8(contents) else { continue };
        if text.starts_with(GENERATED_MARKER) {
            tree.files.insert(path, text.to_string());
        } else if size <= MAX_CLAIM_BYTES && is_claim_file(&path) {
            at.hand_made_claims.files.insert(path, text.to_string());
        } else if hand_written.contains(&path) {
            // A hand-written manifest the branch changes: compared with what it was.
            let text = if size as u64 <= MAX_FOREIGN_BYTES { text.to_string() } else { UNREAD_FOREIGN.to_string() };
            tree.files.insert(path, text);
        }
    }
    Ok(at)
}

/// Where the config repo at `prefix` (`deploy/devboxes/`) was at `commit`, when this change
/// moved it there: git's rename detection, between `commit` and the work tree, of its
/// devbox.toml, or else of a user file.
fn moved_from(root: &Path, commit: &str, prefix: &str) -> Option<String> {
    let top = git(root, &["rev-parse", "--show-toplevel"], None).ok()?;
    let top = String::from_utf8_lossy(&top).trim_end_matches('\n').to_string();
    let renames = git(Path::new(&top), &["diff", "--name-status", "-z", "-M", "--diff-filter=R", commit, "--"], None).ok()?;
    // `R<score> NUL <old> NUL <new> NUL`, repeated.
    let fields: Vec<&[u8]> = renames.split(|b| *b == 0).collect();
    let mut found = None;
    for entry in fields.chunks(3) {
        let [status, old, new] = entry else { continue };
        let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else { continue };
        if !status.starts_with(b"R") {
            continue;
        }
        let Some(within) = new.strip_prefix(prefix) else { continue };
        if within != "devbox.toml" && !within.starts_with("users/") {
            continue;
        }
        let Some(old_prefix) = old.strip_suffix(within) else { continue };
        if within == "devbox.toml" {
            return Some(old_prefix.to_string());
        }
        found.get_or_insert_with(|| old_prefix.to_string());
    }
    found.filter(|old| old != prefix)
}

fn no_git(error: &io::Error) -> Diagnostics {
    Diagnostic::error(format!("`--base` reads out/ from git, but git cannot be run: {error}"))
        .help("install git, or leave out `--base` to compare with out/ on disk")
        .into()
}

fn failed(rev: &str, failure: Failure) -> Diagnostics {
    let message = match failure {
        Failure::Spawn(e) => e.to_string(),
        Failure::Exit(message) => message,
    };
    Failure::lines(&message).fold(Diagnostic::error(format!("cannot read out/ at `{rev}` from git")), Diagnostic::help).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_ids_are_gits() {
        // `git hash-object /dev/null` and `printf 'hello\n' | git hash-object --stdin`.
        assert_eq!(super::blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        assert_eq!(super::blob_id(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
