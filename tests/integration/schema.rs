use crate::common::Repo;

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

#[test]
fn the_committed_schemas_are_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, text) in devbox_gen::schema_files() {
        let committed = std::fs::read_to_string(format!("{root}/schema/{file}")).unwrap();
        assert_eq!(committed, text, "schema/{file} is stale: run `cargo run -- schema`");
    }
}
