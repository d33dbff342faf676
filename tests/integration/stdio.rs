//! Standard output or error that cannot be written (`> /dev/full`: a full disk): what a
//! command prints on stdout is its result, so failing to write it is an error (exit 2), never
//! a panic (101) or a success with nothing printed.

use std::fs::{File, OpenOptions};
use std::process::{Command, Stdio};

use crate::common::{Repo, assert_contains};

fn full() -> File {
    OpenOptions::new().write(true).open("/dev/full").expect("/dev/full")
}

/// Runs devbox-gen in `repo` with stdout, or stderr, going to /dev/full: (exit code, what went
/// to the other stream).
fn run_into_full(repo: &Repo, args: &[&str], stream: &str) -> (Option<i32>, String) {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("devbox-gen"));
    command.arg("-C").arg(repo.path()).args(args).env("HOME", repo.path().join(".home")).stdin(Stdio::null());
    let output = if stream == "stdout" {
        command.stdout(full()).stderr(Stdio::piped()).output().unwrap()
    } else {
        command.stderr(full()).stdout(Stdio::piped()).output().unwrap()
    };
    let other = if stream == "stdout" { output.stderr } else { output.stdout };
    (output.status.code(), String::from_utf8_lossy(&other).into_owned())
}

#[test]
fn a_result_that_cannot_be_printed_is_an_error() {
    let repo = Repo::with_alice();
    // Not built yet: `build --check` and `diff` have changes to print.
    let commands: &[&[&str]] = &[
        &["show", "alice"],
        &["show", "--input", "alice"],
        &["list"],
        &["ssh-config", "alice"],
        &["wake", "alice"],
        &["build", "--check"],
        &["diff"],
        &["diff", "--format", "markdown"],
        &["diff", "--format", "json"],
        &["completions", "bash"],
        &["man"],
    ];
    for args in commands {
        let (code, stderr) = run_into_full(&repo, args, "stdout");
        assert_eq!(code, Some(2), "devbox-gen {args:?} > /dev/full\n{stderr}");
        assert_contains!(stderr, "cannot write to standard output: No space left on device");
    }
}

#[test]
fn errors_that_cannot_be_reported_still_fail_without_a_panic() {
    let repo = Repo::with_alice();
    for i in 0..50 {
        repo.write(&format!("users/u{i}.toml"), "email = \"x\"\n");
    }
    for args in [&["validate"][..], &["build"], &["diff"]] {
        let (code, _) = run_into_full(&repo, args, "stderr");
        assert_eq!(code, Some(2), "devbox-gen {args:?} 2> /dev/full");
    }
    let fine = Repo::with_alice();
    let (code, _) = run_into_full(&fine, &["build"], "stderr");
    assert_eq!(code, Some(0), "a build that succeeds still does when its summary cannot be printed");
}
