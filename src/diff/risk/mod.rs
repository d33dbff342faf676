//! What a change does to people and their data, in the words a reviewer needs: the risk summary
//! that `diff` prints before any YAML.
//!
//! Each rule compares one object before and after (same `Kind/namespace/name`) and says what the
//! cluster will do about it: keep a volume nobody mounts, refuse a sync, let a new key in, delete
//! a pod. Risks are ordered by [`Level`], most dangerous first. The changes Kubernetes cannot
//! apply at all (shrinking a home volume, changing its storage class) are not risks but errors,
//! refused before a plan exists (`check::refuse_impossible_changes`).

mod tailnet;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::resource::{Resource, Resources};
use crate::check::{ARGO_SYNC_OPTIONS, FLUX_PRUNE, HOME_ROLE_LABEL};

/// How bad it is, most dangerous first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Someone's home directory is left behind or replaced by an empty one.
    Data,
    /// The GitOps sync will fail until someone acts by hand.
    Sync,
    /// Who can log in to a box changes.
    Access,
    /// A box goes away (its home stays).
    Downtime,
    /// A box restarts or moves to another node.
    Restart,
}

impl Level {
    /// Stable name, used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Data => "data",
            Level::Sync => "sync",
            Level::Access => "access",
            Level::Downtime => "downtime",
            Level::Restart => "restart",
        }
    }
}

/// What kind of risk; the stable names are documented in docs/reviewing.md for bots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    HomeVolumeRemoved,
    HomeVolumeRenamed,
    HomeVolumeMoved,
    ImmutableField,
    KeyAdded,
    KeyRemoved,
    TailnetNodeReplaced,
    TailnetTagsNotApplied,
    BoxRemoved,
    BoxArchived,
    BoxStopped,
    GpuChanged,
    ArchChanged,
    ImageChanged,
    PodRestart,
}

impl Kind {
    pub fn level(self) -> Level {
        match self {
            Kind::HomeVolumeRemoved | Kind::HomeVolumeRenamed | Kind::HomeVolumeMoved => Level::Data,
            Kind::ImmutableField => Level::Sync,
            Kind::KeyAdded | Kind::KeyRemoved | Kind::TailnetNodeReplaced | Kind::TailnetTagsNotApplied => Level::Access,
            Kind::BoxRemoved | Kind::BoxArchived | Kind::BoxStopped => Level::Downtime,
            Kind::GpuChanged | Kind::ArchChanged | Kind::ImageChanged | Kind::PodRestart => Level::Restart,
        }
    }

    /// Stable name, used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HomeVolumeRemoved => "home-volume-removed",
            Kind::HomeVolumeRenamed => "home-volume-renamed",
            Kind::HomeVolumeMoved => "home-volume-moved",
            Kind::ImmutableField => "immutable-field",
            Kind::KeyAdded => "key-added",
            Kind::KeyRemoved => "key-removed",
            Kind::TailnetNodeReplaced => "tailnet-node-replaced",
            Kind::TailnetTagsNotApplied => "tailnet-tags-not-applied",
            Kind::BoxRemoved => "box-removed",
            Kind::BoxArchived => "box-archived",
            Kind::BoxStopped => "box-stopped",
            Kind::GpuChanged => "gpu-changed",
            Kind::ArchChanged => "arch-changed",
            Kind::ImageChanged => "image-changed",
            Kind::PodRestart => "pod-restart",
        }
    }
}

/// One thing a reviewer must know. Text is plain, with code in backticks (rustc style); every
/// value that came from a user file goes through [`code`], so it cannot break out of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    pub kind: Kind,
    /// The user whose box it is.
    pub user: String,
    /// The object concerned: `StatefulSet/devboxes/alice`.
    pub resource: String,
    /// One line: what happens.
    pub summary: String,
    /// What it means, in sentences.
    pub details: Vec<String>,
    /// What to do about it: runbook steps and commands.
    pub help: Vec<String>,
    /// The values the sentences mention, raw, for bots (`fingerprint`, `from`, `to`...).
    pub facts: BTreeMap<&'static str, String>,
}

impl Risk {
    pub fn level(&self) -> Level {
        self.kind.level()
    }

    fn new(kind: Kind, resource: &Resource, summary: String) -> Self {
        Self {
            kind,
            user: resource.owner.clone(),
            resource: resource.id.clone(),
            summary,
            details: Vec::new(),
            help: Vec::new(),
            facts: BTreeMap::new(),
        }
    }

    fn fact(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.facts.insert(name, value.into());
        self
    }

    fn detail(mut self, text: impl Into<String>) -> Self {
        self.details.push(text.into());
        self
    }

    fn help(mut self, text: impl Into<String>) -> Self {
        self.help.push(text.into());
        self
    }
}

/// Every risk of going from `before` to `after`, most dangerous first. `before` and `after` may
/// hold only the resources that differ; `unchanged_owners` are the users who keep others.
pub fn classify(before: &Resources, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Vec<Risk> {
    let mut risks = Vec::new();
    risks.extend(home_volumes(before, after));
    for (id, old) in before {
        if let Some(new) = after.get(id) {
            risks.extend(immutable_fields(old, new));
            risks.extend(workload(old, new));
            if old.kind == "StatefulSet" {
                risks.extend(tailnet::state_moved(old, new));
            }
            risks.extend(tailnet::tags_changed(old, new));
        } else if old.kind == "StatefulSet" {
            risks.push(workload_removed(old, after, unchanged_owners));
        }
    }
    risks.extend(authorized_keys(before, after, unchanged_owners));
    risks.sort_by(|a, b| (a.level(), a.kind, &a.user, &a.resource, &a.summary).cmp(&(b.level(), b.kind, &b.user, &b.resource, &b.summary)));
    risks
}

/// A value from a user file, ready to sit between backticks in text and Markdown: no backticks
/// or control characters (which could also drive a terminal) survive.
pub fn code(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c == '`' {
                '\''
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect();
    format!("`{cleaned}`")
}

// --- home volumes ---------------------------------------------------------------------------

fn is_home(resource: &Resource) -> bool {
    resource.kind == "PersistentVolumeClaim" && label(resource, HOME_ROLE_LABEL) == Some("home")
}

fn metadata<'a>(resource: &'a Resource, section: &str, key: &str) -> Option<&'a str> {
    resource.object.as_ref()?.get("metadata")?.get(section)?.get(key)?.as_str()
}

fn label<'a>(resource: &'a Resource, key: &str) -> Option<&'a str> {
    metadata(resource, "labels", key)
}

fn annotation<'a>(resource: &'a Resource, key: &str) -> Option<&'a str> {
    metadata(resource, "annotations", key)
}

fn owner_email(resource: &Resource) -> Option<&str> {
    annotation(resource, "devbox-gen.dev/owner")
}

fn namespace_flag(resource: &Resource) -> String {
    resource.namespace.as_ref().map_or(String::new(), |n| format!("--namespace {n} "))
}

fn prune_protected(resource: &Resource) -> bool {
    let argo = annotation(resource, ARGO_SYNC_OPTIONS).unwrap_or("");
    argo.contains("Prune=false") && argo.contains("Delete=false") && annotation(resource, FLUX_PRUNE) == Some("disabled")
}

fn stays_in_cluster(pvc: &Resource) -> String {
    if prune_protected(pvc) {
        "The volume and its data stay in the cluster: prune is disabled for it (Argo CD `Prune=false,Delete=false`, Flux `prune: disabled`), so the sync leaves it alone.".into()
    } else {
        "The claim in out/ does not carry the annotations that stop Argo CD and Flux from pruning it: a sync with pruning enabled DELETES it and its data.".into()
    }
}

fn delete_command(pvc: &Resource) -> String {
    format!(
        "to really delete the data once nobody needs it: `kubectl {}delete persistentvolumeclaim {}` (the disk goes too when the storage class's reclaim policy is Delete)",
        namespace_flag(pvc),
        pvc.name
    )
}

fn dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The cluster of a bundle file in the per-cluster layout: `prod` for `prod/alice/x.yaml`.
fn cluster_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    let (cluster, _user, _file, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    rest.is_none().then_some(cluster)
}

fn home_volumes(before: &Resources, after: &Resources) -> Vec<Risk> {
    let mut risks = Vec::new();
    let added: Vec<&Resource> = after.values().filter(|r| is_home(r) && !before.contains_key(&r.id)).collect();
    let users_after: BTreeSet<&str> = after.values().map(|r| r.owner.as_str()).collect();
    for old in before.values().filter(|r| is_home(r)) {
        match after.get(&old.id) {
            Some(new) if dir(&old.path) != dir(&new.path) => {
                let risk = match (cluster_of(&old.path), cluster_of(&new.path)) {
                    (Some(from), Some(to)) => Risk::new(
                        Kind::HomeVolumeMoved,
                        new,
                        format!("the box moves from cluster {} to cluster {}: its home does not follow", code(from), code(to)),
                    )
                    .fact("from", from)
                    .fact("to", to)
                    .detail(format!(
                        "On {} the box starts with a new, empty home volume {}. The data stays in the volume on {}, which keeps it (prune is disabled for it); nothing mounts it any more.",
                        code(to),
                        code(&new.name),
                        code(from)
                    )),
                    _ => Risk::new(Kind::HomeVolumeMoved, new, format!("the bundle moves from out/{}/ to out/{}/", dir(&old.path), dir(&new.path)))
                        .fact("from", format!("out/{}/", dir(&old.path)))
                        .fact("to", format!("out/{}/", dir(&new.path)))
                        .detail(format!(
                            "If that is another cluster, the box there gets a new, empty home volume {}; the data stays in the volume of the old cluster, which keeps it (prune is disabled for it).",
                            code(&new.name)
                        )),
                };
                risks.push(risk.help(
                    "copy the data across before the box is used on the new cluster (a VolumeSnapshot, or rsync between the two boxes), then delete the old claim by hand",
                ));
            }
            Some(_) => {}
            None => {
                let successor =
                    added.iter().find(|new| new.owner == old.owner || owner_email(new).is_some_and(|e| Some(e) == owner_email(old)));
                match successor {
                    Some(new) => risks.push(
                        Risk::new(
                            Kind::HomeVolumeRenamed,
                            new,
                            format!("the home volume is renamed: {} replaces {} of {}", code(&new.name), code(&old.name), code(&old.owner)),
                        )
                        .fact("from", &old.name)
                        .fact("to", &new.name)
                        .detail(format!("Kubernetes sees a new claim: the box starts with an empty home. {}", stays_in_cluster(old)))
                        .help(format!(
                            "to keep the data, keep the user's name (`users/{}.toml`): the home volume's name derives from it",
                            old.owner.replace('`', "'")
                        ))
                        .help(format!(
                            "or copy the data from {} to {} by hand, then {}",
                            code(&old.name),
                            code(&new.name),
                            delete_command(old)
                        )),
                    ),
                    None => {
                        let why = if users_after.contains(old.owner.as_str()) {
                            "the bundle no longer has it".to_string()
                        } else {
                            format!("{} was removed", code(&format!("users/{}.toml", old.owner)))
                        };
                        risks.push(
                            Risk::new(Kind::HomeVolumeRemoved, old, format!("the home volume {} leaves out/: {why}", code(&old.name)))
                                .fact("volume", &old.name)
                                .detail(stays_in_cluster(old))
                                .detail(format!(
                                    "Nothing mounts it any more. Adding `users/{}.toml` back attaches the same volume again.",
                                    old.owner.replace('`', "'")
                                ))
                                .help(delete_command(old)),
                        );
                    }
                }
            }
        }
    }
    risks
}

// --- fields Kubernetes will not update --------------------------------------------------------

const STATEFULSET_IMMUTABLE: [&str; 4] = ["selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"];
const PVC_IMMUTABLE: [&str; 5] = ["accessModes", "volumeMode", "selector", "dataSource", "volumeName"];

fn spec<'a>(resource: &'a Resource, field: &str) -> Option<&'a Value> {
    resource.object.as_ref()?.get("spec")?.get(field)
}

fn immutable_fields(old: &Resource, new: &Resource) -> Option<Risk> {
    let fields: &[&str] = match old.kind.as_str() {
        "StatefulSet" => &STATEFULSET_IMMUTABLE,
        "PersistentVolumeClaim" => &PVC_IMMUTABLE,
        _ => return None,
    };
    let changed: Vec<&str> = fields.iter().copied().filter(|f| spec(old, f) != spec(new, f)).collect();
    if changed.is_empty() {
        return None;
    }
    let list = changed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    let summary = format!("{} {} changes fields Kubernetes cannot update: {list}", old.kind, code(&old.name));
    let ns = namespace_flag(new);
    let risk = Risk::new(Kind::ImmutableField, new, summary).fact("fields", changed.join(","));
    Some(if old.kind == "StatefulSet" {
        risk.detail(format!("The API server refuses this update, so the Argo CD or Flux sync of {} fails until the StatefulSet is recreated. The home volume is a standalone claim: recreating the StatefulSet does not touch it.", code(&new.id)))
            .help(format!("after merging, delete only the StatefulSet object, leaving its pod running: `kubectl {ns}delete statefulset {} --cascade=orphan`", new.name))
            .help("sync again (`argocd app sync ...` or `flux reconcile kustomization ...`): the StatefulSet is recreated with the new fields")
            .help(format!("then replace the old pod, which the new StatefulSet may not adopt: `kubectl {ns}delete pod {}-0`", new.name))
    } else {
        risk.detail(
            "The API server refuses this update, so the sync of this claim fails. A claim cannot be recreated without losing its data.",
        )
        .help("set the field back; to really change it, copy the data into a new claim by hand")
    })
}

// --- boxes: stopped, archived, restarted, rescheduled ----------------------------------------

fn replicas(resource: &Resource) -> u64 {
    spec(resource, "replicas").and_then(Value::as_u64).unwrap_or(1)
}

fn pod(resource: &Resource) -> Option<&Value> {
    spec(resource, "template")?.get("spec")
}

fn workload_removed(old: &Resource, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Risk {
    // A bundle that keeps anything without its StatefulSet is archived: the check stage allows
    // an archived box its home volume only, so what it keeps is its home.
    let home_stays = unchanged_owners.contains(&old.owner) || after.values().any(|r| is_home(r) && r.owner == old.owner);
    let pod_name = format!("{}-0", old.name);
    if home_stays {
        let archived = Risk::new(Kind::BoxArchived, old, "the box is archived: its pod goes away, the home volume stays".into())
            .detail(format!("The StatefulSet leaves out/ and the sync deletes it and its pod {}. Only the home volume is kept; `state = \"running\"` brings the box back with the same home.", code(&pod_name)));
        tailnet::machine_left_behind(old, archived)
    } else {
        let namespace = old.namespace.as_deref().unwrap_or("default");
        let removed = Risk::new(Kind::BoxRemoved, old, "the box is removed: its pod goes away".into())
            .detail(format!(
                "The whole bundle leaves out/. Flux deletes the user's Kustomization and prunes the StatefulSet and its pod {}. Argo CD deletes the user's Application but, with `preserveResourcesOnDeletion`, leaves its objects running.",
                code(&pod_name)
            ))
            .help(format!(
                "with Argo CD, archive the box first (`state = \"archived\"`, merge, let it sync) and remove the user file after; or delete what is left by hand: `kubectl --namespace {namespace} delete statefulset,service,networkpolicy,configmap,serviceaccount,secret,role,rolebinding --selector app.kubernetes.io/instance={}`",
                old.owner
            ));
        tailnet::machine_left_behind(old, removed)
    }
}

fn workload(old: &Resource, new: &Resource) -> Vec<Risk> {
    if old.kind != "StatefulSet" {
        return Vec::new();
    }
    let (was, is) = (replicas(old), replicas(new));
    if is == 0 {
        if was > 0 {
            return vec![Risk::new(Kind::BoxStopped, new, format!("the box is stopped (replicas {was} → 0): its pod is deleted, the home volume stays"))
                .fact("replicas_from", was.to_string())
                .detail("Whatever runs in it ends: Jupyter kernels, terminals, SSH sessions. `state = \"running\"` starts it again with the same home.")];
        }
        return Vec::new();
    }
    if was == 0 {
        return Vec::new(); // started: nothing is lost
    }
    let (Some(old_pod), Some(new_pod)) = (pod(old), pod(new)) else { return Vec::new() };
    let mut risks = Vec::new();
    let restart = "Processes and open sessions end; the home volume is kept, anything written outside it is lost.";
    let (old_images, new_images) = (images(old_pod), images(new_pod));
    for (container, image) in &new_images {
        if let Some(before) = old_images.get(container).filter(|b| *b != image) {
            risks.push(
                Risk::new(
                    Kind::ImageChanged,
                    new,
                    format!(
                        "the image of container {} changes from {} to {}: the pod restarts",
                        code(container),
                        code(before),
                        code(image)
                    ),
                )
                .fact("container", container.as_str())
                .fact("from", before.as_str())
                .fact("to", image.as_str())
                .detail(restart),
            );
        }
    }
    let (old_gpu, new_gpu) = (gpu(old_pod), gpu(new_pod));
    if old_gpu != new_gpu {
        let detail = if new_gpu.is_empty() {
            "The pod restarts on a node without a GPU.".to_string()
        } else {
            "The pod restarts on a node with that GPU, and stays Pending until one is free (GKE may need minutes to add a node, longer when GPUs are scarce).".to_string()
        };
        risks.push(
            Risk::new(
                Kind::GpuChanged,
                new,
                format!("the GPU changes from {} to {}: the pod is rescheduled", describe_gpu(&old_gpu), describe_gpu(&new_gpu)),
            )
            .fact("from", plain_gpu(&old_gpu))
            .fact("to", plain_gpu(&new_gpu))
            .detail(detail)
            .detail(restart),
        );
    }
    let (old_arch, new_arch) = (node_selector(old_pod, "kubernetes.io/arch"), node_selector(new_pod, "kubernetes.io/arch"));
    if old_arch != new_arch {
        let to = new_arch.unwrap_or("any architecture");
        risks.push(
            Risk::new(
                Kind::ArchChanged,
                new,
                format!("the architecture changes from {} to {}: the pod is rescheduled", code(old_arch.unwrap_or("any")), code(to)),
            )
            .fact("from", old_arch.unwrap_or("any"))
            .fact("to", new_arch.unwrap_or("any"))
            .detail(format!(
                "The pod restarts on a {} node; its image must have a variant for it, or the container will not start.",
                code(to)
            ))
            .detail(restart),
        );
    }
    let template_changed = spec(old, "template") != spec(new, "template");
    if risks.is_empty() && template_changed {
        let reasons = restart_reasons(spec(old, "template"), spec(new, "template"));
        risks.push(Risk::new(Kind::PodRestart, new, format!("the pod restarts: its template changes ({reasons})")).detail(restart));
    }
    risks
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"].into_iter().filter_map(|k| pod.get(k).and_then(Value::as_array)).flatten()
}

fn images(pod: &Value) -> BTreeMap<String, String> {
    containers(pod).filter_map(|c| Some((c.get("name")?.as_str()?.to_string(), c.get("image")?.as_str()?.to_string()))).collect()
}

fn node_selector<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.get("nodeSelector")?.get(key)?.as_str()
}

/// `(count, type)` of the GPUs a pod asks for; empty when it asks for none.
fn gpu(pod: &Value) -> Vec<(String, String)> {
    let count: Vec<String> = containers(pod)
        .filter_map(|c| c.pointer("/resources/limits")?.get("nvidia.com/gpu"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    let kind = node_selector(pod, "cloud.google.com/gke-accelerator").unwrap_or("GPU");
    count.into_iter().map(|c| (c, kind.to_string())).collect()
}

/// `1 × nvidia-l4`, or `none`, without markup.
fn plain_gpu(gpu: &[(String, String)]) -> String {
    if gpu.is_empty() {
        return "none".into();
    }
    gpu.iter().map(|(count, kind)| format!("{count} × {kind}")).collect::<Vec<_>>().join(" + ")
}

fn describe_gpu(gpu: &[(String, String)]) -> String {
    if gpu.is_empty() {
        return "none".into();
    }
    gpu.iter().map(|(count, kind)| code(&format!("{count} × {kind}"))).collect::<Vec<_>>().join(" + ")
}

/// A few words on what changed in a pod template: `containers[devbox].env`, `the ConfigMap`.
fn restart_reasons(old: Option<&Value>, new: Option<&Value>) -> String {
    let mut paths = Vec::new();
    changed_paths(old.unwrap_or(&Value::Null), new.unwrap_or(&Value::Null), &mut Vec::new(), &mut paths);
    let mut reasons: Vec<String> = Vec::new();
    for path in paths {
        let reason = if path.iter().any(|s| s.ends_with("config-hash")) {
            "the ConfigMap's scripts or sshd_config".to_string()
        } else {
            let segments: Vec<&str> = path.iter().map(String::as_str).skip_while(|s| *s == "spec").take(2).collect();
            let mut reason = segments.join(".");
            if let Some(i) = reason.rfind('[').filter(|_| reason.ends_with(']') && segments.len() > 1) {
                reason.truncate(i);
            }
            format!("`{}`", reason.replace('`', "'"))
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if reasons.len() > 4 {
        let more = reasons.len() - 3;
        reasons.truncate(3);
        reasons.push(format!("{more} more"));
    }
    reasons.join(", ")
}

/// Paths (as segments; list items appended to their list's segment, `containers[devbox]`) of
/// the leaves that differ.
fn changed_paths(old: &Value, new: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    // Something added or removed whole is compared with an empty one, to name what is inside.
    let empty = |other: &Value| match other {
        Value::Object(_) => Some(Value::Object(serde_json::Map::new())),
        Value::Array(_) => Some(Value::Array(Vec::new())),
        _ => None,
    };
    if old.is_null()
        && let Some(old) = empty(new)
    {
        return changed_paths(&old, new, at, out);
    }
    if new.is_null()
        && let Some(new) = empty(old)
    {
        return changed_paths(old, &new, at, out);
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                if x != y {
                    at.push(key.clone());
                    changed_paths(x, y, at, out);
                    at.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let named = |items: &Vec<Value>| -> Option<BTreeMap<String, Value>> {
                items.iter().map(|i| Some((i.get("name")?.as_str()?.to_string(), i.clone()))).collect()
            };
            let last = at.pop().unwrap_or_default();
            match (named(a), named(b)) {
                (Some(x), Some(y)) => {
                    let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                    for name in names {
                        let (p, q) = (x.get(name).unwrap_or(&Value::Null), y.get(name).unwrap_or(&Value::Null));
                        if p != q {
                            at.push(format!("{last}[{name}]"));
                            changed_paths(p, q, at, out);
                            at.pop();
                        }
                    }
                }
                _ => {
                    at.push(last);
                    out.push(at.clone());
                    at.pop();
                    return;
                }
            }
            at.push(last);
        }
        _ => out.push(at.clone()),
    }
}

// --- access ------------------------------------------------------------------------------------

/// One authorized key, as a reviewer recognises it.
#[derive(Clone, Debug)]
struct Key {
    /// What identifies the key: its fingerprint, or the line when it cannot be parsed.
    identity: String,
    comment: String,
    algorithm: String,
}

fn keys(resource: &Resource) -> Vec<Key> {
    let Some(text) = resource.object.as_ref().and_then(|o| o.get("data")?.get("authorized_keys")?.as_str()) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match line.parse::<ssh_key::authorized_keys::Entry>() {
            Ok(entry) => {
                let key = entry.public_key();
                Key {
                    identity: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                    comment: key.comment().to_string(),
                    algorithm: key.algorithm().to_string(),
                }
            }
            Err(_) => Key {
                identity: line.to_string(),
                comment: line.rsplit(' ').next().unwrap_or("").to_string(),
                algorithm: "unreadable".into(),
            },
        })
        .collect()
}

fn describe_key(key: &Key) -> String {
    let name = if key.comment.is_empty() { key.identity.as_str() } else { key.comment.as_str() };
    let fingerprint = if key.identity.starts_with("SHA256:") { format!(" {}", code(&key.identity)) } else { String::new() };
    format!("{} ({}{fingerprint})", code(name), key.algorithm.replace('`', "'"))
}

fn key_facts(risk: Risk, key: &Key) -> Risk {
    let risk = risk.fact("comment", key.comment.as_str()).fact("algorithm", key.algorithm.as_str());
    if key.identity.starts_with("SHA256:") { risk.fact("fingerprint", key.identity.as_str()) } else { risk }
}

fn authorized_keys(before: &Resources, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Vec<Risk> {
    let mut risks = Vec::new();
    let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for id in ids {
        let (old, new) = (before.get(id), after.get(id));
        let Some(resource) = new.or(old).filter(|r| r.kind == "ConfigMap") else { continue };
        let old_keys = old.map(keys).unwrap_or_default();
        let new_keys = new.map(keys).unwrap_or_default();
        if new.is_none() {
            continue; // the box itself goes away; that risk is told elsewhere
        }
        for key in new_keys.iter().filter(|k| !old_keys.iter().any(|o| o.identity == k.identity)) {
            let owner = new.and_then(owner_email).map_or(String::new(), |e| format!(" Check that it belongs to {}.", code(e)));
            let new_box = !unchanged_owners.contains(&resource.owner) && !before.values().any(|r| r.owner == resource.owner);
            let summary = if new_box { "can log in to the new box" } else { "can now log in" };
            risks.push(
                key_facts(Risk::new(Kind::KeyAdded, resource, format!("SSH key {} {summary}", describe_key(key))), key)
                    .detail(format!("Whoever holds its private key gets a shell on the box, with its home volume and GitHub key.{owner}")),
            );
        }
        for key in old_keys.iter().filter(|k| !new_keys.iter().any(|n| n.identity == k.identity)) {
            risks.push(
                key_facts(Risk::new(Kind::KeyRemoved, resource, format!("SSH key {} can no longer log in", describe_key(key))), key)
                    .detail("The box drops it from its authorized keys without a restart; sessions already open stay open.")
                    .help(format!(
                        "if the key is compromised, end its sessions by restarting the box: `kubectl {}delete pod {}-0`",
                        namespace_flag(resource),
                        resource.owner.replace('`', "'")
                    )),
            );
        }
    }
    risks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(owner: &str, path: &str, object: Value) -> Resource {
        let object = object.as_object().cloned().unwrap();
        let kind = crate::check::kind(&object).to_string();
        let name = crate::check::name(&object).to_string();
        let namespace = Some("devboxes".to_string());
        Resource {
            id: format!("{kind}/devboxes/{name}"),
            kind,
            namespace,
            name,
            path: path.into(),
            owner: owner.into(),
            text: String::new(),
            object: Some(object),
        }
    }

    fn home(owner: &str, path: &str) -> Resource {
        resource(
            owner,
            path,
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": format!("{owner}-home"), "labels": {HOME_ROLE_LABEL: "home"},
                "annotations": {ARGO_SYNC_OPTIONS: "Prune=false,Delete=false", FLUX_PRUNE: "disabled", "devbox-gen.dev/owner": "a@example.com"}},
                "spec": {"accessModes": ["ReadWriteOnce"]}}),
        )
    }

    fn statefulset(owner: &str, replicas: u64, image: &str, gpu: Option<&str>) -> Resource {
        let mut pod = json!({"containers": [{"name": "devbox", "image": image}], "nodeSelector": {"kubernetes.io/arch": "amd64"}});
        if let Some(kind) = gpu {
            pod["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpu": "1"}});
            pod["nodeSelector"]["cloud.google.com/gke-accelerator"] = json!(kind);
        }
        resource(
            owner,
            &format!("{owner}/statefulset-{owner}.yaml"),
            json!({"kind": "StatefulSet", "metadata": {"name": owner}, "spec": {"replicas": replicas, "serviceName": owner, "template": {"spec": pod}}}),
        )
    }

    fn set(items: Vec<Resource>) -> Resources {
        items.into_iter().map(|r| (r.id.clone(), r)).collect()
    }

    fn kinds(risks: &[Risk]) -> Vec<&'static str> {
        risks.iter().map(|r| r.kind.as_str()).collect()
    }

    #[test]
    fn a_removed_user_leaves_the_volume_and_the_pod_goes() {
        let before = set(vec![home("bob", "bob/pvc.yaml"), statefulset("bob", 1, "i:1", None)]);
        let risks = classify(&before, &Resources::new(), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-removed", "box-removed"]);
        assert_eq!(risks[0].summary, "the home volume `bob-home` leaves out/: `users/bob.toml` was removed");
        assert!(risks[0].details[0].contains("stay in the cluster"), "{:?}", risks[0]);
        assert!(risks[0].help[0].contains("kubectl --namespace devboxes delete persistentvolumeclaim bob-home"));
    }

    #[test]
    fn a_renamed_user_gets_an_empty_home() {
        let before = set(vec![home("alice", "alice/pvc.yaml")]);
        let after = set(vec![home("alicia", "alicia/pvc.yaml")]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-renamed"]);
        assert_eq!(risks[0].user, "alicia");
    }

    #[test]
    fn a_moved_bundle_warns_that_data_does_not_follow() {
        let risks =
            classify(&set(vec![home("alice", "alice/pvc.yaml")]), &set(vec![home("alice", "prod/alice/pvc.yaml")]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["home-volume-moved"]);
    }

    #[test]
    fn a_box_moving_between_clusters_says_so() {
        let risks = classify(
            &set(vec![home("alice", "prod/alice/pvc.yaml")]),
            &set(vec![home("alice", "staging/alice/pvc.yaml")]),
            &BTreeSet::new(),
        );
        assert_eq!(kinds(&risks), ["home-volume-moved"]);
        assert_eq!(risks[0].summary, "the box moves from cluster `prod` to cluster `staging`: its home does not follow");
        assert!(
            risks[0].details[0].starts_with("On `staging` the box starts with a new, empty home volume `alice-home`."),
            "{:?}",
            risks[0]
        );
    }

    #[test]
    fn immutable_fields_stop_the_sync() {
        let old = statefulset("alice", 1, "i:1", None);
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["serviceName"] = json!("other");
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["immutable-field"]);
        assert!(risks[0].summary.contains("`serviceName`"));
        assert!(risks[0].help[0].contains("--cascade=orphan"));
    }

    #[test]
    fn stopping_restarting_and_rescheduling() {
        let before = set(vec![statefulset("a", 1, "i:1", None), statefulset("b", 1, "i:1", None), statefulset("c", 0, "i:1", None)]);
        let after =
            set(vec![statefulset("a", 0, "i:1", None), statefulset("b", 1, "i:2", Some("nvidia-l4")), statefulset("c", 1, "i:2", None)]);
        let risks = classify(&before, &after, &BTreeSet::new());
        assert_eq!(kinds(&risks), ["box-stopped", "gpu-changed", "image-changed"]);
        assert_eq!(risks[1].summary, "the GPU changes from none to `1 × nvidia-l4`: the pod is rescheduled");
    }

    #[test]
    fn any_other_template_change_restarts_the_pod() {
        let old = statefulset("a", 1, "i:1", None);
        let mut new = old.clone();
        new.object.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "EDITOR", "value": "vim"}]);
        new.object.as_mut().unwrap()["spec"]["template"]["metadata"] = json!({"annotations": {"devbox-gen.dev/config-hash": "x"}});
        let risks = classify(&set(vec![old]), &set(vec![new]), &BTreeSet::new());
        assert_eq!(kinds(&risks), ["pod-restart"]);
        assert_eq!(
            risks[0].summary,
            "the pod restarts: its template changes (the ConfigMap's scripts or sshd_config, `containers[devbox].env`)"
        );
    }

    #[test]
    fn values_cannot_escape_their_backticks() {
        assert_eq!(code("a`b\u{1b}[31m"), "`a'b?[31m`");
    }
}
