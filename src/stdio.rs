//! Standard output and error without the panics of `print!` and `eprint!`, which abort with
//! exit code 101 when the stream cannot be written (a full disk, `> /dev/full`).
//!
//! What a command prints on stdout is its result: failing to write it is an error of the
//! command (exit 2), or `diff --format markdown > comment.md` on a full CI disk would post an
//! empty comment and report success. A reader that stopped reading (`show alice | head`) is
//! not a failure. Lines on stderr are best effort: when stderr cannot be written, there is
//! nowhere left to say so.

use std::io::{self, Write};

use crate::diagnostic::{Diagnostic, Diagnostics};

/// Writes `bytes` to stdout and flushes it.
pub(crate) fn print(bytes: impl AsRef<[u8]>) -> Result<(), Diagnostics> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes.as_ref()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(unwritable(&error)),
        _ => Ok(()),
    }
}

/// What printing failed with, as the command's error.
pub(crate) fn unwritable(error: &io::Error) -> Diagnostics {
    Diagnostic::error(format!("cannot write to standard output: {error}"))
        .help("make room where standard output goes (a full disk?), or send it elsewhere")
        .into()
}

/// One line on stderr, if it can be written.
pub(crate) fn status_line(line: std::fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Text on stderr as it is, if it can be written.
pub(crate) fn to_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
