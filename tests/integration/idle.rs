//! `diff` on boxes that stop by themselves (`[idle]`, `[schedule]`) and on the owner's own
//! kubectl access (`[owners]`): the reviewer learns when a box will stop, that Git no longer
//! decides whether it runs, what a new window or new hours do, and who gets into the box.

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, assert_not_contains, git, pairs, risks, user_file};

const HOURS: &str = "\n[schedule]\ntimezone = \"Europe/Berlin\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nstart = \"08:00\"\nstop = \"19:00\"\n";

/// alice's file with `[idle] after` and the given extra tables.
fn alice(after: Option<&str>, tables: &str) -> String {
    let idle = after.map_or(String::new(), |after| format!("\n[idle]\nafter = \"{after}\"\n"));
    format!("{}{idle}{tables}", user_file("alice@example.com", KEY_ALICE))
}

/// alice, running, built without autostop.
fn built() -> Repo {
    let repo = Repo::with_alice();
    repo.run_ok(&["build"], 0);
    repo
}

/// The risks of `diff --format json`, whole.
fn json_risks(repo: &Repo) -> Vec<serde_json::Value> {
    let run = repo.run_ok(&["diff", "--format", "json"], 1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    report["risks"].as_array().unwrap().clone()
}

/// The risks part of the text report: everything before the fields, the cost and the summary.
fn risk_text(repo: &Repo) -> String {
    let stdout = repo.run_ok(&["diff"], 1).stdout;
    let end = ["\nWhat changes, by field", "\nCost:", "\nResource change:", "\n1 user changed", "\n3 users changed"]
        .iter()
        .filter_map(|marker| stdout.find(marker))
        .min()
        .unwrap_or(stdout.len());
    stdout[..end].to_string()
}

#[test]
fn enabling_idle_and_hours_says_when_the_box_stops_and_that_git_no_longer_sets_replicas() {
    let repo = built();
    repo.write("users/alice.toml", &alice(Some("2h"), HOURS));
    assert_eq!(risks(&repo), pairs(&[("autostop-enabled", "alice")]), "the restart is told by the autostop risk, not as pod-restart");
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  DOWNTIME alice: the box now stops by itself after 2h without activity outside working hours (mon-fri 08:00-19:00 Europe/Berlin)\n"
    );
    assert_contains!(text, "What counts as activity: SSH traffic (a new connection for its first 15m, then more than 4096 bytes a minute");
    assert_contains!(text, "Jupyter in use");
    assert_contains!(
        text,
        "a process using more than 10% of a CPU; a GPU busy 5% or more; or a hold: `touch -d '+3 hours' ~/.devbox-hold`"
    );
    assert_contains!(text, "On mon-fri from 08:00 to 19:00 (Europe/Berlin) a CronJob starts it at 08:00 if it is stopped");
    assert_contains!(text, "The pod restarts once now, to add the container `idle` that stops it");
    assert_contains!(text, "Git no longer sets the box's replicas (the StatefulSet has no `spec.replicas`)");
    assert_contains!(
        text,
        "Argo CD and Flux leave the field alone, so a sync neither starts a box that stopped itself nor reports it as drift."
    );
    assert_contains!(text, "help: to start it once it has stopped itself: `devbox-gen wake NAME` (the user's name) prints the command");
    assert_not_contains!(text, "RESTART");

    let risk = &json_risks(&repo)[0];
    assert_eq!(
        (&risk["level"], &risk["kind"], &risk["resource"]),
        (&"downtime".into(), &"autostop-enabled".into(), &"StatefulSet/devboxes/alice".into())
    );
    assert_eq!(
        risk["facts"],
        serde_json::json!({"after_from": "never", "after_to": "7200", "hours_from": "none", "hours_to": "mon-fri 08:00-19:00 Europe/Berlin",
                           "wake_schedule": "0 8 * * 1-5", "wake_timezone": "Europe/Berlin"})
    );
}

#[test]
fn a_new_window_or_new_hours_restart_nothing() {
    let repo = Repo::new(SETTINGS).user("alice", &alice(Some("2h"), HOURS));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice(Some("30m"), &HOURS.replace("08:00", "09:00")));
    assert_eq!(risks(&repo), pairs(&[("idle-changed", "alice")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  DOWNTIME alice: the box's autostop changes (idle window 2h → 30m; working hours mon-fri 08:00-19:00 Europe/Berlin → mon-fri 09:00-19:00 Europe/Berlin): nothing restarts\n"
    );
    assert_contains!(text, "idle.py re-reads idle.json in place");
    assert_contains!(text, "a box idle for 30m or more when the update arrives stops at once");
    assert_contains!(
        text,
        "From now on it is kept running on mon-fri from 09:00 to 19:00 (Europe/Berlin), and started at 09:00 if it is stopped."
    );
    assert_not_contains!(text, "RESTART");
    let facts = &json_risks(&repo)[0]["facts"];
    assert_eq!((&facts["after_from"], &facts["after_to"]), (&"7200".into(), &"1800".into()));
    assert_eq!(facts["wake_schedule"], "0 9 * * 1-5");

    // Hours removed, the window kept: nothing starts the box in the morning any more.
    repo.write("users/alice.toml", &alice(Some("2h"), ""));
    let text = risk_text(&repo);
    assert_contains!(text, "the box's autostop changes (working hours mon-fri 08:00-19:00 Europe/Berlin → none): nothing restarts\n");
    assert_contains!(text, "Nothing starts the box in the morning any more (its CronJob leaves)");
}

#[test]
fn removing_autostop_gives_the_box_back_to_git() {
    let repo = Repo::new(SETTINGS).user("alice", &alice(Some("2h"), HOURS));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice(Some("never"), ""));
    assert_eq!(risks(&repo), pairs(&[("autostop-disabled", "alice")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  RESTART  alice: the box no longer stops by itself (idle window 2h → never, working hours mon-fri 08:00-19:00 Europe/Berlin → none): it runs until Git stops it\n"
    );
    assert_contains!(
        text,
        "The StatefulSet sets `spec.replicas: 1` again: if the box has stopped itself (idle, or outside working hours), the next sync starts it."
    );
    assert_contains!(text, "If it is running, its pod restarts once, to remove the container `idle`");
    let risk = &json_risks(&repo)[0];
    assert_eq!(risk["level"], "restart");
    assert_eq!((&risk["facts"]["after_to"], &risk["facts"]["hours_to"]), (&"never".into(), &"none".into()));
}

#[test]
fn stopping_an_autostopping_box_is_told_as_stopped_only() {
    let repo = Repo::new(SETTINGS).user("alice", &alice(Some("2h"), ""));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &format!("state = \"stopped\"\n{}", alice(Some("2h"), "")));
    assert_eq!(risks(&repo), pairs(&[("box-stopped", "alice")]));
    assert_contains!(risk_text(&repo), "Until now it stopped by itself and the cluster set its replicas, so it may be stopped already.");
}

#[test]
fn a_window_for_every_box_is_told_once() {
    let repo = Repo::new(SETTINGS)
        .user("alice", &user_file("alice@example.com", KEY_ALICE))
        .user("bob", &user_file("bob@example.com", KEY_ALICE_2))
        .user("carol", &user_file("carol@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &format!("{SETTINGS}idle = {{ after = \"1h\" }}\n"));
    assert_eq!(risks(&repo), pairs(&[("autostop-enabled", "alice"), ("autostop-enabled", "bob"), ("autostop-enabled", "carol")]));
    assert_contains!(
        risk_text(&repo),
        "Risks, most dangerous first (3, told as 1):\n\n  DOWNTIME 3 users: the box now stops by itself after 1h without activity\n           users: alice, bob, carol\n"
    );
    let markdown = repo.run_ok(&["diff", "--format", "markdown"], 1).stdout;
    assert_contains!(markdown, "**3 users**: the box now stops by itself after 1h without activity\n");
}

#[test]
fn owner_access_granted_changed_and_removed() {
    let repo = Repo::new(SETTINGS)
        .user("alice", &user_file("alice@example.com", KEY_ALICE))
        .user("bob", &user_file("bob@example.com", KEY_ALICE_2));
    repo.run_ok(&["build"], 0);
    let owners = |allow: &str| format!("{SETTINGS}\n[owners]\nallow = [{allow}]\nuser_prefix = \"oidc:\"\n");
    repo.write("devbox.toml", &owners("\"logs\", \"exec\""));
    assert_eq!(risks(&repo), pairs(&[("owner-access-granted", "alice"), ("owner-access-granted", "bob")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  ACCESS   2 users: the owner gets kubectl access to the box: logs (read them), exec (run commands in it)\n           users: alice, bob\n",
        "the same grant for every box is told once"
    );
    assert_contains!(text, "A new Role is bound to the Kubernetes user `oidc:` followed by the owner's email");
    assert_contains!(text, "each rule names this box's own StatefulSet or pod");
    assert_contains!(text, "`pods/exec` create");
    assert_contains!(
        text,
        "RBAC cannot limit exec to one container: `kubectl exec --container tailscale` reaches the tailscale sidecar too"
    );
    assert_contains!(text, "help: to keep the tailnet identity out of reach, leave `exec` out of devbox.toml's `[owners] allow`");
    let risk = &json_risks(&repo)[0];
    assert_eq!((&risk["level"], &risk["resource"]), (&"access".into(), &"Role/devboxes/alice-owner".into()));
    assert_eq!(risk["facts"], serde_json::json!({"subject": "oidc:alice@example.com", "to": "logs,exec"}));

    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &owners("\"logs\""));
    assert_eq!(risks(&repo), pairs(&[("owner-access-changed", "alice"), ("owner-access-changed", "bob")]));
    assert_contains!(
        risk_text(&repo),
        "the owner's kubectl access to the box changes: logs (read them), exec (run commands in it) → logs (read them)\n"
    );

    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", SETTINGS);
    assert_eq!(risks(&repo), pairs(&[("owner-access-removed", "alice"), ("owner-access-removed", "bob")]));
    assert_contains!(risk_text(&repo), "the owner loses kubectl access to the box: logs (read them)\n");
}

#[test]
fn scale_is_granted_with_autostop_and_compared_across_commits() {
    let repo = Repo::new(&format!("{SETTINGS}\n[owners]\nallow = [\"scale\"]\n")).user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    // The PR: alice's box stops by itself, and out/ is rebuilt.
    repo.write("users/alice.toml", &alice(Some("90m"), ""));
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "idle"]);
    repo.run_ok(&["diff"], 0);

    let run = repo.run_ok(&["diff", "--base", "main~1"], 1);
    // Without autostop, Git sets the replicas and `scale` grants nothing: the Role is new.
    assert_contains!(run.stdout, "  ACCESS   alice: the owner gets kubectl access to the box: scale (start and stop it)\n");
    assert_contains!(run.stdout, "  DOWNTIME alice: the box now stops by itself after 1h30m without activity\n");
    let report: serde_json::Value =
        serde_json::from_str(&repo.run_ok(&["diff", "--base", "main~1", "--format", "json"], 1).stdout).unwrap();
    let kinds: Vec<&str> = report["risks"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["owner-access-granted", "autostop-enabled"]);
    assert_eq!(report["base"], "main~1");
}
