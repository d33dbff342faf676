//! `devbox-gen new`: a new user file, written only when it is valid and does not exist yet. What
//! it writes is what people edit next, so it is stated exactly; so is every refusal, which
//! blames the flag that gave the value (the file it would have gone into does not exist).

use std::fs;

use crate::common::{KEY_ALICE, KEY_ALICE_2, KEY_RSA_1024, Repo, SETTINGS, assert_contains, assert_not_contains};

fn key_file(repo: &Repo, name: &str, text: &str) -> String {
    let path = repo.path().join(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs `new` expecting a refusal; asserts that it wrote nothing and returns stderr.
fn refused(repo: &Repo, args: &[&str]) -> String {
    let users_before = fs::read_dir(repo.path().join("users")).map(Iterator::count).unwrap_or(0);
    let run = repo.run_ok(&[&["new"], args].concat(), 2);
    assert_eq!(run.stdout, "");
    let users_after = fs::read_dir(repo.path().join("users")).map(Iterator::count).unwrap_or(0);
    assert_eq!(users_after, users_before, "new wrote a file:\n{}", run.stderr);
    run.stderr
}

#[test]
fn writes_a_valid_user_file_with_the_defaults_in_comments() {
    let settings = format!(
        "{SETTINGS}resources = {{ cpu = \"4\", memory = \"16Gi\" }}\nhome = {{ size = \"100Gi\", storage_class = \"standard-rwo\" }}\n"
    );
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "devbox.pub", &format!("{KEY_ALICE}\n"));
    let run = repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key], 0);
    // With the same `-C`, so that the next steps work pasted into the same shell.
    let cmd = format!("devbox-gen -C {}", repo.path().display());
    assert_eq!(
        run.stderr,
        format!("wrote users/alice.toml\nnext: create its Secrets (`{cmd} secrets alice`), run `{cmd} build`, and open a pull request\n")
    );
    assert_eq!(
        repo.read("users/alice.toml"),
        format!(
            r#"#:schema ../schema/user.schema.json
# alice's developer box (see "A user file" in the devbox-gen README). What is not set here
# comes from [defaults] in devbox.toml; the commented lines show what the box gets today.
email = "alice@example.com"
# state = "running"                # running | stopped | archived
# image = "registry.example.com/devbox:1.0"
# arch = "amd64"                   # amd64 | arm64

# [resources]
# cpu = "4"
# memory = "16Gi"

# [home]
# size = "100Gi"                   # may grow, never shrink
# storage_class = "standard-rwo"   # cannot change once the volume exists

[ssh]
authorized_keys = [
  "{KEY_ALICE}",
]
"#
        )
    );
    repo.run_ok(&["validate"], 0);
    repo.run_ok(&["build"], 0);
    // Uncommenting a line is all it takes to change it.
    let edited = repo.read("users/alice.toml").replace("# [resources]\n# cpu = \"4\"", "[resources]\ncpu = \"8\"");
    repo.write("users/alice.toml", &edited);
    repo.run_ok(&["validate"], 0);
}

#[test]
fn every_flag_sets_its_field_and_the_rest_stays_commented() {
    let settings = format!("{SETTINGS}tailscale = {{ tags = [\"tag:devbox\"] }}\n");
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "id_ed25519.pub", &format!("# my laptop\n{KEY_ALICE}\n\n"));
    #[rustfmt::skip]
    let args = [
        "new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--ssh-key", KEY_ALICE_2,
        "--image", "ghcr.io/acme/devbox:2024.09", "--cpu", "8", "--memory", "32Gi", "--gpu", "nvidia-gb200:2",
        "--home-size", "200Gi", "--storage-class", "premium-rwo", "--arch", "arm64", "--state", "stopped",
        "--hostname", "alice-gpu", "--tag", "tag:devbox", "--tag", "tag:gpu",
    ];
    repo.run_ok(&args, 0);
    assert_eq!(
        repo.read("users/alice.toml"),
        format!(
            r#"#:schema ../schema/user.schema.json
# alice's developer box (see "A user file" in the devbox-gen README). What is not set here
# comes from [defaults] in devbox.toml; the commented lines show what the box gets today.
email = "alice@example.com"
state = "stopped"                  # running | stopped | archived
image = "ghcr.io/acme/devbox:2024.09"
arch = "arm64"                     # amd64 | arm64

[resources]
cpu = "8"
memory = "32Gi"

[gpu]
type = "nvidia-gb200"
count = 2                          # 1, 2, 4, 8 or 16

[home]
size = "200Gi"                     # may grow, never shrink
storage_class = "premium-rwo"      # cannot change once the volume exists

[ssh]
authorized_keys = [
  "{KEY_ALICE}",
  "{KEY_ALICE_2}",
]

[tailscale]
hostname = "alice-gpu"
tags = ["tag:devbox", "tag:gpu"]   # applied when the box's machine first logs in
"#
        )
    );
    repo.run_ok(&["validate"], 0);
    repo.run_ok(&["build"], 0);
    let input = repo.run_ok(&["show", "--input", "alice"], 0).stdout;
    for expected in
        [r#""state": "stopped""#, r#""arch": "arm64""#, r#""count": 2"#, r#""storage_class": "premium-rwo""#, r#""hostname": "alice-gpu""#]
    {
        assert_contains!(input, expected);
    }
}

#[test]
fn the_old_key_flag_still_works() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--key", &key], 0);
    repo.run_ok(&["validate"], 0);
}

#[test]
fn a_bad_email_blames_the_flag_not_a_file_that_was_never_written() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["grace", "--email", "grace", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: --email grace: `grace` is not an email address\n = help: write the owner's address alone, like `alice@example.com`\n\n"
    );
    assert_not_contains!(stderr, "users/grace.toml");
}

#[test]
fn an_unknown_cluster_blames_the_flag() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["grace", "--email", "grace@example.com", "--ssh-key-file", &key, "--cluster", "nope"]);
    assert_eq!(
        stderr,
        "error: --cluster nope: no cluster named `nope` in devbox.toml\n = help: devbox.toml lists no `[[clusters]]`: leave the cluster out, or add it to devbox.toml\n\n"
    );
}

#[test]
fn a_name_that_cannot_name_a_box_says_which_would() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["Grace", "--email", "grace@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: `Grace` cannot name a box: use lowercase letters, digits and `-`, starting with a letter and ending with a letter or digit\n = help: use `grace`: `devbox-gen new grace ...`\n\n"
    );
    assert!(!repo.path().join("users/Grace.toml").exists());
}

#[test]
fn every_flag_is_checked_by_the_rule_of_its_field_and_all_are_reported_at_once() {
    let repo = Repo::with_alice();
    let key = key_file(&repo, "devbox.pub", KEY_ALICE_2);
    #[rustfmt::skip]
    let stderr = refused(&repo, &[
        "bob", "--email", "bob at example.com", "--ssh-key-file", &key, "--ssh-key", KEY_RSA_1024,
        "--image", "ubuntu:latest", "--cpu", "0", "--memory", "32GB", "--gpu", "nvidia-tesla-t5:3",
        "--home-size", "500Mi", "--storage-class", "Premium SSD", "--hostname", "alice-devbox", "--tag", "devbox",
    ]);
    let rsa = &KEY_RSA_1024;
    assert_eq!(
        stderr,
        format!(
            "error: --email 'bob at example.com': `bob at example.com` is not an email address
 = help: write the owner's address alone, like `alice@example.com`

error: --ssh-key '{rsa}': this RSA key has 1024 bits; at least 2048 are required
 = help: create an Ed25519 key with `ssh-keygen -t ed25519` and use its .pub

error: --image ubuntu:latest: `latest` is not a pinned image: the box would change under its owner without review
 = help: pin a version, e.g. `ubuntu:2024.06`, or a digest `ubuntu@sha256:…`

error: --cpu 0: a box needs some CPU
 = help: use e.g. `\"2\"` or `\"500m\"`

error: --memory 32GB: `32GB` is not a Kubernetes quantity: `GB` is not a unit Kubernetes knows
 = help: did you mean `32Gi`?

error: --gpu nvidia-tesla-t5:3: `nvidia-tesla-t5` is not a GKE accelerator devbox-gen knows
 = help: did you mean `nvidia-tesla-t4`?
 = help: a box that asks for an accelerator no node has stays Pending: if `gcloud compute accelerator-types list` has `nvidia-tesla-t5`, allow it in devbox.toml with `[policy] allow_gpu_types = [\"nvidia-tesla-t5\"]`

error: --gpu nvidia-tesla-t5:3: 3 GPUs cannot be attached to one GKE node
 = help: use 1, 2, 4, 8 or 16; remove `[gpu]` for none

error: --home-size 500Mi: a 500Mi home volume is too small
 = help: use at least `\"1Gi\"`; `\"100Gi\"` is typical

error: --storage-class 'Premium SSD': `Premium SSD` is not a valid StorageClass name
 = help: use at most 253 lowercase letters, digits, `-` and `.`, each part between dots starting and ending with a letter or digit

error: --tag devbox: `devbox` is not a Tailscale ACL tag
 = help: tags start with `tag:`, e.g. `tag:devbox`

error: --hostname alice-devbox: tailnet hostname `alice-devbox` is also used by users/alice.toml
 = help: every box needs its own hostname; pick another `tailscale.hostname`

error: 11 problems
"
        )
    );
}

#[test]
fn what_no_layer_provides_is_asked_of_the_flags() {
    let repo = Repo::new("");
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    std::fs::remove_file(repo.path().join("devbox.toml")).unwrap();
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: no image for this box: devbox.toml has no `[defaults] image`\n = help: pass `--image REGISTRY/PATH:TAG` (pinned by a tag or a digest), or set `[defaults] image` in devbox.toml for every box\n = help: this config repo has no devbox.toml yet: `devbox-gen init --image REGISTRY/PATH:TAG` writes one\n\n"
    );
    repo.write("devbox.toml", "");
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: no image for this box: devbox.toml has no `[defaults] image`\n = help: pass `--image REGISTRY/PATH:TAG` (pinned by a tag or a digest), or set `[defaults] image` in devbox.toml for every box\n\n"
    );
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--image", "ghcr.io/acme/devbox:1"], 0);
    repo.run_ok(&["build"], 0);
}

#[test]
fn a_gpu_count_must_be_a_number() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--gpu", "nvidia-l4:two"]);
    assert_eq!(
        stderr,
        "error: --gpu nvidia-l4:two: `two` is not a number of GPUs\n = help: write the type, or the type and a count: `--gpu nvidia-l4` or `--gpu nvidia-l4:2`\n\n"
    );
}

#[test]
fn a_key_is_required_and_state_and_arch_take_only_their_values() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    assert_contains!(refused(&repo, &["alice", "--email", "alice@example.com"]), "--ssh-key-file <FILE>|--ssh-key <KEY>");
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--state", "paused"]);
    assert_contains!(stderr, "[possible values: running, stopped, archived]");
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--arch", "x86"]);
    assert_contains!(stderr, "[possible values: amd64, arm64]");
}

#[test]
fn names_the_cluster_when_there_are_several() {
    let settings = format!(
        "{SETTINGS}\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n\n[[clusters]]\nname = \"gpu\"\nserver = \"https://gpu.example.com\"\n"
    );
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: devbox.toml lists several clusters (prod, gpu): this box must say which is its\n = help: pass `--cluster prod`, or another of them\n\n"
    );
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key, "--cluster", "gpu"], 0);
    assert_contains!(repo.read("users/alice.toml"), "# arch = \"amd64\"                   # amd64 | arm64\ncluster = \"gpu\"\n");
    repo.run_ok(&["build"], 0);
    assert!(repo.path().join("out/gpu/alice/statefulset-alice.yaml").is_file());
}

#[test]
fn never_overwrites_a_user_file() {
    let repo = Repo::with_alice();
    let before = repo.read("users/alice.toml");
    let key = key_file(&repo, "devbox.pub", KEY_ALICE_2);
    let stderr = refused(&repo, &["alice", "--email", "other@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        "error: users/alice.toml already exists\n = in users/alice.toml\n = help: edit users/alice.toml instead, or choose another name; `devbox-gen new` never overwrites a file\n\n"
    );
    assert_eq!(repo.read("users/alice.toml"), before);
}

#[test]
fn refuses_a_private_key_without_echoing_it() {
    let repo = Repo::new(SETTINGS);
    let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUSECRET\n-----END OPENSSH PRIVATE KEY-----\n";
    let key = key_file(&repo, "id_ed25519", private);
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_eq!(
        stderr,
        format!(
            "error: --ssh-key-file {key}: this is a private key\n = help: pass the public half, the `.pub` file beside it: the private key never leaves your machine\n\n"
        )
    );
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key", private]);
    assert_eq!(
        stderr,
        "error: --ssh-key: this is a private key\n = help: pass the public key (`cat ~/.ssh/id_ed25519.pub`): the private key never leaves your machine\n\n"
    );
    // Its body alone, with neither header line: the same refusal, never echoed.
    let body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUSECRET";
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key", body]);
    assert_contains!(stderr, "error: --ssh-key: this is a private key");
    assert_not_contains!(stderr, body);
    assert!(!repo.path().join("users/alice.toml").exists());
}

#[test]
fn a_broken_devbox_toml_is_reported_where_it_is() {
    let repo = Repo::new(&format!("namespace = \"Dev Boxes\"\n{SETTINGS}"));
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_contains!(stderr, "error: `Dev Boxes` is not a valid namespace\n  ┌─ devbox.toml:1:13\n");
}

/// A help shows a command that can be run: with no type before the colon, a real one.
#[test]
fn a_gpu_flag_without_type_or_count_gets_a_runnable_example() {
    let repo = Repo::new(SETTINGS);
    let run = repo.run_ok(&["new", "zed", "--email", "zed@example.com", "--ssh-key", KEY_ALICE, "--gpu", ":"], 2);
    assert_contains!(run.stderr, "help: write the type, or the type and a count: `--gpu nvidia-l4` or `--gpu nvidia-l4:2`");
    let run = repo.run_ok(&["new", "zed", "--email", "zed@example.com", "--ssh-key", KEY_ALICE, "--gpu", "nvidia-t4:x"], 2);
    assert_contains!(run.stderr, "`--gpu nvidia-t4` or `--gpu nvidia-t4:2`");
}

/// A write that fails part-way (a full disk; here a file size limit) leaves no user file cut
/// short, which a retry would refuse as existing and `validate` as unparsable.
#[test]
fn a_failed_write_leaves_no_user_file() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", &format!("{KEY_ALICE}\n{KEY_ALICE_2}\n"));
    let (code, stderr) = repo.run_with_file_size_limit(0, &["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_contains!(stderr, "error: cannot write users/alice.toml: File too large");
    let left: Vec<_> = fs::read_dir(repo.path().join("users")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key], 0);
}

/// Keys from a pipe: `--ssh-key-file <(ssh-add -L)` for a key held only in an agent, or
/// `/dev/stdin`. A directory is told as one.
#[test]
fn keys_are_read_from_a_pipe_and_a_directory_is_told_as_one() {
    let repo = Repo::new(SETTINGS);
    let output = assert_cmd::Command::cargo_bin("devbox-gen")
        .unwrap()
        .args(["-C", repo.path().to_str().unwrap(), "new", "alice", "--email", "alice@example.com", "--ssh-key-file", "/dev/stdin"])
        .env("HOME", repo.path().join(".home"))
        .write_stdin(format!("{KEY_ALICE}\n{KEY_ALICE_2}\n"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let written = repo.read("users/alice.toml");
    assert_contains!(written, KEY_ALICE);
    assert_contains!(written, KEY_ALICE_2);
    let stderr = refused(&repo, &["bob", "--email", "bob@example.com", "--ssh-key-file", repo.path().join("users").to_str().unwrap()]);
    assert_contains!(stderr, ": this is a directory\n");
}

/// A box that stops by itself says so in its own file: `[defaults]`'s `idle` and `schedule`
/// are shown as commented tables, and the file still validates as written.
#[test]
fn idle_and_working_hours_from_the_defaults_are_shown_in_the_file() {
    let settings = format!(
        "{SETTINGS}idle = {{ after = \"2h\" }}\nschedule = {{ timezone = \"Europe/Berlin\", days = [\"mon\", \"fri\"], start = \"08:00\", stop = \"19:00\" }}\n"
    );
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "devbox.pub", &format!("{KEY_ALICE}\n"));
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--ssh-key-file", &key], 0);
    let written = repo.read("users/alice.toml");
    assert_contains!(
        written,
        "\n# [idle]\n# after = \"2h\"                     # stops after this long unused; \"never\" keeps it running\n"
    );
    assert_contains!(
        written,
        "\n# [schedule]\n# timezone = \"Europe/Berlin\"\n# days = [\"mon\", \"fri\"]            # [] for no working hours\n# start = \"08:00\"                  # started then, kept running until stop\n# stop = \"19:00\"\n"
    );
    // Uncommented as written, they give the box what it has now.
    let uncommented = written.replace("# [idle]", "[idle]").replace("# after", "after").replace("# [schedule]", "[schedule]");
    let uncommented = ["timezone", "days", "start", "stop"]
        .iter()
        .fold(uncommented, |text, key| text.replace(&format!("# {key} ="), &format!("{key} =")));
    let before = repo.run_ok(&["show", "alice"], 0).stdout;
    repo.write("users/alice.toml", &uncommented);
    assert_eq!(repo.run_ok(&["show", "alice"], 0).stdout, before);
}

/// Two keys in one `--ssh-key` are told in terms of the flag, not of the file it would become.
#[test]
fn several_keys_in_one_flag_say_to_repeat_the_flag() {
    let repo = Repo::new(SETTINGS);
    let stderr = refused(&repo, &["alice", "--email", "alice@example.com", "--ssh-key", &format!("{KEY_ALICE}\n{KEY_ALICE_2}")]);
    assert_contains!(stderr, "error: --ssh-key: one key per flag, and this holds several lines\n");
    assert_contains!(stderr, "help: pass `--ssh-key` once for each key");
    assert_not_contains!(stderr, "authorized_keys");
}
