//! The build cache (`.devbox-gen/`): a build after a build renders nothing, an edit renders
//! only its user, and whatever the cache holds, the result is the one a build without it gives.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, assert_not_contains, user_file, walk};
use crate::delivery::GITOPS;

fn reused(run: &crate::common::Run) -> &str {
    let line = run.stderr.lines().find(|l| l.starts_with("cache: ")).unwrap_or_else(|| panic!("no cache line in:\n{}", run.stderr));
    line.trim_start_matches("cache: ").split(" bundle").next().unwrap()
}

/// The same config repo built from nothing, without a cache: what `out/` must equal.
fn fresh_out(repo: &Repo) -> Vec<(String, String)> {
    let copy = tempfile::tempdir().unwrap();
    for path in walk(repo.path()) {
        if path.starts_with("out") || path.starts_with(".devbox-gen") {
            continue;
        }
        let (from, to) = (repo.path().join(&path), copy.path().join(&path));
        if fs::symlink_metadata(&from).unwrap().is_dir() {
            fs::create_dir_all(to).unwrap();
        } else {
            fs::copy(from, to).unwrap();
        }
    }
    let fresh = Repo::at(copy);
    fresh.run_ok(&["build"], 0);
    contents(&fresh)
}

fn contents(repo: &Repo) -> Vec<(String, String)> {
    repo.out_snapshot().into_iter().map(|(path, (text, ..))| (path.display().to_string(), text)).collect()
}

fn alice_and_bob() -> Repo {
    Repo::new(GITOPS).user("alice", &user_file("alice@example.com", KEY_ALICE)).user("bob", &user_file("bob@example.com", KEY_ALICE_2))
}

#[test]
fn a_build_after_a_build_renders_nothing_and_an_edit_renders_its_user_only() {
    let repo = alice_and_bob();
    let first = repo.run_ok(&["-v", "build"], 0);
    assert_eq!(reused(&first), "0 of 2");
    assert_eq!(reused(&repo.run_ok(&["-v", "build"], 0)), "2 of 2");
    assert_eq!(reused(&repo.run_ok(&["-v", "build", "--check"], 0)), "2 of 2");

    repo.write("users/bob.toml", &format!("{}\n[env]\nEDITOR = \"nano\"\n", user_file("bob@example.com", KEY_ALICE_2)));
    let run = repo.run_ok(&["-v", "build"], 0);
    assert_eq!(reused(&run), "1 of 2");
    assert_contains!(run.stderr, "built 2 users into out/: 0 created, 1 updated, 0 removed");
    // Comments and formatting of a user file are not inputs of its box.
    repo.write("users/bob.toml", &format!("# bob's box\n{}\n[env]\nEDITOR = \"nano\"\n", user_file("bob@example.com", KEY_ALICE_2)));
    assert_eq!(reused(&repo.run_ok(&["-v", "build"], 0)), "2 of 2");
    assert_eq!(contents(&repo), fresh_out(&repo));
}

#[test]
fn after_any_edit_a_cached_build_equals_a_build_from_nothing() {
    let repo = alice_and_bob();
    repo.run_ok(&["build"], 0);
    // A user changed, one removed, one added, and a default every box inherits.
    repo.write("users/alice.toml", &format!("image = \"registry.example.com/devbox:2.0\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    fs::remove_file(repo.path().join("users/bob.toml")).unwrap();
    repo.write("users/carol.toml", &user_file("carol@example.com", KEY_ALICE_2));
    repo.run_ok(&["build"], 0);
    assert_eq!(contents(&repo), fresh_out(&repo));

    repo.write("devbox.toml", &format!("{GITOPS}\n[defaults.resources]\nmemory = \"16Gi\"\n"));
    let run = repo.run_ok(&["-v", "build"], 0);
    assert_eq!(reused(&run), "0 of 2", "a default changes every box");
    assert_eq!(contents(&repo), fresh_out(&repo));
}

#[test]
fn hand_edits_and_deletions_in_out_are_found_despite_the_cache() {
    let repo = Repo::with_alice();
    repo.run_ok(&["build"], 0);
    let good = repo.read("out/alice/statefulset-alice.yaml");
    repo.write("out/alice/statefulset-alice.yaml", &good.replace("replicas: 1", "replicas: 3"));
    let run = repo.run_ok(&["build", "--check"], 1);
    assert_eq!(run.stdout, "update out/alice/statefulset-alice.yaml\n");
    repo.run_ok(&["build"], 0);
    assert_eq!(repo.read("out/alice/statefulset-alice.yaml"), good);

    fs::remove_file(repo.path().join("out/alice/service-alice.yaml")).unwrap();
    let run = repo.run_ok(&["build", "--check"], 1);
    assert_eq!(run.stdout, "create out/alice/service-alice.yaml\n");
    repo.run_ok(&["build"], 0);
    assert_eq!(contents(&repo), fresh_out(&repo));
}

/// Alice, with a custom template that labels her StatefulSet with `import 'team.libsonnet'`.
fn with_team_template() -> Repo {
    let repo = Repo::with_alice();
    repo.write("devbox.toml", &format!("template = \"templates/devbox.jsonnet\"\n{SETTINGS}"));
    repo.write(
        "templates/devbox.jsonnet",
        "local devbox = import 'devbox-gen/devbox.libsonnet';\nlocal team = import 'team.libsonnet';\n\
         function(box) devbox.bundle(box) + { statefulSet+: { metadata+: { labels+: { team: team } } } }\n",
    );
    repo
}

#[test]
fn an_edited_template_import_renders_every_box_again() {
    let repo = with_team_template();
    repo.write("templates/team.libsonnet", "'ml'\n");
    repo.run_ok(&["build"], 0);
    assert_contains!(repo.read("out/alice/statefulset-alice.yaml"), "team: ml\n");
    assert_eq!(reused(&repo.run_ok(&["-v", "build"], 0)), "1 of 1");

    repo.write("templates/team.libsonnet", "'infra'\n");
    let run = repo.run_ok(&["-v", "build"], 0);
    assert_eq!(reused(&run), "0 of 1");
    assert_contains!(repo.read("out/alice/statefulset-alice.yaml"), "team: infra\n");
    assert_eq!(contents(&repo), fresh_out(&repo));
}

/// An import is searched for beside the importing file, then in lib/, then in vendor/: a new
/// file earlier on that path is imported instead, though no file the last build read changed.
#[test]
fn a_new_file_that_shadows_a_template_import_renders_every_box_again() {
    let repo = with_team_template();
    repo.write("vendor/team.libsonnet", "'vendored'\n");
    repo.run_ok(&["build"], 0);
    assert_contains!(repo.read("out/alice/statefulset-alice.yaml"), "team: vendored\n");
    assert_eq!(reused(&repo.run_ok(&["-v", "build"], 0)), "1 of 1");

    for (shadow, team) in [("lib/team.libsonnet", "lib"), ("templates/team.libsonnet", "beside")] {
        repo.write(shadow, &format!("'{team}'\n"));
        repo.run_ok(&["build", "--check"], 1);
        let run = repo.run_ok(&["-v", "build"], 0);
        assert_eq!(reused(&run), "0 of 1", "{shadow}");
        assert_contains!(repo.read("out/alice/statefulset-alice.yaml"), &format!("team: {team}\n"));
        assert_eq!(contents(&repo), fresh_out(&repo));
        assert_eq!(reused(&repo.run_ok(&["-v", "build"], 0)), "1 of 1", "then cached again");
    }
}

#[test]
fn check_never_writes_the_cache_and_the_cache_ignores_itself() {
    let repo = Repo::with_alice();
    repo.run_ok(&["build", "--check"], 1);
    assert!(!repo.path().join(".devbox-gen").exists(), "--check is read-only");
    repo.run_ok(&["build"], 0);
    assert_eq!(repo.read(".devbox-gen/.gitignore").lines().last(), Some("*"));
    assert!(repo.read(".devbox-gen/CACHEDIR.TAG").starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
}

#[test]
fn a_corrupt_or_missing_cache_only_costs_time() {
    let repo = alice_and_bob();
    repo.run_ok(&["build"], 0);
    repo.write(".devbox-gen/build-cache.json", "{\"format\": 1, \"generator\": ");
    repo.write("users/alice.toml", &user_file("alice@example.org", KEY_ALICE));
    let run = repo.run_ok(&["-v", "build"], 0);
    assert_eq!(reused(&run), "0 of 2");
    assert_eq!(contents(&repo), fresh_out(&repo));
    fs::remove_dir_all(repo.path().join(".devbox-gen")).unwrap();
    let run = repo.run_ok(&["-v", "build"], 0);
    assert_contains!(run.stderr, "out/ is up to date");
}

#[test]
fn diff_says_the_same_with_and_without_the_cache() {
    let repo = Repo::new(GITOPS)
        .user("alice", &user_file("alice@example.com", KEY_ALICE))
        .user("bob", &user_file("bob@example.com", KEY_ALICE_2))
        .user("carol", &user_file("carol@example.com", KEY_ALICE_2));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &format!("state = \"stopped\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    repo.write("users/bob.toml", &format!("state = \"archived\"\n{}", user_file("bob@example.com", KEY_ALICE_2)));
    repo.write("users/dave.toml", &user_file("dave@example.com", KEY_ALICE));
    let cached = repo.run_ok(&["-v", "diff", "--format", "json"], 1);
    assert_eq!(reused(&cached), "1 of 4", "carol is unchanged");
    fs::remove_dir_all(repo.path().join(".devbox-gen")).unwrap();
    let uncached = repo.run_ok(&["diff", "--format", "json"], 1);
    assert_eq!(cached.stdout, uncached.stdout);
    for expected in ["\"box-stopped\"", "\"box-archived\""] {
        assert_contains!(cached.stdout, expected);
    }
    assert_not_contains!(cached.stdout, "\"box-removed\"", "bob keeps his home");
}

#[test]
fn a_small_change_is_written_in_place_and_leaves_nothing_behind() {
    let mut repo = Repo::new(SETTINGS);
    let names = ["alice", "bob", "carol", "dave", "erin", "frank", "hal", "ivy", "jo", "kim", "lee", "max"];
    for name in names {
        repo = repo.user(name, &user_file(&format!("{name}@example.com"), KEY_ALICE));
    }
    repo.run_ok(&["build"], 0);
    let out_inode = fs::metadata(repo.path().join("out")).unwrap().ino();
    let mode = fs::metadata(repo.path().join("out/alice/service-alice.yaml")).unwrap().mode();
    fs::remove_file(repo.path().join("users/bob.toml")).unwrap();
    repo.write("users/gina.toml", &user_file("gina@example.com", KEY_ALICE_2));
    let run = repo.run_ok(&["build"], 0);
    assert_contains!(run.stderr, "built 12 users into out/: 10 created, 0 updated, 10 removed");
    assert_eq!(fs::metadata(repo.path().join("out")).unwrap().ino(), out_inode, "out/ was updated, not replaced");
    assert!(!repo.path().join("out/bob").exists(), "bob's emptied bundle directory is gone");
    assert_eq!(fs::metadata(repo.path().join("out/gina/service-gina.yaml")).unwrap().mode(), mode);
    let stray: Vec<String> =
        repo.out_snapshot().into_keys().map(|p| p.display().to_string()).filter(|p| p.contains("devbox-gen-tmp")).collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert_eq!(contents(&repo), fresh_out(&repo));
}

/// A write that fails in the middle of an update in place leaves `out/` as it was, with no
/// temporary file behind. A file-size limit stands in for a full disk: both fail the write
/// after the file exists. And a temporary that a killed build left, cut short before the
/// marker, is devbox-gen's own: the next build removes it instead of keeping it as foreign.
#[test]
fn a_failed_update_in_place_leaves_no_temporary_behind() {
    let mut repo = Repo::new(SETTINGS);
    for name in ["alice", "bob", "carol", "dave", "erin", "frank", "hal", "ivy", "jo", "kim", "lee", "max"] {
        repo = repo.user(name, &user_file(&format!("{name}@example.com"), KEY_ALICE));
    }
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    repo.write("users/alice.toml", &format!("shm = \"1Gi\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    // Every StatefulSet is over 4 KiB.
    let (code, stderr) = repo.run_with_file_size_limit(4, &["build"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_contains!(stderr, "cannot update");
    let after = repo.out_snapshot();
    let stray: Vec<_> = after.keys().filter(|path| !before.contains_key(*path)).collect();
    assert!(stray.is_empty(), "left in out/: {stray:?}");
    assert!(after == before, "out/ changed");

    let leftover = repo.path().join("out/bob/.4242-0.devbox-gen-tmp");
    fs::write(&leftover, "apiVersion: apps/v1\nkind: Sta").unwrap();
    let run = repo.run_ok(&["build"], 0);
    assert_not_contains!(run.stderr, "was not generated by devbox-gen");
    assert!(!leftover.exists(), "the leftover temporary is still there");
    assert_eq!(contents(&repo), fresh_out(&repo));
}

/// Two builds of one repo take turns on `.devbox-gen/lock`, as two Cargo builds do on target/:
/// the second says what it waits for, and writes once the first is done.
#[test]
fn a_build_waits_for_the_one_holding_the_lock() {
    let repo = Repo::with_alice();
    fs::create_dir_all(repo.path().join(".devbox-gen")).unwrap();
    let held = fs::OpenOptions::new().create(true).truncate(false).write(true).open(repo.path().join(".devbox-gen/lock")).unwrap();
    held.lock().unwrap();
    let build = std::process::Command::new(assert_cmd::cargo::cargo_bin("devbox-gen"))
        .args(["build", "-C"])
        .arg(repo.path())
        .env("HOME", repo.path().join(".home"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It waits for as long as the lock is held, and has written nothing meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!repo.path().join("out").exists(), "the build wrote out/ while another held the lock");
    held.unlock().unwrap();
    let output = build.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_contains!(stderr, "waiting for another build of this repo to finish (it holds .devbox-gen/lock)");
    assert!(repo.path().join("out/alice/statefulset-alice.yaml").exists());
    // `--check` writes nothing, so it does not wait.
    held.lock().unwrap();
    let check = repo.run_ok(&["build", "--check"], 0);
    assert_not_contains!(check.stderr, "waiting");
}
