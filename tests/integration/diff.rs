//! `devbox-gen diff`: real config repos, built, then edited the way a PR would edit them; the
//! report a reviewer reads and the exit code CI acts on.

use std::fs;
use std::path::Path;
use std::process::Command as Process;

use assert_cmd::Command;

use crate::common::{
    KEY_ALICE, KEY_ALICE_2, Repo, Run, SETTINGS, assert_contains, assert_not_contains, git, pairs, risks, user_file, without_scripts_hash,
};

const KEY_DAVE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ dave@laptop";
const KEY_ERIN: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFzvZAcCEG8ASfjiQwFJJCSTBUgQMyN5WnuJ9F5MJmLS erin@laptop";

/// A user file: top-level settings, the keys, then any tables.
fn user(top: &str, email: &str, keys: &[&str], tables: &str) -> String {
    let keys = keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
    format!("email = \"{email}\"\n{top}\n[ssh]\nauthorized_keys = [{keys}]\n\n{tables}")
}

fn alice(top: &str, keys: &[&str], tables: &str) -> String {
    user(top, "alice@example.com", keys, tables)
}

/// A built config repo: alice and bob, out/ current.
fn built() -> Repo {
    let repo =
        Repo::new(SETTINGS).user("alice", &alice("", &[KEY_ALICE], "")).user("bob", &user("", "bob@example.com", &[KEY_ALICE_2], ""));
    repo.run_ok(&["build"], 0);
    repo
}

/// `diff` in every format must agree on the exit code; returns the text run.
fn diff(repo: &Repo, code: i32) -> Run {
    let before = repo.out_snapshot();
    for format in ["markdown", "json"] {
        repo.run_ok(&["diff", "--format", format], code);
    }
    let run = repo.run_ok(&["diff"], code);
    assert_eq!(repo.out_snapshot(), before, "diff must write nothing");
    run
}

// --- exit codes and formats -------------------------------------------------------------------

#[test]
fn no_change_exits_0_in_every_format() {
    let repo = built();
    let run = diff(&repo, 0);
    assert_eq!(run.stdout, "No changes: users/ compiles to exactly out/ on disk.\n");
    assert_eq!(run.stderr, "");
    let json: serde_json::Value = serde_json::from_str(&repo.run_ok(&["diff", "--format", "json"], 0).stdout).unwrap();
    assert_eq!(json["changed"], false);
    assert_eq!(json["users"], serde_json::json!([]));
    let markdown = repo.run_ok(&["diff", "--format", "markdown"], 0).stdout;
    assert_eq!(markdown, "<!-- devbox-gen diff -->\n### devbox-gen diff\n\nNo changes: users/ compiles to exactly out/ on disk.\n");
}

#[test]
fn a_change_exits_1_in_every_format_and_writes_nothing() {
    let repo = built();
    repo.write("users/alice.toml", &alice("", &[KEY_ALICE], "[env]\nEDITOR = \"nano\"\n"));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "1 user changed: 1 resource changed (compared with out/ on disk).");
    assert_contains!(run.stdout, "+          value: nano\n");
}

#[test]
fn an_error_exits_2_in_every_format_and_prints_nothing_on_stdout() {
    let repo = built();
    repo.write("users/alice.toml", "email = \"alice@example.com\"\n[resources]\nmemory = \"32GB\"\n[ssh]\nauthorized_keys = []\n");
    for format in ["text", "markdown", "json"] {
        let run = repo.run_ok(&["diff", "--format", format], 2);
        assert_eq!(run.stdout, "");
        assert_contains!(run.stderr, "`32GB` is not a Kubernetes quantity");
    }
}

#[test]
fn json_is_the_documented_shape() {
    let repo = built();
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], ""));
    let run = repo.run_ok(&["diff", "--format", "json"], 1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["base"], serde_json::Value::Null);
    assert_eq!(report["changed"], true);
    assert_eq!(report["summary"], "1 user changed: 1 resource changed");
    assert_eq!(
        report["counts"],
        serde_json::json!({
            "users": {"added": 0, "removed": 0, "changed": 1},
            "resources": {"added": 0, "removed": 0, "changed": 1},
            "shared_resources": 0,
            "hand_written": 0
        })
    );
    let risk = &report["risks"][0];
    assert_eq!(risk["level"], "restart");
    assert_eq!(risk["kind"], "image-changed");
    assert_eq!(risk["user"], "alice");
    assert_eq!(risk["resource"], "StatefulSet/devboxes/alice");
    assert_eq!(
        risk["summary"],
        "the image of container `devbox` changes from `registry.example.com/devbox:1.0` to `registry.example.com/devbox:2.0`: the pod restarts"
    );
    assert!(risk["details"].is_array() && risk["help"].is_array());
    assert_eq!(
        risk["facts"],
        serde_json::json!({"container": "devbox", "from": "registry.example.com/devbox:1.0", "to": "registry.example.com/devbox:2.0"})
    );
    let user = &report["users"][0];
    assert_eq!((&user["user"], &user["change"]), (&"alice".into(), &"changed".into()));
    let resource = &user["resources"][0];
    for (field, value) in [
        ("id", "StatefulSet/devboxes/alice"),
        ("kind", "StatefulSet"),
        ("namespace", "devboxes"),
        ("name", "alice"),
        ("change", "changed"),
        ("before", "out/alice/statefulset-alice.yaml"),
        ("after", "out/alice/statefulset-alice.yaml"),
    ] {
        assert_eq!(resource[field], value, "{field}");
    }
    assert!(
        resource["diff"]
            .as_str()
            .unwrap()
            .starts_with("--- a/out/alice/statefulset-alice.yaml\n+++ b/out/alice/statefulset-alice.yaml\n@@ ")
    );
}

#[test]
fn text_is_coloured_only_when_asked_or_on_a_terminal() {
    let repo = built();
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], ""));
    assert_not_contains!(repo.run_ok(&["diff"], 1).stdout, "\u{1b}", "a pipe gets no colour");
    let coloured = repo.run_ok(&["diff", "--color", "always"], 1).stdout;
    assert_contains!(coloured, "\u{1b}[0m\u{1b}[32m+        image: registry.example.com/devbox:2.0", "{coloured:?}");
    assert_not_contains!(repo.run_ok(&["diff", "--color", "always", "--format", "markdown"], 1).stdout, "\u{1b}");
    // A real terminal, through script(1) where it exists.
    let on_tty = |no_color: bool| -> Option<String> {
        let bin = assert_cmd::cargo::cargo_bin("devbox-gen");
        let line = format!("{} -C {} diff", bin.display(), repo.path().display());
        let mut command = Process::new("script");
        command.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        command.output().ok().filter(|o| o.status.code() == Some(1)).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if let (Some(tty), Some(tty_no_color)) = (on_tty(false), on_tty(true)) {
        assert_contains!(tty, "\u{1b}", "a terminal gets colour: {tty:?}");
        assert_not_contains!(tty_no_color, "\u{1b}", "NO_COLOR is respected: {tty_no_color:?}");
    }
}

// --- every risk, from a real before and after -------------------------------------------------

#[test]
fn removing_a_user_says_the_home_volume_stays() {
    let repo = built();
    fs::remove_file(repo.path().join("users/bob.toml")).unwrap();
    assert_eq!(risks(&repo), pairs(&[("home-volume-removed", "bob"), ("box-removed", "bob")]));
    let run = diff(&repo, 1);
    assert!(
        run.stdout.starts_with(
            "Risks, most dangerous first (2):\n\n  DATA     bob: the home volume `bob-home` leaves out/: `users/bob.toml` was removed\n"
        ),
        "{}",
        run.stdout
    );
    assert_contains!(run.stdout, "The volume and its data stay in the cluster: prune is disabled for it");
    assert_contains!(
        run.stdout,
        "help: to really delete the data once nobody needs it: `kubectl --namespace devboxes delete persistentvolumeclaim bob-home`"
    );
    assert_contains!(run.stdout, "1 user changed: 1 removed (compared with out/ on disk).");
    // And build, which carries it out, says the same.
    let build = repo.run_ok(&["build"], 0);
    assert_contains!(build.stderr, "its home volume stays in the cluster");
}

#[test]
fn renaming_a_user_gives_them_an_empty_home() {
    let repo = built();
    fs::remove_file(repo.path().join("users/alice.toml")).unwrap();
    repo.write("users/alicia.toml", &alice("", &[KEY_ALICE], ""));
    assert_eq!(risks(&repo), pairs(&[("home-volume-renamed", "alicia"), ("key-added", "alicia"), ("box-removed", "alice")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "alicia: the home volume is renamed: `alicia-home` replaces `alice-home` of `alice`");
    assert_contains!(run.stdout, "the box starts with an empty home");
    assert_contains!(run.stdout, "2 users changed: 1 added, 1 removed");
}

#[test]
fn a_bundle_that_moves_in_out_is_compared_by_object_and_the_data_does_not_follow() {
    let repo = built();
    // As if out/ had another layout (one directory per cluster) when it was committed.
    fs::create_dir(repo.path().join("out/prod")).unwrap();
    fs::rename(repo.path().join("out/alice"), repo.path().join("out/prod/alice")).unwrap();
    assert_eq!(risks(&repo), pairs(&[("home-volume-moved", "alice")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "alice: the bundle moves from out/prod/alice/ to out/alice/");
    assert_contains!(
        run.stdout,
        "moved StatefulSet/devboxes/alice: out/prod/alice/statefulset-alice.yaml → out/alice/statefulset-alice.yaml\n"
    );
    assert_not_contains!(run.stdout, "+++ b/out/alice/statefulset-alice.yaml", "a move alone has no diff to show");
    assert_not_contains!(run.stdout, "removed", "moved objects are not removed and added");
    let markdown = repo.run_ok(&["diff", "--format", "markdown"], 1).stdout;
    assert_contains!(
        markdown,
        "**moved** `StatefulSet/devboxes/alice` (`out/prod/alice/statefulset-alice.yaml` → `out/alice/statefulset-alice.yaml`)\n"
    );
    // A file that moves and changes keeps its diff, headed by both paths.
    let moved = repo.read("out/prod/alice/configmap-alice-devbox.yaml");
    repo.write("out/prod/alice/configmap-alice-devbox.yaml", &format!("{moved}  extra: x\n"));
    let run = diff(&repo, 1);
    assert_contains!(
        run.stdout,
        "changed ConfigMap/devboxes/alice-devbox\n--- a/out/prod/alice/configmap-alice-devbox.yaml\n+++ b/out/alice/configmap-alice-devbox.yaml\n@@"
    );
}

#[test]
fn shrinking_or_reclassing_a_home_is_refused_like_build_does() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", &[KEY_ALICE], "[home]\nsize = \"200Gi\"\nstorage_class = \"premium-rwo\"\n"));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("", &[KEY_ALICE], "[home]\nsize = \"100Gi\"\nstorage_class = \"premium-rwo\"\n"));
    let shrink = repo.run_ok(&["diff"], 2);
    assert_eq!(shrink.stdout, "");
    assert_contains!(shrink.stderr, "error: the home volume of `alice` would shrink from 200Gi to 100Gi");
    assert_contains!(shrink.stderr, "help: Kubernetes cannot shrink a PersistentVolumeClaim");
    let build = repo.run_ok(&["build"], 2).stderr;
    assert_eq!(format!("{}error: nothing under out/ was changed\n", shrink.stderr), build, "the same explanation as build");

    repo.write("users/alice.toml", &alice("", &[KEY_ALICE], "[home]\nsize = \"200Gi\"\nstorage_class = \"standard-rwo\"\n"));
    let reclass = repo.run_ok(&["diff", "--format", "json"], 2);
    assert_eq!(reclass.stdout, "");
    assert_contains!(reclass.stderr, "the storage class of `alice`'s home volume would change from premium-rwo to standard-rwo");
    assert_contains!(reclass.stderr, "a PersistentVolumeClaim's storage class is immutable");

    repo.write("users/alice.toml", &alice("", &[KEY_ALICE], "[home]\nsize = \"300Gi\"\nstorage_class = \"premium-rwo\"\n"));
    let grow = diff(&repo, 1);
    assert_contains!(grow.stdout, "-      storage: 200Gi\n+      storage: 300Gi\n", "growing is fine");
}

#[test]
fn immutable_statefulset_fields_come_with_the_orphan_delete_runbook() {
    let repo = built();
    repo.write(
        "templates/devbox.jsonnet",
        "local devbox = import 'devbox-gen/devbox.libsonnet';\nfunction(box) devbox.bundle(box) + { statefulSet+: { spec+: { podManagementPolicy: 'OrderedReady' } } }\n",
    );
    repo.write("devbox.toml", &format!("template = \"templates/devbox.jsonnet\"\n{SETTINGS}"));
    assert_eq!(risks(&repo), pairs(&[("immutable-field", "alice"), ("immutable-field", "bob")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "  SYNC     alice: StatefulSet `alice` changes fields Kubernetes cannot update: `podManagementPolicy`\n");
    assert_contains!(run.stdout, "the Argo CD or Flux sync of `StatefulSet/devboxes/alice` fails until the StatefulSet is recreated");
    assert_contains!(
        run.stdout,
        "help: after merging, delete only the StatefulSet object, leaving its pod running: `kubectl --namespace devboxes delete statefulset alice --cascade=orphan`"
    );
    assert_contains!(run.stdout, "`kubectl --namespace devboxes delete pod alice-0`");
}

#[test]
fn stopping_and_archiving_say_the_pod_goes_and_the_home_stays() {
    let repo = built();
    repo.write("users/alice.toml", &alice("state = \"stopped\"", &[KEY_ALICE], ""));
    repo.write("users/bob.toml", &user("state = \"archived\"", "bob@example.com", &[KEY_ALICE_2], ""));
    assert_eq!(risks(&repo), pairs(&[("box-archived", "bob"), ("box-stopped", "alice")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "  DOWNTIME alice: the box is stopped (replicas 1 → 0): its pod is deleted, the home volume stays\n");
    assert_contains!(run.stdout, "  DOWNTIME bob: the box is archived: its pod goes away, the home volume stays\n");
    assert_not_contains!(run.stdout, "\n  DATA ", "the home volume is kept");
    assert_contains!(
        run.stdout,
        "the machine `bob-devbox` stays in the tailnet's machine list, offline, until someone removes it",
        "archiving says what becomes of the tailnet machine"
    );
}

#[test]
fn image_gpu_and_arch_changes_restart_or_reschedule_the_pod() {
    let repo = built();
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], ""));
    repo.write(
        "users/bob.toml",
        &user("arch = \"arm64\"", "bob@example.com", &[KEY_ALICE_2], "[gpu]\ntype = \"nvidia-gb200\"\ncount = 1\n"),
    );
    assert_eq!(risks(&repo), pairs(&[("gpu-changed", "bob"), ("arch-changed", "bob"), ("image-changed", "alice")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "RESTART  bob: the GPU changes from none to `1 × nvidia-gb200`: the pod is rescheduled\n");
    assert_contains!(run.stdout, "stays Pending until one is free");
    assert_contains!(run.stdout, "RESTART  bob: the architecture changes from `amd64` to `arm64`: the pod is rescheduled\n");
    // Any other change to the pod restarts it too, and says what changed.
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], "[resources]\ncpu = \"3\"\n"));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "RESTART  alice: the pod restarts: its template changes (`containers[devbox].resources`)\n");
    assert_contains!(run.stdout, "@@ spec.template.spec.containers[devbox].resources.limits.cpu\n", "the hunk says where it is");
}

/// sshd reads fields apart by tabs or several spaces; so do validation and `diff`, and the key
/// is the same key: only the new one is named, by its comment.
#[test]
fn a_key_written_with_tabs_is_the_key_sshd_reads() {
    let repo = built();
    repo.write("users/alice.toml", &alice("", &[&KEY_ALICE.replace(' ', "\\t"), &KEY_DAVE.replace(' ', "   ")], ""));
    assert_eq!(risks(&repo), pairs(&[("key-added", "alice")]));
    assert_contains!(diff(&repo, 1).stdout, "  ACCESS   alice: SSH key `dave@laptop` (ssh-ed25519 `SHA256:");
    repo.run_ok(&["build"], 0);
    assert_contains!(repo.read("out/alice/configmap-alice-devbox.yaml"), "ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC");
}

#[test]
fn authorized_keys_added_and_removed_are_named() {
    let repo = built();
    repo.write("users/alice.toml", &alice("", &[KEY_DAVE], ""));
    assert_eq!(risks(&repo), pairs(&[("key-added", "alice"), ("key-removed", "alice")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "  ACCESS   alice: SSH key `dave@laptop` (ssh-ed25519 `SHA256:");
    assert_contains!(run.stdout, "`) can now log in\n");
    assert_contains!(run.stdout, "Check that it belongs to `alice@example.com`.");
    assert_contains!(run.stdout, "  ACCESS   alice: SSH key `alice@laptop` (ssh-ed25519 `SHA256:");
    assert_contains!(run.stdout, "`) can no longer log in\n");
    let report: serde_json::Value = serde_json::from_str(&repo.run_ok(&["diff", "--format", "json"], 1).stdout).unwrap();
    let added = &report["risks"].as_array().unwrap().iter().find(|r| r["kind"] == "key-added").unwrap()["facts"];
    assert_eq!((&added["comment"], &added["algorithm"]), (&"dave@laptop".into(), &"ssh-ed25519".into()));
    assert!(added["fingerprint"].as_str().unwrap().starts_with("SHA256:"), "{added}");
    // A new comment on the same key is no access change.
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("", &[&KEY_DAVE.replace("dave@laptop", "dave@desk")], ""));
    assert_eq!(risks(&repo), pairs(&[]));
}

#[test]
fn a_new_user_is_an_access_change() {
    let repo = built();
    repo.write("users/erin.toml", &user("", "erin@example.com", &[KEY_ERIN], ""));
    assert_eq!(risks(&repo), pairs(&[("key-added", "erin")]));
    let run = diff(&repo, 1);
    assert_contains!(run.stdout, "erin: SSH key `erin@laptop`");
    assert_contains!(run.stdout, "can log in to the new box");
    assert_contains!(run.stdout, "1 user changed: 1 added (compared with out/ on disk).");
    assert_contains!(run.stdout, "erin (new user): 10 added\n");
}

// --- snapshots: what a reviewer reads --------------------------------------------------------

/// alice gets a new image and a second key, bob is stopped; with `carol_leaves`, carol's file
/// is removed too.
fn review_scenario(carol_leaves: bool) -> Repo {
    let repo = Repo::new(SETTINGS)
        .user("alice", &alice("", &[KEY_ALICE], ""))
        .user("bob", &user("", "bob@example.com", &[KEY_ALICE_2], ""))
        .user("carol", &user("", "carol@example.com", &[KEY_ERIN], ""));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE, KEY_DAVE], ""));
    repo.write("users/bob.toml", &user("state = \"stopped\"", "bob@example.com", &[KEY_ALICE_2], ""));
    if carol_leaves {
        fs::remove_file(repo.path().join("users/carol.toml")).unwrap();
    }
    repo
}

#[test]
fn text_report() {
    let repo = review_scenario(false);
    insta::assert_snapshot!(without_scripts_hash(&repo.run_ok(&["diff"], 1).stdout));
}

#[test]
fn markdown_report() {
    let repo = review_scenario(true);
    insta::assert_snapshot!(without_scripts_hash(&repo.run_ok(&["diff", "--format", "markdown"], 1).stdout));
}

// --- --base REF: out/ as committed in git -----------------------------------------------------

fn devbox_gen(root: &Path, args: &[&str]) -> Run {
    let output = Command::cargo_bin("devbox-gen").unwrap().arg("-C").arg(root).args(args).env_remove("NO_COLOR").output().unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn base_compares_with_out_at_a_revision_without_touching_the_work_tree() {
    // The config repo sits in a subdirectory of the git repository.
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("infra/devboxes");
    fs::create_dir_all(root.join("users")).unwrap();
    fs::write(root.join("devbox.toml"), SETTINGS).unwrap();
    fs::write(root.join("users/alice.toml"), alice("", &[KEY_ALICE], "")).unwrap();
    fs::write(root.join("users/bob.toml"), user("", "bob@example.com", &[KEY_ALICE_2], "")).unwrap();
    assert_eq!(devbox_gen(&root, &["build"]).code, 0);
    fs::write(root.join("out/README.md"), "not generated\n").unwrap();
    git(top.path(), &["init", "-q", "-b", "main"]);
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "base"]);

    // The PR: alice's image changes and out/ is rebuilt, so out/ on disk shows nothing.
    fs::write(root.join("users/alice.toml"), alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], "")).unwrap();
    assert_eq!(devbox_gen(&root, &["build"]).code, 0);
    git(top.path(), &["commit", "-q", "-am", "pr"]);
    assert_eq!(devbox_gen(&root, &["diff"]).code, 0);

    let run = devbox_gen(&root, &["diff", "--base", "main~1"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_contains!(run.stdout, "RESTART  alice: the image of container `devbox` changes");
    assert_contains!(run.stdout, "1 user changed: 1 resource changed (compared with out/ at `main~1`).");
    assert_not_contains!(run.stdout, "README", "files devbox-gen did not write are not compared");
    let json: serde_json::Value =
        serde_json::from_str(&devbox_gen(&root, &["diff", "--base", "main~1", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["base"], "main~1");
    assert_eq!(devbox_gen(&root, &["diff", "--base", "main"]).code, 0);
    assert_eq!(git(top.path(), &["status", "--porcelain"]), "", "the work tree and index are untouched");
}

#[test]
fn base_with_no_out_at_that_revision_shows_everything_added() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", &[KEY_ALICE], ""));
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "users only"]);
    let run = repo.run_ok(&["diff", "--base", "main"], 1);
    assert_contains!(run.stdout, "1 user changed: 1 added; 1 shared resource changed (devbox.toml) (compared with out/ at `main`).");
    assert_contains!(run.stderr, "warning: `main` has no out/ at out: every file of out/ shows as new");
}

/// A built repo in git: `main`, and the branch `pr` checked out, where alice's image changes.
fn a_pr_on_main() -> Repo {
    let repo = built();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    git(repo.path(), &["checkout", "-q", "-b", "pr"]);
    repo.write("users/alice.toml", &alice("image = \"registry.example.com/devbox:2.0\"", &[KEY_ALICE], ""));
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["commit", "-q", "-am", "pr"]);
    repo
}

/// git will not read a repository another user owns (`safe.directory`): a CI job in a
/// container meets it on its first run. Said as that, with the one command that lets git read
/// it, not as "not in a git repository" with git's message flattened into one line.
#[test]
fn a_repository_another_user_owns_is_told_with_the_command_that_trusts_it() {
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("not root: cannot give the repository to another user here (CI runs this as root)");
        return;
    }
    let repo = a_pr_on_main();
    let status = Process::new("chown").args(["-R", "65534"]).arg(repo.path()).status().unwrap();
    assert!(status.success());
    let run = repo.run_ok(&["diff", "--base", "main"], 2);
    let top = repo.path().canonicalize().unwrap();
    assert_contains!(run.stderr, &format!("git refuses to read {}: another user owns it\n", top.display()));
    assert_contains!(run.stderr, &format!(" = help: if you trust it: `git config --global --add safe.directory {}`\n", top.display()));
    assert_not_contains!(run.stderr, "\\n");
    // A build needs no git, but says which of its checks git's refusal skipped.
    let build = repo.run_ok(&["build", "--check"], 0);
    assert_contains!(
        build.stderr,
        &format!("warning: git refuses to read {}, which another user owns: links Argo CD refuses were not looked for\n", top.display())
    );
}

/// A branch behind its base would show what was merged there since as undone by it (a user
/// added on main, "removed" by a PR that never touched her): said, with the comparison that
/// is meant.
#[test]
fn a_base_with_commits_the_branch_lacks_is_said_so() {
    let repo = a_pr_on_main();
    let run = repo.run_ok(&["diff", "--base", "main"], 1);
    assert_not_contains!(run.stderr, "has commits this branch lacks");
    git(repo.path(), &["checkout", "-q", "main"]);
    repo.write("users/carol.toml", &user("", "carol@example.com", &[KEY_ALICE], ""));
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "carol"]);
    git(repo.path(), &["checkout", "-q", "pr"]);
    let run = repo.run_ok(&["diff", "--base", "main"], 1);
    assert_contains!(run.stderr, "warning: `main` has commits this branch lacks: what they changed in out/ shows here as undone by it");
    assert_contains!(run.stderr, "`--base \"$(git merge-base main HEAD)\"`");
    let base = git(repo.path(), &["merge-base", "main", "HEAD"]);
    let run = repo.run_ok(&["diff", "--base", base.trim()], 1);
    assert_not_contains!(run.stdout, "carol");
}

#[test]
fn base_errors_are_clear() {
    let repo = built();
    let run = repo.run_ok(&["diff", "--base", "main"], 2);
    assert_contains!(run.stderr, "error: `--base main` reads out/ from git, but");
    assert_contains!(run.stderr, "is not in a git repository");

    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    let run = repo.run_ok(&["diff", "--base", "origin/main", "--format", "json"], 2);
    assert_eq!(run.stdout, "");
    assert_contains!(run.stderr, "error: no commit `origin/main` in the git repository");
    assert_contains!(run.stderr, "fetch-depth: 0");
    let run = repo.run_ok(&["diff", "--base=--output=/tmp/x"], 2);
    assert_contains!(run.stderr, "is not a git revision");

    let empty = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("devbox-gen")
        .unwrap()
        .arg("-C")
        .arg(repo.path())
        .args(["diff", "--base", "main"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains!(stderr, "error: `--base` reads out/ from git, but git cannot be run");
}

#[test]
fn base_holds_a_claim_edited_by_hand_at_that_revision_to_what_a_claim_cannot_become() {
    // At the base, someone mirrored a claim grown in the cluster into out/ by hand (the header
    // went with the edit); the PR put the generated, smaller claim of users/ back.
    // Syncing that would be refused by the API server: `diff --base` refuses it, as `diff`
    // against such a file on disk does.
    let repo = built();
    let claim = "out/alice/persistentvolumeclaim-alice-home.yaml";
    let generated = repo.read(claim);
    let (_, rest) = generated.split_once('\n').unwrap();
    let size = rest.lines().find_map(|line| line.trim().strip_prefix("storage: ")).unwrap().to_string();
    repo.write(claim, &rest.replace(&format!("storage: {size}"), "storage: 900Gi"));
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    // The PR's author deleted the file the build refused to replace, and built.
    fs::remove_file(repo.path().join(claim)).unwrap();
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["commit", "-q", "-am", "pr"]);

    let run = repo.run_ok(&["diff", "--base", "main~1"], 2);
    assert_contains!(
        run.stderr,
        &format!(
            "error: `alice`'s home volume, edited by hand in out/alice/persistentvolumeclaim-alice-home.yaml, would change: 900Gi → {size}"
        )
    );
    assert_contains!(run.stderr, "keep it: set `home.size = \"900Gi\"` in users/alice.toml");
    // A hand edit at the base that asks for nothing impossible is only replaced.
    repo.write(claim, rest);
    git(repo.path(), &["commit", "-q", "-am", "base, edited within what a claim can become"]);
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["commit", "-q", "-am", "pr, rebuilt"]);
    repo.run_ok(&["diff", "--base", "main~1"], 1);
}

/// The help for a base that a shallow, single-branch clone lacks can be followed as written:
/// there, `git fetch origin main` only sets FETCH_HEAD, and the refspec it gives makes the
/// remote branch.
#[test]
fn the_help_for_a_missing_base_works_in_a_single_branch_clone() {
    let repo = a_pr_on_main();
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    git(clone.path(), &["clone", "-q", "--depth", "1", "--branch", "pr", &url, "."]);
    let ci = Repo::at(clone);
    let run = ci.run_ok(&["diff", "--base", "origin/main"], 2);
    let help = "git fetch origin +refs/heads/main:refs/remotes/origin/main";
    assert_contains!(run.stderr, help);
    let args: Vec<&str> = help.split(' ').skip(1).collect();
    git(ci.path(), &args);
    let run = ci.run_ok(&["diff", "--base", "origin/main"], 1);
    assert_contains!(run.stdout, "RESTART  alice: the image of container `devbox` changes");
    // The shallow history cannot tell whether main is behind: it says so, and claims nothing.
    assert_contains!(run.stderr, "warning: this clone is shallow: whether `origin/main` has commits this branch lacks cannot be told\n");
    assert_not_contains!(run.stderr, "`origin/main` has commits this branch lacks:");
    // The PR comment carries it too: the reviewer, not the CI log's reader, decides on it.
    let comment = ci.run_ok(&["diff", "--base", "origin/main", "--format", "markdown"], 1).stdout;
    assert_contains!(
        comment,
        "> [!WARNING]\n> This clone is shallow: whether `origin/main` has commits this branch lacks cannot be told\n>\n> If it has,"
    );
    assert!(comment.find("This clone is shallow") < comment.find("**Risks"), "the note comes before the risks:\n{comment}");
}

#[test]
fn base_and_disk_agree_on_the_same_change() {
    // Only what differs is read in both modes (git's blob ids; the build cache and hashes):
    // whatever each side skips, the plans must be the same.
    let repo = built();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    repo.write("users/alice.toml", &alice("state = \"stopped\"", &[KEY_ALICE], ""));
    repo.write("users/bob.toml", &user("state = \"archived\"", "bob@example.com", &[KEY_ALICE_2], ""));
    repo.write("users/carol.toml", &user("", "carol@example.com", &[KEY_ALICE], ""));
    // Set aside: what each compared with, and whether the branch's out/ is current, which
    // only `--base` asks (out/ on disk is what the other mode compares with).
    let plan = |args: &[&str]| {
        let mut json: serde_json::Value = serde_json::from_str(&repo.run_ok(args, 1).stdout).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("base");
        let behind = object.remove("out_behind").unwrap();
        object.remove("out_behind_files");
        // `--base` also tells, as a risk, that the branch's out/ is not rebuilt.
        let risks = json["risks"].as_array_mut().unwrap();
        let told = risks.iter().any(|r| r["kind"] == "out-behind");
        risks.retain(|r| r["kind"] != "out-behind");
        (json, (behind, told))
    };
    let (on_disk, behind) = plan(&["diff", "--format", "json"]);
    let (at_main, behind_main) = plan(&["diff", "--base", "main", "--format", "json"]);
    assert_eq!(on_disk, at_main);
    assert_eq!((behind.0, behind_main.0.as_u64().is_some_and(|n| n > 0), behind_main.1), (serde_json::json!(0), true, true));
    assert!(!behind.1, "out/ on disk is the baseline itself");
    let risks: Vec<&str> = on_disk["risks"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(risks, ["key-added", "box-archived", "box-stopped"]);
}

/// Another address on an existing box hands its home, and every file in it, to whoever that is:
/// the reviewer is told, whatever else the change does.
#[test]
fn a_new_owner_address_is_told_as_a_home_handed_over() {
    let repo = Repo::with_alice();
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &user_file("mallory@example.com", KEY_ALICE));
    let found = risks(&repo);
    assert!(found.contains(&("home-handed-over".to_string(), "alice".to_string())), "{found:?}");
    let run = repo.run(&["diff", "--color", "never"]);
    assert_contains!(
        run.stdout,
        "ACCESS   alice: the home volume `alice-home` passes from `alice@example.com` to `mallory@example.com`, with every file in it\n"
    );
}

/// A change that moves the config repo inside its Git repository (`[repo] path`) is compared
/// with out/ where the config repo was: the delivery objects are repointed, no box is new.
#[test]
fn a_config_repo_that_moves_is_compared_with_out_where_it_was() {
    let top = tempfile::tempdir().unwrap();
    let old = top.path().join("infra/devboxes");
    fs::create_dir_all(old.join("users")).unwrap();
    let settings =
        format!("gitops = [\"argocd\"]\n{SETTINGS}\n[repo]\nurl = \"https://github.com/acme/platform.git\"\npath = \"infra/devboxes\"\n");
    fs::write(old.join("devbox.toml"), &settings).unwrap();
    fs::write(old.join("users/alice.toml"), user_file("alice@example.com", KEY_ALICE)).unwrap();
    let run = |dir: &Path, args: &[&str], code: i32| {
        let output = Command::cargo_bin("devbox-gen").unwrap().arg("-C").arg(dir).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    run(&old, &["build"], 0);
    git(top.path(), &["init", "-q", "-b", "main"]);
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "base"]);
    git(top.path(), &["checkout", "-q", "-b", "move"]);
    fs::create_dir(top.path().join("deploy")).unwrap();
    git(top.path(), &["mv", "infra/devboxes", "deploy/devboxes"]);
    let new = top.path().join("deploy/devboxes");
    fs::write(new.join("devbox.toml"), settings.replace("infra/devboxes", "deploy/devboxes")).unwrap();
    run(&new, &["build"], 0);
    git(top.path(), &["add", "-A"]);
    git(top.path(), &["commit", "-q", "-m", "move"]);
    let (json, stderr) = run(&new, &["diff", "--base", "main", "--format", "json"], 1);
    assert_contains!(
        stderr,
        "warning: the config repo moves from infra/devboxes to deploy/devboxes in this change: compared with out/ where it was at `main`"
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: Vec<&str> = report["risks"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["delivery-engine-changed"]);
    assert!(report["risks"][0]["facts"]["repointed"].is_string(), "{}", report["risks"][0]);
    assert_eq!(report["counts"]["users"], serde_json::json!({"added": 0, "removed": 0, "changed": 0}));
    assert_eq!(
        report["notes"],
        serde_json::json!([{
            "message": "the config repo moves from infra/devboxes to deploy/devboxes in this change: compared with out/ where it was at `main`",
            "help": [],
        }])
    );
}
