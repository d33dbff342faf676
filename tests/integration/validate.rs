use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, assert_not_contains, user_file};

#[test]
fn reports_every_problem_in_every_file_sorted_by_file_and_line() {
    let repo = Repo::new(SETTINGS)
        .user("bob", "email = \"bob\"\nstat = \"running\"\n[ssh]\nauthorized_keys = [\"not a key\"]\n")
        .user("alice", "email = \"alice@example.com\"\narch = \"riscv\"\n[ssh]\nauthorized_keys = []\n");
    let run = repo.run_ok(&["validate"], 2);
    // alice's wrong `arch` does not hide her empty key list: both are reported.
    let order: Vec<usize> = ["users/alice.toml:2", "users/alice.toml:4", "users/bob.toml:1", "users/bob.toml:2", "users/bob.toml:4"]
        .iter()
        .map(|needle| run.stderr.find(needle).unwrap_or_else(|| panic!("{needle} missing in:\n{}", run.stderr)))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "not sorted:\n{}", run.stderr);
    assert_contains!(run.stderr, "error: `riscv` is not a valid `arch`");
    assert_contains!(run.stderr, "help: use one of `amd64`, `arm64`");
    assert_contains!(run.stderr, "help: did you mean `state`?");
    assert_contains!(run.stderr, "error: no public key: nobody could log in");
    assert!(run.stderr.ends_with("error: 5 problems\n"), "{}", run.stderr);
}

#[test]
fn the_exact_message_for_a_typo() {
    let repo = Repo::new(SETTINGS).user("alice", &format!("{}[resources]\nmemroy = \"8Gi\"\n", user_file("alice@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["validate"], 2);
    assert_eq!(
        run.stderr,
        "error: unknown field `memroy`\n  ┌─ users/alice.toml:6:1\n  │\n6 │ memroy = \"8Gi\"\n  │ ^^^^^^ not a known field\n  │\n  = help: did you mean `memory`?\n\n"
    );
}

#[test]
fn a_private_key_is_refused_without_being_echoed() {
    let secret = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ";
    let repo = Repo::new(SETTINGS).user(
        "alice",
        &format!("email = \"alice@example.com\"\n[ssh]\nauthorized_keys = [\"-----BEGIN OPENSSH PRIVATE KEY-----\\n{secret}\"]\n"),
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "users/alice.toml:3:40: this file contains a private key");
    assert_not_contains!(run.stderr, secret, "the key was echoed");
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_private_key_pasted_without_its_header_lines_is_refused_without_being_echoed() {
    // The middle of ~/.ssh/id_ed25519, copied by mistake: no `-----BEGIN` line to tell it by.
    let body = [
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "QyNTUxOQAAACBSECRETSECRETSECRETSECRETSECRETSECRETSECRETSEC",
    ];
    let repo = Repo::new(SETTINGS)
        .user("alice", &format!("email = \"alice@example.com\"\n[ssh]\nauthorized_keys = ['''\n{}\n{}''']\n", body[0], body[1]));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "users/alice.toml:4:1: this file contains a private key");
    assert_contains!(run.stderr, "rotate it");
    for line in body {
        assert_not_contains!(run.stderr, line, "the key was echoed");
    }
    assert!(!repo.path().join("out").exists());
    // A key file outside the config repo, given to `validate`, was never committed: no advice
    // to rotate it.
    let elsewhere = tempfile::tempdir().unwrap();
    let key = elsewhere.path().join("id_ed25519");
    std::fs::write(&key, format!("{}\n{}\n", body[0], body[1])).unwrap();
    let run = repo.run_ok(&["validate", key.to_str().unwrap()], 2);
    assert_contains!(run.stderr, &format!("{}:1:1: this file contains a private key", key.display()));
    assert_contains!(run.stderr, "it is not a user file");
    assert_not_contains!(run.stderr, "rotate");
}

/// TOML allows no control character but tab and line ends. A NUL shows as nothing in a
/// terminal and an escape drives it: the message names the character, and the snippet shows a
/// `?` in its place, at the file's own line and column.
#[test]
fn a_control_character_is_named_and_never_printed() {
    let text = format!("{}shm = \"1Gi\"\u{0}\n", user_file("alice@example.com", KEY_ALICE));
    let line = text.lines().position(|l| l.starts_with("shm")).unwrap() + 1;
    let repo = Repo::new(SETTINGS).user("alice", &text).user("bob", "email = \"bob@example.com\"\nimage = \"x\u{1b}[2Jy\"\n");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "this file contains a NUL (U+0000), which TOML does not allow anywhere");
    assert_contains!(run.stderr, &format!("users/alice.toml:{line}:12"));
    assert_contains!(run.stderr, "shm = \"1Gi\"?");
    assert_contains!(run.stderr, "this file contains an escape (U+001B)");
    assert_contains!(run.stderr, "users/bob.toml:2:11");
    assert_contains!(run.stderr, "image = \"x?[2Jy\"");
    assert!(!run.stderr.contains('\u{0}') && !run.stderr.contains('\u{1b}'), "{:?}", run.stderr);

    // A carriage return alone would send the terminal back to the line's start, and what
    // follows would overwrite what the reviewer reads.
    let repo = Repo::new(SETTINGS).user("carol", "email = \"HIDDEN\rvisible\"\n");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "a carriage return without a line feed after it (U+000D)");
    assert_contains!(run.stderr, "email = \"HIDDEN?visible\"");
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);

    // Every syntax error of a file is told in one run, a control character among them, in
    // the file's order (the parser alone would tell only its last).
    let repo = Repo::new(SETTINGS).user("dave", "email = \"dave@example.com\"\nimage = [1 2]\n[ssh\nshm = \"1Gi\"\u{0}\n");
    let run = repo.run_ok(&["validate"], 2);
    let at = |place: &str| run.stderr.find(place).unwrap_or_else(|| panic!("{place} not in:\n{}", run.stderr));
    assert!(at("users/dave.toml:2:10") < at("users/dave.toml:3:5"), "{}", run.stderr);
    assert!(at("users/dave.toml:3:5") < at("users/dave.toml:4:12"), "{}", run.stderr);
    assert_contains!(run.stderr, "unclosed table, expected `]`");
    assert_contains!(run.stderr, "this file contains a NUL");
    assert_contains!(run.stderr, "error: 3 problems");
}

#[test]
fn validates_only_the_named_files() {
    let repo = Repo::with_alice().user("broken", "email = ");
    repo.write("users/only-here.toml", "email = 1");
    repo.run_ok(&["validate", "users/alice.toml"], 0);
    // Paths are relative to the config repo, like `git -C`.
    let run = repo.run_ok(&["validate", "users/only-here.toml"], 2);
    assert_contains!(run.stderr, "users/only-here.toml:1:9");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "users/broken.toml:1:9");
}

/// The named files are held to the rest of the repo: a hostname another user file claims, and
/// the namespace's quota, which every box counts towards. Each file is read once, and
/// devbox.toml may be named too.
#[test]
fn named_files_are_held_to_the_other_user_files() {
    let repo = Repo::new(&format!("{SETTINGS}\n[quota]\ncpu = \"5\"\n"))
        .user("alice", &user_file("alice@example.com", KEY_ALICE))
        .user("zed", &user_file("zed@example.com", KEY_ALICE_2).replace("[ssh]", "[tailscale]\nhostname = \"alice-devbox\"\n[ssh]"));
    let run = repo.run_ok(&["validate", "users/zed.toml"], 2);
    assert_contains!(run.stderr, "tailnet hostname `alice-devbox` is also used by users/alice.toml");
    repo.write("users/zed.toml", &user_file("zed@example.com", KEY_ALICE_2).replace("[ssh]", "[resources]\ncpu = \"4\"\n[ssh]"));
    let run = repo.run_ok(&["validate", "users/zed.toml"], 2);
    assert_contains!(run.stderr, "[quota]");
    repo.write("users/zed.toml", &user_file("zed@example.com", KEY_ALICE_2));
    let run = repo.run_ok(&["validate", "users/zed.toml", "./users/zed.toml", "devbox.toml"], 0);
    assert_contains!(run.stderr, "1 user file is valid");
    let run = repo.run_ok(&["validate", "devbox.toml"], 0);
    assert_contains!(run.stderr, "devbox.toml is valid");
}

#[test]
fn a_box_without_an_image_anywhere_is_an_error() {
    let repo = Repo::new("").user("alice", &user_file("alice@example.com", KEY_ALICE));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: no image for this box");
    assert_contains!(run.stderr, "[defaults] image");
}

#[test]
fn unknown_cluster_suggests_the_near_one() {
    let settings = format!(
        "{SETTINGS}\n[[clusters]]\nname = \"prod\"\nserver = \"https://a\"\n\n[[clusters]]\nname = \"staging\"\nserver = \"https://b\"\n"
    );
    let repo = Repo::new(&settings).user("alice", &format!("cluster = \"prd\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "no cluster named `prd` in devbox.toml");
    assert_contains!(run.stderr, "did you mean `prod`?");
}

#[test]
fn duplicate_hostnames_and_key_secrets_across_users() {
    let repo =
        Repo::new(SETTINGS).user("alice", &format!("{}[tailscale]\nhostname = \"box\"\n", user_file("alice@example.com", KEY_ALICE))).user(
            "bob",
            &format!(
                "{}[tailscale]\nhostname = \"box\"\n",
                user_file("bob@example.com", KEY_ALICE).replace("[ssh]\n", "[ssh]\nkey_secret = \"alice-ssh\"\n")
            ),
        );
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "tailnet hostname `box` is also used by users/alice.toml");
    assert_contains!(run.stderr, "Secret `alice-ssh` is also the key Secret of users/alice.toml");
}

#[test]
fn files_that_are_not_toml_or_are_links_are_refused() {
    let repo = Repo::with_alice();
    repo.write("users/notes.txt", "hi");
    std::os::unix::fs::symlink("/etc/hostname", repo.path().join("users/evil.toml")).unwrap();
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "users/ may only hold one `NAME.toml` file per person");
    assert_contains!(run.stderr, "symbolic links are not read in users/");
}

/// An editor's backup or swap file, or a README, beside the user files is neither a user file
/// nor a mistake: an editor's build on save must not fail on `alice.toml~`.
#[test]
fn editor_leftovers_and_notes_in_users_are_passed_over() {
    let repo = Repo::with_alice();
    for leftover in ["alice.toml~", "#alice.toml#", "alice.toml.swp", "alice.toml.bak", "alice.toml.orig", "README.md"] {
        repo.write(&format!("users/{leftover}"), "not = toml [");
    }
    let run = repo.run_ok(&["validate"], 0);
    assert_contains!(run.stderr, "1 user file is valid");
    repo.write("users/alice.tml", "");
    assert_contains!(repo.run_ok(&["validate"], 2).stderr, "users/ may only hold one `NAME.toml` file per person");
}

#[test]
fn a_user_file_without_a_name_is_not_left_out_silently() {
    let repo = Repo::with_alice();
    repo.write("users/.toml", &user_file("nobody@example.com", KEY_ALICE_2));
    let run = repo.run_ok(&["validate"], 0);
    assert_contains!(run.stderr, "users/.toml has no name, so it is not read as a user file");
    assert_contains!(run.stderr, "1 user file is valid");
}

/// A FIFO would block a plain read forever; it is refused like any file that is not TOML.
#[test]
fn a_devbox_toml_that_is_not_a_regular_file_is_refused() {
    let repo = Repo::with_alice();
    let settings = repo.path().join("devbox.toml");
    std::fs::remove_file(&settings).unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, &settings, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "devbox.toml is not a regular file");
}

#[test]
fn odd_bytes_get_a_clear_outcome() {
    let repo = Repo::new(SETTINGS);
    repo.write("users/bom.toml", &format!("\u{feff}{}", user_file("bom@example.com", KEY_ALICE)));
    repo.write("users/crlf.toml", &user_file("crlf@example.com", crate::common::KEY_ALICE_2).replace('\n', "\r\n"));
    // Read past, as nobody sees it; but taplo and tomllib refuse it, so it is told.
    let run = repo.run_ok(&["validate"], 0);
    assert_contains!(run.stderr, "warning: the file starts with a byte order mark\n = in users/bom.toml\n");
    std::fs::write(repo.path().join("users/latin.toml"), b"email = \"j\xe9r\xf4me@example.com\"\n").unwrap();
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "users/latin.toml:1:11: the file is not valid UTF-8");
    std::fs::remove_file(repo.path().join("users/latin.toml")).unwrap();
    repo.write("users/huge.toml", &"# padding\n".repeat(100_000));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "more than the 262144 a devbox file may have");
}

/// What Linux's execve(2), which every container runtime ends in, does with an environment
/// string: one of 32 pages (131072 bytes, its closing NUL included) starts the program, one byte
/// more is refused with E2BIG. This is the rule `[env]` values are held to below, shown on this
/// machine's kernel.
#[test]
fn linux_starts_a_program_with_a_32_page_environment_string_and_refuses_a_longer_one() {
    const MAX_ARG_STRLEN: usize = 32 * 4096;
    let spawn = |value: &str| std::process::Command::new("true").env("X", value).status();
    let fits = "a".repeat(MAX_ARG_STRLEN - "X=".len() - 1);
    assert!(spawn(&fits).expect("the longest string starts it").success());
    let refused = spawn(&format!("{fits}a")).expect_err("one byte more is refused");
    assert_eq!(refused.raw_os_error(), Some(7), "E2BIG: {refused}");
}

/// The API server stores an `[env]` value no container can be started with, and the box never
/// starts: devbox-gen refuses it where it is written.
#[test]
fn env_values_no_container_can_start_with_are_refused_where_they_are() {
    let fits = "a".repeat(32 * 4096 - "X=".len() - 1);
    let repo = Repo::new(SETTINGS).user("bob", &format!("{}\n[env]\nX = \"{fits}\"\n", user_file("bob@example.com", KEY_ALICE)));
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    repo.write("users/bob.toml", &format!("{}\n[env]\nX = \"{fits}a\"\nNUL = \"a\\u0000b\"\n", user_file("bob@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: `NUL` holds a NUL character, which no process environment can carry\n  ┌─ users/bob.toml:8:7\n");
    assert_contains!(
        run.stderr,
        "= help: the container would never start: its runtime cannot pass the value to execve(2); remove the `\\u0000`"
    );
    assert_contains!(
        run.stderr,
        "error: `X` takes 131073 bytes in the environment, more than the 131072 Linux passes for one variable\n  ┌─ users/bob.toml:7:5\n"
    );
    // The 131 KB line is shown cut 60 characters into its value.
    assert_contains!(run.stderr, &format!("7 │ X = \"{}…\n  │     {} too long for execve(2)\n", "a".repeat(59), "^".repeat(61)));
    assert_eq!(repo.out_snapshot(), before, "nothing under out/ changed");
}

/// Every wrong value of a file is reported in one run, each where it is and with its fix, and
/// the file's other problems too (`32GB` is a validation rule): nothing stops at the first.
#[test]
fn every_wrong_value_in_a_file_is_reported_at_once_with_its_fix() {
    let repo = Repo::new(SETTINGS).user(
        "zed",
        &format!(
            "email = \"zed@example.com\"\nstate = \"Stopped\"\narch = \"x86_64\"\n[ssh]\nauthorized_keys = [\"{KEY_ALICE}\"]\n[resources]\ncpu = 8\nmemory = \"32GB\"\n"
        ),
    );
    let run = repo.run_ok(&["build"], 2);
    insta::assert_snapshot!(run.stderr);
    assert!(!repo.path().join("out").exists(), "nothing is written when a file has errors");
    let run = repo.run_ok(&["validate"], 2);
    assert!(run.stderr.ends_with("error: 4 problems\n"), "{}", run.stderr);
}

#[test]
fn a_key_above_its_table_header_is_said_to_belong_in_the_table() {
    let repo = Repo::new(SETTINGS).user("alice", &format!("cpu = \"8\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["validate"], 2);
    assert_eq!(
        run.stderr,
        "error: `cpu` belongs in `[resources]`\n  ┌─ users/alice.toml:1:1\n  │\n1 │ cpu = \"8\"\n  │ ^^^ not a top-level field\n  │\n  = help: move it below the `[resources]` header\n\n"
    );
}

/// devbox.toml is read the same way: `[defaults]` values are described like a user file's, and
/// the user files are still validated beside it.
#[test]
fn wrong_values_in_devbox_toml_defaults_are_all_reported() {
    let settings = format!("gitops = \"argocd\"\n{SETTINGS}state = \"Archive\"\n\n[defaults.resources]\ncpu = 2.5\nmemory = [\"8Gi\"]\n");
    let repo = Repo::new(&settings).user("alice", &format!("arch = \"aarch64\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["validate"], 2);
    for expected in [
        "error: `gitops` must be a list\n  ┌─ devbox.toml:1:10\n",
        "= help: make it a list: `gitops = [\"argocd\"]`\n",
        "error: `Archive` is not a valid `state`\n  ┌─ devbox.toml:5:9\n",
        "= help: did you mean `archived`?\n",
        "error: `cpu` must be a string\n  ┌─ devbox.toml:8:7\n",
        "= help: quote it: `cpu = \"2.5\"`\n",
        "error: `memory` must be a single string, not a list\n  ┌─ devbox.toml:9:10\n",
        "= help: remove the brackets: `memory = \"8Gi\"`\n",
        "error: `aarch64` is not a valid `arch`\n  ┌─ users/alice.toml:1:8\n",
        "= help: did you mean `arm64`?\n",
    ] {
        assert_contains!(run.stderr, expected);
    }
    for serde in ["invalid type", "expected", "sequence", "unknown variant"] {
        assert_not_contains!(run.stderr, serde);
    }
    assert!(run.stderr.ends_with("error: 5 problems\n"), "{}", run.stderr);
}

/// A required value of the wrong type is reported once (not again as missing), and the rest of
/// the file is still read for problems of the same kind.
#[test]
fn a_wrong_required_value_is_not_also_reported_missing() {
    let repo = Repo::new(SETTINGS).user("alice", "email = 42\n[ssh]\nauthorized_keys = \"ssh-ed25519 AAAA\"\n[gpu]\ncount = \"2\"\n");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `email` must be a string");
    assert_contains!(run.stderr, "help: make it a list: `authorized_keys = [\"ssh-ed25519 AAAA\"]`");
    assert_contains!(run.stderr, "help: remove the quotes: `count = 2`");
    assert_not_contains!(run.stderr, "missing");
    assert!(run.stderr.ends_with("error: 3 problems\n"), "{}", run.stderr);
}

/// A CI checkout with the config repo in a directory of it, `platform/devboxes`, and no users.
fn config_repo_in_a_checkout() -> (tempfile::TempDir, std::path::PathBuf) {
    let workspace = tempfile::tempdir().unwrap();
    let config = workspace.path().join("platform/devboxes");
    std::fs::create_dir_all(config.join("users")).unwrap();
    std::fs::write(config.join("devbox.toml"), SETTINGS).unwrap();
    (workspace, config)
}

/// `--message-format github`: besides the human report, each problem is a GitHub Actions
/// workflow command on stderr (the runner reads commands there too), naming the file as the
/// checkout has it, so the PR shows it at the line.
#[test]
fn github_message_format_annotates_the_file_and_line_in_the_checkout() {
    let (workspace, config) = config_repo_in_a_checkout();
    std::fs::write(config.join("users/bob.toml"), format!("email = \"bob\"\n[ssh]\nauthorized_keys = [\"{KEY_ALICE}\"]\n")).unwrap();
    let run = |format: &str| {
        let output = assert_cmd::Command::cargo_bin("devbox-gen")
            .unwrap()
            .args(["-C", config.to_str().unwrap(), "validate", "--message-format", format])
            .env("GITHUB_WORKSPACE", workspace.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(output.stdout.is_empty());
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run("github");
    assert_contains!(stderr, "┌─ users/bob.toml:1:9\n", "the human report stays");
    let annotations: Vec<&str> = stderr.lines().filter(|line| line.starts_with("::")).collect();
    assert_eq!(
        annotations,
        [
            "::error file=platform/devboxes/users/bob.toml,line=1,col=9,endLine=1,endColumn=14,title=devbox-gen::`bob` is not an email address%0Ahelp: write the owner's address alone, like `alice@example.com`"
        ]
    );
    assert_not_contains!(run("human"), "::error");
}

/// `--code-quality-report FILE`: every error and warning, as the GitLab Code Quality report the
/// job uploads, at the file and line as the checkout (`$CI_PROJECT_DIR`) has them; written on
/// success too (`[]`, or the warnings), so GitLab sees earlier problems fixed.
#[test]
fn code_quality_report_places_each_problem_in_the_checkout() {
    let (workspace, config) = config_repo_in_a_checkout();
    let report = workspace.path().join("gl-code-quality-report.json");
    let run = |args: &[&str], code: i32| {
        let output = assert_cmd::Command::cargo_bin("devbox-gen")
            .unwrap()
            .args(["-C", config.to_str().unwrap()])
            .args(args)
            .args(["--code-quality-report", report.to_str().unwrap()])
            .env("CI_PROJECT_DIR", workspace.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(code), "{}", String::from_utf8_lossy(&output.stderr));
        let text = std::fs::read_to_string(&report).unwrap();
        let issues: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        issues.iter().for_each(assert_gitlab_accepts);
        issues
    };

    std::fs::write(config.join("users/bob.toml"), format!("email = \"bob\"\n[ssh]\nauthorized_keys = [\"{KEY_ALICE}\"]\n")).unwrap();
    let issues = run(&["build", "--check"], 2);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue["check_name"], "devbox-gen");
    assert_eq!(issue["severity"], "blocker");
    assert_eq!(issue["location"], serde_json::json!({"path": "platform/devboxes/users/bob.toml", "lines": {"begin": 1, "end": 1}}));
    assert_eq!(issue["description"], "`bob` is not an email address; help: write the owner's address alone, like `alice@example.com`");
    let fingerprint = issue["fingerprint"].as_str().unwrap();
    assert!(fingerprint.len() == 32 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()), "{fingerprint}");

    // Fixed, and a file devbox-gen did not write in out/: the build passes with a warning,
    // which the report keeps at its path.
    std::fs::write(config.join("users/bob.toml"), crate::common::user_file("bob@example.com", KEY_ALICE)).unwrap();
    run(&["build"], 0);
    std::fs::write(config.join("out/bob/notes.txt"), "kind: Notes\n").unwrap();
    let issues = run(&["build", "--check"], 0);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0]["severity"], "minor");
    assert_eq!(issues[0]["location"]["path"], "platform/devboxes/out/bob/notes.txt");

    std::fs::remove_file(config.join("out/bob/notes.txt")).unwrap();
    assert_eq!(run(&["validate"], 0), Vec::<serde_json::Value>::new());
}

/// A report that cannot be written fails the command, after its own problems are reported.
#[test]
fn an_unwritable_code_quality_report_is_an_error() {
    let repo = Repo::with_alice();
    let run = repo.run_ok(&["validate", "--code-quality-report", "/nonexistent-dir/report.json"], 2);
    assert_contains!(run.stderr, "error: cannot write the Code Quality report /nonexistent-dir/report.json: No such file or directory");

    // Nor does a report go into out/, over a generated file, while the build says out/ is untouched.
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    repo.write("users/bob.toml", "email = \"bob\"\n");
    let inside = repo.path().join("out/alice/statefulset-alice.yaml");
    let run = repo.run_ok(&["build", "--code-quality-report", inside.to_str().unwrap()], 2);
    assert_contains!(run.stderr, "would be written into out/");
    assert!(repo.out_snapshot() == before, "out/ changed");
    // Nor over what devbox-gen reads.
    for (input, part) in [("users/alice.toml", "users/"), ("devbox.toml", "devbox.toml"), ("users/new/report.json", "users/")] {
        let before = std::fs::read_dir(repo.path().join("users")).unwrap().count();
        let text = repo.read("users/alice.toml");
        let path = repo.path().join(input);
        let run = repo.run_ok(&["validate", "--code-quality-report", path.to_str().unwrap()], 2);
        assert_contains!(run.stderr, &format!("would be written into {part}\n"));
        assert_eq!((repo.read("users/alice.toml"), std::fs::read_dir(repo.path().join("users")).unwrap().count()), (text, before));
    }
    // Nor through a link committed under the report's name, wherever it points.
    let link = repo.path().join("gl-code-quality-report.json");
    std::os::unix::fs::symlink("out/alice/statefulset-alice.yaml", &link).unwrap();
    let run = repo.run_ok(&["build", "--code-quality-report", link.to_str().unwrap()], 2);
    assert_contains!(run.stderr, &format!("error: the Code Quality report {} is a symbolic link", link.display()));
    assert!(repo.out_snapshot() == before, "out/ changed");
}

/// GitLab's own rule for one issue of a Code Quality report, which drops an issue that breaks
/// it: `description`, `fingerprint`, `severity` and `location` required, strings but for the
/// integer line (gitlabhq, app/validators/json_schemas/codeclimate.json), and a severity it
/// knows how to rank (lib/gitlab/ci/reports/codequality_reports.rb, `SEVERITY_PRIORITIES`).
fn assert_gitlab_accepts(issue: &serde_json::Value) {
    for key in ["description", "fingerprint", "severity"] {
        assert!(issue[key].is_string(), "`{key}` must be a string: {issue}");
    }
    assert!(["blocker", "critical", "major", "minor", "info"].contains(&issue["severity"].as_str().unwrap()), "{issue}");
    assert!(issue["location"]["path"].is_string(), "{issue}");
    assert!(issue["location"]["lines"]["begin"].is_u64(), "{issue}");
}

/// A value quoted in a message cannot start a line of its own in a CI log (where GitHub Actions
/// runs `::command::` lines) or drive the terminal: it is shown escaped.
#[test]
fn a_value_in_a_message_cannot_start_a_workflow_command() {
    let repo = Repo::with_alice();
    let alice = repo.read("users/alice.toml");
    repo.write("users/alice.toml", &format!("image = \"a/b:1\\n::warning::injected\\r\\u001b[2J\"\n{alice}"));
    for format in ["human", "github"] {
        let run = repo.run_ok(&["validate", "--message-format", format], 2);
        assert!(!run.stderr.lines().any(|line| line.starts_with("::warning")), "{format}:\n{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "{format}:\n{}", run.stderr);
    }
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, r"a/b:1\n::warning::injected\r\u{1b}[2J");
}

/// A devbox.toml that cannot be read is reported alone: the user files are not judged against
/// defaults in its place, which would call its datasets undefined.
#[test]
fn an_unreadable_devbox_toml_adds_no_errors_to_the_user_files() {
    let alice = user_file("alice@example.com", KEY_ALICE).replace("[ssh]", "datasets = [\"imagenet\"]\n[ssh]");
    let repo = Repo::new(&format!("{SETTINGS}\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\n\n[[clusters]]\nname = \"prod\"\n"))
        .user("alice", &alice);
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "an entry of `[[clusters]]` has no `server`");
    assert_not_contains!(run.stderr, "no dataset");
    // Read, the same user file is valid.
    repo.write("devbox.toml", &format!("{SETTINGS}\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\n"));
    repo.run_ok(&["validate"], 0);
}

/// A table's name written as a field of another table is told to be a table of its own.
#[test]
fn a_table_written_inside_another_is_told_to_stand_alone() {
    let repo = Repo::with_alice();
    let alice = repo.read("users/alice.toml");
    repo.write("users/alice.toml", &format!("{alice}\n[resources]\ngpu = 1\n"));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(
        run.stderr,
        "`gpu` is a table of its own, not a field of `[resources]`: write a `[gpu]` header with its fields (type, count"
    );
}

/// A hidden `.NAME.toml` is not a user file, but leaving one out silently could lose a box.
#[test]
fn a_hidden_user_file_is_left_out_with_a_warning() {
    let repo = Repo::with_alice();
    repo.write("users/.zed.toml", &repo.read("users/alice.toml"));
    repo.write("users/.gitkeep", "");
    let run = repo.run_ok(&["validate"], 0);
    assert_contains!(run.stderr, "warning: users/.zed.toml is hidden, so it is not read as a user file");
    assert_not_contains!(run.stderr, ".gitkeep");
    assert_contains!(run.stderr, "1 user file is valid");
}

/// A suggestion must be one the next run accepts: bytes for a CPU, or a guessed unit that makes
/// an idle box wait 60 times longer than meant, are not.
#[test]
fn suggestions_for_a_cpu_in_bytes_and_a_bare_idle_number_are_right() {
    let repo = Repo::new(SETTINGS);
    repo.write(
        "users/zed.toml",
        &format!("{}\n[resources]\ncpu = \"8GB\"\n\n[idle]\nafter = 3600\n", user_file("zed@example.com", KEY_ALICE)),
    );
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "help: CPU is counted in cores, without a unit: `\"8\"`, or thousandths like `\"500m\"`");
    assert_not_contains!(run.stderr, "8Gi");
    assert_contains!(run.stderr, "help: give it a unit: `after = \"1h\"` is 3600 seconds, `after = \"3600m\"` is 3600 minutes");

    repo.write("users/zed.toml", &format!("{}\n[resources]\ncpu = -1\n\n[env]\nOFFSET = -1\n", user_file("zed@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "help: it cannot be negative: write one in quotes, like `cpu = \"8\"`");
    assert_contains!(run.stderr, "help: quote it: `OFFSET = \"-1\"`");
}

/// The embedded template's wake ServiceAccount of alice is `alice-wake`: a user of that name is
/// refused at her file by `validate` and `new`, not only by `build` once both are rendered.
#[test]
fn a_user_named_after_another_boxs_wake_job_is_refused_at_her_file() {
    let scheduled = "[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"Europe/Berlin\"\nstart = \"08:00\"\nstop = \"19:00\"\n";
    let repo = Repo::new(SETTINGS).user("alice", &format!("{}\n{scheduled}", user_file("alice@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["new", "alice-wake", "--email", "z@example.com", "--ssh-key", KEY_ALICE_2], 2);
    assert_contains!(run.stderr, "`alice-wake` is the name of the ServiceAccount that wakes users/alice.toml's box");
    assert!(!repo.path().join("users/alice-wake.toml").exists());
    repo.write("users/alice-wake.toml", &user_file("z@example.com", KEY_ALICE_2));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "┌─ users/alice-wake.toml:");
    assert_contains!(run.stderr, "rename users/alice-wake.toml");
    // Without working hours alice has no wake ServiceAccount, and the name is free.
    repo.write("users/alice.toml", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["validate"], 0);
}

/// A required value of the wrong type used to hide every other problem of its file until it
/// was fixed: three runs to hear of four problems. Reading stands in for it, and validation
/// judges the rest of the file in the same run, saying nothing of the stand-in.
#[test]
fn a_wrong_required_value_does_not_hide_the_files_other_problems() {
    let repo = Repo::new(SETTINGS).user("zed", "email = 5\n[resources]\ncpu = \"x\"\n[ssh]\nauthorized_keys = [\"nope\"]\n");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `email` must be a string");
    assert_contains!(run.stderr, "error: `x` is not a number followed by a unit");
    assert_contains!(run.stderr, "error: this is not an OpenSSH public key");
    assert_contains!(run.stderr, "error: 3 problems");
    // A list where a list belongs to the stand-in: nothing about an empty one.
    repo.write("users/zed.toml", "email = \"zed@example.com\"\n[resources]\ncpu = \"x\"\n[ssh]\nauthorized_keys = \"nope\"\n");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `authorized_keys` must be a list");
    assert_contains!(run.stderr, "error: `x` is not a number followed by a unit");
    assert_contains!(run.stderr, "error: 2 problems");
}

/// Helps that, followed literally, would do harm or nothing are said as what to do instead.
#[test]
fn helps_for_odd_arguments_and_entries_can_be_followed() {
    let repo = Repo::with_alice();
    // `validate users`: the directory, not a file to replace with one.
    let run = repo.run_ok(&["validate", repo.path().join("users").to_str().unwrap()], 2);
    assert_contains!(run.stderr, "help: give the files themselves (`validate users/alice.toml`), or none to read all of users/");
    // A directory named like a user file is not to be renamed to what it is already called.
    std::fs::create_dir(repo.path().join("users/zed.toml")).unwrap();
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "help: move it out of users/: it is named like a user file, but is not a file");
    std::fs::remove_dir(repo.path().join("users/zed.toml")).unwrap();
    // A file where schema/ goes.
    std::fs::remove_dir_all(repo.path().join("schema")).ok();
    std::fs::write(repo.path().join("schema"), "").unwrap();
    let run = repo.run_ok(&["schema"], 2);
    assert_contains!(run.stderr, "help: schema/ holds the schemas: move the file named `schema` away");
    std::fs::remove_file(repo.path().join("schema")).unwrap();
    // A name no file could have is not a missing users/../x.toml for `new` to create.
    for command in [&["show", "../devbox"][..], &["secrets", "../x"], &["wake", "../x"], &["show", "--input", "../x"]] {
        let run = repo.run_ok(command, 2);
        assert_contains!(run.stderr, "a user is named by her file in users/, without `.toml`");
        assert_not_contains!(run.stderr, "users/../");
        assert_not_contains!(run.stderr, "devbox-gen new ../");
    }
}

/// Argo CD's client-side apply, like `kubectl apply`, copies the StatefulSet into an annotation
/// the API server holds to 256 KiB: an `[env]` that fits Linux variable by variable can still
/// make a StatefulSet nothing can apply. Refused at `[env]`, before anything is written.
#[test]
fn an_env_too_long_to_apply_is_refused_at_the_table() {
    let big = |c: char| c.to_string().repeat(100_000);
    let text = format!("{}\n[env]\nA = \"{}\"\nB = \"{}\"\n", user_file("alice@example.com", KEY_ALICE), big('x'), big('y'));
    let repo = Repo::new(SETTINGS).user("alice", &text);
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: `[env]` holds 200006 bytes, more than the 196608 a box's StatefulSet can carry\n");
    assert_contains!(run.stderr, "┌─ users/alice.toml:6:");
    assert!(!repo.path().join("out").exists());
    // Just under: built, and its StatefulSet fits.
    let text = format!("{}\n[env]\nA = \"{}\"\n", user_file("alice@example.com", KEY_ALICE), big('x'));
    Repo::new(SETTINGS).user("alice", &text).run_ok(&["build"], 0);
}

/// The owner's address is in an annotation of every object of the box: an address mail
/// would not carry, or that reorders what a reviewer reads, is refused.
#[test]
fn an_address_mail_would_not_carry_is_refused() {
    for (email, shown) in [
        (format!("{}@example.com", "a".repeat(250_000)), "the address is 250012 bytes long in UTF-8, more than the 254 mail allows"),
        ("dave@-example.com".to_string(), "`dave@-example.com` is not an email address"),
        ("dave\u{202E}moc.elpmaxe@example.com".to_string(), "`dave\\u{202e}moc.elpmaxe@example.com` is not an email address"),
    ] {
        let run = Repo::new(SETTINGS).user("dave", &user_file(&email, KEY_ALICE)).run_ok(&["validate"], 2);
        assert_contains!(run.stderr, &format!("error: {shown}\n"));
        assert_contains!(run.stderr, "┌─ users/dave.toml:1:9");
    }
}

/// A key or table defined twice is one error, at the second definition, saying what to do; the
/// keys under a repeated table are not each reported again.
#[test]
fn a_table_defined_twice_is_one_error_with_what_to_do() {
    let text =
        format!("{}\n[resources]\ncpu = \"4\"\n\n[resources]\ncpu = \"8\"\nmemory = \"32Gi\"\n", user_file("alice@example.com", KEY_ALICE));
    let run = Repo::new(SETTINGS).user("alice", &text).run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: duplicate key\n  ┌─ users/alice.toml:9:2\n");
    assert_contains!(run.stderr, "help: TOML allows each key, and each `[table]`, once");
    assert_eq!(run.stderr.matches("error: duplicate key").count(), 1, "{}", run.stderr);
    let text = format!("email = \"a@example.com\"\nemail = \"b@example.com\"\n\n[ssh]\nauthorized_keys = [\"{KEY_ALICE}\"]\n");
    let run = Repo::new(SETTINGS).user("alice", &text).run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: duplicate key\n  ┌─ users/alice.toml:2:1\n");
}
