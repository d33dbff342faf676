//! `devbox-gen diff` states what a PR does to the bill: per box and in total, in text,
//! Markdown and JSON, from devbox.toml's `[prices]`; without them, the change in resources.
//!
//! The amounts below are worked out by hand from these prices. Every box also runs the
//! tailscale sidecar (250m CPU, 256Mi), so a box of the built-in size (2 CPU, 8Gi) reserves
//! 2.25 CPU and 8.25 GiB: 730 h × (2.25 × 0.0316 + 8.25 × 0.0042) = $77.1975 → $77.20 a month,
//! and its 50Gi home 50 × 0.17 = $8.50.

use serde_json::{Value, json};

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, Run, SETTINGS, assert_contains, assert_not_contains, git, user_file};

const KEY_CAROL: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ carol@laptop";
const KEY_DAVE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFzvZAcCEG8ASfjiQwFJJCSTBUgQMyN5WnuJ9F5MJmLS dave@laptop";

const PRICES: &str = r#"
[prices]
currency = "USD"
cpu_hour = 0.0316
memory_gib_hour = 0.0042
storage_gib_month = 0.17
gpu_hour = { "nvidia-l4" = 0.71 }
"#;

fn priced() -> String {
    format!("{SETTINGS}{PRICES}")
}

/// A user file: top-level settings (`state = ...`) or tables (`\n[gpu]...`) after the keys.
fn file(name: &str, key: &str, extra: &str) -> String {
    let file = user_file(&format!("{name}@example.com"), key);
    if extra.starts_with('\n') { format!("{file}{extra}") } else { file.replacen('\n', &format!("\n{extra}"), 1) }
}

/// A built repo with bob, a box of the built-in size.
fn with_bob(settings: &str) -> Repo {
    let repo = Repo::new(settings).user("bob", &file("bob", KEY_ALICE_2, ""));
    repo.run_ok(&["build"], 0);
    repo
}

fn text(repo: &Repo) -> Run {
    repo.run_ok(&["diff"], 1)
}

/// The section of the text report that starts with `heading`, up to its blank line.
fn section(run: &Run, heading: &str) -> String {
    let start = run.stdout.find(&format!("\n{heading}")).unwrap_or_else(|| panic!("no `{heading}` in:\n{}", run.stdout)) + 1;
    let rest = &run.stdout[start..];
    rest[..rest.find("\n\n").map_or(rest.len(), |end| end + 1)].to_string()
}

/// The cost section of the PR comment: its heading and table.
fn markdown(repo: &Repo) -> String {
    let run = repo.run_ok(&["diff", "--format", "markdown"], 1);
    let start = run.stdout.find("**Cost").or_else(|| run.stdout.find("**Resource change")).expect("a cost section");
    let rest = &run.stdout[start..];
    let table = rest.find("\n\n").expect("a heading") + 2;
    rest[..table + rest[table..].find("\n\n").expect("a table") + 1].to_string()
}

fn cost(repo: &Repo) -> Value {
    let run = repo.run(&["diff", "--format", "json"]);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    report["cost"].clone()
}

#[test]
fn a_new_running_box_with_a_gpu() {
    let repo = with_bob(&priced());
    repo.write(
        "users/alice.toml",
        &file("alice", KEY_ALICE, "\n[resources]\ncpu = \"8\"\nmemory = \"32Gi\"\n\n[gpu]\ntype = \"nvidia-l4\"\n"),
    );
    // 730 × (8.25 × 0.0316 + 32.25 × 0.0042 + 0.71) + 50 × 0.17 = 807.4895 + 8.50
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: +$815.99/month (1 box changes):\n  alice +$815.99: new, running: +8.25 CPU, +32.25 GiB memory, +1 × nvidia-l4, +50 GiB disk\n"
    );
    assert_eq!(
        markdown(&repo),
        "**Cost: +$815.99/month** (1 box changes)\n\n\
         | box | per month | what changes |\n\
         |---|---:|---|\n\
         | alice | +$815.99 | new, running: +8.25 CPU, +32.25 GiB memory, +1 × nvidia-l4, +50 GiB disk |\n"
    );
    let figures = json!({"cpu": 8.25, "memory_gib": 32.25, "gpus": {"nvidia-l4": 1}, "disk_gib": 50});
    assert_eq!(
        cost(&repo),
        json!({
            "currency": "USD",
            "hours_per_month": 730,
            "monthly_before": 0.0,
            "monthly_after": 815.99,
            "delta": 815.99,
            "in_working_hours": null,
            "resources": figures,
            "unpriced_gpus": [],
            "users": [{
                "user": "alice",
                "what": "new, running: +8.25 CPU, +32.25 GiB memory, +1 × nvidia-l4, +50 GiB disk",
                "before": {"state": "absent", "spot": false, "stops_by_itself": false, "left_running": false, "working_hours": null, "monthly": 0.0, "cpu": 0, "memory_gib": 0, "gpus": {}, "disk_gib": 0},
                "after": {"state": "running", "spot": false, "stops_by_itself": false, "left_running": false, "working_hours": null, "monthly": 815.99, "cpu": 8.25, "memory_gib": 32.25, "gpus": {"nvidia-l4": 1}, "disk_gib": 50},
                "delta": {"monthly": 815.99, "cpu": 8.25, "memory_gib": 32.25, "gpus": {"nvidia-l4": 1}, "disk_gib": 50},
                "in_working_hours": null,
                "unpriced_gpus": [],
            }],
        })
    );
}

/// An idle window or working hours leave the box's replicas to the cluster: what it reserves
/// is known, how long it runs is not. The price is for the whole month, and says so.
#[test]
fn a_box_that_stops_by_itself_is_priced_as_always_on_and_says_so() {
    let repo = with_bob(&priced());
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "\n[idle]\nafter = \"1h\"\n"));
    // Bob's box gains the idle container (20m CPU, 32Mi): 730 × (0.02 × 0.0316 + 0.03125 × 0.0042) = 0.5572.
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: +$0.56/month (1 box changes; a box that stops by itself is priced as always on):\n  \
         bob +$0.56: stops by itself (priced as always on): +0.02 CPU, +0.03 GiB memory\n"
    );
    let bob = &cost(&repo)["users"][0];
    assert_eq!((&bob["before"]["stops_by_itself"], &bob["after"]["stops_by_itself"]), (&json!(false), &json!(true)));
    repo.run_ok(&["build"], 0);
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "state = \"stopped\"\n"));
    // 730 × (2.27 × 0.0316 + 8.28125 × 0.0042) = 77.7547: the whole month it no longer runs.
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: \u{2212}$77.75/month (1 box changes; a box that stops by itself is priced as always on):\n  \
         bob \u{2212}$77.75: stopped, disk only, stopped by itself before (priced as always on): \u{2212}2.27 CPU, \u{2212}8.28 GiB memory\n"
    );
}

#[test]
fn a_stopped_box_keeps_paying_for_its_disk_only() {
    let repo = with_bob(&priced());
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "state = \"stopped\"\n"));
    // 730 × (2.27 × 0.0316 + 8.28125 × 0.0042) = 77.7547: the whole month it no longer runs.
    let expected = "Cost: −$77.20/month (1 box changes):\n  bob −$77.20: stopped, disk only: −2.25 CPU, −8.25 GiB memory\n";
    assert_eq!(section(&text(&repo), "Cost:"), expected);
    assert_eq!(
        markdown(&repo),
        "**Cost: −$77.20/month** (1 box changes)\n\n| box | per month | what changes |\n|---|---:|---|\n| bob | −$77.20 | stopped, disk only: −2.25 CPU, −8.25 GiB memory |\n"
    );
    let cost = cost(&repo);
    // Only the StatefulSet changed: the claim is on neither side, so the amounts are compute.
    assert_eq!((&cost["monthly_before"], &cost["monthly_after"], &cost["delta"]), (&json!(77.2), &json!(0.0), &json!(-77.2)));
    let bob = &cost["users"][0];
    assert_eq!((&bob["before"]["state"], &bob["after"]["state"]), (&json!("running"), &json!("stopped")));
    assert_eq!(bob["delta"], json!({"monthly": -77.2, "cpu": -2.25, "memory_gib": -8.25, "gpus": {}, "disk_gib": 0}));
}

#[test]
fn an_archived_box_keeps_its_home_and_a_removed_one_too() {
    let repo = with_bob(&priced());
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "state = \"archived\"\n"));
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: −$77.20/month (1 box changes):\n  bob −$77.20: archived, disk only: −2.25 CPU, −8.25 GiB memory\n"
    );
    assert_eq!(cost(&repo)["users"][0]["after"]["state"], "archived");
    // The claim's prune is disabled, so a removed user's disk stays in the cluster, billed.
    // Only Flux prunes the rest of a removed bundle.
    let flux = Repo::new(&format!("gitops = [\"flux\"]\n{}\n[repo]\nurl = \"https://github.com/acme/devboxes.git\"\n", priced()))
        .user("bob", &file("bob", KEY_ALICE_2, ""));
    flux.run_ok(&["build"], 0);
    std::fs::remove_file(flux.path().join("users/bob.toml")).unwrap();
    assert_eq!(
        section(&text(&flux), "Cost:"),
        "Cost: −$77.20/month (1 box changes):\n  bob −$77.20: removed, 50 GiB home volume kept (not pruned): −2.25 CPU, −8.25 GiB memory\n"
    );
    let bob = &cost(&flux)["users"][0];
    assert_eq!((&bob["before"]["disk_gib"], &bob["after"]["disk_gib"], &bob["after"]["state"]), (&json!(50), &json!(50), &json!("absent")));
}

/// Applied by hand, or by Argo CD (whose ApplicationSet keeps what a deleted Application
/// applied), a removed box runs on: removing its file saves nothing until someone deletes it.
#[test]
fn a_removed_box_nothing_prunes_is_still_billed() {
    let argocd = format!("gitops = [\"argocd\"]\n{}\n[repo]\nurl = \"https://github.com/acme/devboxes.git\"\n", priced());
    for settings in [priced(), argocd] {
        let repo = with_bob(&settings);
        std::fs::remove_file(repo.path().join("users/bob.toml")).unwrap();
        assert_eq!(
            section(&text(&repo), "Cost:"),
            "Cost: ±$0.00/month (1 box changes):\n  bob ±$0.00: removed, left running until deleted by hand (only Flux prunes a removed bundle), 50 GiB home volume kept (not pruned)\n",
            "{settings}"
        );
        let bob = &cost(&repo)["users"][0];
        assert_eq!(
            (&bob["after"]["state"], &bob["after"]["left_running"], &bob["after"]["cpu"], &bob["delta"]["monthly"]),
            (&json!("absent"), &json!(true), &json!(2.25), &json!(0.0))
        );
    }
}

#[test]
fn a_home_that_grows() {
    let repo = with_bob(&priced());
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "\n[home]\nsize = \"200Gi\"\n"));
    assert_eq!(section(&text(&repo), "Cost:"), "Cost: +$25.50/month (1 box changes):\n  bob +$25.50: +150 GiB disk\n");
    let bob = &cost(&repo)["users"][0];
    // Only the claim differs: its state is not in the diff, and the sides are its disk.
    assert_eq!(
        bob["before"],
        json!({"state": null, "spot": false, "stops_by_itself": false, "left_running": false, "working_hours": null, "monthly": 8.5, "cpu": 0, "memory_gib": 0, "gpus": {}, "disk_gib": 50})
    );
    assert_eq!(bob["delta"]["monthly"], json!(25.5));
}

#[test]
fn a_defaults_change_is_told_once_for_the_boxes_it_touches() {
    let settings = |cpu: &str| format!("{SETTINGS}resources = {{ cpu = \"{cpu}\" }}\n{PRICES}");
    let repo = Repo::new(&settings("2"))
        .user("alice", &file("alice", KEY_ALICE, ""))
        .user("bob", &file("bob", KEY_ALICE_2, ""))
        .user("carol", &file("carol", KEY_CAROL, ""))
        .user("dave", &file("dave", KEY_DAVE, "\n[resources]\ncpu = \"8\"\n"));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &settings("4"));
    // 730 × 2 × 0.0316 = 46.136 a box; each amount is rounded once, the total from 138.408.
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: +$138.41/month (3 boxes change):\n  3 users +$46.14 each: +2 CPU\n    users: alice, bob, carol\n"
    );
    assert_eq!(
        markdown(&repo),
        "**Cost: +$138.41/month** (3 boxes change)\n\n| box | per month | what changes |\n|---|---:|---|\n| 3 users: alice, bob, carol | +$46.14 each | +2 CPU |\n"
    );
    let cost = cost(&repo);
    assert_eq!((&cost["delta"], &cost["resources"]["cpu"]), (&json!(138.41), &json!(6)));
    let users: Vec<(&str, &Value)> =
        cost["users"].as_array().unwrap().iter().map(|u| (u["user"].as_str().unwrap(), &u["delta"]["monthly"])).collect();
    assert_eq!(users, [("alice", &json!(46.14)), ("bob", &json!(46.14)), ("carol", &json!(46.14))]);
}

#[test]
fn without_prices_the_resource_change_is_stated() {
    let repo = with_bob(SETTINGS);
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "state = \"stopped\"\n"));
    // 730 × (2.27 × 0.0316 + 8.28125 × 0.0042) = 77.7547: the whole month it no longer runs.
    assert_eq!(
        section(&text(&repo), "Resource change:"),
        "Resource change: −2.25 CPU, −8.25 GiB memory (1 box changes; devbox.toml has no `[prices]` to state the cost):\n  bob: stopped, disk only: −2.25 CPU, −8.25 GiB memory\n"
    );
    assert_eq!(
        markdown(&repo),
        "**Resource change: −2.25 CPU, −8.25 GiB memory** (1 box changes; devbox.toml has no `[prices]` to state the cost)\n\n| box | what changes |\n|---|---|\n| bob | stopped, disk only: −2.25 CPU, −8.25 GiB memory |\n"
    );
    let cost = cost(&repo);
    assert_eq!(
        [&cost["currency"], &cost["monthly_before"], &cost["monthly_after"], &cost["delta"], &cost["users"][0]["delta"]["monthly"]],
        [&Value::Null; 5]
    );
    assert_eq!(cost["resources"], json!({"cpu": -2.25, "memory_gib": -8.25, "gpus": {}, "disk_gib": 0}));
}

#[test]
fn a_change_that_costs_nothing_says_nothing_about_cost() {
    for settings in [SETTINGS.to_string(), priced()] {
        let repo = with_bob(&settings);
        repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "image = \"registry.example.com/devbox:2.0\"\n"));
        let run = text(&repo);
        assert_not_contains!(run.stdout, "Cost");
        assert_not_contains!(run.stdout, "Resource change");
        assert_not_contains!(repo.run_ok(&["diff", "--format", "markdown"], 1).stdout, "| box |");
        assert_eq!(cost(&repo)["users"], json!([]));
    }
}

#[test]
fn spot_boxes_are_priced_at_spot_prices() {
    let spot_template = "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
        function(box) devbox.bundle(box) + {\n\
          statefulSet+: { spec+: { template+: { spec+: { nodeSelector+: { 'cloud.google.com/gke-spot': 'true' } } } } },\n\
        }\n";
    let spot_prices = "\n[prices.spot]\ncpu_hour = 0.0095\nmemory_gib_hour = 0.0013\n";
    let repo = Repo::new(&format!("{}{spot_prices}", priced()))
        .user("alice", &file("alice", KEY_ALICE, ""))
        .user("bob", &file("bob", KEY_ALICE_2, ""));
    repo.run_ok(&["build"], 0);
    repo.write("templates/devbox.jsonnet", spot_template);
    repo.write("devbox.toml", &format!("template = \"templates/devbox.jsonnet\"\n{}{spot_prices}", priced()));
    // 730 × (2.25 × 0.0095 + 8.25 × 0.0013) = 23.433, from 77.1975: −53.7645 a box.
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: −$107.53/month (2 boxes change):\n  2 users −$53.76 each: moves to Spot\n    users: alice, bob\n"
    );
    let alice = &cost(&repo)["users"][0];
    assert_eq!(
        (&alice["before"]["spot"], &alice["after"]["spot"], &alice["after"]["monthly"]),
        (&json!(false), &json!(true), &json!(23.43))
    );
    // Without prices, moving to Spot changes no resource.
    repo.write("devbox.toml", &format!("template = \"templates/devbox.jsonnet\"\n{SETTINGS}"));
    assert_not_contains!(text(&repo).stdout, "Resource change");
}

#[test]
fn a_gpu_without_a_price_is_told_not_guessed() {
    let repo = with_bob(&priced());
    repo.write("users/alice.toml", &file("alice", KEY_ALICE, "\n[gpu]\ntype = \"nvidia-l4\"\n"));
    repo.write("users/carol.toml", &file("carol", KEY_CAROL, "\n[gpu]\ntype = \"nvidia-tesla-t4\"\n"));
    let run = text(&repo);
    // alice: 730 × (2.25 × 0.0316 + 8.25 × 0.0042 + 0.71) + 8.50 = 595.4975 + 8.50
    assert_eq!(
        section(&run, "Cost:"),
        "Cost: +$604.00/month (2 boxes change; not counting 1 without a price):\n  \
         alice +$604.00: new, running: +2.25 CPU, +8.25 GiB memory, +1 × nvidia-l4, +50 GiB disk\n  \
         carol (price unknown: no `gpu_hour` for `nvidia-tesla-t4`): new, running: +2.25 CPU, +8.25 GiB memory, +1 × nvidia-tesla-t4, +50 GiB disk\n"
    );
    // A warning where the GPU is chosen, not an error: a missing price holds nothing up.
    assert_contains!(run.stderr, "warning: devbox.toml's `[prices] gpu_hour` has no price for `nvidia-tesla-t4`");
    assert_contains!(run.stderr, "users/carol.toml");
    let cost = cost(&repo);
    assert_eq!((&cost["delta"], &cost["unpriced_gpus"]), (&json!(604.0), &json!(["nvidia-tesla-t4"])));
    let carol = &cost["users"][1];
    assert_eq!([&carol["before"]["monthly"], &carol["after"]["monthly"], &carol["delta"]["monthly"]], [&Value::Null; 3]);
    assert_eq!(carol["unpriced_gpus"], json!(["nvidia-tesla-t4"]));
    repo.run_ok(&["build"], 0);
}

#[test]
fn prices_are_validated_where_they_are_written() {
    let repo = Repo::new(&format!(
        "{SETTINGS}\n[prices]\ncurrency = \"usd\"\ncpu_hour = -0.0316\nmemory_gib_hour = 1e8\nstorage_gib_month = nan\ngpu_hour = {{ \"nvidia-l5\" = 0.71 }}\n"
    ))
    .user("alice", &file("alice", KEY_ALICE, "\n[gpu]\ntype = \"nvidia-l4\"\n"));
    let run = repo.run_ok(&["validate"], 2);
    for expected in [
        "error: `usd` is not an ISO 4217 currency code\n  ┌─ devbox.toml:6:12",
        "help: write it in capitals: `USD`",
        "error: a price cannot be negative\n  ┌─ devbox.toml:7:12",
        "error: a price of more than 10000000 for one unit is no price list's\n  ┌─ devbox.toml:8:19",
        "help: write the price of one unit (one CPU for an hour, one GiB for an hour or a month), like `0.0316`: check the decimal point",
        "error: a price must be a finite number\n  ┌─ devbox.toml:9:21",
        "warning: a price for `nvidia-l5`, which is not a GKE accelerator devbox-gen knows\n   ┌─ devbox.toml:10:28",
        "help: did you mean `nvidia-l4`?",
        "warning: devbox.toml's `[prices] gpu_hour` has no price for `nvidia-l4`\n  ┌─ users/alice.toml:7:8",
    ] {
        assert_contains!(run.stderr, expected);
    }
    // What cannot be read at all is told first, each at its line.
    repo.write("devbox.toml", &format!("{SETTINGS}\n[prices]\ncpu_hour = 0.0316\nmemory_gib_hour = \"0.0042\"\nspot_discount = 0.6\n"));
    let run = repo.run_ok(&["validate"], 2);
    for expected in [
        "error: `[prices]` has no `storage_gib_month`",
        "help: add `storage_gib_month = 0.5`: one GiB of home volume for one month, whatever the box's state",
        "error: `memory_gib_hour` must be a number\n  ┌─ devbox.toml:7:19",
        "help: remove the quotes: `memory_gib_hour = 0.0042`",
        "error: unknown field `spot_discount`\n  ┌─ devbox.toml:8:1",
    ] {
        assert_contains!(run.stderr, expected);
    }
}

#[test]
fn other_currencies_are_written_with_their_code() {
    let repo = with_bob(&priced().replace("\"USD\"", "\"EUR\""));
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "\n[home]\nsize = \"6050Gi\"\n"));
    // 6000 GiB more × 0.17 = 1020.
    assert_eq!(section(&text(&repo), "Cost:"), "Cost: +1,020.00 EUR/month (1 box changes):\n  bob +1,020.00 EUR: +6000 GiB disk\n");
}

#[test]
fn against_a_revision_the_cost_is_the_prs() {
    let repo = with_bob(&priced());
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    // The PR stops bob and rebuilds out/: only the base revision still runs him.
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, "state = \"stopped\"\n"));
    // 730 × (2.27 × 0.0316 + 8.28125 × 0.0042) = 77.7547: the whole month it no longer runs.
    repo.run_ok(&["build"], 0);
    git(repo.path(), &["commit", "-q", "-am", "stop bob"]);
    let run = repo.run_ok(&["diff", "--base", "main~1"], 1);
    assert_eq!(
        section(&run, "Cost:"),
        "Cost: −$77.20/month (1 box changes):\n  bob −$77.20: stopped, disk only: −2.25 CPU, −8.25 GiB memory\n"
    );
}

#[test]
fn a_new_archived_box_costs_its_disk() {
    let repo = with_bob(&priced());
    repo.write("users/carol.toml", &file("carol", KEY_CAROL, "state = \"archived\"\n"));
    assert_eq!(section(&text(&repo), "Cost:"), "Cost: +$8.50/month (1 box changes):\n  carol +$8.50: new, archived: +50 GiB disk\n");
}

/// Working hours are the least a box that stops by itself runs (it is kept running in them):
/// besides the price for the whole month, the report states the price for them alone, and a
/// change of the hours alone is a change of that price.
#[test]
fn working_hours_are_priced_as_the_least_the_box_runs() {
    let repo = with_bob(&priced());
    let hours = |stop: &str| {
        format!("\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"Europe/Berlin\"\nstart = \"08:00\"\nstop = \"{stop}\"\n")
    };
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, &hours("19:00")));
    // The idle container joins the pod: 2.27 CPU and 8.28125 GiB, $0.10651325 an hour. All
    // month, 730 hours: $77.75, +$0.56. In mon-fri 08:00-19:00 alone, 55 of 168 hours a week,
    // 238.988 a month: $25.46, −$51.74 from the $77.20 of the box that ran all month.
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: +$0.56/month, \u{2212}$51.74 in working hours only (1 box changes; a box that stops by itself is priced as always on):\n  \
         bob +$0.56 (\u{2212}$51.74 in working hours only): stops by itself (priced as always on), working hours mon-fri 08:00-19:00 Europe/Berlin: \
         +0.02 CPU, +0.03 GiB memory\n"
    );
    let report = cost(&repo);
    assert_eq!(report["in_working_hours"], json!({"monthly_before": 77.2, "monthly_after": 25.46, "delta": -51.74}));
    let bob = &report["users"][0];
    assert_eq!(
        (&bob["before"]["working_hours"], &bob["after"]["working_hours"]),
        (&json!(null), &json!("mon-fri 08:00-19:00 Europe/Berlin"))
    );
    assert_eq!(bob["in_working_hours"]["delta"], json!(-51.74));
    assert_contains!(markdown(&repo), "| bob | +$0.56 (\u{2212}$51.74 in working hours only) |");

    repo.run_ok(&["build"], 0);
    assert_contains!(
        repo.read("out/bob/statefulset-bob.yaml"),
        "    devbox-gen.dev/working-hours: mon,tue,wed,thu,fri 08:00-19:00 Europe/Berlin\n"
    );
    // Two hours fewer a day: 10 of 168 a week, 43.45 hours a month, $4.63 less at the least.
    repo.write("users/bob.toml", &file("bob", KEY_ALICE_2, &hours("17:00")));
    assert_eq!(
        section(&text(&repo), "Cost:"),
        "Cost: ±$0.00/month, \u{2212}$4.63 in working hours only (1 box changes; a box that stops by itself is priced as always on):\n  \
         bob ±$0.00 (\u{2212}$4.63 in working hours only): stops by itself (priced as always on), \
         working hours mon-fri 08:00-19:00 Europe/Berlin → mon-fri 08:00-17:00 Europe/Berlin\n"
    );
}

/// A removed home volume is counted as kept only when something keeps it: its claim's
/// annotations, or nothing pruning what the bundle leaves (Argo CD). Under Flux, a claim
/// without them is pruned with its bundle, and the report's risk says it is deleted.
#[test]
fn a_removed_claim_without_prune_protection_is_not_counted_as_kept_under_flux() {
    let flux = format!("gitops = [\"flux\"]\n{}\n[repo]\nurl = \"https://github.com/acme/devboxes.git\"\n", priced());
    let repo = with_bob(&flux);
    let claim = "out/bob/persistentvolumeclaim-bob-home.yaml";
    let unprotected: String = repo
        .read(claim)
        .lines()
        .filter(|l| !l.contains("Prune=false") && !l.contains("prune: disabled"))
        .map(|l| format!("{l}\n"))
        .collect();
    repo.write(claim, &unprotected);
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-q", "-m", "base"]] {
        git(repo.path(), args);
    }
    std::fs::remove_file(repo.path().join("users/bob.toml")).unwrap();
    repo.run_ok(&["build"], 0);
    let report: Value = serde_json::from_str(&repo.run_ok(&["diff", "--base", "main", "--format", "json"], 1).stdout).unwrap();
    let bob = report["cost"]["users"].as_array().unwrap().iter().find(|u| u["user"] == "bob").unwrap().clone();
    assert_eq!((&bob["what"], &bob["after"]["disk_gib"]), (&json!("removed: −2.25 CPU, −8.25 GiB memory, −50 GiB disk"), &json!(0)));
    assert!(
        report["risks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "home-volume-removed" && r["details"].to_string().contains("DELETES"))
    );
}
