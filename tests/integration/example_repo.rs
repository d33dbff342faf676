//! The example config repo at the root of this repository is real: its out/ is what the tool
//! produces today.

use assert_cmd::Command;

#[test]
fn the_committed_out_is_current() {
    let output = Command::cargo_bin("devbox-gen").unwrap().args(["-C", env!("CARGO_MANIFEST_DIR"), "build", "--check"]).output().unwrap();
    assert!(
        output.status.success(),
        "out/ is stale; run `cargo run -- build`:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// docs/reviewing.md's example is what `diff --base` prints for its PR on this example repo:
/// every line the page shows comes, in order, in the real output (the page leaves some out,
/// and hunk line numbers, which move whenever a bundle grows, are not compared).
#[test]
fn the_diff_example_in_the_docs_is_what_diff_prints() {
    use std::path::Path;
    use std::process::Command as Process;

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for entry in ["devbox.toml", "users", "out", "schema"] {
        copy(&manifest.join(entry), &root.join(entry));
    }
    let git = |args: &[&str]| {
        let status = Process::new("git")
            .arg("-C")
            .arg(root)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    // The PR of the page: Alice moves to a newer image, Carol is removed, Dave adds a key.
    let edit = |file: &str, from: &str, to: &str| {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} no longer has {from:?}: update the example in docs/reviewing.md");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit("users/alice.toml", "\n[resources]", "\nimage = \"us-docker.pkg.dev/acme/devbox/jupyter:2024.09\"\n\n[resources]");
    edit(
        "users/dave.toml",
        " dave@laptop\"]",
        " dave@laptop\", \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdloufJH9/lc9oxT6pQaIRDdlaIRhq+9JFt+ktuA2ZX dave@desktop\"]",
    );
    std::fs::remove_file(root.join("users/carol.toml")).unwrap();
    let devbox_gen = |args: &[&str]| Command::cargo_bin("devbox-gen").unwrap().arg("-C").arg(root).args(args).output().unwrap();
    assert!(devbox_gen(&["build"]).status.success());
    git(&["commit", "-q", "-am", "pr"]);
    let output = devbox_gen(&["diff", "--base", "main~1"]);
    assert_eq!(output.status.code(), Some(1));
    let printed = String::from_utf8(output.stdout).unwrap();

    let hunk = |line: &str| match line.strip_prefix("@@ ").and_then(|rest| rest.split_once(" @@")) {
        Some((_, after)) => format!("@@ … @@{after}"),
        None => line.to_owned(),
    };
    for (page, section) in [("docs/reviewing.md", "\n### An example\n"), ("README.md", "\n## Reviewing a change\n")] {
        let text = std::fs::read_to_string(manifest.join(page)).unwrap();
        let example = text.split(section).nth(1).unwrap_or_else(|| panic!("{page} has {section:?}"));
        let shown = example.split("```text\n").nth(1).and_then(|block| block.split("\n```").next()).expect("a text block");
        let mut printed_lines = printed.lines().map(hunk);
        // `...` marks where the page leaves lines out.
        for line in shown.lines().filter(|line| *line != "...").map(hunk) {
            assert!(
                printed_lines.any(|printed| printed == line),
                "{page} shows a line `diff` does not print (or not in that order):\n{line}\n\nwhat it prints:\n{printed}"
            );
        }
    }
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}
