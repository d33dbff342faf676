//! Platform-level risks: changes a platform team makes in devbox.toml or the template that
//! touch every box at once, and that the per-object rules would misread.
//!
//! - A namespace change keeps every object's kind and name but changes its id
//!   (`Kind/namespace/name`): the object rules would see each box archived, a new empty home
//!   "replacing" one of the same name, and every SSH key "added". [`follow_namespace_moves`]
//!   pairs the objects up again, so those rules compare like with like, and says once what
//!   really happens: a PersistentVolumeClaim cannot change namespace, so every home stays
//!   behind.
//! - A new uid, gid, fsGroup or home path changes no volume, yet breaks every home:
//!   [`identity_changed`].
//! - A cluster's new API server changes only its ApplicationSet, yet every box starts anew
//!   there: [`cluster_server_changed`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Kind, Risk, code, containers, is_home, namespace_flag, pod, spec};
use crate::diff::resource::{Resource, Resources};

/// Who a platform-level risk is blamed on: the file that changed it.
pub(crate) const SETTINGS: &str = "devbox.toml";

/// `before`, with the objects that only changed namespace re-keyed under their new id, and the
/// one risk that says so (per pair of namespaces).
pub(super) fn follow_namespace_moves<'a>(before: &'a Resources, after: &Resources) -> (Cow<'a, Resources>, Vec<Risk>) {
    // The same object in another namespace: same kind, name and owner.
    let key = |r: &Resource| (r.kind.clone(), r.name.clone(), r.owner.clone());
    let arrived: BTreeMap<_, &Resource> =
        after.values().filter(|r| r.namespace.is_some() && !before.contains_key(&r.id)).map(|r| (key(r), r)).collect();
    let mut moves: Vec<(&Resource, &Resource)> = Vec::new();
    for old in before.values().filter(|r| r.namespace.is_some() && !after.contains_key(&r.id)) {
        if let Some(new) = arrived.get(&key(old)).filter(|new| new.namespace != old.namespace) {
            moves.push((old, new));
        }
    }
    if !moves.iter().any(|(old, _)| old.kind == "StatefulSet" || is_home(old)) {
        return (Cow::Borrowed(before), Vec::new());
    }
    let mut rekeyed = before.clone();
    // Per pair of namespaces: the boxes that move, and the home volumes (by owner) left behind.
    type Moved = (BTreeSet<String>, BTreeMap<String, String>);
    let mut by_namespaces: BTreeMap<(String, String), Moved> = BTreeMap::new();
    for (old, new) in &moves {
        let (from, to) = (old.namespace.clone().unwrap_or_default(), new.namespace.clone().unwrap_or_default());
        let (boxes, homes) = by_namespaces.entry((from, to)).or_default();
        if old.kind == "StatefulSet" {
            boxes.insert(old.owner.clone());
        }
        if is_home(old) {
            homes.insert(old.owner.clone(), old.name.clone());
        }
        if let Some(mut moved) = rekeyed.remove(&old.id) {
            moved.id.clone_from(&new.id);
            moved.namespace.clone_from(&new.namespace);
            rekeyed.insert(moved.id.clone(), moved);
        }
    }
    let risks = by_namespaces.into_iter().map(|((from, to), (boxes, homes))| namespace_moved(&from, &to, &boxes, &homes)).collect();
    (Cow::Owned(rekeyed), risks)
}

fn namespace_moved(from: &str, to: &str, boxes: &BTreeSet<String>, homes: &BTreeMap<String, String>) -> Risk {
    let users: BTreeSet<&str> = boxes.iter().chain(homes.keys()).map(String::as_str).collect();
    let count = boxes.len().max(homes.len());
    let summary = format!(
        "the namespace changes from {} to {}: {} move, and {} stay behind in {}",
        code(from),
        code(to),
        crate::diff::plural(count, "box", "boxes"),
        crate::diff::plural(homes.len(), "home volume", "home volumes"),
        code(from)
    );
    let example = homes.values().next().map_or("NAME-home", String::as_str);
    Risk {
        kind: Kind::NamespaceChanged,
        user: SETTINGS.into(),
        resource: format!("Namespace/{to}"),
        summary,
        details: vec![
            format!(
                "A PersistentVolumeClaim cannot move to another namespace. In {} every box starts with a new, empty home volume; the old claims stay in {} (prune is disabled for them) and nothing mounts them any more.",
                code(to),
                code(from)
            ),
            format!(
                "The rest of each bundle in {} (StatefulSet, Service, ConfigMap, the tailnet state Secret...) is pruned by the sync. The new state Secrets are empty, so every box joins the tailnet as a new machine and the old ones stay behind, offline.",
                code(from)
            ),
        ],
        help: vec![
            format!("to keep everyone's home, keep `namespace = \"{}\"` in devbox.toml", from.replace('`', "'")),
            format!(
                "to move the homes with the boxes, rebind each volume before the new claim is created: set the PersistentVolume's reclaim policy to Retain, stop the box, delete the old claim, clear the volume's `claimRef`, and create {} in {} with `spec.volumeName` set to it (docs/reviewing.md, \"Moving boxes to another namespace\", has the commands)",
                code(example),
                code(to)
            ),
        ],
        facts: BTreeMap::from([
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("users", users.into_iter().collect::<Vec<_>>().join(",")),
        ]),
    }
}

/// The cluster each Argo CD ApplicationSet of `out/_gitops/argocd/DIR/` delivers boxes to, by
/// `DIR` (`default` in the single-cluster layout). Only the sets in `resources` are known: a
/// diff holds the files that changed, which is enough when the layout changes, since every
/// set's path changes with it.
pub(super) fn servers(resources: &Resources) -> BTreeMap<&str, &str> {
    resources
        .values()
        .filter(|r| r.kind == "ApplicationSet")
        .filter_map(|r| {
            let dir = r.path.strip_prefix(crate::emit::GITOPS_DIR)?.strip_prefix("/argocd/")?.split_once('/')?.0;
            let server = r.object.as_ref()?.get("spec")?.pointer("/template/spec/destination/server")?.as_str()?;
            Some((dir, server))
        })
        .collect()
}

/// Which delivery directory sends boxes to which API server, on each side: to tell a box that
/// moves to another cluster from one whose bundle only moves in `out/` (a layout change that
/// keeps the server).
pub(crate) struct Destinations<'a> {
    before: BTreeMap<&'a str, &'a str>,
    after: BTreeMap<&'a str, &'a str>,
}

impl<'a> Destinations<'a> {
    pub(crate) fn new(before: &'a Resources, after: &'a Resources) -> Self {
        Self { before: servers(before), after: servers(after) }
    }

    /// Whether the object's file moving from `old` to `new` takes it to another cluster: its
    /// delivery directory changes, and the two are not known to be one server.
    pub(crate) fn another_cluster(&self, old: &Resource, new: &Resource) -> bool {
        let (from, to) = (delivery_dir(&old.path), delivery_dir(&new.path));
        let dir = |path: &str| path.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let same_server = self.before.get(from).is_some_and(|server| self.after.get(to) == Some(server));
        dir(&old.path) != dir(&new.path) && !same_server
    }
}

/// A cluster's boxes delivered to another API server (`server` of `[[clusters]]` changed): Argo
/// CD applies every box's Application there, where each starts with a new, empty home, and it
/// does not remove what it applied on the old server (argoproj/argo-cd#9172, #5668), so the old
/// boxes keep running there, homes included. One risk per delivery directory.
pub(super) fn cluster_server_changed(before: &Resources, after: &Resources) -> Vec<Risk> {
    let (was, is) = (servers(before), servers(after));
    let sets: BTreeMap<&str, &Resource> = after
        .values()
        .filter(|r| r.kind == "ApplicationSet")
        .filter_map(|r| Some((r.path.strip_prefix(crate::emit::GITOPS_DIR)?.strip_prefix("/argocd/")?.split_once('/')?.0, r)))
        .collect();
    let mut risks = Vec::new();
    for (dir, from) in &was {
        let (Some(to), Some(set)) = (is.get(dir), sets.get(dir)) else { continue };
        if from == to {
            continue;
        }
        let cluster = if *dir == "default" { "the cluster".to_string() } else { format!("cluster {}", code(dir)) };
        let namespace = set
            .object
            .as_ref()
            .and_then(|o| o.get("spec")?.pointer("/template/spec/destination/namespace")?.as_str())
            .map_or_else(String::new, |namespace| format!("--namespace {namespace} "));
        risks.push(Risk {
            kind: Kind::ClusterServerChanged,
            user: SETTINGS.into(),
            resource: set.id.clone(),
            summary: format!(
                "{cluster} is delivered to another API server, {} instead of {}: every box of it starts there with a new, empty home",
                code(to),
                code(from)
            ),
            details: vec![
                format!("Argo CD applies each box's Application to {}: the homes do not follow, and every box joins the tailnet as a new machine.", code(to)),
                format!(
                    "Nothing is removed from {}: Argo CD leaves what an Application applied on its old destination (argoproj/argo-cd#9172), so the old boxes keep running there with their homes, and their tailnet hostnames are taken.",
                    code(from)
                ),
            ],
            help: vec![
                "if the server only has a new address (the same cluster), this moves nothing: check that both URLs reach one cluster before the merge".into(),
                format!(
                    "to move the boxes to a new cluster, move each home's data first (a snapshot restored on {} under the same claim name), then stop the old boxes: `kubectl {namespace}scale statefulset --all --replicas=0` on {}",
                    code(to),
                    code(from)
                ),
            ],
            facts: BTreeMap::from([("from", from.to_string()), ("to", to.to_string()), ("cluster", dir.to_string())]),
        });
    }
    risks
}

/// The cluster of a bundle file in the per-cluster layout: `prod` for `prod/alice/x.yaml`.
pub(super) fn cluster_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    let (cluster, _user, _file, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    rest.is_none().then_some(cluster)
}

/// The delivery directory a bundle file is in: its cluster, or `default` in the
/// single-cluster layout (`alice/x.yaml`), as `out/_gitops/argocd/` names them.
pub(super) fn delivery_dir(path: &str) -> &str {
    cluster_of(path).unwrap_or("default")
}

/// The kind of a Flux Kustomization's source, when the resource is one (not a bundle's own
/// `kustomization.yaml`, which has no namespace).
fn flux_source_kind(resource: &Resource) -> Option<&str> {
    if resource.kind != "Kustomization" || resource.namespace.is_none() {
        return None;
    }
    spec(resource, "sourceRef")?.get("kind")?.as_str()
}

/// Flux Kustomizations that read the repository start reading an ExternalArtifact
/// (`[flux] artifact_generator` turned on). kustomize-controller reads one only when started
/// with `--feature-gates=ExternalArtifact=true` (off by default); without it, every such box's
/// Kustomization stops with an access-denied error and applies nothing more (it deletes
/// nothing either), and without source-watcher nothing makes the artifacts.
pub(super) fn flux_artifacts_enabled(before: &Resources, after: &Resources) -> Option<Risk> {
    let switched: Vec<&Resource> = after
        .values()
        .filter(|new| flux_source_kind(new) == Some("ExternalArtifact"))
        .filter(|new| before.get(&new.id).and_then(flux_source_kind).is_some_and(|kind| kind != "ExternalArtifact"))
        .collect();
    let first = switched.first()?;
    let users: BTreeSet<&str> = switched.iter().map(|r| r.owner.as_str()).collect();
    Some(Risk {
        kind: Kind::FluxArtifactsEnabled,
        user: SETTINGS.into(),
        resource: first.id.clone(),
        summary: format!(
            "{} read an artifact of their own bundle instead of the repository: they stop until Flux can make and read artifacts",
            crate::diff::plural(switched.len(), "Flux Kustomization", "Flux Kustomizations")
        ),
        details: vec![
            "Each box's Kustomization reads an ExternalArtifact made by the ArtifactGenerators of out/_gitops/flux/. kustomize-controller reads ExternalArtifacts only with `--feature-gates=ExternalArtifact=true` (off by default), and only source-watcher makes them (Flux 2.7 or later).".into(),
            "Without them, each of these Kustomizations stops with `ExternalArtifact feature gate is disabled` or `Source not found` and applies nothing more: running boxes keep running, nothing is deleted, and no change reaches them until Flux is set up. The objects do not change, so nothing restarts when it is.".into(),
        ],
        help: vec![
            "before the merge, on every cluster: install source-watcher (`flux install --components-extra=source-watcher`, or the same in `flux bootstrap`) and add `--feature-gates=ExternalArtifact=true` to kustomize-controller's arguments".into(),
            format!(
                "after the merge: `kubectl get externalartifacts {flag}` lists one `devbox-NAME` a box, and `flux get kustomizations {flag}` shows them Ready",
                flag = namespace_flag(first).trim_end()
            ),
        ],
        facts: BTreeMap::from([("users", users.into_iter().collect::<Vec<_>>().join(","))]),
    })
}

/// Bundles move in `out/` (the single-cluster layout becomes `[[clusters]]`, or a cluster is
/// renamed), but the cluster they are delivered to stays the same server: the boxes and their
/// homes stay where they are, and only the delivery objects are replaced, which nothing
/// applies by itself.
pub(super) fn delivery_moved(before: &Resources, after: &Resources) -> Option<Risk> {
    let (was, is) = (servers(before), servers(after));
    let mut boxes = BTreeSet::new();
    let mut on = BTreeSet::new();
    for old in before.values().filter(|r| r.kind == "StatefulSet") {
        let Some(new) = after.get(&old.id) else { continue };
        let (from, to) = (delivery_dir(&old.path), delivery_dir(&new.path));
        if from != to && was.get(from).is_some_and(|server| is.get(to) == Some(server)) {
            boxes.insert(old.owner.as_str());
            on.insert((from, to, is[to]));
        }
    }
    if boxes.is_empty() {
        return None;
    }
    let gone: Vec<&Resource> = before.values().filter(|r| r.kind.starts_with("Application") && !after.contains_key(&r.id)).collect();
    let new: Vec<&Resource> = after.values().filter(|r| r.kind.starts_with("Application") && !before.contains_key(&r.id)).collect();
    let names = |list: &[&Resource]| list.iter().map(|r| code(&r.name)).collect::<Vec<_>>().join(", ");
    let shown = |dir: &str| if dir == "default" { "out/".to_string() } else { format!("out/{dir}/") };
    let moves: Vec<String> = on.iter().map(|(from, to, server)| format!("{} → {} on {}", shown(from), shown(to), code(server))).collect();
    let mut risk = Risk {
        kind: Kind::DeliveryMoved,
        user: SETTINGS.into(),
        resource: new.first().map_or_else(String::new, |r| r.id.clone()),
        summary: format!(
            "{} stay on the cluster they run on; only out/ and the Argo CD objects that deliver them change",
            crate::diff::plural(boxes.len(), "box", "boxes")
        ),
        details: vec![
            format!(
                "The bundles move ({}), to the same server: the pods, their homes and their tailnet machines are not touched.",
                moves.join("; ")
            ),
            format!(
                "Argo CD reads out/_gitops/ from fixed paths: after the merge the old objects ({}) read paths that no longer exist, and nothing creates the new ones ({}) by itself. The new ApplicationSet names each box's Application as the old one did, so the two must not run side by side.",
                names(&gone),
                names(&new)
            ),
        ],
        help: Vec::new(),
        facts: BTreeMap::from([
            ("users", boxes.iter().copied().collect::<Vec<_>>().join(",")),
            ("removed", gone.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(",")),
            ("added", new.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(",")),
        ]),
    };
    risk.help.extend(super::engine::retire_argocd(&gone));
    let dirs: BTreeSet<&str> = new.iter().filter_map(|r| r.path.rsplit_once('/').map(|(dir, _)| dir)).collect();
    for dir in dirs {
        risk.help.push(format!("then apply the new delivery directory once: `kubectl apply --filename out/{dir}/`; the new Applications adopt the running boxes"));
    }
    Some(risk)
}

/// What owns the files of a home: the uid and gid the box runs as, the fsGroup the kubelet
/// gives the volume, and where the home is mounted.
#[derive(Debug, PartialEq, Eq)]
struct HomeIdentity<'a> {
    uid: Option<i64>,
    gid: Option<i64>,
    fs_group: Option<i64>,
    mount: Option<HomeMount<'a>>,
    /// `HOME` in the person's container: where dotfiles, the venv and `~/.ssh` are looked for.
    home: Option<&'a str>,
}

impl<'a> HomeIdentity<'a> {
    fn of(statefulset: &'a Resource) -> Option<Self> {
        let pod = pod(statefulset)?;
        let home = home_volume_name(pod, statefulset)?;
        let main = containers(pod).find(|c| mounts(c).any(|m| m.get("name").and_then(Value::as_str) == Some(home)))?;
        let id = |field: &str| {
            let own = main.get("securityContext").and_then(|c| c.get(field)).and_then(Value::as_i64);
            own.or_else(|| pod.get("securityContext")?.get(field)?.as_i64())
        };
        Some(Self {
            uid: id("runAsUser"),
            gid: id("runAsGroup"),
            fs_group: pod.get("securityContext").and_then(|c| c.get("fsGroup")).and_then(Value::as_i64),
            mount: home_mount(main, home),
            home: main
                .get("env")
                .and_then(Value::as_array)
                .and_then(|vars| vars.iter().find(|v| v.get("name").and_then(Value::as_str) == Some("HOME"))?.get("value")?.as_str()),
        })
    }
}

/// Where the home volume is mounted: a path, and the directory of the volume mounted there when
/// only part of it is (a `subPath`, which hides the rest of the volume).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct HomeMount<'a> {
    path: &'a str,
    sub_path: Option<&'a str>,
}

impl HomeMount<'_> {
    /// `/storage`, or `/home/jupyter (subPath jupyter)`.
    fn plain(self) -> String {
        match self.sub_path {
            Some(sub) => format!("{} (subPath {sub})", self.path),
            None => self.path.to_string(),
        }
    }

    /// As [`Self::plain`], for Markdown.
    fn marked(self) -> String {
        match self.sub_path {
            Some(sub) => format!("{} (only the volume's {})", code(self.path), code(sub)),
            None => code(self.path),
        }
    }
}

/// Where `container` mounts the volume `home`: the whole volume if it does, else the first part
/// of it it mounts.
fn home_mount<'a>(container: &'a Value, home: &str) -> Option<HomeMount<'a>> {
    let of_home: Vec<&Value> = mounts(container).filter(|m| m.get("name").and_then(Value::as_str) == Some(home)).collect();
    let mount = of_home.iter().find(|m| m.get("subPath").is_none()).or(of_home.first())?;
    Some(HomeMount { path: mount.get("mountPath")?.as_str()?, sub_path: mount.get("subPath").and_then(Value::as_str) })
}

fn mounts(container: &Value) -> impl Iterator<Item = &Value> {
    container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten()
}

/// The pod's volume that is the box's home claim (`NAME-home`).
fn home_volume_name<'a>(pod: &'a Value, statefulset: &Resource) -> Option<&'a str> {
    let claim = format!("{}-home", statefulset.owner);
    pod.get("volumes")?.as_array()?.iter().find_map(|v| {
        let claimed = v.get("persistentVolumeClaim")?.get("claimName")?.as_str()?;
        (claimed == claim).then(|| v.get("name")?.as_str()).flatten()
    })
}

/// The box now runs as another user or group, or finds its home elsewhere: nothing in the
/// volume changed, so every file in it belongs to the old identity.
pub(super) fn identity_changed(old: &Resource, new: &Resource) -> Option<Risk> {
    if old.kind != "StatefulSet" {
        return None;
    }
    let (was, is) = (HomeIdentity::of(old)?, HomeIdentity::of(new)?);
    if was == is {
        return None;
    }
    let show = |v: Option<i64>| v.map_or_else(|| "the image's".to_string(), |v| v.to_string());
    let mut changes = Vec::new();
    let mut risk_details = Vec::new();
    let mut help = Vec::new();
    if was.uid != is.uid || was.gid != is.gid {
        changes.push(format!("uid:gid {}:{} → {}:{}", show(was.uid), show(was.gid), show(is.uid), show(is.gid)));
        risk_details.push(format!(
            "Every file in the home still belongs to {}:{}. The box runs as {}:{} and cannot write its own home (the venv, ~/.ssh, dotfiles); OpenSSH refuses a private key or ~/.ssh it does not own (StrictModes), and the image's login account must have the new uid too, or sshd finds no user to log in.",
            show(was.uid),
            show(was.gid),
            show(is.uid),
            show(is.gid)
        ));
        help.push(format!(
            "before this syncs, change the owner of every home once, as root: for each box, `kubectl debug` or a Job mounting the claim running `chown -R {}:{} /storage`; and rebuild the image with the `jupyter` account at the new uid",
            show(is.uid),
            show(is.gid)
        ));
    }
    if was.fs_group != is.fs_group {
        changes.push(format!("fsGroup {} → {}", show(was.fs_group), show(is.fs_group)));
        risk_details.push(format!(
            "With a new fsGroup the kubelet walks the whole volume on the next start, giving every file to group {} and making it group-readable and writable (Kubernetes KEP 695, fsGroupChangePolicy). The pod takes as long to start as the walk takes on a big home, and OpenSSH then refuses private keys in ~/.ssh as too open until they are `chmod 600` again.",
            show(is.fs_group)
        ));
        help.push("after the first start, `chmod 600 ~/.ssh/id_*` in each box (or keep the fsGroup)".to_string());
    }
    if was.mount != is.mount {
        let plain = |mount: Option<HomeMount>| mount.map_or_else(|| "not mounted".to_string(), HomeMount::plain);
        let marked = |mount: Option<HomeMount>| mount.map_or_else(|| "nowhere".to_string(), HomeMount::marked);
        changes.push(format!("home mount {} → {}", plain(was.mount), plain(is.mount)));
        let old_path = was.mount.map_or("the old path", |m| m.path);
        risk_details.push(format!(
            "The home volume is mounted at {} instead of {}: everything written under {} (the venv, dotfiles, notebooks, the SSH host keys) is no longer where the box and its scripts look for it.",
            marked(is.mount),
            marked(was.mount),
            code(old_path)
        ));
        help.push(format!(
            "keep the home at {}, or move the paths that name it (`HOME`, the venv, sshd_config) in the same change",
            marked(was.mount)
        ));
    }
    if was.home != is.home {
        let (from, to) = (was.home.unwrap_or("the image's"), is.home.unwrap_or("the image's"));
        changes.push(format!("HOME {from} → {to}"));
        risk_details.push(format!(
            "`HOME` moves from {} to {}: the shell, Jupyter and pip look for dotfiles, `~/.ssh`, `~/.venv` and notebooks in the new place, which is empty; the old files stay where they were.",
            code(from),
            code(to)
        ));
        help.push(format!("move the files to {} once in each box, or keep `HOME` at {}", code(to), code(from)));
    }
    let summary = format!("the box changes how it owns its home ({}): nothing in the volume follows", changes.join(", "));
    let mut risk = Risk::new(Kind::HomeOwnerChanged, new, summary)
        .fact("uid_from", show(was.uid))
        .fact("uid_to", show(is.uid))
        .fact("gid_from", show(was.gid))
        .fact("gid_to", show(is.gid))
        .fact("fs_group_from", show(was.fs_group))
        .fact("fs_group_to", show(is.fs_group))
        .fact("mount_from", was.mount.map(HomeMount::plain).unwrap_or_default())
        .fact("mount_to", is.mount.map(HomeMount::plain).unwrap_or_default())
        .fact("home_from", was.home.unwrap_or(""))
        .fact("home_to", is.home.unwrap_or(""));
    risk.details = risk_details;
    risk.help = help;
    Some(risk)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use crate::diff::risk::classify;
    use crate::diff::risk::test_support::{home, kinds, set, statefulset};

    fn in_namespace(mut resource: crate::diff::resource::Resource, namespace: &str) -> crate::diff::resource::Resource {
        resource.id = resource.id.replace("/devboxes/", &format!("/{namespace}/"));
        resource.namespace = Some(namespace.into());
        resource
    }

    /// A box's Flux Kustomization reading `source`.
    fn flux_box(owner: &str, source: &str) -> crate::diff::resource::Resource {
        let object = json!({"kind": "Kustomization", "metadata": {"name": format!("devbox-{owner}"), "namespace": "flux-system"},
            "spec": {"sourceRef": {"kind": source, "name": "x"}, "path": "./"}});
        crate::diff::resource::Resource {
            id: format!("Kustomization/flux-system/devbox-{owner}"),
            kind: "Kustomization".into(),
            namespace: Some("flux-system".into()),
            name: format!("devbox-{owner}"),
            path: format!("_gitops/flux/default/kustomization-devbox-{owner}.yaml"),
            owner: owner.into(),
            text: String::new(),
            object: object.as_object().cloned(),
        }
    }

    #[test]
    fn flux_boxes_switching_to_artifacts_are_one_sync_risk_and_new_boxes_are_none() {
        let before = set(vec![flux_box("alice", "GitRepository"), flux_box("bob", "GitRepository")]);
        let after =
            set(vec![flux_box("alice", "ExternalArtifact"), flux_box("bob", "ExternalArtifact"), flux_box("carol", "ExternalArtifact")]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["flux-artifacts-enabled"]);
        assert_eq!(risks[0].facts["users"], "alice,bob", "carol's box is new: it never read the repository");
        assert_eq!(risks[0].user, "devbox.toml");
        // Back to the repository, which every Flux reads: nothing to say.
        assert!(classify(&after, &before, &BTreeSet::new()).iter().all(|r| r.kind.as_str() != "flux-artifacts-enabled"));
    }

    #[test]
    fn a_namespace_change_is_one_data_risk_not_one_per_object() {
        let before = set(vec![home("alice", "alice/pvc.yaml"), statefulset("alice", 1, "i:1", None), home("bob", "bob/pvc.yaml")]);
        let after = set(vec![
            in_namespace(home("alice", "alice/pvc.yaml"), "dev"),
            in_namespace(statefulset("alice", 1, "i:1", None), "dev"),
            in_namespace(home("bob", "bob/pvc.yaml"), "dev"),
        ]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["namespace-changed"]);
        assert_eq!(risks[0].user, "devbox.toml");
        assert_eq!(
            risks[0].summary,
            "the namespace changes from `devboxes` to `dev`: 2 boxes move, and 2 home volumes stay behind in `devboxes`"
        );
        assert_eq!(risks[0].facts["users"], "alice,bob");
    }

    #[test]
    fn a_namespace_change_still_reports_what_else_changes() {
        let before = set(vec![statefulset("alice", 1, "i:1", None), home("alice", "alice/pvc.yaml")]);
        let after =
            set(vec![in_namespace(statefulset("alice", 1, "i:2", None), "dev"), in_namespace(home("alice", "alice/pvc.yaml"), "dev")]);
        assert_eq!(kinds(&classify(&before, &after, &BTreeSet::new())), ["namespace-changed", "image-changed"]);
    }

    fn with_identity(uid: i64, fs_group: i64, mount: &str) -> crate::diff::resource::Resource {
        let mut resource = statefulset("alice", 1, "i:1", None);
        let object = resource.object.as_mut().unwrap();
        let pod = object.get_mut("spec").unwrap().get_mut("template").unwrap().get_mut("spec").unwrap();
        pod["securityContext"] = json!({"runAsUser": uid, "runAsGroup": uid, "fsGroup": fs_group});
        pod["volumes"] = json!([{"name": "home", "persistentVolumeClaim": {"claimName": "alice-home"}}]);
        pod["containers"][0]["volumeMounts"] = json!([{"name": "home", "mountPath": mount}]);
        resource
    }

    #[test]
    fn a_new_uid_fs_group_or_home_path_breaks_the_home() {
        let before = set(vec![with_identity(10001, 10001, "/storage")]);
        let risks = classify(&before, &set(vec![with_identity(20001, 10001, "/storage")]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-owner-changed"]);
        assert_eq!(
            risks[0].summary,
            "the box changes how it owns its home (uid:gid 10001:10001 → 20001:20001): nothing in the volume follows"
        );
        assert!(risks[0].help[0].contains("chown -R 20001:20001 /storage"), "{:?}", risks[0].help);
        let risks = classify(&before, &set(vec![with_identity(10001, 20001, "/home/jupyter")]), &BTreeSet::new());
        assert_eq!(
            risks[0].summary,
            "the box changes how it owns its home (fsGroup 10001 → 20001, home mount /storage → /home/jupyter): nothing in the volume follows"
        );
        assert!(classify(&before, &set(vec![with_identity(10001, 10001, "/storage")]), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_home_mounted_only_in_part_says_which_part() {
        let before = set(vec![with_identity(10001, 10001, "/storage")]);
        let mut after = with_identity(10001, 10001, "/home/jupyter");
        let pod = &mut after.object.as_mut().unwrap()["spec"]["template"]["spec"];
        pod["containers"][0]["volumeMounts"][0]["subPath"] = json!("jupyter");
        let risks = classify(&before, &set(vec![after]), &BTreeSet::new());
        assert_eq!(
            risks[0].summary,
            "the box changes how it owns its home (home mount /storage → /home/jupyter (subPath jupyter)): nothing in the volume follows"
        );
        assert!(
            risks[0].details[0]
                .starts_with("The home volume is mounted at `/home/jupyter` (only the volume's `jupyter`) instead of `/storage`"),
            "{:?}",
            risks[0].details
        );
    }

    #[test]
    fn a_new_home_directory_is_the_same_risk() {
        let with_home = |home: &str| {
            let mut resource = with_identity(10001, 10001, "/storage");
            let pod = &mut resource.object.as_mut().unwrap()["spec"]["template"]["spec"];
            pod["containers"][0]["env"] = json!([{"name": "HOME", "value": home}]);
            resource
        };
        let risks = classify(&set(vec![with_home("/storage")]), &set(vec![with_home("/storage/jupyter")]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-owner-changed"]);
        assert_eq!(
            risks[0].summary,
            "the box changes how it owns its home (HOME /storage → /storage/jupyter): nothing in the volume follows"
        );
        assert_eq!(risks[0].facts["home_to"], "/storage/jupyter");
    }
}
