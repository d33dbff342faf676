//! What the help and the summaries say is what the commands do: where `-C` writes, every exit
//! status, and counts that agree with their number.

use crate::common::{KEY_ALICE_2, Repo, assert_contains, user_file};

/// `--help` with clap's line wrapping undone, so that a sentence is asserted whole whatever
/// the terminal's width.
fn help(repo: &Repo, args: &[&str]) -> String {
    let run = repo.run_ok(&[args, &["--help"]].concat(), 0);
    run.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_root_flag_says_where_each_command_writes() {
    let repo = Repo::with_alice();
    for args in [&[][..], &["build"], &["init"]] {
        assert_contains!(
            help(&repo, args),
            "-C, --root <DIR> The config repo. Commands read DIR/devbox.toml and DIR/users/*.toml and write only inside DIR: \
             `build` out/ and its cache .devbox-gen/, `new` one users/NAME.toml, `schema` schema/, `init` the starting files \
             (`man --out-dir` writes where it is told) [default: .]",
            "{args:?}"
        );
    }
}

#[test]
fn every_command_with_an_exit_status_documents_it() {
    let repo = Repo::with_alice();
    let cases: [(&str, &str); 9] = [
        (
            "build",
            "Exit status: 0 out/ is written and current (with --check: out/ is current) 1 only with --check: out/ is stale; run \
             `devbox-gen build` 2 an error: invalid input, a template failure or a refused change; nothing under out/ changed",
        ),
        (
            "diff",
            "Exit status: 0 compiling users/ changes nothing in out/ 1 it changes out/: the report says how 2 an error, or a change \
             Kubernetes cannot apply: a home volume shrunk or of another class",
        ),
        ("validate", "Exit status: 0 every file is valid (warnings may be printed) 2 a file has an error"),
        (
            "schema",
            "Exit status: 0 schema/ is written and current (with --check: schema/ is current) 1 only with --check: schema/ is stale; \
             run `devbox-gen schema` 2 an error",
        ),
        ("new", "Exit status: 0 users/NAME.toml is written 2 an error (a flag's value, a file that exists); nothing is written"),
        (
            "init",
            "Exit status: 0 the files are written 2 an error (a flag's value, a file that exists without --force); nothing is written",
        ),
        ("show", "Exit status: 0 success 2 an error"),
        ("secrets", "Exit status: 0 success 2 an error"),
        ("ssh-config", "Exit status: 0 success 2 an error"),
    ];
    for (command, status) in cases {
        let text = help(&repo, &[command]);
        assert!(text.ends_with(status), "`{command} --help` does not end with\n{status}\n---\n{text}");
    }
    // And the codes are the real ones.
    repo.run_ok(&["build", "--check"], 1);
    repo.run_ok(&["diff"], 1);
    repo.run_ok(&["build"], 0);
    repo.run_ok(&["build", "--check"], 0);
    repo.run_ok(&["diff"], 0);
    repo.write("users/alice.toml", "email = \"alice\"\n");
    repo.run_ok(&["build", "--check"], 2);
    repo.run_ok(&["diff"], 2);
}

#[test]
fn counts_of_one_are_singular() {
    let repo = Repo::with_alice();
    assert_eq!(repo.run_ok(&["validate"], 0).stderr, "1 user file is valid\n");
    assert_eq!(repo.run_ok(&["build"], 0).stderr, "built 1 user into out/: 11 created, 0 updated, 0 removed\n");
    assert_eq!(repo.run_ok(&["build"], 0).stderr, "out/ is up to date (1 user)\n");
    assert_eq!(repo.run_ok(&["build", "--check"], 0).stderr, "out/ is up to date (1 user)\n");
    std::fs::remove_file(repo.path().join("out/alice/service-alice.yaml")).unwrap();
    let run = repo.run_ok(&["build", "--check"], 1);
    assert_eq!(run.stdout, "create out/alice/service-alice.yaml\n");
    assert_eq!(run.stderr, "out/ is stale: 1 file would change; run `devbox-gen build`\n");

    let repo = repo.user("bob", &user_file("bob@example.com", KEY_ALICE_2));
    assert_eq!(repo.run_ok(&["validate"], 0).stderr, "2 user files are valid\n");
    assert_contains!(repo.run_ok(&["build", "--check"], 1).stderr, "out/ is stale: 11 files would change");
    assert_eq!(repo.run_ok(&["build"], 0).stderr, "built 2 users into out/: 11 created, 0 updated, 0 removed\n");
    assert_eq!(
        repo.run_ok(&["build", "-v"], 0).stderr.lines().find(|l| l.starts_with("cache:")),
        Some("cache: 2 of 2 bundles unchanged since the last build, not rendered again")
    );
}
