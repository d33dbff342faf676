//! Custom templates: the documented example (docs/examples/templates/devbox.jsonnet) builds,
//! and the check stage holds a custom template to the same rules as the embedded one.

use crate::common::{Repo, assert_contains, assert_not_contains};

fn with_template(template: &str) -> Repo {
    let repo = Repo::with_alice();
    repo.use_template(template);
    repo
}

#[test]
fn the_documented_example_adds_a_label_and_a_sidecar() {
    let example = include_str!("../../docs/examples/templates/devbox.jsonnet");
    let repo = with_template(example);
    repo.run_ok(&["build"], 0);
    let statefulset = repo.read("out/alice/statefulset-alice.yaml");
    assert_contains!(statefulset, "    team: ml-platform\n");
    assert_contains!(statefulset, "        name: code-server\n");
    assert_contains!(statefulset, "        name: tailscale\n", "the default sidecar stays");
}

/// Annotations that make Argo CD or Flux delete and create the home claim again, beside the
/// protections that keep them from pruning it: the protections alone are not enough.
#[test]
fn a_template_cannot_have_the_home_volume_recreated() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           homeVolume+: { metadata+: { annotations+: {\n\
             'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false,Force=true,Replace=true',\n\
             'argocd.argoproj.io/hook': 'PreSync',\n\
             'kustomize.toolkit.fluxcd.io/force': 'enabled',\n\
           } } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    for expected in [
        "has `Force=true`: Argo CD would delete and create it again",
        "has `Replace=true`: Argo CD would replace the bound claim",
        "must not be an Argo CD hook (`argocd.argoproj.io/hook`)",
        "must not have `kustomize.toolkit.fluxcd.io/force: enabled`",
    ] {
        assert_contains!(run.stderr, expected);
    }
    assert!(!repo.path().join("out").exists());
}

/// The home volume and its annotations intact, but the pod mounting something else in its
/// place (an emptyDir, another box's claim) or nothing: every file written would be lost.
#[test]
fn a_template_cannot_mount_something_else_in_place_of_the_home() {
    for (replacement, what) in [
        ("{ name: 'home', emptyDir: {} }", "an emptyDir"),
        ("{ name: 'home', persistentVolumeClaim: { claimName: 'dave-home' } }", "another box's claim"),
    ] {
        let repo = with_template(&format!(
            "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
             function(box) devbox.bundle(box) + {{\n\
               statefulSet+: {{ spec+: {{ template+: {{ spec+: {{\n\
                 volumes: [if v.name == 'home' then {replacement} else v for v in super.volumes],\n\
               }} }} }} }},\n\
             }}\n"
        ));
        let run = repo.run_ok(&["build"], 2);
        assert_contains!(
            run.stderr,
            "StatefulSet/devboxes/alice: its pod does not mount the home volume `alice-home` in a container",
            "{what}"
        );
    }
}

/// A claim's spec cannot change once it exists, but for its size: a template that gives the
/// existing homes another access mode or volume mode is refused, as a shrink is, since every
/// sync of every box would fail.
#[test]
fn a_template_cannot_change_what_an_existing_home_volume_cannot() {
    let library = "local devbox = import 'devbox-gen/devbox.libsonnet';\n";
    let repo = with_template(&format!("{library}function(box) devbox.bundle(box)\n"));
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    repo.use_template(&format!(
        "{library}function(box) devbox.bundle(box) + {{ homeVolume+: {{ spec+: {{ accessModes: ['ReadWriteOncePod'], volumeMode: 'Block' }} }} }}\n"
    ));
    for args in [&["build"][..], &["diff"]] {
        let run = repo.run_ok(args, 2);
        assert_contains!(
            run.stderr,
            "error: the home volume of `alice` would change `accessModes` (`[\"ReadWriteOnce\"]` → `[\"ReadWriteOncePod\"]`), `volumeMode` (`\"Filesystem\"` → `\"Block\"`)"
        );
        assert_contains!(run.stderr, "Kubernetes refuses any change to a claim's spec but its size");
    }
    assert!(repo.out_snapshot() == before, "out/ changed");
    // Spelling out the default is no change.
    repo.use_template(&format!(
        "{library}function(box) devbox.bundle(box) + {{ homeVolume+: {{ spec+: {{ volumeMode: 'Filesystem' }} }} }}\n"
    ));
    repo.run_ok(&["build"], 0);
    // A class or size the template sets is the template's doing, not devbox.toml's.
    repo.use_template(&format!(
        "{library}function(box) devbox.bundle(box) + {{ homeVolume+: {{ spec+: {{ storageClassName: 'premium-rwo', resources: {{ requests: {{ storage: '10Gi' }} }} }} }} }}\n"
    ));
    let before = repo.out_snapshot();
    for args in [&["build"][..], &["diff"]] {
        let run = repo.run_ok(args, 2);
        assert_contains!(
            run.stderr,
            "error: templates/devbox.jsonnet would change `alice`'s home volume: 50Gi → 10Gi\n = in templates/devbox.jsonnet\n"
        );
        assert_contains!(
            run.stderr,
            "help: the template sets it: users/alice.toml and devbox.toml ask for `50Gi` as `home.size`, the template renders `10Gi`"
        );
        assert_contains!(
            run.stderr,
            "help: the template sets it: users/alice.toml and devbox.toml ask for none (the cluster's default) as `home.storage_class`, the template renders `premium-rwo`"
        );
        assert_not_contains!(run.stderr, "[defaults]");
    }
    assert!(repo.out_snapshot() == before, "out/ changed");
}

/// A template that binds a ClusterRole or drops the NetworkPolicy changes who can do what:
/// `diff` says so, at the access level, instead of "Risks: none".
#[test]
fn binding_a_cluster_role_or_dropping_the_network_policy_is_an_access_risk() {
    let library = "local devbox = import 'devbox-gen/devbox.libsonnet';\n";
    let repo = with_template(&format!("{library}function(box) devbox.bundle(box)\n"));
    repo.run_ok(&["build"], 0);
    repo.use_template(&format!(
        "{library}function(box) devbox.bundle(box) + {{\n\
           networkPolicy: null,\n\
           admin: {{ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: {{ name: box.name + '-admin' }},\n\
                    roleRef: {{ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }},\n\
                    subjects: [{{ kind: 'ServiceAccount', name: box.name, namespace: box.namespace }}] }},\n\
         }}\n"
    ));
    assert_eq!(crate::common::risks(&repo), crate::common::pairs(&[("cluster-role-bound", "alice"), ("network-policy-removed", "alice")]));
    let run = repo.run_ok(&["diff"], 1);
    assert_contains!(
        run.stdout,
        "ACCESS   alice: ClusterRoleBinding binds ClusterRole `cluster-admin` to ServiceAccount `devboxes/alice`, in every namespace of the cluster\n"
    );
    assert_contains!(run.stdout, "ACCESS   alice: NetworkPolicy `alice` is removed: the box's network is no longer restricted\n");
}

/// The library's promise: an optional component a box lacks is hidden, not absent, so a mix-in
/// patching it works for every box, archived ones included (whose components are all hidden,
/// the hidden ones too).
#[test]
fn patching_an_optional_component_works_for_an_archived_box() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           idleRole+: { metadata+: { labels+: { team: 'ml' } } },\n\
           wakeCronJob+: { metadata+: { labels+: { team: 'ml' } } },\n\
           ownerRole+: { metadata+: { labels+: { team: 'ml' } } },\n\
         }\n",
    );
    repo.write(
        "users/alice.toml",
        &format!("state = \"archived\"\n{}", crate::common::user_file("alice@example.com", crate::common::KEY_ALICE)),
    );
    repo.run_ok(&["build"], 0);
    let files: Vec<String> = crate::common::files_under(&repo.path().join("out/alice"))
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["kustomization.yaml", "persistentvolumeclaim-alice-home.yaml"], "an archived box keeps its home only");
    // A component the template adds is emitted in every state, unless the template says not.
    repo.use_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { extra: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: box.name + '-x' } } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "an archived box keeps only its home volume, but the template emitted more: ConfigMap/alice-x. Add a component only to boxes that run, like `[if box.state != 'archived' then 'extra']: { ... }`"
    );
    // A template that emits nothing: the home volume is missing, and nothing is "more".
    repo.use_template("function(box) {}\n");
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "no home volume: the bundle needs a PersistentVolumeClaim");
    assert_not_contains!(run.stderr, "emitted more");
}

#[test]
fn a_template_cannot_opt_out_of_the_safety_rules() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           homeVolume+: { metadata+: { name: 'home-' + box.name, annotations: {} } },\n\
           statefulSet+: { spec+: { template+: { spec+: { hostNetwork: true } } } },\n\
           secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' }, stringData: { k: 'v' } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    for expected in [
        "templates/devbox.jsonnet produced an invalid bundle for users/alice.toml",
        "the home volume is named `home-alice`; it must be `alice-home`",
        "Prune=false,Delete=false",
        "hostNetwork must not be used",
        "Secrets must never carry data here",
    ] {
        assert_contains!(run.stderr, expected);
    }
    assert!(!repo.path().join("out").exists());
}

/// Every pod is held to rule 5, whatever kind carries it and whichever level sets what: a
/// CronJob's pod and a bare Pod as well as the StatefulSet's, and a container's own
/// securityContext over the pod's.
#[test]
fn no_pod_of_any_kind_runs_as_root_or_privileged() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         local root = devbox.restrictedSecurityContext + { runAsNonRoot: false, runAsUser: 0 };\n\
         local pod = { automountServiceAccountToken: false, hostPID: true,\n\
                       containers: [{ name: 'x', image: 'busybox:1.36', securityContext: root }] };\n\
         function(box) devbox.bundle(box) + {\n\
           cron: { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: box.name + '-cron', namespace: box.namespace },\n\
                   spec: { schedule: '0 * * * *', jobTemplate: { spec: { template: { spec: pod { restartPolicy: 'Never' } } } } } },\n\
           pod: { apiVersion: 'v1', kind: 'Pod', metadata: { name: box.name + '-pod', namespace: box.namespace }, spec: pod },\n\
           statefulSet+: { spec+: { template+: { spec+: { containers+: [\n\
             { name: 'rootly', image: 'busybox:latest', securityContext: root } ] } } } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    for expected in [
        "CronJob/devboxes/alice-cron: hostPID must not be used",
        "CronJob/devboxes/alice-cron: container `x` must set runAsNonRoot",
        "CronJob/devboxes/alice-cron: container `x` runs as uid 0 (runAsUser: 0): no container of a box runs as root",
        "Pod/devboxes/alice-pod: hostPID must not be used",
        "StatefulSet/devboxes/alice: container `rootly` must set runAsNonRoot",
        "StatefulSet/devboxes/alice: container `rootly` runs `busybox:latest`, which is not pinned",
    ] {
        assert_contains!(run.stderr, expected);
    }
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_jsonnet_error_shows_the_template_location_once_for_all_users() {
    let repo = with_template("function(box) { x: error 'boom ' + box.name }\n");
    repo.write("users/bob.toml", &crate::common::user_file("bob@example.com", crate::common::KEY_ALICE_2));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: templates/devbox.jsonnet failed for users/alice.toml and users/bob.toml\n");
    // The snippet is the template's, where the error statement is; the user files are named above.
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:1:20\n");
    assert_contains!(run.stderr, "1 │ function(box) { x: error 'boom ' + box.name }\n");
    assert_contains!(run.stderr, "│                    ^^^^^ error statement\n");
    assert_contains!(run.stderr, "boom alice");
    assert!(!run.stderr.contains("in users/"), "{}", run.stderr);
}

/// jrsonnet gives a missing field no place; the one `.field` in the template that asks for it is
/// the place, and with two, no place is guessed.
#[test]
fn a_misspelt_field_is_shown_where_the_template_asks_for_it() {
    let template = "function(box) {\n  x: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: box.nmae } },\n}\n";
    let run = with_template(template).run_ok(&["build"], 2);
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:2:67\n");
    assert_contains!(run.stderr, "^^^^ the only `.nmae` in the template\n");
    assert_contains!(run.stderr, "no such field: nmae");
    assert_contains!(run.stderr, "There is a field with similar name present: name");

    let twice = template.replace("name: box.nmae", "name: box.nmae + box['nmae']");
    let run = with_template(&twice).run_ok(&["build"], 2);
    assert_contains!(run.stderr, "no such field: nmae");
    assert!(!run.stderr.contains("┌─ templates/devbox.jsonnet"), "two places ask for it: none is shown\n{}", run.stderr);
}

/// jrsonnet's message is shown as lines, never with its newlines escaped into one, and its trace
/// told once, however deep a recursion goes.
#[test]
fn a_jsonnet_message_reads_as_lines_with_its_trace_summed_up() {
    let template = "local f(x) = f(x + 1);\nfunction(box) { x: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: f(1) } } }\n";
    let run = with_template(template).run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "help: stack overflow, try to reduce recursion: the template calls itself without end, or deeper than jrsonnet allows\n"
    );
    assert_contains!(run.stderr, "help: jsonnet trace, innermost first: templates/devbox.jsonnet:1:15-21: function <f> call (×");
    assert!(!run.stderr.contains("\\n"), "{}", run.stderr);
    assert!(!run.stderr.contains("--max-stack"), "not a flag of devbox-gen\n{}", run.stderr);
}

/// An import is evaluated when its value is needed, once per box: jrsonnet gives it no place,
/// and names the importing file by its absolute path.
#[test]
fn an_import_that_is_not_there_is_shown_at_the_import() {
    let template =
        "function(box) { x: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: box.name }, data: { a: importstr 'lib/a.txt' } } }\n";
    let run = with_template(template).run_ok(&["build"], 2);
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:1:110\n");
    assert_contains!(run.stderr, "`lib/a.txt` is not there\n");
    assert_contains!(run.stderr, "help: can't resolve lib/a.txt from templates/devbox.jsonnet\n");
    // An absolute path names another file on every machine: refused, at the import.
    let absolute = template.replace("lib/a.txt", "/etc/hostname");
    let run = with_template(&absolute).run_ok(&["build"], 2);
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:1:110\n");
    assert_contains!(run.stderr, "^^^^^^^^^^^^^^^ an absolute path\n");
    assert_contains!(run.stderr, "cannot import /etc/hostname: an absolute path makes the build depend on the machine");
    // Nor anything else outside the repository, however it is reached: the CI runner's
    // environment would land in out/ and in the diff posted on the pull request.
    let climbing = template.replace("lib/a.txt", "../../../../../../../../proc/self/environ");
    let run = with_template(&climbing).run_ok(&["build"], 2);
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:1:110\n");
    assert_contains!(run.stderr, " outside the repository\n");
    assert_contains!(run.stderr, "cannot import ../../../../../../../../proc/self/environ: it is outside the repository");
    let repo = with_template(&template.replace("lib/a.txt", "../lib/link.txt"));
    std::fs::create_dir(repo.path().join("lib")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", repo.path().join("lib/link.txt")).unwrap();
    assert_contains!(repo.run_ok(&["build"], 2).stderr, "cannot import ../lib/link.txt: it is outside the repository");
    assert!(!repo.path().join("out").exists());
    // Inside, the file is read (this template then fails for want of a StatefulSet).
    std::fs::remove_file(repo.path().join("lib/link.txt")).unwrap();
    std::fs::write(repo.path().join("lib/link.txt"), "inside\n").unwrap();
    let run = repo.run_ok(&["build"], 2);
    assert_not_contains!(run.stderr, "cannot import");
    assert_contains!(run.stderr, "a running box needs exactly one StatefulSet");
    // In Git, the bound is the Git repository: a config repo in a directory of a larger one
    // may share its jsonnet.
    let monorepo = tempfile::tempdir().unwrap();
    std::fs::create_dir(monorepo.path().join(".git")).unwrap();
    std::fs::write(monorepo.path().join("shared.txt"), "shared\n").unwrap();
    let inner = Repo::at(tempfile::tempdir_in(monorepo.path()).unwrap());
    inner.write("devbox.toml", &repo.read("devbox.toml"));
    inner.write("users/alice.toml", &repo.read("users/alice.toml"));
    inner.write("templates/devbox.jsonnet", &template.replace("lib/a.txt", "../../shared.txt"));
    let run = inner.run_ok(&["build"], 2);
    assert_not_contains!(run.stderr, "cannot import");
    assert_contains!(run.stderr, "a running box needs exactly one StatefulSet");
    // But never Git's own directory: actions/checkout keeps the job's token in .git/config.
    std::fs::write(monorepo.path().join(".git/config"), "[http]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n").unwrap();
    inner.write("templates/devbox.jsonnet", &template.replace("lib/a.txt", "../../.git/config"));
    assert_contains!(inner.run_ok(&["build"], 2).stderr, "cannot import ../../.git/config: it is outside the repository");
}

/// devbox-gen passes the box by name (`box`), as Tanka passes top-level arguments; a function
/// of another parameter is one error about the template, not one per user file.
#[test]
fn a_template_function_without_a_box_parameter_cannot_be_loaded() {
    for (signature, shown) in [("function(user)", "(user)"), ("function(box, team)", "(box, team)"), ("function()", "()")] {
        let run = with_template(&format!("{signature} {{}}\n")).run_ok(&["build"], 2);
        assert_contains!(run.stderr, "error: templates/devbox.jsonnet cannot be loaded\n");
        assert_contains!(
            run.stderr,
            &format!(
                "must take one parameter, named `box` (devbox-gen passes each box by that name), like `function(box) {{ ... }}`; it takes {shown}\n"
            )
        );
        assert!(!run.stderr.contains("users/alice.toml"), "{}", run.stderr);
    }
    with_template("function(box, team='ml') {}\n").run_ok(&["build"], 2); // no home volume, but loaded
}

/// A template that does not parse fails before any box is involved: one error, at the place in
/// the template (byte offsets after a multi-byte character still land on the right column), and
/// no user file blamed.
#[test]
fn a_template_that_does_not_parse_is_one_error_at_its_place_blaming_no_user() {
    let repo = with_template("// Grüße\nfunction(box) { a: { kind: 'ConfigMap' }\n");
    repo.write("users/bob.toml", &crate::common::user_file("bob@example.com", crate::common::KEY_ALICE_2));
    let run = repo.run_ok(&["build"], 2);
    assert_eq!(run.stderr.lines().filter(|line| line.starts_with("error: ")).count(), 2, "{}", run.stderr);
    assert_contains!(run.stderr, "error: templates/devbox.jsonnet cannot be loaded\n");
    assert_contains!(run.stderr, "┌─ templates/devbox.jsonnet:2:41\n");
    assert_contains!(run.stderr, "^ syntax error: expected '}', got end of file\n");
    assert_contains!(run.stderr, "help: no box was rendered: fix the template and build again\n");
    assert!(!run.stderr.contains("users/"), "{}", run.stderr);
    assert!(!repo.path().join("out").exists());

    repo.write("templates/devbox.jsonnet", "{ apiVersion: 'v1' }\n");
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: templates/devbox.jsonnet cannot be loaded\n");
    assert_contains!(run.stderr, "it evaluated to object");
}

#[test]
fn unknown_fields_in_objects_are_errors() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { service+: { spec+: { clusterIp: 'None' } } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "unknown field `spec.clusterIp`");
}

#[test]
fn a_home_volume_in_an_earlier_sync_wave_than_its_statefulset_is_refused() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           homeVolume+: { metadata+: { annotations+: { 'argocd.argoproj.io/sync-wave': '-1' } } },\n\
           configMap+: { metadata+: { annotations+: { 'argocd.argoproj.io/sync-wave': 'early' } } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    for expected in [
        "PersistentVolumeClaim/devboxes/alice-home is in Argo CD sync wave -1, before StatefulSet/devboxes/alice (wave 0) that mounts it",
        "(argoproj/argo-cd#12840)",
        "ConfigMap/devboxes/alice-devbox: `argocd.argoproj.io/sync-wave: early` is not an integer",
    ] {
        assert_contains!(run.stderr, expected);
    }
    assert!(!repo.path().join("out").exists());
}

/// jrsonnet-stdlib is patched in vendor/ to hash with the 0.10 RustCrypto crates (the ones
/// ssh-key already brings); these are the FIPS 180/202 and RFC 1321 vectors for "abc", so a
/// patch that changed a result would fail here.
#[test]
fn the_patched_stdlib_hashes_match_the_published_test_vectors() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           statefulSet+: { metadata+: { annotations+: {\n\
             'example.com/md5': std.md5('abc'),\n\
             'example.com/sha1': std.sha1('abc'),\n\
             'example.com/sha256': std.sha256('abc'),\n\
             'example.com/sha512': std.sha512('abc'),\n\
             'example.com/sha3': std.sha3('abc'),\n\
           } } },\n\
         }\n",
    );
    repo.run_ok(&["build"], 0);
    let statefulset = repo.read("out/alice/statefulset-alice.yaml");
    for expected in [
        "example.com/md5: 900150983cd24fb0d6963f7d28e17f72\n",
        "example.com/sha1: a9993e364706816aba3e25717850c26c9cd0d89d\n",
        "example.com/sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
        "example.com/sha512: ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n",
        "example.com/sha3: b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e\
         10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0\n",
    ] {
        assert_contains!(statefulset, expected);
    }
}

#[test]
fn a_template_error_naming_each_user_is_reported_once_for_all_of_them() {
    let repo = with_template("function(box) { x: error 'no GPU quota for ' + box.name + '-home' }\n");
    for user in ["bob", "carol", "dave"] {
        repo.write(&format!("users/{user}.toml"), &crate::common::user_file(&format!("{user}@example.com"), crate::common::KEY_ALICE_2));
    }
    let run = repo.run_ok(&["build"], 2);
    assert_eq!(run.stderr.matches("error: templates/devbox.jsonnet failed").count(), 1, "{}", run.stderr);
    assert_contains!(
        run.stderr,
        "error: templates/devbox.jsonnet failed for 4 user files (users/alice.toml, users/bob.toml, users/carol.toml and 1 more)\n"
    );
    assert_contains!(run.stderr, "no GPU quota for alice-home");
    assert_contains!(run.stderr, "help: the message above is users/alice.toml's; the other user files fail the same way");
    assert!(run.stderr.ends_with("error: nothing under out/ was changed\n"), "{}", run.stderr);
}

/// With a CPU quota, one box is rendered first to measure what pods request beyond their
/// `resources`; a template that fails there still names every user file it fails for.
#[test]
fn a_template_failing_while_the_quota_is_measured_names_every_user_file() {
    let repo = with_template("function(box) { x: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: box.nmae } } }\n");
    let settings = repo.read("devbox.toml");
    repo.write("devbox.toml", &format!("{settings}\n[quota]\ncpu = \"64\"\n"));
    repo.write("users/bob.toml", &crate::common::user_file("bob@example.com", crate::common::KEY_ALICE_2));
    for command in [&["build"][..], &["build", "--check"], &["validate"]] {
        let run = repo.run_ok(command, 2);
        assert_contains!(run.stderr, "error: templates/devbox.jsonnet failed for users/alice.toml and users/bob.toml\n");
        assert_contains!(run.stderr, "no such field: nmae");
    }
    assert!(!repo.path().join("out").exists());
}

/// Kubernetes' classic: an env value written as a number. The API server refuses the object;
/// the report says which field, not only which type serde expected.
#[test]
fn a_field_of_the_wrong_type_is_named_by_its_path() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { statefulSet+: { spec+: { template+: { spec+: {\n\
           containers: [super.containers[0] + { env+: [{ name: 'PORT', value: 8080 }] }] + super.containers[1:],\n\
         } } } } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "StatefulSet/devboxes/alice: not a valid StatefulSet at `spec.template.spec.containers[0].env[3].value`: invalid type: integer `8080`, expected a string"
    );
    assert!(!repo.path().join("out").exists());
}

#[test]
fn a_misspelt_field_in_an_emitted_object_gets_the_field_meant() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { statefulSet+: { spec+: { replica: 1 } } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "help: StatefulSet/devboxes/alice: unknown field `spec.replica`: did you mean `replicas`?");
    assert!(!repo.path().join("out").exists());
    // The same mistake in every bundle is one error, naming every user file.
    repo.write("users/bob.toml", &crate::common::user_file("bob@example.com", crate::common::KEY_ALICE_2));
    let run = repo.run_ok(&["build"], 2);
    assert_eq!(run.stderr.matches("error: templates/devbox.jsonnet produced an invalid bundle").count(), 1, "{}", run.stderr);
    assert_contains!(run.stderr, "users/alice.toml");
    assert_contains!(run.stderr, "users/bob.toml");
    assert_eq!(run.stderr.matches("did you mean `replicas`?").count(), 1, "{}", run.stderr);
}

/// A custom template that leaves out the scripts ConfigMap still mounts it: the pod would stay
/// in ContainerCreating. Another tool may create a ConfigMap, so it is a warning, told once for
/// every box alike, and told again by the builds that reuse the boxes without rendering them.
#[test]
fn a_pod_that_uses_a_config_map_nothing_emits_is_a_warning_told_once_for_all_users() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { scripts:: null }\n",
    );
    repo.write("users/bob.toml", &crate::common::user_file("bob@example.com", crate::common::KEY_ALICE_2));
    let first = repo.run_ok(&["build"], 0);
    let warnings = |stderr: &str| stderr.matches("warning: ").count();
    for expected in [
        "warning: templates/devbox.jsonnet renders a pod that may never start, for users/alice.toml and users/bob.toml",
        "StatefulSet/devboxes/alice uses ConfigMap `devbox-scripts-",
        "which the build does not emit: its pod stays in ContainerCreating until something else creates",
        "as found in users/alice.toml's bundle; the others are alike",
    ] {
        assert_contains!(first.stderr, expected);
    }
    assert_eq!(warnings(&first.stderr), 1, "{}", first.stderr);
    let again = repo.run_ok(&["build"], 0);
    assert_contains!(again.stderr, "out/ is up to date");
    assert_eq!(warnings(&again.stderr), 1, "a kept box keeps its warning: {}", again.stderr);

    // Marked optional, the pod starts without it: nothing to say.
    repo.use_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { scripts:: null } + { statefulSet+: { spec+: { template+: { spec+: {\n\
           volumes: [\n\
             if v.name == 'config' then v { projected+: { sources: [s + (if 'configMap' in s then { configMap+: { optional: true } } else {}) for s in super.sources] } } else v\n\
             for v in super.volumes\n\
           ],\n\
         } } } } }\n",
    );
    let optional = repo.run_ok(&["build"], 0);
    assert_eq!(warnings(&optional.stderr), 0, "{}", optional.stderr);
}

/// A pod annotation a variable is read from, replaced away by a template (`annotations:`
/// where `annotations+:` was meant): the API server would accept the StatefulSet and the
/// kubelet set `TS_KUBE_SECRET` to an empty string, losing the box's tailnet identity at every
/// restart. The check stage refuses it; adding to the annotations is fine.
#[test]
fn a_variable_read_from_a_pod_annotation_the_template_replaced_is_refused() {
    let replaced = "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           statefulSet+: { spec+: { template+: { metadata+: { annotations: { team: 'ml' } } } } },\n\
         }\n";
    let run = with_template(replaced).run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "container `tailscale` sets `TS_KUBE_SECRET` from the pod's annotation `devbox-gen.dev/tailnet-state`, which the pod template does not have"
    );
    let added = with_template(&replaced.replace("annotations: {", "annotations+: {"));
    added.run_ok(&["build"], 0);
    assert_contains!(added.read("out/alice/statefulset-alice.yaml"), "        team: ml\n");
}

/// A custom template's CronJob is held to the API server's 52 characters after rendering (the
/// embedded template's wake CronJob is refused earlier, at the user file): the help names the
/// two things a template author can change, not the embedded template's suffix.
#[test]
fn a_custom_cron_job_name_too_long_for_its_jobs_is_refused() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           backup: { apiVersion: 'batch/v1', kind: 'CronJob',\n\
             metadata: { name: box.name + '-a-nightly-backup-of-the-home-volume-to-gcs-bucket', namespace: box.namespace },\n\
             spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { spec: {\n\
               restartPolicy: 'Never', automountServiceAccountToken: false,\n\
               securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },\n\
               containers: [{ name: 'backup', image: 'busybox:1.36', securityContext: devbox.restrictedSecurityContext }] } } } } } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "CronJob `alice-a-nightly-backup-of-the-home-volume-to-gcs-bucket` has a name of 55 characters, and the API server refuses a CronJob name longer than 52 (its Jobs' names add 11): shorten the suffix the template adds to the box's name, or rename the user file"
    );
    assert!(!repo.path().join("out").exists());
}

/// A file is named by kind and name: two objects that differ only in their namespace would be
/// one file, the other silently lost, and kustomize refuses a kustomization.yaml that lists a
/// file twice, so every sync of the bundle would fail.
#[test]
fn two_objects_of_one_file_name_are_refused() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { again: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: box.name + '-devbox' }, data: {} } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "ConfigMap/alice-devbox and ConfigMap/devboxes/alice-devbox would both be written to configmap-alice-devbox.yaml"
    );
    assert!(!repo.path().join("out").exists());
}

/// Whatever makes an object too long for the annotation Argo CD's client-side apply keeps (and
/// `kubectl apply`), a template's long variable included, is refused before anything is written.
#[test]
fn an_object_too_long_to_apply_is_refused() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + { statefulSet+: { spec+: { template+: { spec+: { containers: [\n\
           super.containers[0] { env+: [{ name: 'LONG', value: std.join('', std.makeArray(270000, function(i) 'x')) }] },\n\
         ] + super.containers[1:] } } } } }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "StatefulSet/devboxes/alice: is 269 KiB as JSON");
    assert_contains!(
        run.stderr,
        "KiB as JSON: Argo CD's client-side apply copies it into the `kubectl.kubernetes.io/last-applied-configuration` annotation"
    );
    assert_contains!(run.stderr, "a long `[env]` value belongs in a file in the image or the home volume");
    assert!(!repo.path().join("out").exists());
}

/// `template` names a file: a missing one, a directory or a link is told as what it is, at the
/// line of devbox.toml.
#[test]
fn a_template_that_is_not_a_file_is_told_as_what_it_is() {
    let repo = with_template("function(box) {}\n");
    std::fs::remove_file(repo.path().join("templates/devbox.jsonnet")).unwrap();
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: template `templates/devbox.jsonnet` does not exist\n  ┌─ devbox.toml:1:12");
    std::fs::create_dir(repo.path().join("templates/devbox.jsonnet")).unwrap();
    assert_contains!(repo.run_ok(&["build"], 2).stderr, "error: template `templates/devbox.jsonnet` is a directory\n");
    std::fs::remove_dir(repo.path().join("templates/devbox.jsonnet")).unwrap();
    std::fs::write(repo.path().join("templates/real.jsonnet"), "function(box) {}\n").unwrap();
    std::os::unix::fs::symlink("real.jsonnet", repo.path().join("templates/devbox.jsonnet")).unwrap();
    assert_contains!(
        repo.run_ok(&["build"], 2).stderr,
        "error: template `templates/devbox.jsonnet` is a symbolic link, which devbox-gen does not follow\n"
    );
}

/// What the API server's validation refuses and no schema says (label syntax, a selector that
/// misses its own pods, container and port names) fails the build, not the sync.
#[test]
fn what_the_api_server_would_refuse_fails_the_build() {
    let repo = with_template(
        "local devbox = import 'devbox-gen/devbox.libsonnet';\n\
         function(box) devbox.bundle(box) + {\n\
           service+: { metadata+: { labels+: { team: 'data science' } } },\n\
           statefulSet+: { spec+: { selector+: { matchLabels+: { tier: 'box' } } } },\n\
         }\n",
    );
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "Service/devboxes/alice: metadata: the value `data science` of label `team` is not a label value");
    assert_contains!(
        run.stderr,
        "StatefulSet/devboxes/alice: spec.selector does not match the pod template's labels, which the API server refuses: the pods lack `tier: box`"
    );
    assert!(!repo.path().join("out").exists());
}

/// jrsonnet cannot interrupt an evaluation: a template that never finishes, or that grows a
/// value without end, is stopped by a watchdog with exit 2 and the user file it was rendering,
/// instead of hanging CI or taking the machine's memory; out/ is left as it was.
#[test]
fn a_template_that_never_finishes_or_grows_without_end_is_stopped() {
    let repo = with_template("function(box) { x: std.foldl(function(a, b) a + b, std.range(0, 2000000000), 0) }\n");
    repo.write(
        "templates/grows.jsonnet",
        "local d(s, n) = if n == 0 then s else d(s + s, n - 1);\nfunction(box) { x: std.length(d('x', 40)) }\n",
    );
    let run = |env: (&str, &str)| {
        let output = assert_cmd::Command::cargo_bin("devbox-gen")
            .unwrap()
            .args(["-C", repo.path().to_str().unwrap(), "build"])
            .env(env.0, env.1)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8(output.stderr).unwrap())
    };
    let (code, stderr) = run(("DEVBOX_GEN_RENDER_TIMEOUT", "2"));
    assert_eq!(code, Some(2), "{stderr}");
    assert_contains!(stderr, "error: the template has been evaluating the box of users/alice.toml for 2 s without finishing\n");
    assert_contains!(stderr, "set DEVBOX_GEN_RENDER_TIMEOUT (seconds, now 2)");
    repo.write("devbox.toml", &repo.read("devbox.toml").replace("templates/devbox.jsonnet", "templates/grows.jsonnet"));
    let (code, stderr) = run(("DEVBOX_GEN_RENDER_MEMORY", "256"));
    assert_eq!(code, Some(2), "{stderr}");
    assert_contains!(stderr, "error: the template made devbox-gen hold more than 256 MiB while evaluating the box of users/alice.toml\n");
    let left: Vec<_> = std::fs::read_dir(repo.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!left.iter().any(|name| name == "out" || name.starts_with(".out.")), "{left:?}");
}
