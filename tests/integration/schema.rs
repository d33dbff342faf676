use crate::common::{Repo, assert_contains};

#[test]
fn writes_then_checks_the_schemas() {
    let repo = Repo::with_alice();
    repo.run_ok(&["schema", "--check"], 1);
    repo.run_ok(&["schema"], 0);
    repo.run_ok(&["schema", "--check"], 0);
    let user: serde_json::Value = serde_json::from_str(&repo.read("schema/user.schema.json")).unwrap();
    assert_eq!(user["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(user["required"], serde_json::json!(["email", "ssh"]));
}

/// A mistyped `-C` is an error, as for every other command: not a new directory tree to write
/// into, nor a "stale" schema/ to fix by running a command that then fails.
#[test]
fn a_missing_config_repo_is_refused() {
    let repo = Repo::with_alice();
    let typo = repo.path().join("typo/repo");
    for args in [&["schema"][..], &["schema", "--check"]] {
        let output = assert_cmd::Command::cargo_bin("devbox-gen").unwrap().arg("-C").arg(&typo).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_contains!(String::from_utf8_lossy(&output.stderr), "is not a directory");
    }
    assert!(!repo.path().join("typo").exists(), "nothing was created");
}

#[test]
fn the_committed_schemas_are_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, text) in devbox_gen::schema_files() {
        let committed = std::fs::read_to_string(format!("{root}/schema/{file}")).unwrap();
        assert_eq!(committed, text, "schema/{file} is stale: run `cargo run -- schema`");
    }
}
