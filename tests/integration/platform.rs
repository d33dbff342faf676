//! Changes a platform team makes to devbox.toml, which touch every box at once: `diff` must
//! say what really happens once, blamed on devbox.toml, and not once per object.

use crate::common::{KEY_ALICE, Repo, assert_contains, assert_not_contains, pairs, risks, user_file};

/// devbox.toml with Argo CD delivery and the given extra lines (top-level first, then tables).
fn settings(top: &str, tables: &str) -> String {
    format!(
        "namespace = \"devboxes\"\ngitops = [\"argocd\"]\n{top}\n[defaults]\nimage = \"registry.example.com/devbox:1.0\"\nhome = {{ size = \"100Gi\" }}\n\n[repo]\nurl = \"https://github.com/acme/devboxes.git\"\n{tables}"
    )
}

/// alice, bob and carol, built.
fn fleet() -> Repo {
    let mut repo = Repo::new(&settings("", ""));
    for name in ["alice", "bob", "carol"] {
        repo = repo.user(name, &user_file(&format!("{name}@example.com"), KEY_ALICE));
    }
    repo.run_ok(&["build"], 0);
    repo
}

/// The risks part of the text report: everything before the fields and the summary line.
fn risk_text(repo: &Repo) -> String {
    let run = repo.run_ok(&["diff"], 1);
    run.stdout
        .split("\n\n")
        .take_while(|block| !block.contains(" changed") && !block.starts_with("What changes, by field"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn a_namespace_change_is_one_data_risk_on_devbox_toml_and_build_warns() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "").replace("namespace = \"devboxes\"", "namespace = \"dev\""));
    assert_eq!(risks(&repo), pairs(&[("namespace-changed", "devbox.toml")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "Risks, most dangerous first (1):\n\n  DATA     devbox.toml: the namespace changes from `devboxes` to `dev`: 3 boxes move, and 3 home volumes stay behind in `devboxes`\n           A PersistentVolumeClaim cannot move to another namespace."
    );
    assert_contains!(text, "help: to keep everyone's home, keep `namespace = \"devboxes\"` in devbox.toml");
    assert_not_contains!(text, "replaces");
    assert_not_contains!(text, "can now log in");
    let build = repo.run_ok(&["build"], 0);
    assert_contains!(
        build.stderr,
        "warning: the namespace changes from `devboxes` to `dev` for 3 boxes: their home volumes stay behind in `devboxes`, and each box starts with an empty home\n = in devbox.toml\n"
    );
}

#[test]
fn the_same_risk_for_every_box_is_told_once_with_the_users() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "").replace("devbox:1.0", "devbox:1.1"));
    assert_eq!(
        risk_text(&repo),
        "Risks, most dangerous first (3, told as 1):\n\n  RESTART  3 users: the image of container `devbox` changes from `registry.example.com/devbox:1.0` to `registry.example.com/devbox:1.1`: the pod restarts\n           users: alice, bob, carol\n           Processes and open sessions end; the home volume is kept, anything written outside it is lost."
    );
    let text = repo.run_ok(&["diff"], 1).stdout;
    assert_contains!(
        text,
        "\n\nWhat changes, by field (1):\n  StatefulSet spec.template.spec.containers[devbox].image: 3 users (alice, bob, carol)\n\n3 users changed: 3 resources changed"
    );
    let markdown = repo.run_ok(&["diff", "--format", "markdown"], 1).stdout;
    assert_contains!(
        markdown,
        "<details><summary><b>What changes, by field (1):</b></summary>\n\n- StatefulSet spec.template.spec.containers\\[devbox\\].image: 3 users (alice, bob, carol)\n"
    );
    assert_contains!(markdown, "**Risks, most dangerous first (3, told as 1):**");
    assert_contains!(markdown, "  - <details><summary>the 3 users</summary>alice, bob, carol</details>\n");
    assert_eq!(risks(&repo), pairs(&[("image-changed", "alice"), ("image-changed", "bob"), ("image-changed", "carol")]));
    let json: serde_json::Value = serde_json::from_str(&repo.run_ok(&["diff", "--format", "json"], 1).stdout).unwrap();
    assert_eq!(
        json["fields"],
        serde_json::json!([{"kind": "StatefulSet", "path": "spec.template.spec.containers[devbox].image", "users": ["alice", "bob", "carol"]}])
    );
}

#[test]
fn a_new_uid_is_a_data_risk_for_every_home_not_a_restart() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "\n[runtime]\nuid = 20001\ngid = 20001\n"));
    assert_eq!(risks(&repo), pairs(&[("home-owner-changed", "alice"), ("home-owner-changed", "bob"), ("home-owner-changed", "carol")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  DATA     3 users: the box changes how it owns its home (uid:gid 10001:10001 → 20001:20001, fsGroup 10001 → 20001): nothing in the volume follows\n           users: alice, bob, carol\n"
    );
    assert_contains!(text, "`chown -R 20001:20001 /storage`");
    assert_not_contains!(text, "RESTART");
}

#[test]
fn a_new_hostname_tells_the_person_to_update_their_ssh_config() {
    let repo = fleet();
    repo.write("users/alice.toml", &format!("{}\n[tailscale]\nhostname = \"alice-box\"\n", user_file("alice@example.com", KEY_ALICE)));
    assert_eq!(risks(&repo), pairs(&[("hostname-changed", "alice")]));
    assert_contains!(risk_text(&repo), "  ACCESS   alice: the box's ssh host name changes from `alice-devbox` to `alice-box`\n");
    assert_contains!(risk_text(&repo), "help: tell `alice`: replace `alice-devbox` with `alice-box` in `~/.ssh/config`");
}

#[test]
fn shrinking_the_default_home_size_is_blamed_on_devbox_toml_once() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "").replace("100Gi", "50Gi"));
    let before = repo.out_snapshot();
    for command in [&["build"][..], &["diff"]] {
        let run = repo.run_ok(command, 2);
        assert_contains!(
            run.stderr,
            "error: `[defaults] home.size` would shrink the home volumes of 3 users: alice (100Gi → 50Gi), bob (100Gi → 50Gi), carol (100Gi → 50Gi)\n  ┌─ devbox.toml:6:17\n"
        );
        assert_contains!(
            run.stderr,
            "help: set `[defaults] home.size` back; or, to give only new boxes the new default, keep `home.size = \"100Gi\"` in the files of alice, bob, carol"
        );
        assert_not_contains!(run.stderr, "users/bob.toml");
    }
    assert_eq!(repo.out_snapshot(), before);
    // A user whose own file sets the size is blamed on that file.
    repo.write("devbox.toml", &settings("", ""));
    repo.write("users/bob.toml", &format!("{}\n[home]\nsize = \"100Gi\"\n", user_file("bob@example.com", KEY_ALICE)));
    repo.run_ok(&["build"], 0);
    repo.write("users/bob.toml", &format!("{}\n[home]\nsize = \"10Gi\"\n", user_file("bob@example.com", KEY_ALICE)));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: the home volume of `bob` would shrink from 100Gi to 10Gi\n  ┌─ users/bob.toml:");
}

#[test]
fn removing_the_default_storage_class_says_where_the_old_one_came_from() {
    let with_class = |class: &str| settings("", "").replace("size = \"100Gi\"", &format!("size = \"100Gi\"{class}"));
    let repo = Repo::new(&with_class(", storage_class = \"premium-rwo\""));
    let repo = repo.user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &with_class(""));
    let before = repo.out_snapshot();
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "error: the built-in default of `home.storage_class` would change the storage class of the home volume of 1 user: alice (premium-rwo → the cluster default)"
    );
    assert_contains!(
        run.stderr,
        "help: neither these user files nor devbox.toml's `[defaults]` set `home.storage_class`: the old value came from a `[defaults] home.storage_class` this change removes, or from the built-in default of an earlier devbox-gen"
    );
    assert_contains!(run.stderr, "keep `home.storage_class = \"premium-rwo\"` in the files of alice");
    assert_eq!(repo.out_snapshot(), before);
}

/// Boxes whose claims were made with the cluster's default class cannot keep "no class" in
/// their files while `[defaults]` names one: the way out given is one that can be taken.
#[test]
fn a_default_storage_class_added_over_claims_without_one_says_what_can_be_done() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "").replace("size = \"100Gi\"", "size = \"100Gi\", storage_class = \"premium-rwo\""));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(
        run.stderr,
        "would change the storage class of the home volumes of 3 users: alice (the cluster default → premium-rwo)"
    );
    assert_contains!(
        run.stderr,
        "help: these claims were made with the cluster's default class, which a user file cannot keep while `[defaults]` names another: remove `[defaults] home.storage_class`, and give new boxes their class in their own files"
    );
    assert_not_contains!(run.stderr, "set to their current value");
}

#[test]
fn clusters_naming_the_server_the_boxes_run_on_move_only_the_delivery() {
    let repo = fleet();
    repo.write(
        "devbox.toml",
        &settings("", "\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n")
            .replace("[defaults]\n", "[defaults]\ncluster = \"prod\"\n"),
    );
    assert_eq!(risks(&repo), pairs(&[("delivery-moved", "devbox.toml")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  SYNC     devbox.toml: 3 boxes stay on the cluster they run on; only out/ and the Argo CD objects that deliver them change\n           The bundles move (out/ → out/prod/ on `https://kubernetes.default.svc`), to the same server: the pods, their homes and their tailnet machines are not touched.\n"
    );
    assert_contains!(text, "`argocd app delete --app-namespace argocd devboxes-namespace --cascade=false`");
    assert_contains!(text, "help: then apply the new delivery directory once: `kubectl apply --filename out/_gitops/argocd/prod/`");
    assert_not_contains!(text, "home does not follow");
}

/// Switching `gitops` from Argo CD to Flux: nothing applies Flux's objects, and nothing
/// removes Argo CD's, which keep syncing every box (their root's path is gone, so its sync
/// fails and prunes nothing). One risk, with the steps in the order they are safe in.
#[test]
fn switching_from_argo_cd_to_flux_says_both_halves_are_done_by_hand() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "").replace("gitops = [\"argocd\"]", "gitops = [\"flux\"]"));
    assert_eq!(risks(&repo), pairs(&[("delivery-engine-changed", "devbox.toml")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  SYNC     devbox.toml: delivery moves from `out/_gitops/argocd/default/` to `out/_gitops/flux/default/`: nothing applies the new objects until they are applied once by hand, and the old ones keep syncing the boxes until deleted\n"
    );
    assert_contains!(text, "help: after the merge, apply `out/_gitops/flux/default/` once");
    assert_contains!(text, "`argocd app delete --app-namespace argocd devboxes-gitops --cascade=false`");
    // And back: Flux's Kustomizations must be suspended before they are deleted.
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &settings("", ""));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "help: after the merge, suspend the old Kustomizations before deleting them, or each deletes its box: `flux suspend kustomization --namespace flux-system $(kubectl --namespace flux-system get kustomizations --selector app.kubernetes.io/part-of=devboxes"
    );
}

/// Flux moving to a cluster's directory (the single-cluster layout becomes `[[clusters]]`):
/// its objects keep their names, so applying the new directory updates them in place.
/// Nothing is to be suspended or deleted, least of all a box's Kustomization by its name,
/// which would now be the new one.
#[test]
fn flux_moving_to_a_cluster_directory_takes_over_its_objects_by_name() {
    let flux = |clusters: &str| {
        settings("", clusters)
            .replace("gitops = [\"argocd\"]", "gitops = [\"flux\"]")
            .replace("[defaults]\n", "[defaults]\ncluster = \"prod\"\n")
    };
    let repo = Repo::new(&settings("", "").replace("gitops = [\"argocd\"]", "gitops = [\"flux\"]"))
        .user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &flux("\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n"));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "devbox.toml: delivery moves from `out/_gitops/flux/default/` to `out/_gitops/flux/prod/`: nothing applies the new objects until they are applied once by hand; they then take over the old ones, which have the same names\n"
    );
    assert_contains!(text, "help: after the merge, apply `out/_gitops/flux/prod/` once");
    assert_not_contains!(text, "flux suspend");
    assert_not_contains!(text, "delete kustomization");
}

/// Flux leaving in the same change as a user: its root's path is gone, so its build fails
/// before it garbage-collects, and the removed user's box is pruned by nothing. It is not
/// "removed", and its bill is not saved.
#[test]
fn a_user_removed_as_flux_leaves_keeps_running() {
    let flux = settings("", "").replace("gitops = [\"argocd\"]", "gitops = [\"flux\"]");
    let repo =
        Repo::new(&flux).user("alice", &user_file("alice@example.com", KEY_ALICE)).user("dave", &user_file("dave@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &flux.replace("gitops = [\"flux\"]", "gitops = []"));
    std::fs::remove_file(repo.path().join("users/dave.toml")).unwrap();
    let text = repo.run_ok(&["diff"], 1).stdout;
    assert_contains!(text, "dave: the box leaves out/, but its pod keeps running until deleted by hand");
    assert_contains!(text, "  dave: removed, left running until deleted by hand");
    // Flux staying, the same removal is pruned.
    let repo =
        Repo::new(&flux).user("alice", &user_file("alice@example.com", KEY_ALICE)).user("dave", &user_file("dave@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    std::fs::remove_file(repo.path().join("users/dave.toml")).unwrap();
    assert_contains!(repo.run_ok(&["diff"], 1).stdout, "dave: the box is removed: its pod goes away");
}

/// The config repo moving inside its Git repository (`[repo] path`): every root object reads
/// the new path, but what runs in the cluster reads the old one until applied by hand.
#[test]
fn a_new_repo_path_says_the_cluster_reads_the_old_one_until_applied() {
    let repo = fleet();
    repo.write("devbox.toml", &settings("", "path = \"deploy/devboxes\"\n"));
    assert_eq!(risks(&repo), pairs(&[("delivery-engine-changed", "devbox.toml")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "devbox.toml: `out/_gitops/argocd/default/` is read from another path of the repository, `deploy/devboxes/out/_gitops/argocd/default` instead of `out/_gitops/argocd/default`: what runs in the cluster reads the old one until it is applied once by hand\n"
    );
    assert_contains!(
        text,
        "help: right after the merge, apply the new directory once: `kubectl apply --filename out/_gitops/argocd/default/`"
    );
}

/// A cluster added to `[[clusters]]` gets its own delivery directory, which its engine
/// applies only once someone has applied it by hand.
#[test]
fn a_new_cluster_says_its_delivery_directory_is_applied_once_by_hand() {
    let prod = "\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n";
    let gpu = "\n[[clusters]]\nname = \"gpu\"\nserver = \"https://gpu.example.com\"\n";
    let with_default = |clusters: &str| settings("", clusters).replace("[defaults]\n", "[defaults]\ncluster = \"prod\"\n");
    let repo = Repo::new(&with_default(prod)).user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &with_default(&format!("{prod}{gpu}")));
    assert_eq!(risks(&repo), pairs(&[("delivery-engine-changed", "devbox.toml")]));
    assert_contains!(
        risk_text(&repo),
        "devbox.toml: `out/_gitops/argocd/gpu/` is new: nothing applies it until it is applied once by hand\n"
    );
}

#[test]
fn a_box_moving_to_another_server_says_what_happens_to_the_old_one() {
    let clusters = "\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n\n[[clusters]]\nname = \"gpu\"\nserver = \"https://gpu.example.com\"\n";
    let repo = Repo::new(&settings("", clusters).replace("[defaults]\n", "[defaults]\ncluster = \"prod\"\n"))
        .user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("users/alice.toml", &format!("cluster = \"gpu\"\n{}", user_file("alice@example.com", KEY_ALICE)));
    assert_eq!(risks(&repo), pairs(&[("home-volume-moved", "alice")]));
    let text = risk_text(&repo);
    assert_contains!(text, "  DATA     alice: the box moves from cluster `prod` to cluster `gpu`: its home does not follow\n");
    assert_contains!(text, "leaves the old pod running on `prod` beside the new one");
    assert_contains!(text, "`kubectl --context prod --namespace devboxes delete statefulset,cronjob,service");
}

/// A cluster pointed at another API server: Argo CD applies every box there anew, homes
/// empty, and leaves the old ones running (argoproj/argo-cd#9172). Only the ApplicationSet
/// changes, so no per-box rule sees it.
#[test]
fn a_cluster_delivered_to_another_server_is_a_data_risk() {
    let cluster = |server: &str| format!("\n[[clusters]]\nname = \"prod\"\nserver = \"{server}\"\n");
    let repo = Repo::new(&settings("", &cluster("https://prod.example.com"))).user("alice", &user_file("alice@example.com", KEY_ALICE));
    repo.run_ok(&["build"], 0);
    repo.write("devbox.toml", &settings("", &cluster("https://prod-2.example.com")));
    assert_eq!(risks(&repo), pairs(&[("cluster-server-changed", "devbox.toml")]));
    let text = risk_text(&repo);
    assert_contains!(
        text,
        "  DATA     devbox.toml: cluster `prod` is delivered to another API server, `https://prod-2.example.com` instead of `https://prod.example.com`: every box of it starts there with a new, empty home\n"
    );
    assert_contains!(text, "argoproj/argo-cd#9172");
    assert_contains!(text, "`kubectl --namespace devboxes scale statefulset --all --replicas=0` on `https://prod.example.com`");
}

#[test]
fn several_clusters_and_no_default_suggest_the_default_too() {
    let clusters = "\n[[clusters]]\nname = \"prod\"\nserver = \"https://kubernetes.default.svc\"\n\n[[clusters]]\nname = \"gpu\"\nserver = \"https://gpu.example.com\"\n";
    let repo = Repo::new(&settings("", clusters)).user("alice", &user_file("alice@example.com", KEY_ALICE));
    let run = repo.run_ok(&["build"], 2);
    assert_contains!(run.stderr, "error: devbox.toml lists several clusters; this box must say which is its\n  ┌─ users/alice.toml:1:1\n");
    assert_contains!(
        run.stderr,
        "= help: add `cluster = \"prod\"` here (one of: prod, gpu), or `cluster = \"prod\"` under devbox.toml's `[defaults]` for every box that does not say\n"
    );
}
