//! `devbox-gen ssh-config`: the ~/.ssh/config entries for VS Code Remote-SSH. What it prints is
//! what people append to their config, so it is stated exactly.

use crate::common::{KEY_ALICE, alice_bob_carol, assert_contains};

/// Every running box; the one whose key is in ~/.ssh is reached with it, the other with what
/// ssh offers by itself.
#[test]
fn lists_every_running_box() {
    let repo = alice_bob_carol();
    repo.write(".home/.ssh/devbox", "private");
    repo.write(".home/.ssh/devbox.pub", KEY_ALICE);
    let run = repo.run_ok(&["ssh-config"], 0);
    assert_eq!(
        run.stdout,
        "\n# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config

Host alice-devbox
    HostName alice-devbox
    User jupyter
    Port 2222
    IdentityFile ~/.ssh/devbox
    IdentitiesOnly yes

# No key of ~/.ssh is among its authorized keys: ssh offers its default keys and the agent's.
Host carol-gpu
    HostName carol-gpu
    User jupyter
    Port 2222
"
    );
    assert_contains!(run.stderr, "among carol's authorized keys");
    assert!(!run.stderr.contains("alice"), "{}", run.stderr);
}

#[test]
fn for_one_box_says_when_it_is_stopped() {
    let repo = alice_bob_carol();
    let run = repo.run_ok(&["ssh-config", "bob", "--identity-file", "~/.ssh/my key"], 0);
    assert_eq!(
        run.stdout,
        "\n# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config

# bob is stopped: nothing answers until its user file says `state = \"running\"`
Host bob-devbox
    HostName bob-devbox
    User jupyter
    Port 2222
    IdentityFile \"~/.ssh/my key\"
    IdentitiesOnly yes
"
    );
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_box_that_stops_by_itself_says_how_to_wake_it() {
    let repo = alice_bob_carol();
    let alice = repo.read("users/alice.toml");
    repo.write("users/alice.toml", &format!("{alice}\n[idle]\nafter = \"90m\"\n"));
    let run = repo.run_ok(&["ssh-config", "alice", "--identity-file", "~/.ssh/devbox"], 0);
    assert_eq!(
        run.stdout,
        "\n# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config

# It stops after 1h30m without activity (SSH traffic, Jupyter, CPU or GPU use, a hold). `devbox-gen wake alice` starts it.
Host alice-devbox
    HostName alice-devbox
    User jupyter
    Port 2222
    IdentityFile ~/.ssh/devbox
    IdentitiesOnly yes
"
    );
}

/// With `IdentitiesOnly yes` ssh offers the named key alone: a file that is not there, or a key
/// the box does not accept, is warned about (the entry is still printed as asked). A `.pub`
/// selects a key of the agent, and is compared as it is.
#[test]
fn an_identity_file_that_cannot_log_in_is_warned_about() {
    let repo = alice_bob_carol();
    let run = repo.run_ok(&["ssh-config", "alice", "--identity-file", "~/.ssh/nonexistent"], 0);
    assert_contains!(run.stderr, "warning: --identity-file ~/.ssh/nonexistent: no such file");
    assert_contains!(run.stdout, "IdentityFile ~/.ssh/nonexistent");

    repo.write(".home/.ssh/devbox", "private");
    repo.write(".home/.ssh/devbox.pub", KEY_ALICE);
    let run = repo.run_ok(&["ssh-config", "--identity-file", "~/.ssh/devbox"], 0);
    assert_contains!(run.stderr, "warning: --identity-file ~/.ssh/devbox: its key is not among carol's authorized keys");
    assert!(!run.stderr.contains("alice's"), "alice accepts it: {}", run.stderr);
    let run = repo.run_ok(&["ssh-config", "alice", "--identity-file", "~/.ssh/devbox.pub"], 0);
    assert_eq!(run.stderr, "");
}

/// Appended as the header says, to a config whose last line has no newline (editors leave it
/// so), the entries leave that line whole: the real ssh reads both.
#[test]
fn appended_to_a_config_without_a_final_newline_both_parse() {
    let repo = alice_bob_carol();
    let run = repo.run_ok(&["ssh-config", "alice"], 0);
    let config = repo.path().join("ssh_config");
    std::fs::write(&config, format!("Host github.com\n    User git{}", run.stdout)).unwrap();
    let resolve = |host: &str| {
        let output = std::process::Command::new("ssh").arg("-G").arg("-F").arg(&config).arg(host).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    assert_contains!(resolve("github.com"), "\nuser git\n");
    assert_contains!(resolve("alice-devbox"), "\nport 2222\n");
}
