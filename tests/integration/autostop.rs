//! Idle auto-stop and working hours through the CLI: what a box with `[idle]` and `[schedule]`
//! gets in its bundle, what a stopped one does not, who may wake it, and what counts against
//! `[quota]`. The one-file errors are in rules.rs (and docs/rules.md); `diff` is in idle.rs.

use serde_json::Value;

use crate::common::{KEY_ALICE, Repo, SETTINGS, assert_contains, user_file};

const IDLE: &str = "\n[idle]\nafter = \"2h\"\n";
const HOURS: &str = "\n[schedule]\ntimezone = \"Europe/Berlin\"\nstart = \"08:30\"\nstop = \"19:00\"\n";
const OWNERS: &str = "\n[owners]\nallow = [\"scale\", \"logs\"]\nuser_prefix = \"oidc:\"\n";

fn alice(top: &str, tables: &str) -> String {
    format!("{top}{}{tables}", user_file("alice@example.com", KEY_ALICE))
}

/// The bundle of `name` as objects, from `show` (one YAML document per object).
fn bundle(repo: &Repo, name: &str) -> Vec<Value> {
    let yaml = repo.run_ok(&["show", name], 0).stdout;
    yaml.split("\n---\n").map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{e}: {doc}"))).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn containers(objects: &[Value]) -> Vec<String> {
    let set = find(objects, "StatefulSet", "alice").expect("a StatefulSet");
    set["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

/// alice's working hours add a ServiceAccount `alice-wake`, the name of the whole box of a user
/// file `alice-wake.toml`: both bundles would hold one object. With the embedded template it is
/// told at the second file before anything renders; a custom template names its objects itself,
/// and the build refuses the two bundles, whether alice's is rendered or kept from the last
/// build. Either way out/ stays as it was.
#[test]
fn two_boxes_rendering_one_object_are_refused_naming_both_files() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", &format!("{IDLE}{HOURS}")));
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    repo.write("users/alice-wake.toml", &user_file("wake@example.com", crate::common::KEY_ALICE_2));
    for args in [&["build"][..], &["build", "--check"], &["diff"], &["validate"]] {
        let run = repo.run_ok(args, 2);
        assert_contains!(run.stderr, "`alice-wake` is the name of the ServiceAccount that wakes users/alice.toml's box");
        assert_contains!(run.stderr, "┌─ users/alice-wake.toml:");
    }
    assert_eq!(repo.out_snapshot(), before, "nothing under out/ changed");

    let custom = Repo::new(&format!("template = \"team.jsonnet\"\n{SETTINGS}")).user("alice", &alice("", &format!("{IDLE}{HOURS}")));
    custom.write("team.jsonnet", "local devbox = import 'devbox-gen/devbox.libsonnet';\nfunction(box) devbox.bundle(box)\n");
    custom.run_ok(&["build"], 0);
    let before = custom.out_snapshot();
    custom.write("users/alice-wake.toml", &user_file("wake@example.com", crate::common::KEY_ALICE_2));
    custom.run_ok(&["validate"], 0);
    for args in [&["build"][..], &["build", "--check"], &["diff"]] {
        let run = custom.run_ok(args, 2);
        assert_contains!(run.stderr, "error: users/alice-wake.toml and users/alice.toml both render ServiceAccount/devboxes/alice-wake\n");
        assert_contains!(run.stderr, "= help: rename one of the user files");
    }
    assert_eq!(custom.out_snapshot(), before, "nothing under out/ changed");
}

#[test]
fn a_box_that_stops_by_itself_leaves_its_replicas_to_the_cluster() {
    let repo = Repo::new(&format!("{SETTINGS}{OWNERS}")).user("alice", &alice("", &format!("{IDLE}{HOURS}")));
    let objects = bundle(&repo, "alice");
    let set = find(&objects, "StatefulSet", "alice").unwrap();
    assert!(set["spec"].get("replicas").is_none(), "Argo CD and Flux would set an idle-stopped box back: {}", set["spec"]);
    assert_eq!(containers(&objects), ["devbox", "tailscale", "idle"]);

    let role = find(&objects, "Role", "alice-idle").expect("the idle Role");
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": ["alice"], "verbs": ["get", "patch"]}])
    );
    let binding = find(&objects, "RoleBinding", "alice-idle").unwrap();
    assert_eq!(binding["subjects"][0]["name"], "alice");

    let cron = find(&objects, "CronJob", "alice-wake").expect("the wake CronJob");
    assert_eq!(cron["spec"]["schedule"], "30 8 * * 1-5");
    assert_eq!(cron["spec"]["timeZone"], "Europe/Berlin");
    let command = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
    assert_contains!(command, "/apis/apps/v1/namespaces/devboxes/statefulsets/alice/scale?fieldManager=devbox-gen-schedule");
    assert_contains!(command, r#"--data '{"spec":{"replicas":1}}'"#);
    // Not the box's selector: its Service and NetworkPolicy would take the job's pod for the box.
    let job_labels = &cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
    assert_eq!(job_labels["app.kubernetes.io/name"], "devbox-wake");
    let selector = &find(&objects, "Service", "alice").unwrap()["spec"]["selector"];
    assert!(selector.as_object().unwrap().iter().any(|(k, v)| &job_labels[k] != v), "{job_labels} matches {selector}");

    let config = find(&objects, "ConfigMap", "alice-devbox").unwrap();
    let policy: Value = serde_json::from_str(config["data"]["idle.json"].as_str().unwrap()).unwrap();
    assert_eq!(policy["after_seconds"], 7200);
    assert_eq!(policy["schedule"]["days"], serde_json::json!(["mon", "tue", "wed", "thu", "fri"]));
    assert_eq!(policy["schedule"]["start"], "08:30");
    let volumes = &find(&objects, "StatefulSet", "alice").unwrap()["spec"]["template"]["spec"]["volumes"];
    let config_volume = volumes.as_array().unwrap().iter().find(|v| v["name"] == "config").unwrap();
    let scripts_name = config_volume["projected"]["sources"][1]["configMap"]["name"].as_str().unwrap();
    repo.run_ok(&["build"], 0);
    let scripts: Value =
        serde_saphyr::from_str(&repo.read(&format!("out/_gitops/namespace/default/configmap-{scripts_name}.yaml"))).unwrap();
    for script in ["idle.py", "idle-stop.sh"] {
        assert!(scripts["data"][script].as_str().is_some_and(|s| s.len() > 200), "the shared scripts ship {script}");
        assert!(config["data"].get(script).is_none(), "the box's own ConfigMap does not repeat {script}");
    }

    let owner = find(&objects, "RoleBinding", "alice-owner").expect("the owner's RoleBinding");
    assert_eq!(
        owner["subjects"],
        serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oidc:alice@example.com"}])
    );
    let rules = &find(&objects, "Role", "alice-owner").unwrap()["rules"];
    let resources: Vec<&str> = rules.as_array().unwrap().iter().map(|r| r["resources"][0].as_str().unwrap()).collect();
    assert_eq!(resources, ["statefulsets", "statefulsets/scale", "pods", "pods/log"], "no exec unless allowed");
    for rule in rules.as_array().unwrap() {
        assert!(rule["resourceNames"] == serde_json::json!(["alice"]) || rule["resourceNames"] == serde_json::json!(["alice-0"]), "{rule}");
    }
}

#[test]
fn git_wins_a_stopped_box_keeps_zero_replicas_and_nothing_that_would_start_it() {
    let repo = Repo::new(&format!("{SETTINGS}{OWNERS}")).user("alice", &alice("state = \"stopped\"\n", &format!("{IDLE}{HOURS}")));
    let objects = bundle(&repo, "alice");
    assert_eq!(find(&objects, "StatefulSet", "alice").unwrap()["spec"]["replicas"], 0);
    assert_eq!(containers(&objects), ["devbox", "tailscale"]);
    for (kind, name) in [("CronJob", "alice-wake"), ("Role", "alice-idle"), ("Role", "alice-owner")] {
        assert!(find(&objects, kind, name).is_none(), "a stopped box has no {kind} {name}");
    }
    let stderr = repo.run_ok(&["wake", "alice"], 2).stderr;
    assert_contains!(stderr, "alice's box is stopped in Git");
    assert_contains!(stderr, "set `state = \"running\"` in users/alice.toml");
}

#[test]
fn without_idle_or_hours_nothing_changes() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", "\n[idle]\nafter = \"never\"\n"));
    let objects = bundle(&repo, "alice");
    assert_eq!(find(&objects, "StatefulSet", "alice").unwrap()["spec"]["replicas"], 1);
    assert_eq!(containers(&objects), ["devbox", "tailscale"]);
    let config = find(&objects, "ConfigMap", "alice-devbox").unwrap();
    assert!(config["data"].get("idle.json").is_none());
    let wake = repo.run_ok(&["wake", "alice"], 0).stdout;
    assert_contains!(wake, "Git keeps it running, and nothing stops it by itself");
    // Without [owners] nobody but an admin reads the pod; describe needs the namespace's events.
    assert_contains!(wake, "# If it is not running, look at why:\n");
    assert_contains!(
        wake,
        "this needs an admin, as it lists the namespace's events.\nkubectl --namespace devboxes describe statefulset alice\n"
    );
    let owners =
        Repo::new(&format!("{SETTINGS}\n[owners]\nallow = [\"logs\"]\n")).user("alice", &alice("", "\n[idle]\nafter = \"never\"\n"));
    let wake = owners.run_ok(&["wake", "alice"], 0).stdout;
    assert_contains!(wake, "# If it is not running, look at why (alice@example.com may, with devbox.toml's [owners]; so may an admin):\n");
    let role = find(&bundle(&owners, "alice"), "Role", "alice-owner").unwrap().clone();
    assert!(role["rules"].as_array().unwrap().iter().any(|rule| rule["resources"] == serde_json::json!(["pods"])), "{role}");
}

#[test]
fn defaults_give_every_box_a_window_and_a_user_file_overrides_its_hours_key_by_key() {
    let settings = format!(
        "{SETTINGS}idle = {{ after = \"4h\" }}\nschedule = {{ timezone = \"America/New_York\", days = [\"mon\", \"wed\"], start = \"09:00\", stop = \"17:00\" }}\n"
    );
    let repo = Repo::new(&settings)
        .user("alice", &alice("", "\n[schedule]\nstop = \"20:00\"\n"))
        .user("bob", &user_file("bob@example.com", KEY_ALICE).replace("[ssh]", "[schedule]\ndays = []\n\n[ssh]"));
    let input: Value = serde_json::from_str(&repo.run_ok(&["show", "--input"], 0).stdout).unwrap();
    let alice = &input[0];
    assert_eq!(alice["idle"], serde_json::json!({"after": "4h", "after_seconds": 14400}));
    assert_eq!(
        alice["schedule"],
        serde_json::json!({"timezone": "America/New_York", "days": ["mon", "wed"], "start": "09:00", "stop": "20:00", "start_cron": "0 9 * * 1,3"})
    );
    assert_eq!(input[1]["schedule"], Value::Null, "`days = []` is no working hours");
}

#[test]
fn hours_from_defaults_that_end_before_a_users_start_are_refused() {
    let settings =
        format!("{SETTINGS}idle = {{ after = \"1h\" }}\nschedule = {{ timezone = \"UTC\", start = \"08:00\", stop = \"12:00\" }}\n");
    let repo = Repo::new(&settings).user("alice", &alice("", "\n[schedule]\nstart = \"13:00\"\n"));
    let stderr = repo.run_ok(&["build"], 2).stderr;
    assert_contains!(stderr, "working hours would end (12:00) before they begin (13:00)");
    assert_contains!(stderr, "users/alice.toml");
    assert!(!repo.path().join("out").exists(), "nothing written");
}

#[test]
fn wake_prints_the_owners_commands() {
    let repo = Repo::new(&format!("{SETTINGS}{OWNERS}")).user("alice", &alice("", &format!("{IDLE}{HOURS}")));
    let stdout = repo.run_ok(&["wake", "alice"], 0).stdout;
    assert_contains!(stdout, "It stops after 2h without activity");
    assert_contains!(stdout, "working hours (mon-fri 08:30-19:00 Europe/Berlin)");
    assert_contains!(stdout, "oidc:alice@example.com may run these");
    assert_contains!(stdout, "kubectl --namespace devboxes scale statefulset alice --replicas=1\n");
    assert_contains!(stdout, "kubectl --namespace devboxes wait --for=condition=Ready pod/alice-0 --timeout=10m\n");
    let stderr = repo.run_ok(&["wake", "alicia"], 2).stderr;
    assert_contains!(stderr, "did you mean `alice`?");
}

#[test]
fn the_idle_container_counts_against_the_quota() {
    // 2 CPUs each plus the sidecar's 250m: 4.5 fits 4.5, and the idle container's 20m does not.
    let quota = "\n[quota]\ncpu = \"4.5\"\n";
    let repo = Repo::new(&format!("{SETTINGS}{quota}"))
        .user("alice", &alice("", "\n[resources]\ncpu = \"2\"\n"))
        .user("bob", &user_file("bob@example.com", KEY_ALICE).replace("[ssh]", "[resources]\ncpu = \"2\"\n\n[ssh]"));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("", &format!("\n[resources]\ncpu = \"2\"\n{IDLE}")));
    let stderr = repo.run_ok(&["build"], 2).stderr;
    assert_contains!(stderr, "4.52");
    assert_contains!(stderr, "a box with `[idle]` or `[schedule]` its idle container too");
}

/// A box with working hours has a CronJob `NAME-wake`, and the API server refuses a CronJob
/// name over 52 characters: a 47-character name is the longest such a box may have. Told before
/// rendering, at the user file's `[schedule]`, by `validate` as by `build`.
#[test]
fn a_box_with_hours_has_a_name_its_wake_cron_job_can_carry() {
    let longest = "w".repeat(47);
    let repo = Repo::new(SETTINGS).user(&longest, &alice("", &format!("{IDLE}{HOURS}")));
    repo.run_ok(&["build"], 0);
    assert!(repo.path().join(format!("out/{longest}/cronjob-{longest}-wake.yaml")).exists());

    let too_long = "w".repeat(48);
    let repo = Repo::new(SETTINGS).user(&too_long, &alice("", &format!("{IDLE}{HOURS}")));
    let schedule_line = alice("", &format!("{IDLE}{HOURS}")).lines().position(|l| l == "[schedule]").unwrap() + 1;
    for command in ["build", "validate"] {
        let run = repo.run_ok(&[command], 2);
        assert_contains!(
            run.stderr,
            &format!(
                "its wake CronJob `{too_long}-wake` would have 53 characters, and the API server refuses a CronJob name longer than 52"
            )
        );
        assert_contains!(run.stderr, &format!("users/{too_long}.toml:{schedule_line}:2"));
        assert_contains!(
            run.stderr,
            &format!("rename users/{too_long}.toml so that its name has at most 47 characters, or remove `[schedule]`")
        );
    }
    assert!(!repo.path().join("out").exists(), "nothing written");
    // Hours from `[defaults]`: the file as a whole, since it has no `[schedule]` to point at.
    let settings = format!("{SETTINGS}schedule = {{ timezone = \"UTC\", start = \"08:00\", stop = \"19:00\" }}\n");
    let repo = Repo::new(&settings).user(&too_long, &alice("", IDLE));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, &format!("`{too_long}` is too long a name for a box with working hours"));
    assert_contains!(run.stderr, &format!("users/{too_long}.toml:1:1"));
    assert_contains!(run.stderr, "keep this box out of `[defaults] schedule` with `[schedule]` and `days = []` here");
    // Which is the way out that help names.
    repo.write(&format!("users/{too_long}.toml"), &alice("", &format!("{IDLE}\n[schedule]\ndays = []\n")));
    repo.run_ok(&["build"], 0);
    assert!(!repo.path().join(format!("out/{too_long}/cronjob-{too_long}-wake.yaml")).exists());
    // A stopped box has no CronJob, and without working hours there is none either.
    let repo = Repo::new(SETTINGS).user(&too_long, &alice("state = \"stopped\"\n", &format!("{IDLE}{HOURS}")));
    repo.run_ok(&["build"], 0);
    let repo = Repo::new(SETTINGS).user(&too_long, &alice("", IDLE));
    repo.run_ok(&["build"], 0);
}

/// A custom template names its objects itself: its CronJobs are held to the API server's limit
/// after rendering, whatever their names.
#[test]
fn a_custom_templates_cron_job_is_held_to_the_same_limit() {
    let template = "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
                    (devbox + { names(box):: super.names(box) + { wakeCronJob: box.name + '-wake-up-call' } }).bundle\n";
    let name = "w".repeat(41);
    let repo = Repo::new(SETTINGS).user(&name, &alice("", &format!("{IDLE}{HOURS}")));
    repo.use_template(template);
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, &format!("CronJob `{name}-wake-up-call` has a name of 54 characters"));
    assert!(!repo.path().join("out").exists(), "nothing written");
}

#[test]
fn every_unknown_day_of_a_list_is_reported_in_one_run() {
    let hours = "\n[schedule]\ntimezone = \"UTC\"\ndays = [\"mon\", \"xyz\", 3, \"Tue\", \"fri\"]\nstart = \"08:00\"\nstop = \"19:00\"\n";
    let repo = Repo::new(SETTINGS).user("alice", &alice("", &format!("{IDLE}{hours}")));
    let run = repo.run_ok(&["validate"], 2);
    // serde stops at `xyz`; the items after it are looked at too, each at its own column.
    assert_contains!(run.stderr, "`xyz` is not a valid `days`");
    assert_contains!(run.stderr, "users/alice.toml:11:16");
    assert_contains!(run.stderr, "every item of `days` must be one of");
    assert_contains!(run.stderr, "users/alice.toml:11:23");
    assert_contains!(run.stderr, "`Tue` is not a valid `days`");
    assert_contains!(run.stderr, "did you mean `tue`?");
    assert_contains!(run.stderr, "users/alice.toml:11:26");
    // Three, not four: `fri` is a day.
    assert_contains!(run.stderr, "error: 3 problems");
}
