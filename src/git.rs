//! Running git, for what reads the repository's history or index rather than the work tree:
//! `diff --base`, and the tracked links a build checks. A build never needs git: without it,
//! that check has nothing to look at.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Why git gave no answer.
pub(crate) enum Failure {
    Spawn(io::Error),
    /// git ran and failed; its message.
    Exit(String),
}

/// Runs `git -C root ARGS`, feeding `input` on stdin; its stdout.
pub(crate) fn git(root: &Path, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>, Failure> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Failure::Spawn)?;
    // Written from another thread: git answers while it reads, and both pipes are bounded.
    let writer = input.and_then(|bytes| child.stdin.take().map(|mut stdin| std::thread::spawn(move || stdin.write_all(&bytes))));
    let output: Output = child.wait_with_output().map_err(Failure::Spawn)?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(Failure::Exit(if message.is_empty() { format!("git {} failed ({})", args.join(" "), output.status) } else { message }))
    }
}
