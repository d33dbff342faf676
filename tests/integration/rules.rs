//! Every validation rule, with a real bad input, checked through the CLI: exit 2, the message,
//! the file and line, and a byte-identical out/ afterwards. The same cases generate
//! docs/rules.md, so the documented errors are the real ones and cannot drift
//! (`UPDATE_DOCS=1 cargo test --test integration rules` rewrites it).

use std::fmt::Write;

use crate::common::{KEY_ALICE, KEY_ALICE_2, KEY_DSA, KEY_RSA_1024, Repo, SETTINGS, assert_contains, user_file};

struct Case {
    rule: &'static str,
    /// The file to write (relative to the config repo) and its contents.
    file: &'static str,
    contents: String,
    /// Must appear in stderr.
    expect: &'static str,
    /// `file:line:column` the message must point at, when it points into a file.
    at: Option<&'static str>,
}

fn user(extra_top: &str, extra_tables: &str) -> String {
    format!("{extra_top}{}{extra_tables}", user_file("bob@example.com", KEY_ALICE_2))
}

fn cases() -> Vec<Case> {
    let case = |rule, file, contents: String, expect, at| Case { rule, file, contents, expect, at };
    vec![
        case("Names are DNS labels", "users/Bob_Smith.toml", user("", ""), "`Bob_Smith` cannot name a box", None),
        case(
            "Names fit the pod's controller-revision-hash label",
            "users/a-name-that-is-fifty-three-characters-long-and-morexy.toml",
            user("", ""),
            "a box name may have at most 52",
            None,
        ),
        case(
            "Unknown fields suggest the closest known one",
            "users/bob.toml",
            user("stat = \"stopped\"\n", ""),
            "unknown field `stat`",
            Some("users/bob.toml:1:1"),
        ),
        case("Required fields", "users/bob.toml", "state = \"running\"\n".into(), "`email` is missing", Some("users/bob.toml:1:1")),
        case("TOML syntax", "users/bob.toml", "email = \"bob@example.com\n".into(), "invalid basic string", Some("users/bob.toml:1:25")),
        case(
            "Emails",
            "users/bob.toml",
            user("", "").replace("bob@example.com", "bob at example"),
            "is not an email address",
            Some("users/bob.toml:1:9"),
        ),
        case("State", "users/bob.toml", user("state = \"paused\"\n", ""), "`paused` is not a valid `state`", Some("users/bob.toml:1:9")),
        case("Architecture", "users/bob.toml", user("arch = \"x86\"\n", ""), "`x86` is not a valid `arch`", Some("users/bob.toml:1:8")),
        case(
            "Images are pinned",
            "users/bob.toml",
            user("image = \"ubuntu:latest\"\n", ""),
            "`latest` is not a pinned image",
            Some("users/bob.toml:1:9"),
        ),
        case(
            "Image references",
            "users/bob.toml",
            user("image = \"Registry/Devbox\"\n", ""),
            "is not a container image reference",
            Some("users/bob.toml:1:9"),
        ),
        case(
            "Clusters exist",
            "users/bob.toml",
            user("cluster = \"prod\"\n", ""),
            "no cluster named `prod` in devbox.toml",
            Some("users/bob.toml:1:11"),
        ),
        case(
            "Memory quantities",
            "users/bob.toml",
            user("", "\n[resources]\nmemory = \"32GB\"\n"),
            "did you mean `32Gi`?",
            Some("users/bob.toml:7:10"),
        ),
        case(
            "Memory is not counted in thousandths",
            "users/bob.toml",
            user("", "\n[resources]\nmemory = \"512m\"\n"),
            "did you mean `512Mi`?",
            Some("users/bob.toml:7:10"),
        ),
        case(
            "CPU quantities",
            "users/bob.toml",
            user("", "\n[resources]\ncpu = \"four\"\n"),
            "is not a number followed by a unit",
            Some("users/bob.toml:7:7"),
        ),
        case(
            "GPU types",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-tesla-t5\"\n"),
            "did you mean `nvidia-tesla-t4`?",
            Some("users/bob.toml:7:8"),
        ),
        case(
            "GPU types devbox-gen does not know yet",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-x9000-pro\"\n"),
            "`[policy] allow_gpu_types = [\"nvidia-x9000-pro\"]`",
            Some("users/bob.toml:7:8"),
        ),
        case(
            "GPU counts",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-l4\"\ncount = 3\n"),
            "3 GPUs cannot be attached",
            Some("users/bob.toml:8:9"),
        ),
        case(
            "Home volume size",
            "users/bob.toml",
            user("", "\n[home]\nsize = \"500Mi\"\n"),
            "home volume is too small",
            Some("users/bob.toml:7:8"),
        ),
        case(
            "Storage class names",
            "users/bob.toml",
            user("", "\n[home]\nstorage_class = \"Premium SSD\"\n"),
            "is not a valid StorageClass name",
            Some("users/bob.toml:7:17"),
        ),
        case(
            "Shared memory fits in the box's memory",
            "users/bob.toml",
            user("shm = \"8Gi\"\n", ""),
            "`shm = \"8Gi\"` does not fit in the box's 8Gi of memory",
            Some("users/bob.toml:1:7"),
        ),
        case(
            "Shared memory in [defaults] fits in the default memory",
            "devbox.toml",
            format!("{SETTINGS}shm = \"7Gi\"\n"),
            "`shm = \"7Gi\"` leaves 1Gi of the box's 8Gi of memory to everything else",
            Some("devbox.toml:4:7"),
        ),
        case(
            "Shared memory is sized in binary units",
            "users/bob.toml",
            user("shm = \"8G\"\n", ""),
            "did you mean `8Gi`?",
            Some("users/bob.toml:1:7"),
        ),
        case(
            "A shared GPU is one GPU",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-l4\"\ncount = 2\nsharing = \"time-sharing\"\n"),
            "a box with a shared GPU gets one, not 2",
            Some("users/bob.toml:8:9"),
        ),
        case(
            "GPUs shared with MPS are refused",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-l4\"\nsharing = \"mps\"\n"),
            "devbox-gen cannot give a box an MPS-shared GPU",
            Some("users/bob.toml:8:11"),
        ),
        case(
            "Datasets are defined in devbox.toml",
            "users/bob.toml",
            user("datasets = [\"imagenet\"]\n", ""),
            "no dataset named `imagenet` in devbox.toml",
            Some("users/bob.toml:1:13"),
        ),
        case(
            "Dataset claims",
            "devbox.toml",
            format!("{SETTINGS}\n[datasets.imagenet]\nclaim = \"ImageNet RO\"\n"),
            "`ImageNet RO` is not a valid PersistentVolumeClaim name",
            Some("devbox.toml:6:9"),
        ),
        case(
            "Dataset mount paths",
            "devbox.toml",
            format!("{SETTINGS}\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\nmount = \"/storage/imagenet\"\n"),
            "`/storage/imagenet` is inside `/storage`, the home volume",
            Some("devbox.toml:7:9"),
        ),
        case(
            "SSH keys are parsed",
            "users/bob.toml",
            "email = \"bob@example.com\"\n[ssh]\nauthorized_keys = [\"ssh-ed25519 AAAAC3Nza bob@laptop\"]\n".into(),
            "this is not an OpenSSH public key",
            Some("users/bob.toml:3:20"),
        ),
        case(
            "DSA keys are refused",
            "users/bob.toml",
            format!("email = \"bob@example.com\"\n[ssh]\nauthorized_keys = [\"{KEY_DSA}\"]\n"),
            "DSA keys are refused",
            Some("users/bob.toml:3:20"),
        ),
        case(
            "RSA keys have at least 2048 bits",
            "users/bob.toml",
            format!("email = \"bob@example.com\"\n[ssh]\nauthorized_keys = [\"{KEY_RSA_1024}\"]\n"),
            "this RSA key has 1024 bits",
            Some("users/bob.toml:3:20"),
        ),
        case(
            "At least one key",
            "users/bob.toml",
            "email = \"bob@example.com\"\n[ssh]\nauthorized_keys = []\n".into(),
            "no public key: nobody could log in",
            Some("users/bob.toml:3:19"),
        ),
        case(
            "No key twice",
            "users/bob.toml",
            format!("email = \"bob@example.com\"\n[ssh]\nauthorized_keys = [\"{KEY_ALICE_2}\", \"{KEY_ALICE_2}\"]\n"),
            "this key is listed twice",
            None,
        ),
        case(
            "Private keys are refused and not echoed",
            "users/bob.toml",
            "email = \"bob@example.com\"\n[ssh]\nauthorized_keys = [\"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjE\"]\n"
                .into(),
            "users/bob.toml:3:40: this file contains a private key",
            None,
        ),
        case(
            "Key Secret names",
            "users/bob.toml",
            user("", "").replace("[ssh]\n", "[ssh]\nkey_secret = \"Bob's key\"\n"),
            "is not a valid Secret name",
            Some("users/bob.toml:4:14"),
        ),
        case(
            "Tailnet hostnames",
            "users/bob.toml",
            user("", "\n[tailscale]\nhostname = \"Bob's Box\"\n"),
            "is not a valid tailnet hostname",
            Some("users/bob.toml:7:12"),
        ),
        case(
            "Tailnet hostnames are unique",
            "users/bob.toml",
            user("", "\n[tailscale]\nhostname = \"alice-devbox\"\n"),
            "tailnet hostname `alice-devbox` is also used by users/alice.toml",
            Some("users/bob.toml:7:12"),
        ),
        case(
            "Tailnet hostnames are personal",
            "devbox.toml",
            format!("{SETTINGS}\n[defaults.tailscale]\nhostname = \"devbox\"\n"),
            "a tailnet hostname in `[defaults]` would give every box the same name on the tailnet",
            Some("devbox.toml:6:12"),
        ),
        case(
            "Tailnet tags",
            "users/bob.toml",
            user("", "\n[tailscale]\ntags = [\"devbox\"]\n"),
            "tags start with `tag:`",
            Some("users/bob.toml:7:9"),
        ),
        case(
            "Environment variable names",
            "users/bob.toml",
            user("", "\n[env]\n\"MY-VAR\" = \"1\"\n"),
            "is not a portable environment variable name",
            Some("users/bob.toml:7:1"),
        ),
        case(
            "Reserved environment variables",
            "users/bob.toml",
            user("", "\n[env]\nHOME = \"/home/bob\"\n"),
            "`HOME` is set by devbox-gen",
            Some("users/bob.toml:7:8"),
        ),
        case(
            "Secret-looking environment variables",
            "users/bob.toml",
            user("", "\n[env]\nGITHUB_TOKEN = \"ghp_x\"\n"),
            "`GITHUB_TOKEN` looks like a secret, and `[env]` values are committed to Git",
            Some("users/bob.toml:7:16"),
        ),
        case(
            "Environment values a container can start with",
            "users/bob.toml",
            user("", "\n[env]\nSEPARATOR = \"\\u0000\"\n"),
            "`SEPARATOR` holds a NUL character, which no process environment can carry",
            Some("users/bob.toml:7:13"),
        ),
        case(
            "devbox.toml is checked too",
            "devbox.toml",
            format!("namespace = \"Dev Boxes\"\n{SETTINGS}"),
            "is not a valid namespace",
            Some("devbox.toml:1:13"),
        ),
        case(
            "A namespace of the boxes' own",
            "devbox.toml",
            format!("namespace = \"kube-system\"\n{SETTINGS}"),
            "`kube-system` is Kubernetes' own namespace (the `kube-` prefix is reserved), not one for the boxes",
            Some("devbox.toml:1:13"),
        ),
        case(
            "A GitOps engine's namespace is not the boxes' default one",
            "devbox.toml",
            format!(
                "gitops = [\"flux\"]\n{SETTINGS}\n[repo]\nurl = \"https://github.com/acme/devboxes.git\"\n\n[flux]\nnamespace = \"devboxes\"\n"
            ),
            "`devboxes` is the boxes' namespace (`namespace` is not set, so the default), not one for a GitOps engine",
            Some("devbox.toml:10:13"),
        ),
        case(
            "As many GPUs as a node of the type has",
            "users/bob.toml",
            user("", "\n[gpu]\ntype = \"nvidia-tesla-t4\"\ncount = 8\n"),
            "no GKE node has 8 `nvidia-tesla-t4`: its machines come with at most 4",
            Some("users/bob.toml:8:9"),
        ),
        case(
            "Each cluster once",
            "devbox.toml",
            format!(
                "{SETTINGS}\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n\n[[clusters]]\nname = \"staging\"\nserver = \"https://kubernetes.default.svc/\"\n"
            ),
            "cluster `staging` has the API server of cluster `prod`",
            Some("devbox.toml:11:10"),
        ),
        case(
            "A repository URL without credentials",
            "devbox.toml",
            format!("gitops = [\"argocd\"]\n{SETTINGS}\n[repo]\nurl = \"https://ghp_token@github.com/acme/devboxes.git\"\n"),
            "the URL carries credentials, which would be committed to Git",
            Some("devbox.toml:7:7"),
        ),
        case(
            "A uid the API server takes for a pod",
            "devbox.toml",
            format!("{SETTINGS}\n[runtime]\nuid = 2147483648\n"),
            "2147483648 is above 2147483647, the largest uid or gid the API server takes for a pod",
            Some("devbox.toml:6:7"),
        ),
        case(
            "A tailscale image that serves the sidecar's health check",
            "devbox.toml",
            format!("{SETTINGS}\n[tailscale]\nimage = \"ghcr.io/tailscale/tailscale:v1.76.6\"\n"),
            "tailscale `v1.76.6` is older than 1.78, the first that serves the health check the sidecar's probes ask for",
            Some("devbox.toml:6:9"),
        ),
        case(
            "Top-level fields placed under a table",
            "devbox.toml",
            format!("{SETTINGS}namespace = \"devboxes\"\n"),
            "`namespace` is a top-level field",
            Some("devbox.toml:4:1"),
        ),
        case(
            "Metadata server access",
            "devbox.toml",
            format!("{SETTINGS}\n[network]\nmetadata = \"open\"\n"),
            "`open` is not a valid `metadata`",
            Some("devbox.toml:6:12"),
        ),
        case(
            "Quotas are quantities, in quotes",
            "devbox.toml",
            format!("{SETTINGS}\n[quota]\ncpu = 400\nstorage = \"20TB\"\n"),
            "quote it: `cpu = \"400\"`",
            Some("devbox.toml:6:7"),
        ),
        case(
            "The boxes fit the quota",
            "devbox.toml",
            format!("{SETTINGS}\n[quota]\ncpu = \"1\"\n"),
            "`[quota] cpu` is exceeded in namespace `devboxes`: the running boxes request 2.25 CPUs, 1.25 CPUs more than the quota of 1",
            Some("devbox.toml:6:7"),
        ),
        case(
            "Flux needs a Secret to clone over SSH",
            "devbox.toml",
            format!("gitops = [\"flux\"]\n{SETTINGS}\n[repo]\nurl = \"ssh://git@github.com/acme/devboxes.git\"\n"),
            "Flux needs credentials to clone an ssh:// URL, and `[repo]` names no `secret`",
            Some("devbox.toml:7:7"),
        ),
        case(
            "Templates stay inside the config repo",
            "devbox.toml",
            format!("template = \"../shared.jsonnet\"\n{SETTINGS}"),
            "the template must live inside the config repo",
            Some("devbox.toml:1:12"),
        ),
        case(
            "Idle windows are hours and minutes",
            "users/bob.toml",
            user("", "\n[idle]\nafter = \"120\"\n"),
            "a number needs a unit: `\"120m\"` or `\"120h\"`",
            Some("users/bob.toml:7:9"),
        ),
        case(
            "Idle windows are at least 10 minutes",
            "users/bob.toml",
            user("", "\n[idle]\nafter = \"5m\"\n"),
            "`5m` is too short: the box would stop between two commands",
            Some("users/bob.toml:7:9"),
        ),
        case(
            "Working hours are in an IANA time zone",
            "users/bob.toml",
            user("", "\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"europe/berlin\"\nstart = \"08:00\"\nstop = \"19:00\"\n"),
            "did you mean `\"Europe/Berlin\"`?",
            Some("users/bob.toml:10:12"),
        ),
        case(
            "Working hours are HH:MM on a 24-hour clock",
            "users/bob.toml",
            user("", "\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"UTC\"\nstart = \"8am\"\nstop = \"19:00\"\n"),
            "`8am` is not a time of day",
            Some("users/bob.toml:11:9"),
        ),
        case(
            "Working hours end after they begin",
            "users/bob.toml",
            user("", "\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"UTC\"\nstart = \"19:00\"\nstop = \"08:00\"\n"),
            "working hours would end (08:00) before they begin (19:00)",
            Some("users/bob.toml:12:8"),
        ),
        case(
            "Working days are named once",
            "users/bob.toml",
            user(
                "",
                "\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"mon\"]\nstart = \"08:00\"\nstop = \"19:00\"\n",
            ),
            "`mon` is listed twice",
            Some("users/bob.toml:11:23"),
        ),
        case(
            "Working hours need an idle window",
            "users/bob.toml",
            user("", "\n[schedule]\ntimezone = \"UTC\"\nstart = \"08:00\"\nstop = \"19:00\"\n"),
            "working hours need an idle window",
            Some("users/bob.toml:6:2"),
        ),
        case(
            "A box with working hours has a name its wake CronJob can carry",
            "users/a-name-of-forty-eight-characters-with-hours-wxyz.toml",
            user("", "\n[idle]\nafter = \"1h\"\n\n[schedule]\ntimezone = \"UTC\"\nstart = \"08:00\"\nstop = \"19:00\"\n"),
            "would have 53 characters, and the API server refuses a CronJob name longer than 52",
            Some("users/a-name-of-forty-eight-characters-with-hours-wxyz.toml:9:2"),
        ),
        case(
            "Owner user prefixes",
            "devbox.toml",
            format!("{SETTINGS}\n[owners]\nallow = [\"scale\"]\nuser_prefix = \"oidc: \"\n"),
            "`oidc: ` is not a user name prefix",
            Some("devbox.toml:7:15"),
        ),
        case(
            "A field in the wrong table is named with its table",
            "users/bob.toml",
            user("cpu = \"4\"\n", ""),
            "`cpu` belongs in `[resources]`",
            Some("users/bob.toml:1:1"),
        ),
        case("users/ holds user files", "users/notes.txt", "hi\n".into(), "users/ may only hold one `NAME.toml` file per person", None),
        case(
            "A home volume never shrinks (against out/)",
            "users/alice.toml",
            format!("{}\n[home]\nsize = \"10Gi\"\n", user_file("alice@example.com", KEY_ALICE)),
            "the home volume of `alice` would shrink from 50Gi to 10Gi",
            Some("users/alice.toml:7:8"),
        ),
        case(
            "A home volume keeps its storage class (against out/)",
            "users/alice.toml",
            format!("{}\n[home]\nstorage_class = \"premium-rwo\"\n", user_file("alice@example.com", KEY_ALICE)),
            "the storage class of `alice`'s home volume would change from the cluster default to premium-rwo",
            Some("users/alice.toml:7:17"),
        ),
    ]
}

#[test]
fn every_rule_exits_2_points_at_the_line_and_leaves_out_untouched() {
    let mut doc = String::from(
        "# Validation rules\n\nGenerated by `tests/integration/rules.rs` from the real output of `devbox-gen build`;\n\
         do not edit (`UPDATE_DOCS=1 cargo test --test integration rules` rewrites it).\n\
         Every case starts from a valid config repo with `users/alice.toml`, writes the file\n\
         shown, and checks: exit code 2, the message, the file:line:column, and that `out/` is\n\
         byte-for-byte unchanged.\n",
    );
    for case in cases().into_iter().filter(|c| !c.expect.is_empty()) {
        let repo = Repo::with_alice();
        repo.run_ok(&["build"], 0);
        let before = repo.out_snapshot();
        repo.write(case.file, &case.contents);
        let run = repo.run(&["build"]);
        assert_eq!(run.code, 2, "{}: exit {}\n{}", case.rule, run.code, run.stderr);
        assert_contains!(run.stderr, case.expect, "{}", case.rule);
        if let Some(at) = case.at {
            assert_contains!(run.stderr, &format!("┌─ {at}"), "{}: expected it at {at}", case.rule);
        }
        assert_eq!(repo.out_snapshot(), before, "{}: out/ changed", case.rule);
        let _ = write!(doc, "\n## {}\n\n`{}`:\n\n```toml\n{}```\n\n```text\n{}```\n", case.rule, case.file, case.contents, run.stderr);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(committed == doc, "docs/rules.md is stale: run `UPDATE_DOCS=1 cargo test --test integration rules`");
}

#[test]
fn a_nul_byte_is_a_toml_error_not_a_panic() {
    let repo = Repo::with_alice();
    repo.write("users/bob.toml", "email = \"b\u{0}\"");
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "users/bob.toml:1:");
    let _ = KEY_ALICE;
}

#[test]
fn the_shared_tailnet_auth_key_cannot_be_a_box_key_secret() {
    let repo = Repo::with_alice();
    repo.write("users/bob.toml", &user("", "").replace("[ssh]\n", "[ssh]\nkey_secret = \"tailscale-auth\"\n"));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "`tailscale-auth` is the tailnet auth key Secret shared by every box");
    assert_contains!(run.stderr, "┌─ users/bob.toml:4:14");
}

/// A box's key Secret is mounted at /secrets in the person's container: a box's tailnet state
/// Secret there would hand over that box's node key, its identity in the tailnet.
#[test]
fn no_box_mounts_a_tailnet_state_secret() {
    let repo = Repo::with_alice();
    repo.write("users/bob.toml", &user("", "").replace("[ssh]\n", "[ssh]\nkey_secret = \"alice-tailnet\"\n"));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "`alice-tailnet` is users/alice.toml's tailnet state Secret, which holds its tailnet node key");
    assert_contains!(run.stderr, "┌─ users/bob.toml:4:14");
    repo.write("users/bob.toml", &user("", "").replace("[ssh]\n", "[ssh]\nkey_secret = \"bob-tailnet\"\n"));
    let run = repo.run_ok(&["validate"], 2);
    assert_contains!(run.stderr, "`bob-tailnet` is this box's own tailnet state Secret");
    // The name the rule knows is the one the template gives the Secret.
    repo.write("users/bob.toml", &user("", ""));
    repo.run_ok(&["build"], 0);
    assert_contains!(repo.read("out/bob/secret-bob-tailnet.yaml"), "\n  name: bob-tailnet\n");
}
