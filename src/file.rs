//! Files people keep beside `out/` (a user file, devbox.toml, the schemas, man pages, a CI
//! report), written whole or not at all: into a temporary file beside the target, then renamed
//! over it, or, for a file that must not exist yet, linked into place without replacing one. A
//! full disk or a file size limit leaves no file cut short, which would then fail to parse, or
//! pass review cut inside a comment. A link at the target is replaced, never written through.
//! `out/` has its own, faster way ([`crate::write`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `text` at `path`, replacing what is there.
pub(crate) fn replace(path: &Path, text: &str) -> io::Result<()> {
    let file = written_beside(path, text)?;
    file.persist(path).map(drop).map_err(|e| e.error)
}

/// Writes `text` at `path`, which must not exist yet (`AlreadyExists` if it does, even if it
/// appeared meanwhile).
pub(crate) fn create_new(path: &Path, text: &str) -> io::Result<()> {
    let file = written_beside(path, text)?;
    file.persist_noclobber(path).map(drop).map_err(|e| e.error)
}

/// A temporary file in `path`'s directory (which must exist) holding `text`, with the mode a
/// new file gets (0666 less the umask, where a temporary file is 0600), removed if dropped.
fn written_beside(path: &Path, text: &str) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file =
        tempfile::Builder::new().prefix(".").suffix(".devbox-gen-tmp").permissions(fs::Permissions::from_mode(0o666)).tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_not_written_over_one_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.toml");
        create_new(&path, "first").unwrap();
        let error = create_new(&path, "second").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_link_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target"), dir.path().join("devbox.toml"));
        fs::write(&target, "kept").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace(&link, "new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept");
        assert!(!fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
    }

    #[test]
    fn a_written_file_has_a_new_files_mode_not_a_temporary_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (written, plain) = (dir.path().join("a"), dir.path().join("b"));
        replace(&written, "x").unwrap();
        fs::write(&plain, "x").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written), mode(&plain));
    }
}
