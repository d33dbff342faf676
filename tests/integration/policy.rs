//! Rules that fail CI, not warn, and `[policy]` in devbox.toml, which lists each exception by
//! name: a secret-looking `[env]` name, and a GPU type devbox-gen does not know.

use crate::common::{KEY_ALICE_2, Repo, SETTINGS, assert_contains, user_file};

fn bob(tables: &str) -> String {
    format!("{}{tables}", user_file("bob@example.com", KEY_ALICE_2))
}

#[test]
fn a_secret_looking_env_name_is_an_error_that_says_why_and_how_out() {
    let repo = Repo::with_alice().user("bob", &bob("\n[env]\nGITHUB_TOKEN = \"ghp_x\"\n"));
    repo.run_ok(&["build"], 2);
    let run = repo.run_ok(&["validate"], 2);
    assert_eq!(
        run.stderr,
        r#"error: `GITHUB_TOKEN` looks like a secret, and `[env]` values are committed to Git and written into the pod spec in clear text
  ┌─ users/bob.toml:7:16
  │
7 │ GITHUB_TOKEN = "ghp_x"
  │                ^^^^^^^ in clear text
  │
  = help: keep the value out of Git: add `--from-file=GITHUB_TOKEN=FILE` to the box's key Secret command that `devbox-gen secrets NAME` prints (the Secret is mounted at /secrets), and read /secrets/GITHUB_TOKEN in the box; add it each time you run that command, which replaces the whole Secret
  = help: if the value is not secret, allow the name in devbox.toml: `[policy] allow_secret_env = ["GITHUB_TOKEN"]`

"#
    );
    assert!(!repo.path().join("out").exists(), "nothing was built");
}

#[test]
fn the_policy_allows_exactly_the_names_it_lists() {
    let settings = format!("{SETTINGS}\n[policy]\nallow_secret_env = [\"TOKENIZERS_PARALLELISM\"]\n");
    let repo = Repo::new(&settings).user("bob", &bob("\n[env]\nTOKENIZERS_PARALLELISM = \"false\"\nPASSWORD_STORE_DIR = \"\"\n"));
    // Allowed by name; an empty value puts nothing in Git.
    assert_eq!(repo.run_ok(&["validate"], 0).stderr, "1 user file is valid\n");
    repo.write("users/bob.toml", &bob("\n[env]\nTOKENIZERS_PARALLELISM = \"false\"\nHF_TOKEN = \"hf_x\"\n"));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `HF_TOKEN` looks like a secret");
    assert_contains!(run.stderr, "┌─ users/bob.toml:8:12");
}

#[test]
fn defaults_meet_the_same_rule() {
    let repo = Repo::new(&format!("{SETTINGS}env = {{ DB_PASSWORD = \"hunter2\" }}\n")).user("bob", &bob(""));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `DB_PASSWORD` looks like a secret");
    assert_contains!(run.stderr, "┌─ devbox.toml:4:23");
}

#[test]
fn an_unknown_gpu_type_is_an_error_until_the_policy_allows_it() {
    let repo = Repo::new(SETTINGS).user("bob", &bob("\n[gpu]\ntype = \"nvidia-x9000-pro\"\n"));
    let run = repo.run_ok(&["build"], 2);
    assert_eq!(
        run.stderr,
        r#"error: `nvidia-x9000-pro` is not a GKE accelerator devbox-gen knows
  ┌─ users/bob.toml:7:8
  │
7 │ type = "nvidia-x9000-pro"
  │        ^^^^^^^^^^^^^^^^^^ unknown GPU type
  │
  = help: known types: nvidia-tesla-t4, nvidia-tesla-p4, nvidia-tesla-p100, nvidia-tesla-v100, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-l4, nvidia-h100-80gb, nvidia-h100-mega-80gb, nvidia-h200-141gb, nvidia-b200, nvidia-gb200, nvidia-rtx-pro-6000
  = help: a box that asks for an accelerator no node has stays Pending: if `gcloud compute accelerator-types list` has `nvidia-x9000-pro`, allow it in devbox.toml with `[policy] allow_gpu_types = ["nvidia-x9000-pro"]`

error: nothing under out/ was changed
"#
    );
    repo.write("devbox.toml", &format!("{SETTINGS}\n[policy]\nallow_gpu_types = [\"nvidia-x9000-pro\"]\n"));
    repo.run_ok(&["build"], 0);
    assert_contains!(repo.read("out/bob/statefulset-bob.yaml"), "cloud.google.com/gke-accelerator: nvidia-x9000-pro");
}

#[test]
fn policy_entries_are_checked_too() {
    let settings = format!("{SETTINGS}\n[policy]\nallow_secret_env = [\"MY-TOKEN\"]\nallow_gpu_types = [\"NVIDIA L4\"]\n");
    let run = Repo::new(&settings).user("bob", &bob("")).run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "error: `MY-TOKEN` is not a portable environment variable name\n  ┌─ devbox.toml:6:21\n");
    assert_contains!(run.stderr, "error: `NVIDIA L4` is not a valid GPU type\n  ┌─ devbox.toml:7:20\n");
}
