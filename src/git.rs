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

impl Failure {
    /// What git said, a line each (blank lines dropped): a help line of a diagnostic is one line.
    pub(crate) fn lines(message: &str) -> impl Iterator<Item = &str> {
        message.lines().map(str::trim).filter(|line| !line.is_empty())
    }

    /// The repository git will not read because another user owns it (`safe.directory`, git
    /// 2.35.2 on): where it is, as git names it.
    pub(crate) fn dubious_ownership(message: &str) -> Option<&str> {
        let (_, rest) = message.split_once("detected dubious ownership in repository at '")?;
        rest.split_once('\'').map(|(path, _)| path)
    }

    /// The help line that lets git read such a repository.
    pub(crate) fn trust_help(repository: &str) -> String {
        format!("if you trust it: `git config --global --add safe.directory {repository}`")
    }
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

#[cfg(test)]
mod tests {
    use super::Failure;

    /// What git 2.47 prints for a repository another user owns (`die_upon_dubious_ownership`
    /// in git's setup.c): four lines, one of them blank.
    const DUBIOUS: &str = "fatal: detected dubious ownership in repository at '/work/repo'\nTo add an exception for this directory, call:\n\n\tgit config --global --add safe.directory /work/repo\n";

    #[test]
    fn a_repository_another_user_owns_is_told_by_its_path() {
        assert_eq!(Failure::dubious_ownership(DUBIOUS), Some("/work/repo"));
        assert_eq!(Failure::dubious_ownership("fatal: not a git repository (or any of the parent directories): .git"), None);
    }

    #[test]
    fn gits_message_is_one_help_line_per_line() {
        let lines: Vec<&str> = Failure::lines(DUBIOUS).collect();
        assert_eq!(
            lines,
            [
                "fatal: detected dubious ownership in repository at '/work/repo'",
                "To add an exception for this directory, call:",
                "git config --global --add safe.directory /work/repo",
            ]
        );
    }
}
