//! Stage 5, check: what the template produced is valid Kubernetes and obeys the rules of docs/design.md,
//! whoever wrote the template.
//!
//! Objects of the kinds a devbox uses are deserialised into k8s-openapi's typed structs, and
//! every field those types do not know is reported (serde would silently drop it, and the API
//! server would reject it with `--strict`). The safety rules (home volume protected, pod
//! hardened, no Secret contents) are checked on the JSON, so a custom template cannot opt out.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::OutTree;
use crate::model::State;
use crate::quantity::Quantity;
use crate::render::{Object, RenderedBox};

/// Reports one box's problems, found by [`check_box`], against its user file.
pub(crate) fn problems_to_diagnostics(source: &str, problems: Vec<String>, template: &str) -> Diagnostics {
    Diagnostics(
        problems
            .into_iter()
            .map(|problem| {
                Diagnostic::error(format!("{template} produced an invalid bundle for {source}")).in_path(source.to_string()).help(problem)
            })
            .collect(),
    )
}

/// Label that marks the home volume; the rules below find it by this, not by its name.
pub(crate) const HOME_ROLE_LABEL: &str = "devbox-gen.dev/role";
pub(crate) const ARGO_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub(crate) const FLUX_PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";

/// The home PVC's name depends on the user's name only (rule 1 of docs/design.md).
pub(crate) fn home_volume_name(user: &str) -> String {
    format!("{user}-home")
}

/// The problems of one rendered box, as sentences; empty when it obeys every rule.
pub fn check_box(rendered: &RenderedBox) -> Vec<String> {
    let name = &rendered.resolved.name;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for object in &rendered.objects {
        let id = object_id(object);
        if !seen.insert(id.clone()) {
            problems.push(format!("{id} is produced twice"));
        }
        problems.extend(check_object(object).into_iter().map(|p| format!("{id}: {p}")));
    }
    let homes: Vec<&Object> = rendered.objects.iter().filter(|o| is_home_volume(o)).collect();
    match homes.as_slice() {
        [home] => problems.extend(check_home_volume(home, name)),
        [] => problems.push(format!(
            "no home volume: the bundle needs a PersistentVolumeClaim labelled `{HOME_ROLE_LABEL}: home` named `{}`",
            home_volume_name(name)
        )),
        _ => problems.push("more than one PersistentVolumeClaim is labelled as the home volume".into()),
    }
    problems.extend(sync_wave_deadlocks(&rendered.objects));
    let workloads = rendered.objects.iter().filter(|o| kind(o) == "StatefulSet").count();
    if rendered.resolved.state == State::Archived && rendered.objects.len() != 1 {
        problems.push("an archived box keeps only its home volume, but the template emitted more".into());
    }
    if rendered.resolved.state != State::Archived && workloads != 1 {
        problems.push(format!("a {} box needs exactly one StatefulSet, found {workloads}", rendered.resolved.state));
    }
    problems
}

pub(crate) fn kind(object: &Object) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn name(object: &Object) -> &str {
    object.pointer_str("/metadata/name").unwrap_or("")
}

/// `Kind/namespace/name`, how reviewers and the diff refer to an object.
pub(crate) fn object_id(object: &Object) -> String {
    let namespace = object.pointer_str("/metadata/namespace").unwrap_or("");
    format!("{}/{}/{}", kind(object), namespace, name(object)).replace("//", "/")
}

trait Pointer {
    fn pointer_str(&self, pointer: &str) -> Option<&str>;
    fn at(&self, pointer: &str) -> Option<&Value>;
}

impl Pointer for Object {
    fn pointer_str(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).and_then(Value::as_str)
    }

    fn at(&self, pointer: &str) -> Option<&Value> {
        let (first, rest) = pointer.trim_start_matches('/').split_once('/').unwrap_or((pointer.trim_start_matches('/'), ""));
        let value = self.get(first)?;
        if rest.is_empty() { Some(value) } else { value.pointer(&format!("/{rest}")) }
    }
}

fn is_home_volume(object: &Object) -> bool {
    kind(object) == "PersistentVolumeClaim"
        && object.pointer_str(&format!("/metadata/labels/{}", HOME_ROLE_LABEL.replace('/', "~1"))) == Some("home")
}

fn check_object(object: &Object) -> Vec<String> {
    let mut problems = Vec::new();
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let object_kind = object.get("kind").and_then(Value::as_str);
    if api_version.is_none() || object_kind.is_none() {
        problems.push("apiVersion and kind must be strings".into());
        return problems;
    }
    match object.pointer_str("/metadata/name") {
        Some(n) if crate::validate::is_dns_label(n) || n.split('.').all(crate::validate::is_dns_label) => {}
        Some(n) => problems.push(format!("`{n}` is not a valid object name")),
        None => problems.push("metadata.name is missing".into()),
    }
    if object_kind == Some("Secret") && ["data", "stringData"].iter().any(|field| object.get(*field).is_some()) {
        problems.push(
            "Secrets must never carry data here: their contents would be committed to Git. Reference a Secret created out of band instead (an empty Secret that a controller fills is fine)"
                .into(),
        );
    }
    problems.extend(typed_check(object));
    if let Some(pod) = object.at("/spec/template/spec") {
        problems.extend(check_pod(pod));
    }
    if object_kind == Some("StatefulSet")
        && object.at("/spec/volumeClaimTemplates").is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        problems.push("volumeClaimTemplates tie the home to the StatefulSet (it could not be recreated or resized without touching the data); use the standalone home PVC".into());
    }
    problems
}

/// Deserialises known kinds into k8s-openapi types; unknown fields and wrong types are errors.
fn typed_check(object: &Object) -> Vec<String> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, networking::v1 as networking, rbac::v1 as rbac};
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = kind(object);
    macro_rules! typed {
        ($($ty:ty),* $(,)?) => {
            $(if api_version == <$ty>::API_VERSION && kind == <$ty>::KIND { return strict::<$ty>(object); })*
        };
    }
    typed!(
        apps::StatefulSet,
        apps::Deployment,
        core::ConfigMap,
        core::Secret,
        core::PersistentVolumeClaim,
        core::Service,
        core::ServiceAccount,
        core::Namespace,
        core::Pod,
        networking::NetworkPolicy,
        rbac::Role,
        rbac::RoleBinding,
    );
    Vec::new() // other kinds (CRDs from custom templates) are checked by their own controllers
}

fn strict<T: DeserializeOwned>(object: &Object) -> Vec<String> {
    let mut unknown = Vec::new();
    let result: Result<T, _> = serde_ignored::deserialize(object, |path| unknown.push(crate::source::ignored_path(&path)));
    let mut problems: Vec<String> = unknown.into_iter().map(|p| format!("unknown field `{p}`")).collect();
    if let Err(e) = result {
        problems.push(format!("not a valid {}: {e}", kind(object)));
    }
    problems
}

/// The hardening rule 5 of docs/design.md requires of every pod.
fn check_pod(pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let truthy = |v: Option<&Value>| v.and_then(Value::as_bool) == Some(true);
    let pod_context = pod.get("securityContext");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if truthy(pod.get(host)) {
            problems.push(format!("{host} must not be used"));
        }
    }
    if pod.get("automountServiceAccountToken").and_then(Value::as_bool) != Some(false) {
        problems.push("automountServiceAccountToken must be false: a token mounted into every container would reach the person's code; project one into the container that needs it".into());
    }
    if let Some(main) = pod.get("containers").and_then(Value::as_array).and_then(|c| c.first()) {
        let token_volumes = token_volumes(pod);
        let mounts = main.get("volumeMounts").and_then(Value::as_array).into_iter().flatten();
        for mounted in mounts.filter_map(|m| m.get("name").and_then(Value::as_str)).filter(|n| token_volumes.contains(n)) {
            let cname = main.get("name").and_then(Value::as_str).unwrap_or("?");
            problems.push(format!(
                "container `{cname}` runs the person's code and must not mount the service-account token of volume `{mounted}`"
            ));
        }
    }
    let pod_non_root = truthy(pod_context.and_then(|c| c.get("runAsNonRoot")));
    let pod_seccomp = pod_context.and_then(|c| c.pointer("/seccompProfile/type")).and_then(Value::as_str) == Some("RuntimeDefault");
    let containers = ["containers", "initContainers"].iter().filter_map(|k| pod.get(*k).and_then(Value::as_array)).flatten();
    for container in containers {
        let cname = container.get("name").and_then(Value::as_str).unwrap_or("?");
        let context = container.get("securityContext");
        let field = |f: &str| context.and_then(|c| c.pointer(f));
        if !(pod_non_root || truthy(field("/runAsNonRoot"))) {
            problems.push(format!("container `{cname}` must set runAsNonRoot"));
        }
        if field("/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
            problems.push(format!("container `{cname}` must set allowPrivilegeEscalation: false"));
        }
        if truthy(field("/privileged")) {
            problems.push(format!("container `{cname}` must not be privileged"));
        }
        let drops_all = field("/capabilities/drop").and_then(Value::as_array).is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !drops_all {
            problems.push(format!("container `{cname}` must drop ALL capabilities"));
        }
        if field("/capabilities/add").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            problems.push(format!("container `{cname}` must not add capabilities"));
        }
        let seccomp = field("/seccompProfile/type").and_then(Value::as_str);
        if !(seccomp == Some("RuntimeDefault") || seccomp.is_none() && pod_seccomp) {
            problems.push(format!("container `{cname}` must use the RuntimeDefault seccomp profile"));
        }
    }
    problems
}

pub(crate) const ARGO_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// An object's Argo CD sync wave: its annotation, 0 without one; `Err` with the text when the
/// annotation is not an integer.
fn sync_wave(object: &Object) -> Result<i64, &str> {
    match object.pointer_str(&format!("/metadata/annotations/{}", ARGO_SYNC_WAVE.replace('/', "~1"))) {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| text),
    }
}

/// Argo CD applies a sync wave only once every object of the earlier waves is Healthy, and a
/// PersistentVolumeClaim whose StorageClass binds WaitForFirstConsumer (GKE's standard-rwo and
/// premium-rwo, most CSI classes) stays Pending, which Argo CD reports as Progressing, until a
/// pod uses it. A claim in an earlier wave than the workload that mounts it is a sync that
/// never finishes (argoproj/argo-cd#12840).
fn sync_wave_deadlocks(objects: &[Object]) -> Vec<String> {
    let mut problems = Vec::new();
    for object in objects {
        if let Err(text) = sync_wave(object) {
            problems.push(format!("{}: `{ARGO_SYNC_WAVE}: {text}` is not an integer", object_id(object)));
        }
    }
    for workload in objects {
        let Some(pod) = workload.at("/spec/template/spec") else { continue };
        let Ok(wave) = sync_wave(workload) else { continue };
        let volumes = pod.get("volumes").and_then(Value::as_array).into_iter().flatten();
        let claims: Vec<&str> = volumes.filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str()).collect();
        for claim in objects.iter().filter(|o| kind(o) == "PersistentVolumeClaim" && claims.contains(&name(o))) {
            if let Ok(claim_wave) = sync_wave(claim)
                && claim_wave < wave
            {
                problems.push(format!(
                    "{} is in Argo CD sync wave {claim_wave}, before {} (wave {wave}) that mounts it: a claim that binds WaitForFirstConsumer stays Pending until a pod uses it, so Argo CD never gets to the later wave (argoproj/argo-cd#12840); put both in one wave, where Argo CD applies the claim first anyway",
                    object_id(claim),
                    object_id(workload)
                ));
            }
        }
    }
    problems
}

/// The pod's volumes that hold a service-account token.
fn token_volumes(pod: &Value) -> Vec<&str> {
    let volumes = pod.get("volumes").and_then(Value::as_array).into_iter().flatten();
    volumes
        .filter(|v| {
            let sources = v.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten();
            sources.clone().any(|s| s.get("serviceAccountToken").is_some())
        })
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect()
}

fn check_home_volume(home: &Object, user: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = home_volume_name(user);
    if name(home) != expected {
        problems.push(format!(
            "the home volume is named `{}`; it must be `{expected}`, derived from the user's name only, so no other change can ever rename (and so lose) it",
            name(home)
        ));
    }
    let annotation = |key: &str| home.pointer_str(&format!("/metadata/annotations/{}", key.replace('/', "~1")));
    let argo = annotation(ARGO_SYNC_OPTIONS).unwrap_or("");
    if !(argo.contains("Prune=false") && argo.contains("Delete=false")) {
        problems.push(format!(
            "the home volume needs the annotation `{ARGO_SYNC_OPTIONS}: Prune=false,Delete=false` so Argo CD never deletes it"
        ));
    }
    if annotation(FLUX_PRUNE) != Some("disabled") {
        problems.push(format!("the home volume needs the annotation `{FLUX_PRUNE}: disabled` so Flux never prunes it"));
    }
    problems
}

/// What makes a home volume: its size and class, which Kubernetes can only grow / never change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HomeVolume {
    pub size: String,
    pub storage_class: Option<String>,
}

impl HomeVolume {
    pub(crate) fn of(object: &Object) -> Option<Self> {
        if !is_home_volume(object) {
            return None;
        }
        Some(Self {
            size: object.pointer_str("/spec/resources/requests/storage")?.to_string(),
            storage_class: object.pointer_str("/spec/storageClassName").map(str::to_string),
        })
    }
}

/// A change Kubernetes cannot apply to a home volume that already exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImpossibleChange {
    Shrink { user: String, from: String, to: String },
    StorageClass { user: String, from: Option<String>, to: Option<String> },
}

impl ImpossibleChange {
    pub(crate) fn user(&self) -> &str {
        match self {
            Self::Shrink { user, .. } | Self::StorageClass { user, .. } => user,
        }
    }

    pub(crate) fn to_diagnostic(&self) -> Diagnostic {
        let source = format!("users/{}.toml", self.user());
        match self {
            Self::Shrink { user, from, to } => Diagnostic::error(format!("the home volume of `{user}` would shrink from {from} to {to}"))
                .in_path(source)
                .help("Kubernetes cannot shrink a PersistentVolumeClaim: set `home.size` back to at least the current size")
                .help("to really get a smaller volume, copy the data to a new box and archive this one"),
            Self::StorageClass { user, from, to } => Diagnostic::error(format!(
                "the storage class of `{user}`'s home volume would change from {} to {}",
                from.as_deref().unwrap_or("the cluster default"),
                to.as_deref().unwrap_or("the cluster default")
            ))
            .in_path(source)
            .help("a PersistentVolumeClaim's storage class is immutable: set `home.storage_class` back")
            .help("to move the data to another class, snapshot the volume and restore it into a new claim by hand"),
        }
    }
}

/// Home volumes by user, from the PVC files of a tree (`out/` on disk, at a git revision, or
/// just compiled).
pub(crate) fn home_volumes(tree: &OutTree) -> BTreeMap<String, HomeVolume> {
    let mut volumes = BTreeMap::new();
    for (path, text) in &tree.files {
        let file = path.rsplit_once('/').map_or(path.as_str(), |(_, file)| file);
        if !file.starts_with("persistentvolumeclaim-") {
            continue;
        }
        let Ok(object) = serde_saphyr::from_str::<Object>(text) else { continue };
        if let Some(volume) = HomeVolume::of(&object) {
            volumes.insert(crate::emit::owner(path, text), volume);
        }
    }
    volumes
}

/// What `build` and `diff` both refuse: going from `before` to `after` would need a change to a
/// home volume that Kubernetes cannot apply.
pub(crate) fn refuse_impossible_changes(before: &OutTree, after: &OutTree) -> Result<(), Diagnostics> {
    let impossible = impossible_changes(&home_volumes(before), &home_volumes(after));
    if impossible.is_empty() {
        return Ok(());
    }
    Err(Diagnostics(impossible.iter().map(ImpossibleChange::to_diagnostic).collect()))
}

/// Compares home volumes before and after, by user: the changes `build` must refuse.
pub(crate) fn impossible_changes(before: &BTreeMap<String, HomeVolume>, after: &BTreeMap<String, HomeVolume>) -> Vec<ImpossibleChange> {
    let mut changes = Vec::new();
    for (user, new) in after {
        let Some(old) = before.get(user) else { continue };
        if let (Ok(from), Ok(to)) = (Quantity::parse(&old.size), Quantity::parse(&new.size))
            && to < from
        {
            changes.push(ImpossibleChange::Shrink { user: user.clone(), from: old.size.clone(), to: new.size.clone() });
        }
        if old.storage_class != new.storage_class {
            changes.push(ImpossibleChange::StorageClass {
                user: user.clone(),
                from: old.storage_class.clone(),
                to: new.storage_class.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(size: &str, class: Option<&str>) -> HomeVolume {
        HomeVolume { size: size.into(), storage_class: class.map(Into::into) }
    }

    #[test]
    fn growing_is_fine_shrinking_and_reclassing_are_not() {
        let before = BTreeMap::from([("a".to_string(), volume("100Gi", Some("std")))]);
        let grow = BTreeMap::from([("a".to_string(), volume("200Gi", Some("std")))]);
        assert!(impossible_changes(&before, &grow).is_empty());
        let shrink = BTreeMap::from([("a".to_string(), volume("99Gi", Some("std")))]);
        assert!(matches!(impossible_changes(&before, &shrink)[..], [ImpossibleChange::Shrink { .. }]));
        let reclass = BTreeMap::from([("a".to_string(), volume("100Gi", None))]);
        assert!(matches!(impossible_changes(&before, &reclass)[..], [ImpossibleChange::StorageClass { .. }]));
        let new_user = BTreeMap::from([("b".to_string(), volume("1Gi", None))]);
        assert!(impossible_changes(&before, &new_user).is_empty());
    }

    #[test]
    fn unknown_fields_of_known_kinds_are_reported_with_their_path() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labelz": {}}, "data": {"a": "b"}
        }))
        .unwrap();
        assert_eq!(typed_check(&object), vec!["unknown field `metadata.labelz`"]);
    }

    #[test]
    fn wrong_types_are_reported() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {"replicas": "one"}
        }))
        .unwrap();
        let problems = typed_check(&object);
        assert!(problems.iter().any(|p| p.contains("not a valid StatefulSet")), "{problems:?}");
    }

    #[test]
    fn an_unhardened_pod_fails_every_rule() {
        let pod = serde_json::json!({"hostNetwork": true, "containers": [{"name": "c", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}}}]});
        let problems = check_pod(&pod);
        for expected in [
            "hostNetwork",
            "automountServiceAccountToken",
            "runAsNonRoot",
            "allowPrivilegeEscalation",
            "privileged",
            "drop ALL",
            "add capabilities",
            "seccomp",
        ] {
            assert!(problems.iter().any(|p| p.contains(expected)), "missing {expected}: {problems:?}");
        }
    }
}
