//! The links Argo CD refuses. Before it renders any Application, Argo CD's repo-server walks the
//! whole checkout and refuses the repository if one symbolic link is absolute or leads outside
//! it ("repository contains out-of-bounds symlinks", `CheckOutOfBoundsSymlinks` in
//! argo-cd's `util/app/path`): then no Application of the repository syncs, whichever
//! directory it reads. The rule is lexical, as Argo CD's is: the target's parts are taken one
//! by one from the link's directory, and the link is refused as soon as one of them is above
//! the repository's top, whether or not the target exists.
//!
//! Only what git tracks is looked at (`git ls-files`), as only that reaches Argo CD: a
//! virtualenv's absolute links in an ignored `.venv/` are not the team's problem. Outside git,
//! or without git, there is nothing to check. `out/` is left to the build's own check of the
//! files it did not write, which refuses every link there.

use std::path::Path;

use crate::git::{Failure, git};

/// A tracked link that leaves the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeavingLink {
    /// Where it is, relative to the config repo.
    pub path: String,
    /// What it points to, as written in it.
    pub target: String,
}

/// The tracked links of the config repo (outside `out/`) that Argo CD's repo-server refuses;
/// `Err` with the repository's path when git refuses to read it because another user owns it
/// (a CI job in a container), so that what was not looked at can be said.
pub(crate) fn links_leaving_the_repository(root: &Path) -> Result<Vec<LeavingLink>, String> {
    let prefix = match git(root, &["rev-parse", "--show-prefix"], None) {
        Ok(prefix) => prefix,
        Err(Failure::Exit(ref message)) if let Some(repository) = Failure::dubious_ownership(message) => return Err(repository.to_string()),
        Err(_) => return Ok(Vec::new()),
    };
    let prefix = String::from_utf8_lossy(&prefix).trim_end_matches('\n').to_string();
    let Ok(listing) = git(root, &["ls-files", "--stage", "-z", "--", ".", ":(exclude)out"], None) else {
        return Ok(Vec::new());
    };
    let mut leaving = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        // `<mode> SP <object> SP <stage> TAB <path>`, the path relative to the config repo.
        let Some(tab) = entry.iter().position(|b| *b == b'\t') else { continue };
        if !entry.starts_with(b"120000 ") {
            continue;
        }
        let Ok(path) = std::str::from_utf8(&entry[tab + 1..]) else { continue };
        let Ok(target) = std::fs::read_link(root.join(path)) else { continue };
        let target = target.to_string_lossy().into_owned();
        if leaves(&format!("{prefix}{path}"), &target) {
            leaving.push(LeavingLink { path: path.to_string(), target });
        }
    }
    Ok(leaving)
}

/// Whether the link at `path` (relative to the repository's top) pointing to `target` is one
/// Argo CD refuses: an absolute target, or one with a part above the top.
fn leaves(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth = path.split('/').filter(|part| !part.is_empty()).count().saturating_sub(1);
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if depth == 0 => return true,
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::leaves;

    // The cases of argo-cd's util/app/path tests (testdata/goodlink, badlink, badlink2,
    // abslink), restated for a link at the path given.
    #[test]
    fn a_link_is_refused_as_argo_cd_refuses_it() {
        assert!(leaves("README.md", "/etc/passwd"), "absolute");
        assert!(leaves("README.md", "../README.md"), "above the top");
        assert!(leaves("docs/guide.md", "../../x"), "two up from one down");
        assert!(leaves("docs/guide.md", "a/../../../x"), "back down, then out");
        assert!(leaves("docs/guide.md", "../.././docs/guide.md"), "out and back in is still out: the rule is lexical");
        assert!(!leaves("docs/guide.md", "../README.md"), "up to the top is inside");
        assert!(!leaves("docs/guide.md", "./a/../b//c"), "dots and empty parts");
        assert!(!leaves("templates/devbox.jsonnet", "../shared/devbox.jsonnet"), "a sibling directory");
        assert!(!leaves("README.md", "missing-file"), "a dangling link inside is no concern of Argo CD");
    }
}
