//! Snapshots of freshly built bundles, one small config repo per kind of box: a change to the
//! template, the defaults or the emitter shows up here as a reviewable diff. Each case keeps
//! the StatefulSet and the home volume, and whatever else is the point of the case.

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, files_under, user_file, without_scripts_hash};
use crate::delivery::GITOPS;

/// `devbox.toml` and one user, built.
fn built(settings: &str, user: &str, text: &str) -> Repo {
    let repo = Repo::new(settings).user(user, text);
    let run = repo.run_ok(&["build"], 0);
    assert_eq!(run.stdout, "");
    repo
}

/// Every file `build` wrote, one path a line. The scripts' content hash is left out here and
/// below: a script edit changes it, and the script is tested by what it does, not by its hash.
fn layout(repo: &Repo) -> String {
    without_scripts_hash(&files_under(&repo.path().join("out")).iter().map(|path| format!("{}\n", path.display())).collect::<String>())
}

fn statefulset(repo: &Repo, user: &str) -> String {
    without_scripts_hash(&repo.read(&format!("out/{user}/statefulset-{user}.yaml")))
}

fn home(repo: &Repo, user: &str) -> String {
    repo.read(&format!("out/{user}/persistentvolumeclaim-{user}-home.yaml"))
}

#[test]
fn running_with_a_gpu() {
    let text = format!(
        "{}\n[resources]\ncpu = \"8\"\nmemory = \"32Gi\"\n\n[gpu]\ntype = \"nvidia-l4\"\ncount = 2\n",
        user_file("alice@example.com", KEY_ALICE)
    );
    let repo = built(SETTINGS, "alice", &text);
    insta::assert_snapshot!("gpu_statefulset", statefulset(&repo, "alice"));
    insta::assert_snapshot!("gpu_home", home(&repo, "alice"));
}

/// Shared memory, Spot VMs, two read-only datasets (one at its own path) and a time-shared GPU.
#[test]
fn an_ml_box() {
    let settings = format!(
        "{SETTINGS}\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\n\n[datasets.coco]\nclaim = \"coco-2017\"\nmount = \"/data/coco\"\n"
    );
    let text = format!(
        "shm = \"8Gi\"\nspot = true\ndatasets = [\"imagenet\", \"coco\"]\n{}\n[resources]\ncpu = \"8\"\nmemory = \"32Gi\"\n\n[gpu]\ntype = \"nvidia-l4\"\nsharing = \"time-sharing\"\nclients = 4\n",
        user_file("alice@example.com", KEY_ALICE)
    );
    let repo = built(&settings, "alice", &text);
    insta::assert_snapshot!("ml_statefulset", statefulset(&repo, "alice"));
    insta::assert_snapshot!("ml_layout", layout(&repo));
}

#[test]
fn arm64_stopped() {
    let text = format!(
        "state = \"stopped\"\narch = \"arm64\"\nimage = \"registry.example.com/devbox-arm64:1.0\"\n{}",
        user_file("bob@example.com", KEY_ALICE_2)
    );
    let repo = built(SETTINGS, "bob", &text);
    insta::assert_snapshot!("arm64_stopped_statefulset", statefulset(&repo, "bob"));
    insta::assert_snapshot!("arm64_stopped_home", home(&repo, "bob"));
}

#[test]
fn archived_keeps_only_the_home_volume() {
    let repo = built(SETTINGS, "carol", &format!("state = \"archived\"\n{}", user_file("carol@example.com", KEY_ALICE)));
    insta::assert_snapshot!("archived_layout", layout(&repo));
    insta::assert_snapshot!("archived_home", home(&repo, "carol"));
}

#[test]
fn a_home_of_its_own_size_on_the_default_storage_class() {
    let settings = format!("{SETTINGS}home = {{ size = \"100Gi\", storage_class = \"premium-rwo\" }}\n");
    let repo = built(&settings, "dave", &format!("{}\n[home]\nsize = \"250Gi\"\n", user_file("dave@example.com", KEY_ALICE)));
    insta::assert_snapshot!("custom_home_statefulset", statefulset(&repo, "dave"));
    insta::assert_snapshot!("custom_home_home", home(&repo, "dave"));
}

#[test]
fn its_own_environment_keys_and_tailnet_name() {
    let text = format!(
        "{}\n[env]\nJUPYTER_ENABLE_LAB = \"yes\"\nNO_PROXY = \"on\"\nUMASK = \"0755\"\nOMP_NUM_THREADS = \"4\"\n\n[tailscale]\nhostname = \"erin\"\ntags = [\"tag:devbox\", \"tag:ml\"]\n",
        user_file("erin@example.com", &format!("{KEY_ALICE}\", \"{KEY_ALICE_2}"))
    );
    let repo = built(SETTINGS, "erin", &text);
    insta::assert_snapshot!("env_statefulset", statefulset(&repo, "erin"));
    insta::assert_snapshot!("env_config_map", repo.read("out/erin/configmap-erin-devbox.yaml"));
}

#[test]
fn delivered_by_flux_and_argocd() {
    let repo = built(GITOPS, "alice", &user_file("alice@example.com", KEY_ALICE));
    insta::assert_snapshot!("flux_argocd_layout", layout(&repo));
    insta::assert_snapshot!("flux_argocd_statefulset", statefulset(&repo, "alice"));
    insta::assert_snapshot!("flux_argocd_home", home(&repo, "alice"));
}
