//! Snapshots of the generated manifests of the example users: a change to the template shows
//! up here as a reviewable diff.

use std::fs;

fn example(path: &str) -> String {
    fs::read_to_string(format!("{}/out/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn gpu_statefulset() {
    insta::assert_snapshot!(example("alice/statefulset-alice.yaml"));
}

#[test]
fn arm64_stopped_statefulset() {
    insta::assert_snapshot!(example("bob/statefulset-bob.yaml"));
}

#[test]
fn home_volume() {
    insta::assert_snapshot!(example("alice/persistentvolumeclaim-alice-home.yaml"));
}

#[test]
fn archived_bundle_layout() {
    let mut files: Vec<String> = fs::read_dir(format!("{}/out/carol", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["kustomization.yaml", "persistentvolumeclaim-carol-home.yaml"]);
    insta::assert_snapshot!(example("carol/persistentvolumeclaim-carol-home.yaml"));
}

#[test]
fn config_map() {
    insta::assert_snapshot!(example("erin/configmap-erin-devbox.yaml"));
}
