//! `devbox-gen new`: a new user file, written only when it is valid and does not exist yet. What
//! it writes is what people edit next, so it is stated exactly.

use std::fs;

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, assert_not_contains};

fn key_file(repo: &Repo, name: &str, text: &str) -> String {
    let path = repo.path().join(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn writes_a_valid_user_file_with_the_defaults_in_comments() {
    let settings = format!(
        "{SETTINGS}resources = {{ cpu = \"4\", memory = \"16Gi\" }}\nhome = {{ size = \"100Gi\", storage_class = \"standard-rwo\" }}\n"
    );
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "devbox.pub", &format!("{KEY_ALICE}\n"));
    let run = repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--key", &key], 0);
    assert_eq!(
        run.stderr,
        "wrote users/alice.toml\nnext: create its Secrets (`devbox-gen secrets alice`), run `devbox-gen build`, and open a pull request\n"
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
fn names_the_cluster_when_there_are_several() {
    let settings = format!(
        "{SETTINGS}\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n\n[[clusters]]\nname = \"gpu\"\nserver = \"https://gpu.example.com\"\n"
    );
    let repo = Repo::new(&settings);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let run = repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--key", &key], 2);
    assert_contains!(run.stderr, "error: devbox.toml lists several clusters; this box must say which is its");
    assert!(!repo.path().join("users/alice.toml").exists());
    repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--key", &key, "--cluster", "gpu"], 0);
    assert_contains!(repo.read("users/alice.toml"), "email = \"alice@example.com\"\ncluster = \"gpu\"\n");
    repo.run_ok(&["build"], 0);
    assert!(repo.path().join("out/gpu/alice/statefulset-alice.yaml").is_file());
}

#[test]
fn never_overwrites_a_user_file() {
    let repo = Repo::with_alice();
    let before = repo.read("users/alice.toml");
    let key = key_file(&repo, "devbox.pub", KEY_ALICE_2);
    let run = repo.run_ok(&["new", "alice", "--email", "other@example.com", "--key", &key], 2);
    assert_eq!(
        run.stderr,
        "error: users/alice.toml already exists\n = in users/alice.toml\n = help: edit users/alice.toml instead, or choose another name; `devbox-gen new` never overwrites a file\n\n"
    );
    assert_eq!(repo.read("users/alice.toml"), before);
}

#[test]
fn refuses_a_private_key_without_echoing_it() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(
        &repo,
        "id_ed25519",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUSECRET\n-----END OPENSSH PRIVATE KEY-----\n",
    );
    let run = repo.run_ok(&["new", "alice", "--email", "alice@example.com", "--key", &key], 2);
    assert!(run.stderr.starts_with(&format!("error: {key} is a private key\n")), "{}", run.stderr);
    assert_not_contains!(run.stderr, "SECRET");
    assert!(!repo.path().join("users/alice.toml").exists());
}

#[test]
fn validates_what_it_would_write() {
    let repo = Repo::new(SETTINGS);
    let key = key_file(&repo, "devbox.pub", KEY_ALICE);
    let run = repo.run_ok(&["new", "alice", "--email", "alice at example.com", "--key", &key], 2);
    assert!(run.stderr.starts_with("error: `alice at example.com` is not an email address\n  ┌─ users/alice.toml:4:9\n"), "{}", run.stderr);
    let run = repo.run_ok(&["new", "Alice", "--email", "alice@example.com", "--key", &key], 2);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(!repo.path().join("users/alice.toml").exists());
    assert!(!repo.path().join("users/Alice.toml").exists());
}
