//! Which GitOps engine delivers the boxes: devbox.toml's `gitops` gains or loses Argo CD or
//! Flux, or a cluster of `[[clusters]]` comes or goes. Each engine's objects in
//! `out/_gitops/ENGINE/DIR/` are applied once by hand, and from then on one of them, the root
//! (`devboxes-gitops`, which syncs its own directory), keeps the rest current. So neither side
//! of such a change happens by itself:
//!
//! - new objects are applied by nothing until someone applies the directory once;
//! - objects that leave `out/` stay in the cluster and keep syncing the boxes. The root's path
//!   is gone, so Argo CD reports `app path does not exist` and prunes nothing (an Application
//!   never deletes itself: argoproj/argo-cd#5205), and Flux's build fails before its garbage
//!   collection. Deleting them is a step by hand, and for Flux a dangerous one: deleting an
//!   unsuspended Kustomization with `prune: true` deletes everything it applied, the box
//!   included (kustomize-controller's `finalizerShouldDeleteResources` returns false only for a
//!   suspended one).

use std::collections::{BTreeMap, BTreeSet};

use super::{Kind, Risk, code, namespace_flag, platform::SETTINGS, spec};
use crate::diff::resource::{Resource, Resources};

/// The engines devbox-gen delivers with: their directory under `out/_gitops/`, their name for
/// people, and the kind of their root object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Engine {
    Argocd,
    Flux,
}

impl Engine {
    const ALL: [Engine; 2] = [Engine::Argocd, Engine::Flux];

    fn dir(self) -> &'static str {
        match self {
            Engine::Argocd => "argocd",
            Engine::Flux => "flux",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Engine::Argocd => "Argo CD",
            Engine::Flux => "Flux",
        }
    }

    /// The directory the root object syncs.
    fn synced(self, root: &Resource) -> Option<&str> {
        match self {
            Engine::Argocd => spec(root, "source")?.get("path")?.as_str(),
            Engine::Flux => spec(root, "path")?.as_str(),
        }
    }

    fn root_kind(self) -> &'static str {
        match self {
            Engine::Argocd => "Application",
            Engine::Flux => "Kustomization",
        }
    }
}

/// One delivery directory of one engine: `out/_gitops/flux/prod/` is `(Flux, "prod")`.
type Delivery<'a> = (Engine, &'a str);

/// The root objects of a tree, by the delivery directory they sync: the object in
/// `out/_gitops/ENGINE/DIR/` whose source path is that directory itself.
fn roots(resources: &Resources) -> BTreeMap<Delivery<'_>, &Resource> {
    let mut roots = BTreeMap::new();
    for resource in resources.values() {
        for engine in Engine::ALL {
            if resource.kind != engine.root_kind() {
                continue;
            }
            let Some(dir) = resource
                .path
                .strip_prefix(&format!("{}/{}/", crate::emit::GITOPS_DIR, engine.dir()))
                .and_then(|p| p.split_once('/'))
                .map(|(dir, _file)| dir)
            else {
                continue;
            };
            let own = under((engine, dir));
            if engine.synced(resource).is_some_and(|path| path.trim_end_matches('/').ends_with(own.trim_end_matches('/'))) {
                roots.insert((engine, dir), resource);
            }
        }
    }
    roots
}

/// `_gitops/flux/prod/`, as paths in `out/` start.
fn under((engine, dir): Delivery<'_>) -> String {
    format!("{}/{}/{dir}/", crate::emit::GITOPS_DIR, engine.dir())
}

/// `out/_gitops/flux/prod/`.
fn shown(delivery: Delivery<'_>) -> String {
    format!("out/{}", under(delivery))
}

fn listed(deliveries: &[Delivery<'_>]) -> String {
    deliveries.iter().map(|d| code(&shown(*d))).collect::<Vec<_>>().join(", ")
}

fn engines(deliveries: &[Delivery<'_>]) -> BTreeSet<Engine> {
    deliveries.iter().map(|(engine, _)| *engine).collect()
}

fn named(engines: &BTreeSet<Engine>) -> String {
    engines.iter().map(|e| e.label()).collect::<Vec<_>>().join(" and ")
}

/// The directories of `out/_gitops/flux/` whose root leaves with this change: Flux's build of
/// such a directory fails before its garbage collection, so what its Kustomizations applied
/// stays (`kustomization_controller.go`: a missing path ends the reconciliation first).
pub(crate) fn flux_left<'a>(before: &'a Resources, after: &Resources) -> BTreeSet<&'a str> {
    let staying = roots(after);
    roots(before).into_keys().filter(|delivery| delivery.0 == Engine::Flux && !staying.contains_key(delivery)).map(|(_, dir)| dir).collect()
}

/// Whether a removed bundle is pruned, from what its user had in the changed part of `out/`
/// (which holds the user's Flux Kustomization whenever the bundle leaves): only Flux deletes
/// what a user's Kustomization applied when it leaves with the bundle, and only while the
/// root of its directory stays (`flux_left`). Without one the box is Argo CD's (whose
/// ApplicationSet keeps what a deleted Application applied) or was applied by hand, and its
/// objects stay.
pub(crate) fn pruned_by_flux(removed: &[&Resource], flux_left: &BTreeSet<&str>) -> bool {
    let flux = format!("{}/flux/", crate::emit::GITOPS_DIR);
    removed.iter().any(|r| {
        r.kind == "Kustomization"
            && r.path.strip_prefix(&flux).and_then(|rest| rest.split_once('/')).is_some_and(|(dir, _)| !flux_left.contains(dir))
    })
}

/// Delivery directories whose root comes or goes, as one risk for the fleet. `moved` says that
/// [`super::platform::delivery_moved`] already tells Argo CD's side of a layout change.
pub(super) fn changed(before: &Resources, after: &Resources, moved: bool) -> Option<Risk> {
    let (was, is) = (roots(before), roots(after));
    let told = |engine: Engine| moved && engine == Engine::Argocd;
    let left: Vec<Delivery<'_>> = was.keys().filter(|d| !is.contains_key(*d) && !told(d.0)).copied().collect();
    let arrived: Vec<Delivery<'_>> = is.keys().filter(|d| !was.contains_key(*d) && !told(d.0)).copied().collect();
    let first = arrived.first().map(|d| is[d]).or_else(|| left.first().map(|d| was[d]))?;
    let (gone, new) = (engines(&left), engines(&arrived));
    // What leaves with the old directories: not an object the new ones name again (a box's
    // Flux Kustomization keeps its name when Flux changes directory, and applying the new
    // directory updates it in place; suspending or deleting it by that name would hit the new
    // one). Ids tell clusters apart (`@prod`), names within a cluster's Flux do not.
    let renamed = |r: &Resource| !after.values().any(|a| a.kind == r.kind && a.namespace == r.namespace && a.name == r.name);
    let retired: Vec<&Resource> =
        before.values().filter(|r| renamed(r)).filter(|r| left.iter().any(|d| r.path.starts_with(&under(*d)))).collect();
    let summary = match (left.is_empty(), arrived.is_empty()) {
        (false, true) => format!(
            "{} leaves out/, but nothing removes it from the cluster: {} keeps syncing the boxes until its objects are deleted by hand",
            listed(&left),
            named(&gone)
        ),
        (true, false) => format!("{} is new: nothing applies it until it is applied once by hand", listed(&arrived)),
        _ if retired.is_empty() => format!(
            "delivery moves from {} to {}: nothing applies the new objects until they are applied once by hand; they then take over the old ones, which have the same names",
            listed(&left),
            listed(&arrived)
        ),
        _ => format!(
            "delivery moves from {} to {}: nothing applies the new objects until they are applied once by hand, and the old ones keep syncing the boxes until deleted",
            listed(&left),
            listed(&arrived)
        ),
    };
    let mut risk = Risk {
        kind: Kind::DeliveryEngineChanged,
        user: SETTINGS.into(),
        resource: first.id.clone(),
        summary,
        details: Vec::new(),
        help: Vec::new(),
        facts: BTreeMap::from([
            ("removed", left.iter().map(|d| shown(*d)).collect::<Vec<_>>().join(",")),
            ("added", arrived.iter().map(|d| shown(*d)).collect::<Vec<_>>().join(",")),
        ]),
    };
    if gone.contains(&Engine::Argocd) {
        risk.details.push("Argo CD: `devboxes-gitops` syncs its own directory. With the directory gone its sync fails with `app path does not exist` and it prunes nothing (an Application never deletes itself: argoproj/argo-cd#5205), so the ApplicationSet and its Applications stay, and Argo CD keeps syncing, pruning and self-healing every bundle still in out/.".into());
    }
    if gone.contains(&Engine::Flux) {
        risk.details.push("Flux: `devboxes-gitops` applies its own directory. With the directory gone its build fails before it prunes anything, so every box's Kustomization stays and keeps applying its bundle. Deleting a Kustomization that is not suspended deletes what it applied, the box with it (its home volume excepted); a suspended one is deleted alone.".into());
    }
    if !arrived.is_empty() {
        risk.details.push(format!(
            "Nothing applies {} by itself: its `devboxes-gitops` keeps the directory current once it is in the cluster.",
            listed(&arrived)
        ));
    }
    let handover = !gone.is_empty() && new.iter().any(|engine| !gone.contains(engine));
    if handover {
        risk.details.push("Until the old engine's objects are deleted, both engines apply every bundle, and each prunes by its own rules: Flux deletes a removed box (its home volume excepted), Argo CD leaves it running.".into());
    }
    for delivery in &arrived {
        let (engine, _) = *delivery;
        let cluster = match engine {
            Engine::Argocd => "in the cluster Argo CD runs in",
            Engine::Flux => "in the cluster it delivers to, where its Flux runs",
        };
        risk.help.push(format!(
            "after the merge, apply {} once, {cluster}: `kubectl apply --filename {}`",
            code(&shown(*delivery)),
            shown(*delivery)
        ));
    }
    if handover {
        risk.help.push(format!(
            "wait until the new engine reports every box synced ({}) before retiring the old one: retired first, every box runs on with nothing applying its changes",
            new.iter()
                .map(|engine| match engine {
                    Engine::Argocd => "`argocd app list`",
                    Engine::Flux => "`flux get kustomizations --all-namespaces`",
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if gone.contains(&Engine::Argocd) {
        let argocd: Vec<&Resource> = retired.iter().copied().filter(|r| r.path.contains("/argocd/")).collect();
        risk.help.extend(retire_argocd(&argocd));
    }
    if gone.contains(&Engine::Flux) {
        // Flux leaving altogether takes every box's Kustomization with it: too many to name, so
        // they are chosen by the label every delivery object carries. A Flux that only changes
        // directory keeps the boxes' Kustomizations (same names), so only the old roots go.
        // Each cluster runs its own Flux, which holds only its directory's objects: the steps
        // are for that cluster, and the label chooses nothing of another's.
        for (engine, dir) in left.iter().filter(|(engine, _)| *engine == Engine::Flux) {
            let prefix = under((*engine, dir));
            let flux: Vec<&Resource> = retired.iter().copied().filter(|r| r.path.starts_with(&prefix)).collect();
            risk.help.extend(retire_flux(&flux, !new.contains(&Engine::Flux), dir));
        }
    }
    Some(risk)
}

/// Delivery directories whose root now reads another path (`[repo] path` changed: the config
/// repo moved inside its Git repository). The objects in the cluster still read the old one
/// until the new directory is applied once: with the old path gone, Argo CD's sync fails, and
/// its live ApplicationSet, still on the old `out/*`, finds no directory and deletes every
/// box's Application (the boxes stay, unmanaged: `preserveResourcesOnDeletion`); Flux's
/// Kustomizations fail their builds.
pub(super) fn repointed(before: &Resources, after: &Resources) -> Option<Risk> {
    let (was, is) = (roots(before), roots(after));
    let moved: Vec<(Delivery<'_>, &str, &str)> = is
        .iter()
        .filter_map(|(delivery, new)| {
            let (from, to) = (was.get(delivery).and_then(|old| delivery.0.synced(old))?, delivery.0.synced(new)?);
            (from != to).then_some((*delivery, from, to))
        })
        .collect();
    let ((_, from, to), first) = moved.first().map(|m| (*m, is[&m.0]))?;
    let deliveries: Vec<Delivery<'_>> = moved.iter().map(|(d, _, _)| *d).collect();
    let mut risk = Risk {
        kind: Kind::DeliveryEngineChanged,
        user: SETTINGS.into(),
        resource: first.id.clone(),
        summary: format!(
            "{} is read from another path of the repository, {} instead of {}: what runs in the cluster reads the old one until it is applied once by hand",
            listed(&deliveries),
            code(to),
            code(from)
        ),
        details: vec![
            "The objects in the cluster still name the old path. Once it is gone from the repository, Argo CD's sync fails, and its ApplicationSet, still generating from the old `out/*`, finds no directory and deletes every box's Application (the boxes stay, unmanaged: `preserveResourcesOnDeletion`); Flux's Kustomizations fail their builds and apply nothing.".into(),
        ],
        help: Vec::new(),
        facts: BTreeMap::from([("repointed", deliveries.iter().map(|d| shown(*d)).collect::<Vec<_>>().join(","))]),
    };
    for delivery in &deliveries {
        risk.help.push(format!("right after the merge, apply the new directory once: `kubectl apply --filename {}`", shown(*delivery)));
    }
    Some(risk)
}

/// Deleting Argo CD's delivery objects without deleting the boxes: the Applications first, not
/// cascading (a cascading delete of the namespace's Application would delete the Namespace,
/// and every home with it), then the ApplicationSets, whose `preserveResourcesOnDeletion` keeps
/// what their Applications applied.
pub(super) fn retire_argocd(gone: &[&Resource]) -> Vec<String> {
    let (apps, sets): (Vec<&Resource>, Vec<&Resource>) =
        gone.iter().copied().filter(|r| r.kind.starts_with("Application")).partition(|r| r.kind == "Application");
    let mut help = Vec::new();
    if !apps.is_empty() {
        let deletes: Vec<String> = apps
            .iter()
            .map(|r| {
                format!("`argocd app delete {}{} --cascade=false`", namespace_flag(r).replace("--namespace", "--app-namespace"), r.name)
            })
            .collect();
        help.push(format!(
            "after the merge, first retire the old Applications without deleting what they manage (a cascading delete of the namespace's Application deletes the Namespace, and every home with it): {}",
            deletes.join(", ")
        ));
    }
    for set in sets {
        help.push(format!(
            "then `kubectl {}delete applicationset {}`: with `preserveResourcesOnDeletion` its Applications go and the boxes keep running",
            namespace_flag(set),
            set.name
        ));
    }
    help
}

/// Deleting Flux's delivery objects without deleting the boxes: suspend each Kustomization
/// first, since kustomize-controller garbage-collects nothing for a suspended one.
fn retire_flux(gone: &[&Resource], all: bool, dir: &str) -> Vec<String> {
    let kustomizations: Vec<&Resource> = gone.iter().copied().filter(|r| r.kind == "Kustomization").collect();
    let Some(first) = kustomizations.first() else { return Vec::new() };
    let flag = namespace_flag(first);
    let (names, kinds): (String, BTreeSet<String>) = if all {
        let selector = format!("--selector app.kubernetes.io/part-of={}", crate::delivery::BASE_NAME);
        let kinds = gone.iter().map(|r| r.kind.to_lowercase()).collect();
        (format!("$(kubectl {flag}get kustomizations {selector} --output jsonpath='{{.items[*].metadata.name}}')"), kinds)
    } else {
        (kustomizations.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(" "), BTreeSet::new())
    };
    let cluster = if dir == "default" {
        String::new()
    } else {
        format!(" in cluster {} (its own Flux: run these against its API server)", code(dir))
    };
    let mut help = vec![format!(
        "after the merge{cluster}, suspend the old Kustomizations before deleting them, or each deletes its box: `flux suspend kustomization {flag}{names}`"
    )];
    if all {
        help.push(format!(
            "then `kubectl {flag}delete {} --selector app.kubernetes.io/part-of={}`",
            kinds.into_iter().collect::<Vec<_>>().join(","),
            crate::delivery::BASE_NAME
        ));
    } else {
        let deletes: Vec<String> =
            gone.iter().map(|r| format!("`kubectl {}delete {} {}`", namespace_flag(r), r.kind.to_lowercase(), r.name)).collect();
        help.push(format!("then {}", deletes.join(", ")));
    }
    help
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{kinds, resource_in, set};

    fn object(path: &str, namespace: &str, object: Value) -> Resource {
        resource_in(namespace, "devbox.toml", path, object)
    }

    /// The Argo CD objects of one delivery directory: its root, the namespace's Application
    /// and the ApplicationSet.
    fn argocd(dir: &str) -> Vec<Resource> {
        let named = |base: &str| if dir == "default" { base.to_string() } else { format!("{base}-{dir}") };
        let app = |name: String, path: String| {
            object(
                &format!("_gitops/argocd/{dir}/application-{name}.yaml"),
                "argocd",
                json!({"kind": "Application", "metadata": {"name": name}, "spec": {"source": {"path": path}}}),
            )
        };
        vec![
            app(named("devboxes-gitops"), format!("out/_gitops/argocd/{dir}")),
            app(named("devboxes-namespace"), format!("out/_gitops/namespace/{dir}")),
            object(
                &format!("_gitops/argocd/{dir}/applicationset-{}.yaml", named("devboxes")),
                "argocd",
                json!({"kind": "ApplicationSet", "metadata": {"name": named("devboxes")}}),
            ),
        ]
    }

    /// The Flux objects of one delivery directory: its root, the namespace's Kustomization,
    /// the GitRepository and one Kustomization per user.
    fn flux(dir: &str, users: &[&str]) -> Vec<Resource> {
        let named = |base: &str| if dir == "default" { base.to_string() } else { format!("{base}-{dir}") };
        // As `resources` keys them: the objects of a cluster's Flux directory carry `@DIR`.
        let in_dir = |mut r: Resource| {
            r.id = format!("{}@{dir}", r.id);
            r
        };
        let kustomization = |name: String, path: String| {
            in_dir(object(
                &format!("_gitops/flux/{dir}/kustomization-{name}.yaml"),
                "flux-system",
                json!({"kind": "Kustomization", "metadata": {"name": name}, "spec": {"path": path}}),
            ))
        };
        let mut objects = vec![
            kustomization(named("devboxes-gitops"), format!("./out/_gitops/flux/{dir}")),
            kustomization(named("devboxes-namespace"), format!("./out/_gitops/namespace/{dir}")),
            in_dir(object(
                &format!("_gitops/flux/{dir}/gitrepository-{}.yaml", named("devboxes")),
                "flux-system",
                json!({"kind": "GitRepository", "metadata": {"name": named("devboxes")}}),
            )),
        ];
        objects.extend(users.iter().map(|user| kustomization(format!("devbox-{user}"), format!("./out/{user}"))));
        objects
    }

    fn risks(before: Vec<Resource>, after: Vec<Resource>) -> Vec<Risk> {
        classify(&set(before), &set(after), &BTreeSet::new())
    }

    #[test]
    fn argo_cd_handing_over_to_flux_is_one_sync_risk_with_the_order_of_the_steps() {
        let risks = risks(argocd("default"), flux("default", &["alice", "bob"]));
        assert_eq!(kinds(&risks), ["delivery-engine-changed"]);
        let risk = &risks[0];
        assert_eq!(risk.user, "devbox.toml");
        assert_eq!(
            risk.summary,
            "delivery moves from `out/_gitops/argocd/default/` to `out/_gitops/flux/default/`: nothing applies the new objects until they are applied once by hand, and the old ones keep syncing the boxes until deleted"
        );
        assert_eq!(
            (risk.facts["removed"].as_str(), risk.facts["added"].as_str()),
            ("out/_gitops/argocd/default/", "out/_gitops/flux/default/")
        );
        assert!(risk.details[0].contains("app path does not exist"), "{:?}", risk.details);
        assert!(risk.details.iter().any(|d| d.starts_with("Until the old engine's objects are deleted, both engines apply every bundle")));
        let help = risk.help.join("\n");
        let order = [
            "kubectl apply --filename out/_gitops/flux/default/",
            "flux get kustomizations",
            "argocd app delete --app-namespace argocd devboxes-gitops --cascade=false",
            "kubectl --namespace argocd delete applicationset devboxes",
        ];
        let at: Vec<usize> = order.iter().map(|step| help.find(step).unwrap_or_else(|| panic!("{step} not in {help}"))).collect();
        assert!(at.is_sorted(), "steps out of order: {help}");
    }

    #[test]
    fn flux_leaving_says_to_suspend_every_kustomization_before_deleting_any() {
        let risks = risks(flux("default", &["alice", "bob"]), Vec::new());
        assert_eq!(kinds(&risks), ["delivery-engine-changed"]);
        assert_eq!(
            risks[0].summary,
            "`out/_gitops/flux/default/` leaves out/, but nothing removes it from the cluster: Flux keeps syncing the boxes until its objects are deleted by hand"
        );
        assert_eq!(
            risks[0].help,
            [
                "after the merge, suspend the old Kustomizations before deleting them, or each deletes its box: `flux suspend kustomization --namespace flux-system $(kubectl --namespace flux-system get kustomizations --selector app.kubernetes.io/part-of=devboxes --output jsonpath='{.items[*].metadata.name}')`",
                "then `kubectl --namespace flux-system delete gitrepository,kustomization --selector app.kubernetes.io/part-of=devboxes`",
            ]
        );
    }

    /// A cluster's Flux leaving (`[[clusters]]` loses it, others stay): the steps are for that
    /// cluster, whose Flux holds only its own objects.
    #[test]
    fn a_cluster_leaving_names_the_cluster_its_steps_are_for() {
        let risks = risks(flux("gpu", &["dave"]), Vec::new());
        assert!(
            risks[0].help[0].starts_with(
                "after the merge in cluster `gpu` (its own Flux: run these against its API server), suspend the old Kustomizations"
            ),
            "{:?}",
            risks[0].help
        );
    }

    /// Flux moving to a cluster's directory keeps the boxes' Kustomizations (same names, new
    /// paths): the label would select the new objects too, so only the old ones are named.
    #[test]
    fn flux_changing_directory_retires_only_the_old_objects_by_name() {
        let risks = risks(flux("default", &["alice"]), flux("prod", &["alice"]));
        assert_eq!(kinds(&risks), ["delivery-engine-changed"]);
        let help = risks[0].help.join("\n");
        assert!(help.contains("`flux suspend kustomization --namespace flux-system devboxes-gitops devboxes-namespace`"), "{help}");
        assert!(help.contains("`kubectl --namespace flux-system delete gitrepository devboxes`"), "{help}");
        assert!(!help.contains("--selector"), "{help}");
        assert!(!help.contains("devbox-alice"), "alice's Kustomization stays, with a new path: {help}");
        assert!(!risks[0].details.iter().any(|d| d.contains("both engines")), "one engine: {:?}", risks[0].details);
    }

    #[test]
    fn a_new_cluster_directory_is_applied_once_by_hand() {
        let risks = risks(Vec::new(), argocd("gpu"));
        assert_eq!(kinds(&risks), ["delivery-engine-changed"]);
        assert_eq!(risks[0].summary, "`out/_gitops/argocd/gpu/` is new: nothing applies it until it is applied once by hand");
        assert_eq!(
            risks[0].help,
            [
                "after the merge, apply `out/_gitops/argocd/gpu/` once, in the cluster Argo CD runs in: `kubectl apply --filename out/_gitops/argocd/gpu/`"
            ]
        );
    }

    #[test]
    fn a_user_leaving_or_a_root_changing_is_not_a_change_of_engine() {
        let before = flux("default", &["alice", "bob"]);
        let after: Vec<Resource> = before.iter().filter(|r| r.name != "devbox-bob").cloned().collect();
        assert!(risks(before.clone(), after.clone()).is_empty());
        // Only the user's Kustomization differs: the root is on neither side.
        let bob: Vec<Resource> = before.into_iter().filter(|r| r.name == "devbox-bob").collect();
        assert!(risks(bob, Vec::new()).is_empty());
    }
}
