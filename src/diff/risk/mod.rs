//! What a change does to people and their data, in the words a reviewer needs: the risk summary
//! that `diff` prints before any YAML.
//!
//! Each rule compares one object before and after (same `Kind/namespace/name`) and says what the
//! cluster will do about it: keep a volume nobody mounts, refuse a sync, let a new key in, delete
//! a pod. Risks are ordered by [`Level`], most dangerous first. The changes Kubernetes cannot
//! apply at all (shrinking a home volume, changing its storage class) are not risks but errors,
//! refused before a plan exists (`check::refuse_impossible_changes`).
//!
//! The rules live by family, a file each:
//!
//! - `home`: a home volume left behind, renamed, or not following its box to another cluster
//!   ([`Level::Data`]);
//! - `immutable`: fields Kubernetes will not update, which stop the sync ([`Level::Sync`]);
//! - `access`: SSH keys that can now, or no longer, log in ([`Level::Access`]);
//! - `tailnet`: what tailscale does when the sidecar's state, tags or hostname change
//!   ([`Level::Access`]),
//!   and the machine a box leaves behind in the tailnet when it goes away;
//! - `platform`: what devbox.toml or the template change for every box at once: a namespace
//!   change (one [`Level::Data`] risk instead of one per object), a new uid, gid, fsGroup or
//!   home path ([`Level::Data`]), Flux boxes switching to artifacts of their own, which stall
//!   without kustomize-controller's feature gate ([`Level::Sync`]);
//! - `engine`: a GitOps engine or a cluster's delivery directory that comes or goes
//!   (`gitops`, `[[clusters]]`): applied once by hand, retired by hand ([`Level::Sync`]);
//! - `workload`: the box stopped, archived or removed, or moved onto Spot VMs that can stop it
//!   at any time ([`Level::Downtime`]), restarted or rescheduled by a new image, GPU,
//!   architecture or any other template change ([`Level::Restart`]);
//! - `autostop`: the box starts stopping by itself when idle, or its idle window or working
//!   hours change ([`Level::Downtime`]), or it stops doing so and runs until Git stops it
//!   ([`Level::Restart`]);
//! - `foreign`: a file of `out/` devbox-gen did not generate, which Argo CD and Flux apply as
//!   it is ([`Level::Access`]), or a kustomization file that decides what they apply of a
//!   delivery directory, and so what they prune ([`Level::Data`]);
//! - `owner`: the owner's own kubectl access to the box (`[owners]`) granted, changed or
//!   removed ([`Level::Access`]).
//!
//! This file holds what they share: the types, [`classify`] (which runs every rule), [`code`],
//! and small readers of a resource's metadata and pod template.
//!
//! A new kind of risk:
//!
//! 1. add its [`Kind`] variant, its [`Level`] in [`Kind::level`] and its stable name in
//!    [`Kind::as_str`] (bots match on the name: never change one);
//! 2. write the rule in its family's file (a new family gets a new file), and call it from
//!    [`classify`] if nothing there calls it yet;
//! 3. add a unit test next to the rule (`test_support` builds the resources);
//! 4. document the kind, its level and its facts in docs/reviewing.md (the table of risks and
//!    `risks[].facts`).

mod access;
mod autostop;
pub(crate) mod engine;
pub(crate) mod foreign;
pub(crate) mod home;
mod immutable;
mod owner;
pub(crate) mod platform;
mod tailnet;
mod workload;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::resource::{Resource, Resources};
use crate::check::HOME_ROLE_LABEL;

/// How bad it is, most dangerous first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) enum Kind {
    NamespaceChanged,
    ClusterServerChanged,
    DeliveryMoved,
    DeliveryEngineChanged,
    FluxArtifactsEnabled,
    HomeOwnerChanged,
    HomeVolumeRemoved,
    HomeVolumeRenamed,
    HomeVolumeMoved,
    ImmutableField,
    HomeHandedOver,
    KeyAdded,
    KeyRemoved,
    HostnameChanged,
    TailnetNodeReplaced,
    TailnetTagsNotApplied,
    OwnerAccessGranted,
    OwnerAccessChanged,
    OwnerAccessRemoved,
    ClusterRoleBound,
    ForeignManifest,
    ForeignKustomization,
    OutBehind,
    OutBehindHome,
    NetworkPolicyRemoved,
    BoxRemoved,
    BoxArchived,
    BoxStopped,
    SpotChanged,
    AutostopEnabled,
    IdleChanged,
    GpuChanged,
    ArchChanged,
    ImageChanged,
    AutostopDisabled,
    PodRestart,
}

impl Kind {
    pub(crate) fn level(self) -> Level {
        match self {
            Kind::NamespaceChanged
            | Kind::ClusterServerChanged
            | Kind::HomeOwnerChanged
            | Kind::HomeVolumeRemoved
            | Kind::HomeVolumeRenamed
            | Kind::HomeVolumeMoved
            | Kind::ForeignKustomization
            | Kind::OutBehindHome => Level::Data,
            Kind::ImmutableField | Kind::DeliveryMoved | Kind::DeliveryEngineChanged | Kind::FluxArtifactsEnabled | Kind::OutBehind => {
                Level::Sync
            }
            Kind::KeyAdded
            | Kind::KeyRemoved
            | Kind::HostnameChanged
            | Kind::TailnetNodeReplaced
            | Kind::TailnetTagsNotApplied
            | Kind::OwnerAccessGranted
            | Kind::OwnerAccessChanged
            | Kind::OwnerAccessRemoved
            | Kind::ClusterRoleBound
            | Kind::ForeignManifest
            | Kind::NetworkPolicyRemoved
            | Kind::HomeHandedOver => Level::Access,
            // Off Spot too: the pod is rescheduled, and may wait for a standard node. A new
            // idle window or new hours change when the box goes away, not whether.
            Kind::BoxRemoved | Kind::BoxArchived | Kind::BoxStopped | Kind::SpotChanged | Kind::AutostopEnabled | Kind::IdleChanged => {
                Level::Downtime
            }
            // A box that no longer stops by itself loses nothing; its pod restarts once.
            Kind::GpuChanged | Kind::ArchChanged | Kind::ImageChanged | Kind::AutostopDisabled | Kind::PodRestart => Level::Restart,
        }
    }

    /// Stable name, used in JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::NamespaceChanged => "namespace-changed",
            Kind::ClusterServerChanged => "cluster-server-changed",
            Kind::DeliveryMoved => "delivery-moved",
            Kind::DeliveryEngineChanged => "delivery-engine-changed",
            Kind::FluxArtifactsEnabled => "flux-artifacts-enabled",
            Kind::HomeOwnerChanged => "home-owner-changed",
            Kind::HomeVolumeRemoved => "home-volume-removed",
            Kind::HomeVolumeRenamed => "home-volume-renamed",
            Kind::HomeVolumeMoved => "home-volume-moved",
            Kind::ImmutableField => "immutable-field",
            Kind::HomeHandedOver => "home-handed-over",
            Kind::KeyAdded => "key-added",
            Kind::KeyRemoved => "key-removed",
            Kind::HostnameChanged => "hostname-changed",
            Kind::TailnetNodeReplaced => "tailnet-node-replaced",
            Kind::TailnetTagsNotApplied => "tailnet-tags-not-applied",
            Kind::OwnerAccessGranted => "owner-access-granted",
            Kind::OwnerAccessChanged => "owner-access-changed",
            Kind::OwnerAccessRemoved => "owner-access-removed",
            Kind::ClusterRoleBound => "cluster-role-bound",
            Kind::ForeignManifest => "foreign-manifest",
            Kind::ForeignKustomization => "foreign-kustomization",
            Kind::OutBehind => "out-behind",
            Kind::OutBehindHome => "out-behind-home",
            Kind::NetworkPolicyRemoved => "network-policy-removed",
            Kind::BoxRemoved => "box-removed",
            Kind::BoxArchived => "box-archived",
            Kind::BoxStopped => "box-stopped",
            Kind::SpotChanged => "spot-changed",
            Kind::AutostopEnabled => "autostop-enabled",
            Kind::IdleChanged => "idle-changed",
            Kind::GpuChanged => "gpu-changed",
            Kind::ArchChanged => "arch-changed",
            Kind::ImageChanged => "image-changed",
            Kind::AutostopDisabled => "autostop-disabled",
            Kind::PodRestart => "pod-restart",
        }
    }
}

/// One thing a reviewer must know. Text is plain, with code in backticks (rustc style); every
/// value that came from a user file goes through [`code`], so it cannot break out of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Risk {
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
    pub(crate) fn level(&self) -> Level {
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
pub(crate) fn classify(before: &Resources, after: &Resources, unchanged_owners: &BTreeSet<String>) -> Vec<Risk> {
    let (before, mut risks) = platform::follow_namespace_moves(before, after);
    let before = before.as_ref();
    let flux_left = engine::flux_left(before, after);
    let moved = platform::delivery_moved(before, after);
    risks.extend(engine::changed(before, after, moved.is_some()));
    risks.extend(engine::repointed(before, after));
    risks.extend(moved);
    risks.extend(platform::cluster_server_changed(before, after));
    risks.extend(platform::flux_artifacts_enabled(before, after));
    risks.extend(home::volumes(before, after));
    for (id, old) in before {
        if let Some(new) = after.get(id) {
            risks.extend(immutable::fields(old, new));
            let mut explained = Vec::new();
            explained.extend(platform::identity_changed(old, new));
            if old.kind == "StatefulSet" {
                explained.extend(tailnet::state_moved(old, new));
                explained.extend(tailnet::hostname_changed(old, new));
            }
            let mut workload = workload::changed(old, new);
            // "the pod restarts: its template changes" adds nothing to a risk that says why.
            if explained.iter().any(|r| r.kind != Kind::TailnetNodeReplaced) {
                workload.retain(|r| r.kind != Kind::PodRestart);
            }
            risks.extend(workload);
            risks.extend(explained);
            risks.extend(tailnet::tags_changed(old, new));
        } else if old.kind == "StatefulSet" {
            risks.push(workload::removed(old, before, after, unchanged_owners, &flux_left));
        }
    }
    // A new box is as interruptible as a changed one.
    risks.extend(
        after
            .iter()
            .filter(|(id, new)| new.kind == "StatefulSet" && !before.contains_key(*id))
            .filter_map(|(_, new)| workload::new_on_spot(new)),
    );
    risks.extend(access::authorized_keys(before, after, unchanged_owners));
    risks.extend(access::cluster_role_bindings(before, after));
    risks.extend(access::network_policies_removed(before, after));
    let autostop = autostop::changed(before, after, unchanged_owners);
    // "the pod restarts: its template changes" adds nothing to a risk that says why.
    let restart_told: BTreeSet<&str> =
        autostop.iter().filter(|r| matches!(r.kind, Kind::AutostopEnabled | Kind::AutostopDisabled)).map(|r| r.user.as_str()).collect();
    risks.retain(|r| r.kind != Kind::PodRestart || !restart_told.contains(r.user.as_str()));
    risks.extend(autostop);
    risks.extend(owner::access(before, after));
    risks.sort_by(order);
    risks
}

/// Most dangerous first, then by kind, user and object, so a report reads the same every run.
pub(crate) fn order(a: &Risk, b: &Risk) -> std::cmp::Ordering {
    (a.level(), a.kind, &a.user, &a.resource, &a.summary).cmp(&(b.level(), b.kind, &b.user, &b.resource, &b.summary))
}

/// A value from a user file, ready to sit between backticks in text and Markdown: no backticks
/// or control characters (which could also drive a terminal) survive.
pub(crate) fn code(value: &str) -> String {
    format!("`{}`", plain(value))
}

/// A value from a user file, to show outside backticks: no backticks, control characters or
/// bidirectional controls (which would reorder what a reviewer reads).
pub(crate) fn plain(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == '`' {
                '\''
            } else if c.is_control() || crate::text::is_bidi_control(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

// --- shared by the families ------------------------------------------------------------------

/// A user's home volume: the claim labelled with the home role.
pub(crate) fn is_home(resource: &Resource) -> bool {
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

fn spec<'a>(resource: &'a Resource, field: &str) -> Option<&'a Value> {
    resource.object.as_ref()?.get("spec")?.get(field)
}

fn pod(resource: &Resource) -> Option<&Value> {
    spec(resource, "template")?.get("spec")
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"].into_iter().filter_map(|k| pod.get(k).and_then(Value::as_array)).flatten()
}

#[cfg(test)]
mod test_support {
    //! Resources and sets of them for the families' unit tests.

    use serde_json::{Value, json};

    use super::{Resource, Resources, Risk};
    use crate::check::{ARGO_SYNC_OPTIONS, FLUX_PRUNE, HOME_ROLE_LABEL};

    fn resource(owner: &str, path: &str, object: Value) -> Resource {
        resource_in("devboxes", owner, path, object)
    }

    pub(super) fn resource_in(namespace: &str, owner: &str, path: &str, object: Value) -> Resource {
        let object = object.as_object().cloned().unwrap();
        let kind = crate::check::kind(&object).to_string();
        let name = crate::check::name(&object).to_string();
        Resource {
            id: format!("{kind}/{namespace}/{name}"),
            kind,
            namespace: Some(namespace.into()),
            name,
            path: path.into(),
            owner: owner.into(),
            text: String::new(),
            object: Some(object),
        }
    }

    pub(super) fn home(owner: &str, path: &str) -> Resource {
        resource(
            owner,
            path,
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": format!("{owner}-home"), "labels": {HOME_ROLE_LABEL: "home"},
                "annotations": {ARGO_SYNC_OPTIONS: "Prune=false,Delete=false", FLUX_PRUNE: "disabled", "devbox-gen.dev/owner": "a@example.com"}},
                "spec": {"accessModes": ["ReadWriteOnce"]}}),
        )
    }

    pub(super) fn statefulset(owner: &str, replicas: u64, image: &str, gpu: Option<&str>) -> Resource {
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

    /// The box's ConfigMap, with `policy` as its `idle.json` when it stops by itself.
    pub(super) fn config_map(owner: &str, policy: Option<Value>) -> Resource {
        let data = match policy {
            Some(policy) => json!({"idle.json": serde_json::to_string_pretty(&policy).unwrap()}),
            None => json!({}),
        };
        resource(
            owner,
            &format!("{owner}/configmap-{owner}-devbox.yaml"),
            json!({"kind": "ConfigMap", "metadata": {"name": format!("{owner}-devbox")}, "data": data}),
        )
    }

    /// A Flux Kustomization of `owner`'s box; its `path` says which delivery directory.
    pub(super) fn kustomization(owner: &str) -> Resource {
        resource(
            owner,
            &format!("{owner}/kustomization.yaml"),
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": format!("devbox-{owner}")}}),
        )
    }

    pub(super) fn set(items: Vec<Resource>) -> Resources {
        items.into_iter().map(|r| (r.id.clone(), r)).collect()
    }

    pub(super) fn kinds(risks: &[Risk]) -> Vec<&'static str> {
        risks.iter().map(|r| r.kind.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_escape_their_backticks() {
        assert_eq!(code("a`b\u{1b}[31m"), "`a'b?[31m`");
        // A key comment that would read `evilexe.png` reversed in the review: the control shows.
        assert_eq!(plain("evil\u{202e}gnp.exe"), "evil?gnp.exe");
    }
}
