//! The example config repo at the root of this repository is real: its out/ is what the tool
//! produces today.

use assert_cmd::Command;

#[test]
fn the_committed_out_is_current() {
    let output = Command::cargo_bin("devbox-gen").unwrap().args(["-C", env!("CARGO_MANIFEST_DIR"), "build", "--check"]).output().unwrap();
    assert!(
        output.status.success(),
        "out/ is stale; run `cargo run -- build`:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
