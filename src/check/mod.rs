//! Stage 5, check: what the template produced is valid Kubernetes and obeys the rules of
//! docs/design.md, whoever wrote the template.
//!
//! Objects of the kinds a devbox uses are deserialised into k8s-openapi's typed structs
//! ([`typed`]), and every field those types do not know is reported (serde would silently drop
//! it, and the API server would reject it with `--strict`). The safety rules (home volume
//! protected, pod hardened, no Secret contents) are checked on the JSON, so a custom template
//! cannot opt out. [`home`] compares builds: what Kubernetes cannot apply to a home volume.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics, group_by_user, user_files};
use crate::model::State;
use crate::render::{NAMESPACE_SCOPE, Object, RenderedBox, SCOPE_ANNOTATION};
use crate::validate::MAX_CRON_JOB_NAME_LEN;

mod api;
mod home;
mod typed;
pub(crate) use home::{refuse_impossible_changes, warn_namespace_moves};
use typed::typed_check_by_shape;

/// Reports the problems of every invalid box at once: a problem a custom template causes in
/// every box (`StatefulSet/devboxes/alice: unknown field ...`, the same for bob) is reported
/// once, naming the user files it is found in.
pub(crate) fn invalid_bundles_to_diagnostics(boxes: Vec<(String, Vec<String>)>, template: &str) -> Diagnostics {
    let problems = boxes.into_iter().flat_map(|(source, problems)| problems.into_iter().map(move |p| (source.clone(), p))).collect();
    once_for_all_boxes(problems, |boxes| Diagnostic::error(format!("{template} produced an invalid bundle for {boxes}")), None)
}

/// The check stage's warnings of every box, each told once for all the boxes it is found in.
pub(crate) fn bundle_warnings_to_diagnostics(warnings: Vec<(String, String)>, template: &str) -> Diagnostics {
    once_for_all_boxes(
        warnings,
        |boxes| Diagnostic::warning(format!("{template} renders a pod that may never start, for {boxes}")),
        Some(
            "if another tool creates it, this is expected; if the template should emit it (a custom template that leaves out the library's `scripts` ConfigMap, or renamed one), emit it, or mark the reference `optional: true` if the pod can do without it",
        ),
    )
}

/// `(user file, text)` pairs as one diagnostic per text (texts differing only by the user's
/// name are one), made by `headline` from the user files it is found in, then the first box's
/// text, then `advice`.
fn once_for_all_boxes(items: Vec<(String, String)>, headline: impl Fn(&str) -> Diagnostic, advice: Option<&str>) -> Diagnostics {
    Diagnostics(
        group_by_user(items)
            .into_iter()
            .filter_map(|(text, sources)| {
                let first = sources.first()?.clone();
                let mut diagnostic = headline(&user_files(&sources)).in_path(first.clone()).help(text);
                if sources.len() > 1 {
                    diagnostic = diagnostic.help(format!("as found in {first}'s bundle; the others are alike"));
                }
                if let Some(advice) = advice {
                    diagnostic = diagnostic.help(advice);
                }
                Some(diagnostic)
            })
            .collect(),
    )
}

/// Objects that two bundles of one cluster both hold, one error per object: `claims` are each
/// bundle's user file, cluster and object ids. Each bundle is delivered by its own Argo CD
/// Application or Flux Kustomization, and an object two of them apply is handed back and forth
/// by their syncs, and deleted with either box (Argo CD calls it a SharedResourceWarning; Flux
/// records it in both inventories and prunes it from either).
pub(crate) fn objects_in_two_bundles<'a>(claims: impl Iterator<Item = (&'a str, Option<&'a str>, &'a [String])>) -> Diagnostics {
    // A hash map of each object's first owner: at 10,000 boxes it holds 100,000 names sharing
    // long prefixes, which a B-tree would compare a dozen times each. Only the conflicts are
    // gathered and sorted, for a stable report.
    let claims: Vec<_> = claims.collect();
    let count = claims.iter().map(|(_, _, objects)| objects.len()).sum();
    let mut first: FxHashMap<(Option<&str>, &str), &str> = FxHashMap::with_capacity_and_hasher(count, Default::default());
    let mut shared: BTreeMap<(Option<&str>, &str), Vec<&str>> = BTreeMap::new();
    for (source, cluster, objects) in claims {
        for object in objects {
            let key = (cluster, object.as_str());
            if let Some(owner) = first.insert(key, source) {
                shared.entry(key).or_insert_with(|| vec![owner]).push(source);
            }
        }
    }
    let conflicts = shared;
    Diagnostics(
        conflicts
            .into_iter()
            .map(|((_, object), mut sources)| {
                sources.sort_unstable();
                let sources: Vec<String> = sources.into_iter().map(String::from).collect();
                let all = if sources.len() == 2 { "both" } else { "all" };
                Diagnostic::error(format!("{} {all} render {object}", user_files(&sources)))
                    .in_path(sources[sources.len() - 1].clone())
                    .help("an object belongs to one box: the two boxes' syncs would overwrite each other's, and deleting either box would delete it")
                    .help("rename one of the user files: a box's objects are named after its file (the default template's are `NAME` and `NAME-` with a suffix: `-home`, `-devbox`, `-tailnet`, `-wake`, `-idle`, `-owner`, `-tailscale`)")
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
    // A file is named by kind and name: two objects that differ only in namespace (or one
    // without) would be one file, the other lost, and the bundle's kustomization.yaml would
    // list that file twice, which kustomize refuses ("already registered id").
    let mut files: HashMap<String, String> = HashMap::new();
    for object in &rendered.objects {
        let id = object_id(object);
        if !seen.insert(id.clone()) {
            problems.push(format!("{id} is produced twice"));
        } else {
            let file = crate::emit::file_name(object);
            if let Some(other) = files.insert(file.clone(), id.clone()) {
                problems.push(format!(
                    "{other} and {id} would both be written to {file}: give them different names (one bundle holds one namespace's objects)"
                ));
            }
        }
        problems.extend(check_object(object).into_iter().map(|p| format!("{id}: {p}")));
        if let Some(scope) = crate::render::scope(object) {
            problems.push(format!(
                "{id}: unknown `{SCOPE_ANNOTATION}: {scope}`; the only scope is `{NAMESPACE_SCOPE}` (an object every box of the namespace shares), and without the annotation an object is the box's own"
            ));
        }
    }
    for object in &rendered.shared {
        let id = object_id(object);
        problems.extend(check_object(object).into_iter().chain(check_shared(object)).map(|p| format!("{id}: {p}")));
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
    let dataset_claims: Vec<&str> = rendered.resolved.datasets.iter().map(|d| d.claim.as_str()).collect();
    problems.extend(writable_datasets(&rendered.objects, &dataset_claims));
    let workloads = rendered.objects.iter().filter(|o| kind(o) == "StatefulSet").count();
    if rendered.resolved.state == State::Archived {
        // Only what is there besides the home volume: its own absence is told above.
        let more: Vec<String> = rendered.objects.iter().filter(|o| !is_home_volume(o)).map(object_id).collect();
        if !more.is_empty() {
            problems.push(format!(
                "an archived box keeps only its home volume, but the template emitted more: {}. Add a component only to boxes that run, like `[if box.state != 'archived' then 'extra']: {{ ... }}`",
                more.join(", ")
            ));
        }
    }
    if rendered.resolved.state != State::Archived && workloads != 1 {
        problems.push(format!("a {} box needs exactly one StatefulSet, found {workloads}", rendered.resolved.state));
    }
    let home = home_volume_name(name);
    for workload in rendered.objects.iter().filter(|o| kind(o) == "StatefulSet") {
        if !mounts_claim(workload, &home) {
            problems.push(format!(
                "{}: its pod does not mount the home volume `{home}` in a container: the person's files would go to whatever is mounted instead, and the home would sit unused",
                object_id(workload)
            ));
        }
    }
    problems
}

/// Whether a container of the workload's pod mounts the claim `claim` (through a volume of the
/// pod that names it). A template that puts an emptyDir, or another box's claim, in place of
/// the home keeps the home volume and every annotation on it, yet loses what is written.
fn mounts_claim(workload: &Object, claim: &str) -> bool {
    let Some(pod) = workload.at("/spec/template/spec") else { return false };
    fn list<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
        value.get(key).and_then(Value::as_array).into_iter().flatten()
    }
    let volumes: Vec<&str> = list(pod, "volumes")
        .filter(|volume| volume.at("/persistentVolumeClaim/claimName").and_then(Value::as_str) == Some(claim))
        .filter_map(|volume| volume.get("name").and_then(Value::as_str))
        .collect();
    list(pod, "containers")
        .flat_map(|container| list(container, "volumeMounts"))
        .any(|mount| mount.get("name").and_then(Value::as_str).is_some_and(|name| volumes.contains(&name)))
}

/// What an object shared by every box of a namespace must be. It is written once, to the
/// namespace's directory, whose Application or Kustomization never prunes; boxes not yet
/// restarted keep mounting the version they name. So a version must never change under its
/// name: an immutable ConfigMap named by its content ([`content_address`]). Anything else
/// shared would change under running boxes, or fail to apply (an immutable object's data
/// cannot be updated).
fn check_shared(object: &Object) -> Vec<String> {
    let mut problems = Vec::new();
    let shared = format!("an object marked `{SCOPE_ANNOTATION}: {NAMESPACE_SCOPE}`");
    if kind(object) != "ConfigMap" {
        return vec![format!("{shared} must be a ConfigMap, the only kind devbox-gen shares between boxes")];
    }
    if object.get("immutable") != Some(&Value::Bool(true)) {
        problems.push(format!("{shared} must be `immutable: true`: it is named by its content, and a new version is a new object"));
    }
    if object.get("binaryData").is_some() {
        problems.push(format!("{shared} carries `data` only, not `binaryData`"));
    }
    let empty = serde_json::Map::new();
    let data = object.get("data").and_then(Value::as_object).unwrap_or(&empty);
    let address = content_address(data);
    if !name(object).ends_with(&format!("-{address}")) {
        problems.push(format!(
            "{shared} must be named by its content: its name must end in `-{address}` (the first 10 hex digits of the sha256 of each key of `data`, NUL, value, NUL, in key order). With the embedded library, change the scripts through its `files` and `idleFiles`, which rename the object, instead of patching the object's `data`"
        ));
    }
    problems
}

/// How many hex digits of the sha256 name a content-addressed object (`devbox-scripts-8396e40e19`).
pub(crate) const CONTENT_ADDRESS_LEN: usize = 10;

/// The first 10 hex digits of the sha256 of each key of `data`, a NUL, its value and a NUL, in
/// key order: what the embedded template's `scripts.hash` computes with `std.sha256`. Values
/// that are not strings are refused by the typed check of a ConfigMap.
pub(crate) fn content_address(data: &serde_json::Map<String, Value>) -> String {
    use sha2::{Digest, Sha256};
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(data[key].as_str().unwrap_or_default().as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    digest.iter().take(CONTENT_ADDRESS_LEN / 2).map(|byte| format!("{byte:02x}")).collect()
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

    /// A JSON pointer (RFC 6901) into the object, followed without allocating: the rules look
    /// up a dozen paths in each of 100,000 objects.
    fn at(&self, pointer: &str) -> Option<&Value> {
        let mut steps = pointer.strip_prefix('/').unwrap_or(pointer).split('/');
        follow(self.get(&*unescape(steps.next()?))?, steps)
    }
}

impl Pointer for Value {
    fn pointer_str(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).and_then(Value::as_str)
    }

    /// As [`Object`]'s, for any value: serde_json's `pointer` allocates a key for every step.
    fn at(&self, pointer: &str) -> Option<&Value> {
        follow(self, pointer.strip_prefix('/').unwrap_or(pointer).split('/'))
    }
}

/// The value that `steps` of a pointer lead to from `value`.
fn follow<'a>(mut value: &'a Value, steps: std::str::Split<'_, char>) -> Option<&'a Value> {
    for step in steps {
        value = match value {
            Value::Object(map) => map.get(&*unescape(step))?,
            Value::Array(items) => items.get(array_index(step)?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A pointer step's key: `~1` is `/` and `~0` is `~`.
fn unescape(step: &str) -> std::borrow::Cow<'_, str> {
    if step.contains('~') { step.replace("~1", "/").replace("~0", "~").into() } else { step.into() }
}

/// A pointer step's array index: digits without a leading zero, as serde_json reads them.
fn array_index(step: &str) -> Option<usize> {
    if step.starts_with('+') || (step.starts_with('0') && step.len() > 1) {
        return None;
    }
    step.parse().ok()
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
        Some(n) if crate::validate::is_dns_subdomain(n) => {}
        Some(n) => problems.push(format!("`{n}` is not a valid object name")),
        None => problems.push("metadata.name is missing".into()),
    }
    if let Some(problem) = object.pointer_str("/metadata/name").filter(|_| object_kind == Some("CronJob")).and_then(cron_job_name_too_long)
    {
        problems.push(problem);
    }
    if object_kind == Some("Secret") && ["data", "stringData"].iter().any(|field| object.get(*field).is_some()) {
        problems.push(
            "Secrets must never carry data here: their contents would be committed to Git. Reference a Secret created out of band instead (an empty Secret that a controller fills is fine)"
                .into(),
        );
    }
    problems.extend(typed_check_by_shape(object));
    problems.extend(api::problems(object));
    problems.extend(too_big_for_client_side_apply(object));
    if let Some(pod) = pod_spec(object) {
        problems.extend(check_pod(pod, kind(object) == "StatefulSet"));
        problems.extend(missing_downward_fields(pod_metadata(object), pod));
    }
    if object_kind == Some("StatefulSet")
        && object.at("/spec/volumeClaimTemplates").is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        problems.push("volumeClaimTemplates tie the home to the StatefulSet (it could not be recreated or resized without touching the data); use the standalone home PVC".into());
    }
    problems
}

/// A custom template's CronJob; the embedded template's wake CronJob is refused earlier, at the
/// user file's `[schedule]` (resolve).
fn cron_job_name_too_long(name: &str) -> Option<String> {
    (name.len() > MAX_CRON_JOB_NAME_LEN).then(|| {
        format!(
            "CronJob `{name}` has a name of {} characters, and the API server refuses a CronJob name longer than {MAX_CRON_JOB_NAME_LEN} (its Jobs' names add 11): shorten the suffix the template adds to the box's name, or rename the user file",
            name.len()
        )
    })
}

/// The API server's limit on all annotations of an object together (`TotalAnnotationSizeLimitB`).
pub(crate) const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// Argo CD syncs with client-side `kubectl apply` unless told otherwise, which keeps the whole
/// object, as JSON, in its `kubectl.kubernetes.io/last-applied-configuration` annotation; an
/// object that does not fit in the 256 KiB of annotations is refused ("metadata.annotations: Too
/// long: must have at most 262144 bytes", argoproj/argo-cd#820, #5704); so does `kubectl apply`
/// by hand. A ConfigMap's files get that big: its JSON is measured here when its data is already
/// over half the limit. Any other object is measured by [`too_big_to_apply`] once emitted.
fn too_big_for_client_side_apply(object: &Object) -> Option<String> {
    if kind(object) != "ConfigMap" {
        return None;
    }
    let data = object.get("data").and_then(Value::as_object)?;
    let raw: usize = data.iter().map(|(key, value)| key.len() + value.as_str().map_or(0, str::len)).sum();
    if raw < ANNOTATIONS_LIMIT / 2 {
        return None;
    }
    annotations_overflow(object)
}

/// The objects other than ConfigMaps (see [`too_big_for_client_side_apply`]) that do not fit
/// in the annotations of a client-side apply: a long `[env]`, or whatever a template puts in
/// a pod. `largest_file`: the longest YAML emitted for the box. JSON takes at most about twice
/// the bytes of the same object in YAML, so below a third of the limit nothing is measured, and
/// the default bundle (its largest file about 11 KB) costs one comparison.
pub(crate) fn too_big_to_apply(objects: &[Object], largest_file: usize) -> Vec<String> {
    if largest_file <= ANNOTATIONS_LIMIT / 3 {
        return Vec::new();
    }
    objects
        .iter()
        .filter(|object| kind(object) != "ConfigMap")
        .filter_map(|object| annotations_overflow(object).map(|problem| format!("{}: {problem}", object_id(object))))
        .collect()
}

/// What is wrong with an object whose JSON and annotations exceed [`ANNOTATIONS_LIMIT`].
fn annotations_overflow(object: &Object) -> Option<String> {
    let applied = serde_json::to_string(object).map_or(0, |json| json.len());
    let others: usize = object
        .at("/metadata/annotations")
        .and_then(Value::as_object)
        .map_or(0, |annotations| annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum());
    (applied + others > ANNOTATIONS_LIMIT).then(|| {
        format!(
            "is {} KiB as JSON: Argo CD's client-side apply copies it into the `kubectl.kubernetes.io/last-applied-configuration` annotation, and the API server refuses an object whose annotations exceed 256 KiB. {}",
            applied / 1024,
            if kind(object) == "ConfigMap" {
                "Ship large files in the image instead"
            } else {
                "Shorten what makes it long (a long `[env]` value belongs in a file in the image or the home volume, its path in `[env]`)"
            }
        )
    })
}

/// The hardening rule 5 of docs/design.md requires of every pod. `the_box` is the box's own pod
/// (its StatefulSet's), whose first container runs the person's code.
fn check_pod(pod: &Value, the_box: bool) -> Vec<String> {
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
    if let Some(main) = pod.get("containers").and_then(Value::as_array).and_then(|c| c.first()).filter(|_| the_box) {
        let token_volumes = token_volumes(pod);
        let mounts = main.get("volumeMounts").and_then(Value::as_array).into_iter().flatten();
        for mounted in mounts.filter_map(|m| m.get("name").and_then(Value::as_str)).filter(|n| token_volumes.contains(n)) {
            let cname = main.get("name").and_then(Value::as_str).unwrap_or("?");
            problems.push(format!(
                "container `{cname}` runs the person's code and must not mount the service-account token of volume `{mounted}`"
            ));
        }
    }
    let pod_seccomp = pod_context.and_then(|c| c.at("/seccompProfile/type")).and_then(Value::as_str) == Some("RuntimeDefault");
    for container in containers_of(pod) {
        let cname = container.get("name").and_then(Value::as_str).unwrap_or("?");
        // The API server refuses a container that mounts two volumes at one path.
        let mut paths = HashSet::new();
        for path in
            container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().filter_map(|m| m.get("mountPath")?.as_str())
        {
            if !paths.insert(path) {
                problems.push(format!("container `{cname}` mounts two volumes at `{path}`"));
            }
        }
        match container.get("image").and_then(Value::as_str) {
            None => problems.push(format!("container `{cname}` has no image")),
            Some(image) if !crate::validate::is_pinned_image(image) => problems.push(format!(
                "container `{cname}` runs `{image}`, which is not pinned: give it a tag other than `latest`, or a `@sha256:` digest, so that what runs changes only through a reviewed change"
            )),
            Some(_) => {}
        }
        problems.extend(resource_problems(cname, container.get("resources")));
        let context = container.get("securityContext");
        let field = |f: &str| context.and_then(|c| c.at(f));
        // A container's own setting wins over the pod's (PodSecurityContext, "the value
        // specified in SecurityContext takes precedence").
        let effective = |f: &str| context.and_then(|c| c.get(f)).or_else(|| pod_context.and_then(|c| c.get(f)));
        if !truthy(effective("runAsNonRoot")) {
            problems.push(format!("container `{cname}` must set runAsNonRoot"));
        }
        for (id, what) in [("runAsUser", "uid"), ("runAsGroup", "gid")] {
            if effective(id).and_then(Value::as_i64) == Some(0) {
                problems.push(format!("container `{cname}` runs as {what} 0 ({id}: 0): no container of a box runs as root"));
            }
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

/// Environment variables a pod template takes from its own annotations or labels
/// (`fieldRef: metadata.annotations['KEY']`) that it does not have. The API server accepts
/// them and the kubelet sets the variable to an empty string, silently: with the embedded
/// template's `TS_KUBE_SECRET`, tailscale would keep its node key in an emptyDir and join the
/// tailnet as a new machine at every restart. (A custom template that replaces the pod's
/// `annotations` instead of adding to them with `+:` does that.)
fn missing_downward_fields(metadata: Option<&Value>, pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for container in containers_of(pod) {
        for var in container.get("env").and_then(Value::as_array).into_iter().flatten() {
            let Some((map, key)) = crate::render::contract::pod_metadata_reference(var) else { continue };
            if metadata.and_then(|m| m.get(map)).and_then(|m| m.get(key)).is_none() {
                let cname = container.get("name").and_then(Value::as_str).unwrap_or("?");
                let vname = var.get("name").and_then(Value::as_str).unwrap_or("?");
                problems.push(format!(
                    "container `{cname}` sets `{vname}` from the pod's {} `{key}`, which the pod template does not have: the kubelet would set it to an empty string. Add to the pod's {map} with `+:` rather than replacing them",
                    &map[..map.len() - 1]
                ));
            }
        }
    }
    problems
}

pub(crate) const ARGO_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// An object's Argo CD sync wave: its annotation, 0 without one; `Err` with the text when the
/// annotation is not an integer.
fn sync_wave(object: &Object) -> Result<i64, &str> {
    match object.get("metadata").and_then(|m| m.get("annotations")?.get(ARGO_SYNC_WAVE)?.as_str()) {
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
        let Some(pod) = pod_spec(workload) else { continue };
        let Ok(wave) = sync_wave(workload) else { continue };
        let volumes = pod.get("volumes").and_then(Value::as_array).into_iter().flatten();
        let claims: Vec<&str> = volumes.filter_map(|v| v.at("/persistentVolumeClaim/claimName")?.as_str()).collect();
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

/// A dataset's claim is shared by every box that lists it: where a pod mounts one, the volume
/// and each of its mounts say `readOnly: true`. The mount alone would let the kubelet change the
/// ownership of every file to the pod's fsGroup first (it skips volumes that are read-only), and
/// the volume alone is a template away from a writable mount.
fn writable_datasets(objects: &[Object], claims: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in objects {
        let Some(pod) = pod_spec(workload) else { continue };
        for volume in pod.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            let Some(claim) = volume.at("/persistentVolumeClaim/claimName").and_then(Value::as_str) else { continue };
            if !claims.contains(&claim) {
                continue;
            }
            let vname = volume.get("name").and_then(Value::as_str).unwrap_or("?");
            if volume.at("/persistentVolumeClaim/readOnly").and_then(Value::as_bool) != Some(true) {
                problems.push(format!(
                    "{}: volume `{vname}` mounts the dataset claim `{claim}` without `readOnly: true`: every box shares it, and the kubelet would change its files' group to the pod's fsGroup",
                    object_id(workload)
                ));
            }
            for container in containers_of(pod) {
                let mounts = container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten();
                for mount in mounts.filter(|m| m.get("name").and_then(Value::as_str) == Some(vname)) {
                    if mount.get("readOnly").and_then(Value::as_bool) != Some(true) {
                        let cname = container.get("name").and_then(Value::as_str).unwrap_or("?");
                        problems.push(format!(
                            "{}: container `{cname}` mounts the dataset claim `{claim}` writable: every box shares it, so mount it with `readOnly: true`",
                            object_id(workload)
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The ConfigMap kube-controller-manager's root-ca-cert-publisher writes into every namespace.
const KUBE_ROOT_CA: &str = "kube-root-ca.crt";

/// Warnings, not errors: the ConfigMaps a pod of the box uses that neither its bundle nor the
/// objects it shares with its namespace (the scripts) contain. The kubelet does not start a pod
/// whose ConfigMap is missing: it retries the mount and the pod stays in ContainerCreating
/// (kubernetes/kubernetes#28772), and neither Argo CD nor Flux creates what is not in Git. One
/// that another tool creates in the namespace is legitimate, hence a warning; one a custom
/// template forgot to emit (say, it left out the library's `scripts`) is what this catches
/// before a cluster does. References marked `optional: true` and `kube-root-ca.crt` aside.
pub(crate) fn unemitted_config_maps(rendered: &RenderedBox) -> Vec<String> {
    let objects = rendered.objects.iter().chain(&rendered.shared);
    let emitted: BTreeSet<(&str, &str)> =
        objects.filter(|o| kind(o) == "ConfigMap").map(|o| (o.pointer_str("/metadata/namespace").unwrap_or(""), name(o))).collect();
    let mut warnings = Vec::new();
    for workload in &rendered.objects {
        let Some(pod) = pod_spec(workload) else { continue };
        let namespace = workload.pointer_str("/metadata/namespace").unwrap_or("");
        let mut missing: BTreeSet<&str> = BTreeSet::new();
        for (name, optional) in config_map_references(pod) {
            if !optional && name != KUBE_ROOT_CA && !emitted.contains(&(namespace, name)) {
                missing.insert(name);
            }
        }
        for name in missing {
            warnings.push(format!(
                "{} uses ConfigMap `{name}`, which the build does not emit: its pod stays in ContainerCreating until something else creates `{name}` in namespace `{namespace}`",
                object_id(workload)
            ));
        }
    }
    warnings
}

/// The pod spec of a workload object: a Pod's own, a CronJob's job's, another kind's template.
fn pod_spec(object: &Object) -> Option<&Value> {
    match kind(object) {
        "Pod" => object.get("spec"),
        "CronJob" => object.at("/spec/jobTemplate/spec/template/spec"),
        _ => object.at("/spec/template/spec"),
    }
}

/// The metadata of the pods of a workload object, beside [`pod_spec`].
fn pod_metadata(object: &Object) -> Option<&Value> {
    match kind(object) {
        "Pod" => object.get("metadata"),
        "CronJob" => object.at("/spec/jobTemplate/spec/template/metadata"),
        _ => object.at("/spec/template/metadata"),
    }
}

/// What the API server refuses in a container's `resources`: an amount that is not a quantity
/// (`cpu: lots`), and a limit below its request. devbox-gen's quota, `list` and cost would
/// otherwise count such an amount as nothing.
fn resource_problems(cname: &str, resources: Option<&Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let amounts = |list: &str| resources.and_then(|r| r.get(list)).and_then(Value::as_object);
    let mut parsed: BTreeMap<(&str, &str), crate::quantity::Quantity> = BTreeMap::new();
    for list in ["requests", "limits"] {
        for (resource, amount) in amounts(list).into_iter().flatten() {
            let Some(text) = amount.as_str() else { continue }; // a number: the typed check's to judge
            match crate::quantity::Quantity::parse(text) {
                Ok(quantity) => {
                    parsed.insert((list, resource.as_str()), quantity);
                }
                Err(error) => problems.push(match &error.suggestion {
                    Some(meant) => format!("container `{cname}`: `resources.{list}.{resource}`: {error}; did you mean `{meant}`?"),
                    None => format!("container `{cname}`: `resources.{list}.{resource}`: {error}"),
                }),
            }
        }
    }
    for ((_, resource), limit) in parsed.iter().filter(|((list, _), _)| *list == "limits") {
        if parsed.get(&("requests", resource)).is_some_and(|request| request > limit) {
            problems.push(format!(
                "container `{cname}` requests more {resource} than its limit: the API server requires a request no greater than the limit"
            ));
        }
    }
    problems
}

/// Every container of a pod spec: init, ordinary and ephemeral.
fn containers_of(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"].into_iter().filter_map(|list| pod.get(list)?.as_array()).flatten()
}

/// `(name, optional)` of each ConfigMap a pod spec uses: configMap volumes, the configMap
/// sources of projected volumes, and its containers' `env` and `envFrom`.
fn config_map_references(pod: &Value) -> Vec<(&str, bool)> {
    let mut found = Vec::new();
    for volume in pod.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        found.extend(reference(volume.get("configMap")));
        let sources = volume.at("/projected/sources").and_then(Value::as_array).into_iter().flatten();
        found.extend(sources.filter_map(|source| reference(source.get("configMap"))));
    }
    for container in containers_of(pod) {
        let env = container.get("env").and_then(Value::as_array).into_iter().flatten();
        found.extend(env.filter_map(|e| reference(e.at("/valueFrom/configMapKeyRef"))));
        let env_from = container.get("envFrom").and_then(Value::as_array).into_iter().flatten();
        found.extend(env_from.filter_map(|e| reference(e.get("configMapRef"))));
    }
    found
}

/// `(name, optional)` of a `configMap` volume or projection, `configMapKeyRef` or
/// `configMapRef`.
fn reference(object: Option<&Value>) -> Option<(&str, bool)> {
    let object = object?;
    Some((object.get("name")?.as_str()?, object.get("optional").and_then(Value::as_bool) == Some(true)))
}

/// The pod's volumes that hold a service-account token.
fn token_volumes(pod: &Value) -> Vec<&str> {
    let volumes = pod.get("volumes").and_then(Value::as_array).into_iter().flatten();
    volumes
        .filter(|v| {
            let sources = v.at("/projected/sources").and_then(Value::as_array).into_iter().flatten();
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
    // What would delete and create the claim again, its data with it, on a sync: Argo CD's
    // `Force=true` (kubectl's --force: delete and create when a patch keeps conflicting) and
    // `Replace=true` (kubectl replace, which a bound claim refuses; with --force, delete and
    // create: the sync-options docs), a resource hook (deleted before it is created again,
    // `BeforeHookCreation`, at each sync: the resource hooks docs), and Flux's force, which
    // recreates an object whose change cannot be applied in place (kustomize-controller).
    let options: Vec<&str> = argo.split(',').map(str::trim).collect();
    if options.contains(&"Force=true") {
        problems.push(format!(
            "the home volume's `{ARGO_SYNC_OPTIONS}` has `Force=true`: Argo CD would delete and create it again, with the person's data, when a change cannot be patched"
        ));
    }
    if options.contains(&"Replace=true") {
        problems.push(format!(
            "the home volume's `{ARGO_SYNC_OPTIONS}` has `Replace=true`: Argo CD would replace the bound claim instead of patching it, which the API server refuses, or with `Force=true` delete and create it again"
        ));
    }
    if annotation(ARGO_HOOK).is_some() {
        problems
            .push(format!("the home volume must not be an Argo CD hook (`{ARGO_HOOK}`): a hook is deleted and created again at each sync"));
    }
    if annotation(FLUX_FORCE) == Some("enabled") {
        problems.push(format!(
            "the home volume must not have `{FLUX_FORCE}: enabled`: Flux would delete and create it again, with the person's data, on a change it cannot apply in place"
        ));
    }
    problems
}

const ARGO_HOOK: &str = "argocd.argoproj.io/hook";
const FLUX_FORCE: &str = "kustomize.toolkit.fluxcd.io/force";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_of_two_bundles_of_one_cluster_is_one_error_naming_every_owner() {
        let names = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        let (a, b, c) =
            (names(&["Service/devboxes/x", "ConfigMap/devboxes/a"]), names(&["Service/devboxes/x"]), names(&["Service/devboxes/x"]));
        let (d, e) = (names(&["Secret/devboxes/s"]), names(&["Secret/devboxes/s"]));
        let claims = [
            ("users/c.toml", None, a.as_slice()),
            ("users/a.toml", None, b.as_slice()),
            ("users/b.toml", None, c.as_slice()),
            // The same name in two clusters is two objects.
            ("users/d.toml", Some("east"), d.as_slice()),
            ("users/e.toml", Some("west"), e.as_slice()),
        ];
        let errors: Vec<String> = objects_in_two_bundles(claims.into_iter()).0.iter().map(|d| d.message.clone()).collect();
        assert_eq!(errors, ["users/a.toml, users/b.toml and users/c.toml all render Service/devboxes/x"]);
    }

    #[test]
    fn a_problem_in_every_box_is_reported_once() {
        let boxes = ["alice", "bob", "carol"]
            .map(|user| (format!("users/{user}.toml"), vec![format!("StatefulSet/devboxes/{user}: unknown field `spec.replica`")]));
        let diagnostics = invalid_bundles_to_diagnostics(boxes.to_vec(), "t.jsonnet");
        assert_eq!(diagnostics.0.len(), 1);
        let only = &diagnostics.0[0];
        assert_eq!(only.message, "t.jsonnet produced an invalid bundle for users/alice.toml, users/bob.toml and users/carol.toml");
        assert_eq!(only.help[0], "StatefulSet/devboxes/alice: unknown field `spec.replica`");
    }

    #[test]
    fn dataset_claims_are_mounted_read_only_everywhere() {
        let workload = |volume_read_only: bool, mount_read_only: bool| -> Object {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "a", "namespace": "devboxes"},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "devbox", "volumeMounts": [
                        {"name": "dataset-imagenet", "mountPath": "/datasets/imagenet", "readOnly": mount_read_only},
                        {"name": "home", "mountPath": "/storage"},
                    ]}],
                    "volumes": [
                        {"name": "dataset-imagenet", "persistentVolumeClaim": {"claimName": "imagenet-ro", "readOnly": volume_read_only}},
                        {"name": "home", "persistentVolumeClaim": {"claimName": "a-home"}},
                    ],
                }}},
            }))
            .unwrap()
        };
        assert!(writable_datasets(&[workload(true, true)], &["imagenet-ro"]).is_empty());
        let both = writable_datasets(&[workload(false, false)], &["imagenet-ro"]);
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(both[0].contains("volume `dataset-imagenet`") && both[1].contains("container `devbox`"), "{both:?}");
        // The home claim is no dataset, and a box without datasets has no such rule.
        assert!(writable_datasets(&[workload(false, false)], &[]).is_empty());
    }

    #[test]
    fn two_volumes_at_one_path_are_refused() {
        let pod = serde_json::json!({"containers": [{"name": "c", "volumeMounts": [
            {"name": "a", "mountPath": "/data"}, {"name": "b", "mountPath": "/data"}, {"name": "c", "mountPath": "/other"}
        ]}]});
        let problems = check_pod(&pod, true);
        assert!(problems.contains(&"container `c` mounts two volumes at `/data`".to_string()), "{problems:?}");
    }

    #[test]
    fn an_unhardened_pod_fails_every_rule() {
        let pod = serde_json::json!({"hostNetwork": true, "containers": [{"name": "c", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}}}]});
        let problems = check_pod(&pod, true);
        for expected in [
            "hostNetwork",
            "automountServiceAccountToken",
            "runAsNonRoot",
            "allowPrivilegeEscalation",
            "privileged",
            "drop ALL",
            "add capabilities",
            "seccomp",
            "has no image",
        ] {
            assert!(problems.iter().any(|p| p.contains(expected)), "missing {expected}: {problems:?}");
        }
    }

    fn hardened(container: Value) -> Value {
        let mut container = container;
        container["securityContext"]["allowPrivilegeEscalation"] = false.into();
        container["securityContext"]["capabilities"] = serde_json::json!({"drop": ["ALL"]});
        serde_json::json!({
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
        })
    }

    #[test]
    fn a_container_cannot_undo_the_pods_non_root_or_run_as_root() {
        let ok = hardened(serde_json::json!({"name": "c", "image": "busybox:1.36"}));
        assert!(check_pod(&ok, true).is_empty(), "{:?}", check_pod(&ok, true));
        // The container's own settings win over the pod's, in Kubernetes as here.
        let root = hardened(
            serde_json::json!({"name": "c", "image": "busybox:1.36", "securityContext": {"runAsNonRoot": false, "runAsUser": 0, "runAsGroup": 0}}),
        );
        let problems = check_pod(&root, true);
        assert_eq!(
            problems,
            [
                "container `c` must set runAsNonRoot",
                "container `c` runs as uid 0 (runAsUser: 0): no container of a box runs as root",
                "container `c` runs as gid 0 (runAsGroup: 0): no container of a box runs as root",
            ]
        );
        let mut pod_root = hardened(serde_json::json!({"name": "c", "image": "busybox:1.36"}));
        pod_root["securityContext"]["runAsUser"] = 0.into();
        pod_root["initContainers"] = pod_root["containers"].clone();
        assert_eq!(check_pod(&pod_root, true).len(), 2, "{:?}", check_pod(&pod_root, true));
    }

    #[test]
    fn resources_are_quantities_and_limits_not_below_requests() {
        let container = serde_json::json!({"name": "c", "image": "busybox:1.36", "resources": {
            "requests": {"cpu": "lots", "memory": "2Gi", "ephemeral-storage": "1Gi"},
            "limits": {"memory": "1Gi", "ephemeral-storage": "1024Mi", "nvidia.com/gpu": 1},
        }});
        assert_eq!(
            check_pod(&hardened(container), true),
            [
                "container `c`: `resources.requests.cpu`: `lots` is not a number followed by a unit",
                "container `c` requests more memory than its limit: the API server requires a request no greater than the limit",
            ]
        );
    }

    #[test]
    fn every_container_runs_a_pinned_image() {
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        for (image, pinned) in [("busybox:1.36", true), (digest.as_str(), true), ("busybox:latest", false), ("busybox", false)] {
            let problems = check_pod(&hardened(serde_json::json!({"name": "c", "image": image})), true);
            assert_eq!(problems.is_empty(), pinned, "{image}: {problems:?}");
        }
    }

    #[test]
    fn the_pods_of_cron_jobs_and_bare_pods_are_checked_too() {
        let pod = serde_json::json!({"hostPID": true, "automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox:1.36"}]});
        let cron_job: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}},
        }))
        .unwrap();
        let bare: Object =
            serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod})).unwrap();
        for object in [cron_job, bare] {
            let problems = check_object(&object);
            assert!(problems.iter().any(|p| p == "hostPID must not be used"), "{}: {problems:?}", kind(&object));
        }
    }

    #[test]
    fn pointers_follow_rfc_6901_like_serde_json() {
        let object: Object = serde_json::from_value(serde_json::json!({
            "metadata": {"annotations": {"argocd.argoproj.io/sync-wave": "1", "a~b": "t"}},
            "spec": {"containers": [{"name": "devbox"}, {"name": "tailscale"}]},
        }))
        .unwrap();
        let whole = Value::Object(object.clone());
        for pointer in [
            "/metadata/annotations/argocd.argoproj.io~1sync-wave",
            "/metadata/annotations/a~0b",
            "/spec/containers/1/name",
            "/spec/containers/01/name",
            "/spec/containers/+1/name",
            "/spec/containers/2/name",
            "/spec/containers/name",
            "/metadata/missing",
            "/spec",
        ] {
            assert_eq!(object.at(pointer), whole.pointer(pointer), "{pointer}");
            assert_eq!(whole.at(pointer), whole.pointer(pointer), "{pointer}");
        }
        assert_eq!(object.pointer_str("/spec/containers/1/name"), Some("tailscale"));
    }
}
