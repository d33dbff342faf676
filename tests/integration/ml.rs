//! ML boxes: shared memory, Spot VMs, read-only datasets and shared GPUs, through the CLI. The
//! one-file errors are in rules.rs (and docs/rules.md); these need devbox.toml and a user file
//! together, or a build to compare with.

use crate::common::{KEY_ALICE, Repo, SETTINGS, assert_contains, pairs, risks, user_file};

const DATASETS: &str = "\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\n\n[datasets.coco]\nclaim = \"coco-2017\"\nmount = \"/data/coco\"\n";

/// alice's file with `top` before the email and `tables` after the keys.
fn alice(top: &str, tables: &str) -> String {
    format!("{top}{}{tables}", user_file("alice@example.com", KEY_ALICE))
}

fn refused(settings: &str, user: &str) -> String {
    let repo = Repo::new(settings).user("alice", user);
    repo.run_ok(&["validate"], 2).stderr
}

#[test]
fn an_unknown_dataset_is_told_at_its_item_with_the_closest_name() {
    let stderr = refused(&format!("{SETTINGS}{DATASETS}"), &alice("datasets = [\"coco\", \"imagenett\"]\n", ""));
    assert_contains!(stderr, "no dataset named `imagenett` in devbox.toml");
    assert_contains!(stderr, "┌─ users/alice.toml:1:21");
    assert_contains!(stderr, "did you mean `imagenet`?");
}

#[test]
fn a_dataset_listed_twice_is_an_error() {
    let stderr = refused(&format!("{SETTINGS}{DATASETS}"), &alice("datasets = [\"coco\", \"coco\"]\n", ""));
    assert_contains!(stderr, "`coco` is listed twice");
    assert_contains!(stderr, "┌─ users/alice.toml:1:21");
}

#[test]
fn datasets_mounted_one_inside_the_other_are_refused_where_the_mount_is_written() {
    let settings = format!("{SETTINGS}{DATASETS}\n[datasets.coco-val]\nclaim = \"coco-val\"\nmount = \"/data/coco/val\"\n");
    let stderr = refused(&settings, &alice("", ""));
    assert_contains!(stderr, "datasets `coco` and `coco-val` would be mounted at `/data/coco` and `/data/coco/val`");
    assert_contains!(stderr, "┌─ devbox.toml:14:9");
}

#[test]
fn a_box_too_small_for_the_default_shm_is_told_at_its_own_memory() {
    let settings = format!("{SETTINGS}shm = \"4Gi\"\n");
    let stderr = refused(&settings, &alice("", "\n[resources]\nmemory = \"4Gi\"\n"));
    assert_contains!(stderr, "the box's 4Gi of memory has no room for `shm = \"4Gi\"` from devbox.toml's `[defaults]`");
    assert_contains!(stderr, "┌─ users/alice.toml:7:10");
    assert_contains!(stderr, "raise `resources.memory` to at least `\"6Gi\"`");
    // The default itself fits the default memory, and a box with enough builds.
    let repo = Repo::new(&settings).user("alice", &alice("", "\n[resources]\nmemory = \"16Gi\"\n"));
    repo.run_ok(&["build"], 0);
}

#[test]
fn sharing_a_gpu_whose_count_comes_from_defaults_is_told_at_sharing() {
    let settings = format!("{SETTINGS}gpu = {{ type = \"nvidia-l4\", count = 2 }}\n");
    let stderr = refused(&settings, &alice("", "\n[gpu]\nsharing = \"time-sharing\"\n"));
    assert_contains!(stderr, "a shared GPU is one GPU, and `[defaults] gpu.count` in devbox.toml asks for 2");
    assert_contains!(stderr, "┌─ users/alice.toml:7:11");
    assert_contains!(stderr, "add `count = 1` to this `[gpu]`");
}

/// No GKE node has an x86-only accelerator and an Arm CPU (or GB200 and an x86 one): such a box
/// stays Pending. Told at what the person can change: the user file's GPU type, else its arch,
/// and in devbox.toml when both come from `[defaults]`.
#[test]
fn a_gpu_on_a_box_of_the_other_architecture_is_told_where_it_is_chosen() {
    let stderr = refused(SETTINGS, &alice("arch = \"arm64\"\n", "\n[gpu]\ntype = \"nvidia-l4\"\n"));
    assert_contains!(stderr, "error: GKE has `nvidia-l4` only on amd64 nodes, and this box is arm64\n  ┌─ users/alice.toml:8:8");
    let settings = format!("{SETTINGS}gpu = {{ type = \"nvidia-tesla-t4\" }}\n");
    let stderr = refused(&settings, &alice("arch = \"arm64\"\n", ""));
    assert_contains!(stderr, "error: GKE has `nvidia-tesla-t4` only on amd64 nodes, and this box is arm64\n  ┌─ users/alice.toml:1:8");
    let stderr = refused(&format!("{SETTINGS}gpu = {{ type = \"nvidia-gb200\" }}\n"), &alice("", ""));
    assert_contains!(stderr, "error: GKE has `nvidia-gb200` only on arm64 nodes, and this box is amd64\n  ┌─ devbox.toml:4:");
    assert_eq!(stderr.matches("only on arm64 nodes").count(), 1, "told once, in devbox.toml: {stderr}");
    let repo = Repo::new(&format!("{SETTINGS}arch = \"arm64\"\ngpu = {{ type = \"nvidia-gb200\" }}\n")).user("alice", &alice("", ""));
    repo.run_ok(&["build"], 0);
}

#[test]
fn clients_without_sharing_are_refused() {
    let stderr = refused(SETTINGS, &alice("", "\n[gpu]\ntype = \"nvidia-l4\"\nclients = 4\n"));
    assert_contains!(stderr, "`clients` only selects among shared GPUs, and this GPU is not shared");
    assert_contains!(stderr, "┌─ users/alice.toml:8:11");
}

#[test]
fn the_template_receives_the_ml_fields() {
    let settings = format!("{SETTINGS}datasets = [\"imagenet\"]\nspot = true\n{DATASETS}");
    let text = alice(
        "shm = \"2Gi\"\ndatasets = [\"coco\", \"imagenet\"]\n",
        "\n[gpu]\ntype = \"nvidia-l4\"\nsharing = \"time-sharing\"\nclients = 4\n",
    );
    let repo = Repo::new(&settings).user("alice", &text).user("bob", &user_file("bob@example.com", KEY_ALICE));
    let alice: serde_json::Value = serde_json::from_str(&repo.run_ok(&["show", "--input", "alice"], 0).stdout).unwrap();
    assert_eq!(alice["shm"], "2Gi");
    assert_eq!(alice["spot"], true);
    assert_eq!(
        alice["datasets"],
        serde_json::json!([
            {"name": "coco", "claim": "coco-2017", "mount": "/data/coco"},
            {"name": "imagenet", "claim": "imagenet-ro", "mount": "/datasets/imagenet"},
        ])
    );
    assert_eq!(alice["gpu"], serde_json::json!({"type": "nvidia-l4", "count": 1, "sharing": "time-sharing", "clients": 4}));
    let bob: serde_json::Value = serde_json::from_str(&repo.run_ok(&["show", "--input", "bob"], 0).stdout).unwrap();
    assert_eq!((&bob["shm"], &bob["spot"], &bob["gpu"]), (&serde_json::Value::Null, &serde_json::json!(true), &serde_json::Value::Null));
    assert_eq!(bob["datasets"][0]["name"], "imagenet", "from [defaults]");
}

#[test]
fn moving_a_box_onto_spot_vms_is_a_downtime_risk() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", ""));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &alice("spot = true\n", ""));
    assert_eq!(risks(&repo), pairs(&[("spot-changed", "alice")]));
    let text = repo.run_ok(&["diff"], 1).stdout;
    assert_contains!(text, "DOWNTIME");
    assert_contains!(text, "the box moves to Spot VMs: Google can stop it at any time, with about 30 seconds' notice");
    assert_contains!(text, "remove `spot = true` from its user file");
    let statefulset = {
        repo.run_ok(&["build"], 0);
        repo.read("out/alice/statefulset-alice.yaml")
    };
    assert_contains!(statefulset, "cloud.google.com/gke-spot: \"true\"");
    assert_contains!(statefulset, "terminationGracePeriodSeconds: 15");
    // And back.
    repo.write("users/alice.toml", &alice("", ""));
    assert_eq!(risks(&repo), pairs(&[("spot-changed", "alice")]));
    assert_contains!(repo.run_ok(&["diff"], 1).stdout, "the box leaves Spot VMs");
}

#[test]
fn a_template_that_mounts_a_dataset_writable_is_refused() {
    let repo = Repo::new(&format!("template = \"templates/devbox.jsonnet\"\n{SETTINGS}{DATASETS}"))
        .user("alice", &alice("datasets = [\"imagenet\"]\n", ""));
    repo.write(
        "templates/devbox.jsonnet",
        "local devbox = (import 'devbox-gen/devbox.libsonnet') + {\n\
           devboxContainer(box):: super.devboxContainer(box) + {\n\
             volumeMounts: [m + { readOnly: false } for m in super.volumeMounts],\n\
           },\n\
         };\n\
         function(box) devbox.bundle(box)\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "container `devbox` mounts the dataset claim `imagenet-ro` writable");
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_fleet_moved_onto_spot_by_defaults_is_told_once() {
    let repo = Repo::new(SETTINGS).user("alice", &alice("", "")).user("bob", &user_file("bob@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &format!("{SETTINGS}spot = true\n"));
    assert_eq!(risks(&repo), pairs(&[("spot-changed", "alice"), ("spot-changed", "bob")]));
    assert_contains!(repo.run_ok(&["diff"], 1).stdout, "Risks, most dangerous first (2, told as 1):");
}
