//! What the template decides, read back from the rendered box: `ssh-config` prints the port the
//! template gives sshd, and `secrets` names the keys where the template mounts them. And the
//! precedence of defaults as a person sees it (`show --input`).

use std::fs;

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, scripts_config_map, user_file};

/// alice (running) and bob (archived), rendered by `template`.
fn with_template(template: &str) -> Repo {
    let archived = format!("state = \"archived\"\n{}", user_file("bob@example.com", KEY_ALICE_2));
    let repo = Repo::with_alice().user("bob", &archived);
    repo.use_template(template);
    repo
}

/// sshd on 2022: the library's `sshPort` and the port in its sshd_config, changed together.
const SSH_PORT_2022: &str = "local devbox = (import 'devbox-gen/devbox.libsonnet') + {\n\
    sshPort:: 2022,\n\
    files+:: { sshd_config: std.strReplace(super.sshd_config, '\\nPort 2222\\n', '\\nPort 2022\\n') },\n\
};\n\
function(box) devbox.bundle(box)\n";

#[test]
fn ssh_config_prints_the_port_the_template_gives_sshd() {
    let repo = with_template(SSH_PORT_2022);
    let run = repo.run_ok(&["ssh-config"], 0);
    assert_eq!(
        run.stdout,
        "\n# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config

# No key of ~/.ssh is among its authorized keys: ssh offers its default keys and the agent's.
Host alice-devbox
    HostName alice-devbox
    User jupyter
    Port 2022
"
    );
    // An archived box has no StatefulSet in its bundle: its port is the one it gets when it runs.
    let run = repo.run_ok(&["ssh-config", "bob"], 0);
    assert_contains!(run.stdout, "# bob is archived: nothing answers until its user file says `state = \"running\"`\n# No key of");
    assert_contains!(run.stdout, "\n    Port 2022\n");
    // The bundle agrees: sshd listens where ssh-config points.
    repo.run_ok(&["build"], 0);
    assert_contains!(scripts_config_map(&repo), "\n    Port 2022\n");
    assert_contains!(repo.read("out/alice/statefulset-alice.yaml"), "containerPort: 2022");
}

/// With `IdentitiesOnly yes` ssh offers only the named file: an entry names the key of
/// `~/.ssh` the box accepts, or none (ssh then offers its default keys and the agent's).
#[test]
fn ssh_config_names_the_key_of_home_that_the_box_accepts() {
    let repo = with_template(SSH_PORT_2022);
    for (file, text) in [
        // Sorted first, but its private key is not here: never named.
        ("a-lost.pub", KEY_ALICE),
        ("id_ed25519", "private"),
        ("id_ed25519.pub", KEY_ALICE_2),
        ("work key", "private"),
        ("work key.pub", &format!("{KEY_ALICE}\n")),
        ("zz", "private"),
        ("zz.pub", "not a key"),
        // A security key's handle, without a .pub beside it.
        ("yubikey", "private"),
    ] {
        repo.write(&format!(".home/.ssh/{file}"), text);
    }
    let identity = |args: &[&str]| {
        let run = repo.run_ok(args, 0);
        assert_eq!(run.stderr, "", "no warning once a key is found");
        run.stdout.lines().filter(|l| l.contains("Identit")).map(str::trim).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(identity(&["ssh-config", "alice"]), "IdentityFile \"~/.ssh/work key\"\nIdentitiesOnly yes");
    assert_eq!(identity(&["ssh-config", "bob"]), "IdentityFile ~/.ssh/id_ed25519\nIdentitiesOnly yes");
    // --identity-file is every box's key, whatever ~/.ssh holds.
    assert_eq!(identity(&["ssh-config", "--identity-file", "~/.ssh/yubikey", "bob"]), "IdentityFile ~/.ssh/yubikey\nIdentitiesOnly yes");

    fs::remove_file(repo.path().join(".home/.ssh/work key")).unwrap();
    let run = repo.run_ok(&["ssh-config", "alice"], 0);
    assert!(!run.stdout.contains("Identit"), "{}", run.stdout);
    assert_contains!(
        run.stderr,
        "warning: no private key in ~/.ssh has its `.pub` among alice's authorized keys: its entry names no key\n = in users/alice.toml\n"
    );
}

#[test]
fn ssh_config_refuses_a_template_without_a_port_named_ssh() {
    let template = "local devbox = (import 'devbox-gen/devbox.libsonnet') + {\n\
        devboxContainer(box):: super.devboxContainer(box) + { ports: [] },\n\
    };\n\
    function(box) devbox.bundle(box)\n";
    let run = with_template(template).run_ok(&["ssh-config", "alice"], 2);
    assert_contains!(run.stderr, "error: the template's StatefulSet has no container port named `ssh`\n = in users/alice.toml\n");
    assert_eq!(run.stdout, "");
}

#[test]
fn secrets_names_the_keys_where_the_template_mounts_them() {
    let template = "local devbox = (import 'devbox-gen/devbox.libsonnet') + {\n\
        secretsMountPath:: '/keys',\n\
        tailscaleAuthKeyKey:: 'authkey',\n\
        podSpec(box):: super.podSpec(box) + { volumes: [\n\
            if v.name == 'ssh-key' then v + { secret+: { items: [\n\
                { key: 'private', path: 'id_ed25519' },\n\
                { key: 'public', path: 'id_ed25519.pub' },\n\
            ] } } else v\n\
            for v in super.volumes\n\
        ] },\n\
    };\n\
    function(box) devbox.bundle(box)\n";
    let repo = with_template(template);
    let run = repo.run_ok(&["secrets", "alice"], 0);
    assert_contains!(run.stdout, "# 1. alice's own GitHub key (ssh.key_secret), mounted at /keys in the box.\n");
    assert_contains!(
        run.stdout,
        "kubectl --namespace devboxes create secret generic alice-ssh \\\n    \
         --from-file=private=\"$HOME/.ssh/devbox_github\" \\\n    \
         --from-file=public=\"$HOME/.ssh/devbox_github.pub\" \\\n    \
         --dry-run=client --output=yaml | kubectl apply --filename=-\n"
    );
    assert_contains!(
        run.stdout,
        "create secret generic tailscale-auth \\\n    --from-file=authkey=\"$HOME/.config/devbox/tailscale-authkey\" \\\n"
    );
    // The archived box's Secrets are those it uses when it runs again.
    let run = repo.run_ok(&["secrets", "bob"], 0);
    assert_contains!(run.stdout, "--from-file=private=");
    assert_contains!(run.stdout, "--from-file=authkey=");
}

#[test]
fn a_users_gpu_without_a_count_takes_the_count_of_defaults() {
    let repo = Repo::new(&format!("{SETTINGS}gpu = {{ type = \"nvidia-tesla-t4\", count = 2 }}\n"))
        .user("alice", &format!("{}\n[gpu]\ntype = \"nvidia-l4\"\n", user_file("alice@example.com", KEY_ALICE)))
        .user("bob", &format!("{}\n[gpu]\ncount = 4\n", user_file("bob@example.com", KEY_ALICE_2)));
    let gpu = |name: &str| {
        let run = repo.run_ok(&["show", "--input", name], 0);
        let resolved: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        resolved["gpu"].clone()
    };
    let whole = |kind: &str, count: u32| serde_json::json!({"type": kind, "count": count, "sharing": null, "clients": null});
    assert_eq!(gpu("alice"), whole("nvidia-l4", 2));
    assert_eq!(gpu("bob"), whole("nvidia-tesla-t4", 4));
}
