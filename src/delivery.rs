//! Stage 7, delivery: what Argo CD and Flux need to sync the bundles, and nothing of ours in
//! between: Git is the interface (docs/design.md). From `gitops = [...]` in devbox.toml, per cluster:
//!
//! ```text
//! out/_gitops/namespace/<cluster>/namespace-devboxes.yaml      the Namespace, Pod Security "restricted"
//! out/_gitops/namespace/<cluster>/resourcequota-devboxes.yaml  `[quota]`, with a LimitRange beside it
//! out/_gitops/argocd/<cluster>/applicationset-devboxes.yaml    one Application per bundle directory
//! out/_gitops/argocd/<cluster>/application-devboxes-namespace.yaml
//! out/_gitops/argocd/<cluster>/application-devboxes-gitops.yaml  syncs this directory (applied once by hand)
//! out/_gitops/flux/<cluster>/gitrepository-devboxes.yaml
//! out/_gitops/flux/<cluster>/kustomization-devboxes-gitops.yaml  syncs this directory (applied once by hand)
//! out/_gitops/flux/<cluster>/kustomization-devboxes-namespace.yaml
//! out/_gitops/flux/<cluster>/kustomization-devbox-<user>.yaml  one per user
//! out/_gitops/flux/<cluster>/artifactgenerator-devboxes-artifacts-<shard>.yaml
//!                                      with `[flux] artifact_generator`: one artifact a bundle
//! ```
//!
//! `<cluster>` is `default` when devbox.toml declares no `[[clusters]]` (the bundles are then at
//! `out/<user>/`, else at `out/<cluster>/<user>/`), and the shared objects of a cluster get its
//! name as a suffix (`devboxes-prod`). All of it lives outside the bundle directories, so a
//! directory-based app never picks a file up twice.
//!
//! Trade-offs, written down:
//! - Argo CD: one ApplicationSet with a git *directory* generator, so a new user file is a new
//!   Application without touching anything here; `preserveResourcesOnDeletion` so that deleting
//!   the ApplicationSet (or a generator hiccup) never takes everyone's boxes with it.
//! - Flux: one Kustomization *per user*, not per cluster: one broken bundle (a quota, a bad
//!   image, an immutable field) fails only its owner's Kustomization, its health check waits
//!   for that user's StatefulSet only, and it mirrors Argo CD's one Application per user. The
//!   price is one small file per user here, regenerated like the rest of `out/`.
//! - Flux with `[flux] artifact_generator`: each box's Kustomization reads an ExternalArtifact
//!   holding only its bundle, cut from the repository by source-watcher's ArtifactGenerators,
//!   instead of the whole repository at every reconciliation (docs/scale.md). An artifact's
//!   revision is a hash of its content, so a merge reconciles only the boxes it changed. A
//!   generator takes at most 1,000 artifacts, so the boxes are spread over generators by the
//!   sha256 of their names ([`shards`]): a box stays in its generator whoever else comes or goes.
//! - The Namespace is emitted only with `gitops`: it is delivered by its own Application or
//!   Kustomization that never prunes (deleting a namespace deletes every home volume in it).
//! - `[quota]` travels with the Namespace, in its directory: Argo CD applies a ResourceQuota and
//!   a LimitRange right after the Namespace (gitops-engine's kind order), and every user's Flux
//!   Kustomization `dependsOn` the namespace one. Across Argo CD Applications there is no
//!   order, but none is needed for the boxes: `build` has checked that they fit, and a quota
//!   created after a pod still counts it. The price of never pruning: removing `[quota]` (or
//!   one of its keys) leaves the old object in the cluster until someone deletes it.

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use crate::check::{ARGO_SYNC_OPTIONS, FLUX_PRUNE};
use crate::emit::{self, GITOPS_DIR};
pub(crate) use crate::emit::{DEFAULT_CLUSTER_DIR, SETTINGS_SOURCE};
use crate::model::{DevboxConfig, GitOps, Quota, State};
use crate::quantity::Quantity;
use crate::render::{Object, RenderedBox};
use crate::resolve::{self, ResolvedResources, ResolvedSettings};

/// Argo CD's name for the cluster it runs in.
pub(crate) const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// The name of a user's Application and Kustomization: `devbox-alice` (at most 59 characters,
/// so it stays a valid label value for Argo CD's label tracking).
pub(crate) const USER_PREFIX: &str = "devbox-";
/// The base name of the shared objects: `devboxes`, `devboxes-namespace`, `devboxes-gitops`.
pub(crate) const BASE_NAME: &str = "devboxes";
/// Which paths of the repository an Application's manifests come from. Argo CD's repo server
/// caches manifests by commit; for an Application with this annotation, a new commit that
/// changes nothing under these paths carries the cached manifests over instead of rendering
/// them again (Argo CD 2.11 and later, with or without webhooks). Relative paths are joined to
/// the source path (`GetSourceRefreshPaths`, `GetAppRefreshPaths` before 3.3, in argo-cd's util/app/path). Every Application here
/// renders its own directory and nothing else (a bundle's kustomization.yaml lists only its
/// own files), so `.` is exact, and a merge that changes one user file renders one box, not
/// 10,000 (docs/scale.md).
const ARGO_MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";
/// [`ARGO_MANIFEST_GENERATE_PATHS`]'s value: the Application's source path.
const OWN_DIRECTORY: &str = ".";

/// What delivery needs to know about one compiled box.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Delivered {
    pub name: String,
    /// `users/alice.toml`.
    pub source: String,
    pub cluster: Option<String>,
    /// The bundle's directory under `out/`.
    pub dir: String,
    /// `(namespace, name)` of the StatefulSets the bundle holds: Flux's health checks.
    pub statefulsets: Vec<(String, String)>,
}

impl Delivered {
    pub(crate) fn of(rendered: &RenderedBox) -> Self {
        let statefulsets = rendered
            .objects
            .iter()
            .filter(|o| crate::check::kind(o) == "StatefulSet")
            .map(|o| {
                let namespace = o.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str);
                (namespace.unwrap_or(&rendered.resolved.namespace).to_string(), crate::check::name(o).to_string())
            })
            .collect();
        let statefulsets = if rendered.resolved.state == State::Archived { Vec::new() } else { statefulsets };
        Self {
            name: rendered.resolved.name.clone(),
            source: rendered.resolved.source.clone(),
            cluster: rendered.resolved.cluster.clone(),
            dir: emit::bundle_dir(&rendered.resolved),
            statefulsets,
        }
    }
}

/// One target cluster.
struct Target<'a> {
    /// `None`: no `[[clusters]]` in devbox.toml.
    name: Option<&'a str>,
    server: &'a str,
}

impl Target<'_> {
    fn dir(&self) -> &str {
        self.name.unwrap_or(DEFAULT_CLUSTER_DIR)
    }

    /// `devboxes` or `devboxes-prod`.
    fn named(&self, base: &str) -> String {
        match self.name {
            Some(cluster) => format!("{base}-{cluster}"),
            None => base.to_string(),
        }
    }
}

/// devbox.toml's delivery settings, defaults filled in (by [`resolve::resolve_settings`]).
struct Settings<'a> {
    namespace: &'a str,
    url: &'a str,
    revision: &'a str,
    /// `deploy/devboxes/` or empty: where the config repo sits in the Git repository.
    prefix: String,
    /// The Secret Flux clones with.
    secret: Option<&'a str>,
    argocd_namespace: &'a str,
    project: &'a str,
    flux_namespace: &'a str,
    flux_interval: &'a str,
    flux_retry_interval: &'a str,
    flux_timeout: &'a str,
    /// `[flux] artifact_generator`.
    flux_artifacts: bool,
}

impl Settings<'_> {
    /// A directory of `out/`, as a path in the Git repository: `out/_gitops/namespace/default`.
    fn path(&self, under_out: &str) -> String {
        format!("{}out/{under_out}", self.prefix)
    }

    /// The same, as Flux writes paths: `./out/alice`.
    fn flux_path(&self, under_out: &str) -> String {
        format!("./{}", self.path(under_out))
    }
}

/// The delivery files of `out/`, from devbox.toml and the compiled boxes. Empty without `gitops`
/// (validation guarantees `[repo]` with it).
pub(crate) fn emit(config: &DevboxConfig, boxes: &[&Delivered]) -> Vec<(String, String)> {
    let Some(repo) = config.repo.as_ref().filter(|_| !config.gitops.is_empty()) else { return Vec::new() };
    let resolved: ResolvedSettings = resolve::resolve_settings(config);
    let settings = Settings {
        namespace: &resolved.namespace,
        url: &repo.url,
        revision: &resolved.revision,
        prefix: repo.path.as_deref().map(|p| format!("{}/", p.trim_matches('/'))).unwrap_or_default(),
        secret: repo.secret.as_deref(),
        argocd_namespace: &resolved.argocd_namespace,
        project: &resolved.argocd_project,
        flux_namespace: &resolved.flux_namespace,
        flux_interval: &resolved.flux_interval,
        flux_retry_interval: &resolved.flux_retry_interval,
        flux_timeout: &resolved.flux_timeout,
        flux_artifacts: config.flux.artifact_generator.unwrap_or(false),
    };
    let targets: Vec<Target> = if config.clusters.is_empty() {
        vec![Target { name: None, server: IN_CLUSTER }]
    } else {
        config.clusters.iter().map(|c| Target { name: Some(&c.name), server: &c.server }).collect()
    };
    let mut files = Vec::new();
    for target in &targets {
        let dir = target.dir();
        files.push(file(&format!("namespace/{dir}"), SETTINGS_SOURCE, &namespace(&settings)));
        let limits = [resource_quota(&settings, &config.quota), limit_range(&settings, &config.quota, &resolved.default_resources)];
        for object in limits.into_iter().flatten() {
            files.push(file(&format!("namespace/{dir}"), SETTINGS_SOURCE, &object));
        }
        if config.gitops.contains(&GitOps::Argocd) {
            let argocd = format!("argocd/{dir}");
            files.push(file(&argocd, SETTINGS_SOURCE, &application_set(&settings, target)));
            files.push(file(&argocd, SETTINGS_SOURCE, &namespace_application(&settings, target)));
            files.push(file(&argocd, SETTINGS_SOURCE, &gitops_application(&settings, target)));
        }
        if config.gitops.contains(&GitOps::Flux) {
            let flux = format!("flux/{dir}");
            files.push(file(&flux, SETTINGS_SOURCE, &git_repository(&settings, target)));
            files.push(file(&flux, SETTINGS_SOURCE, &flux_gitops(&settings, target)));
            files.push(file(&flux, SETTINGS_SOURCE, &flux_namespace(&settings, target)));
            let users: Vec<&Delivered> = boxes.iter().copied().filter(|b| b.cluster.as_deref() == target.name).collect();
            // One a box: at 10,000 boxes the only part of delivery worth both cores.
            files.par_extend(users.par_iter().map(|delivered| file(&flux, &delivered.source, &flux_user(&settings, delivered))));
            if settings.flux_artifacts {
                for (shard, members) in shards(users) {
                    files.push(file(&flux, SETTINGS_SOURCE, &artifact_generator(&settings, &shard, &members)));
                }
            }
        }
    }
    files
}

/// `(path under out/, contents)` of one object in `out/_gitops/<dir>/`.
fn file(dir: &str, source: &str, object: &Value) -> (String, String) {
    let object: &Object = object.as_object().expect("delivery objects are JSON objects");
    (format!("{GITOPS_DIR}/{dir}/{}", emit::file_name(object)), format!("{}{}", emit::header(source), emit::to_yaml(object)))
}

fn metadata(name: &str, namespace: Option<&str>, source: &str) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if let Some(namespace) = namespace {
        metadata.insert("namespace".into(), namespace.into());
    }
    metadata.insert("labels".into(), json!({"app.kubernetes.io/managed-by": "devbox-gen", "app.kubernetes.io/part-of": BASE_NAME}));
    metadata.insert("annotations".into(), json!({"devbox-gen.dev/source": source}));
    Value::Object(metadata)
}

/// The boxes' namespace, enforcing the Pod Security Standard "restricted" (which every bundle
/// meets), and never pruned or deleted by Argo CD or Flux: deleting it would delete every home.
fn namespace(settings: &Settings) -> Value {
    let mut metadata = metadata(settings.namespace, None, SETTINGS_SOURCE);
    let labels = metadata["labels"].as_object_mut().expect("labels");
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(format!("pod-security.kubernetes.io/{mode}"), "restricted".into());
        labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), "latest".into());
    }
    let annotations = metadata["annotations"].as_object_mut().expect("annotations");
    annotations.insert(ARGO_SYNC_OPTIONS.into(), "Prune=false,Delete=false".into());
    annotations.insert(FLUX_PRUNE.into(), "disabled".into());
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
}

/// `[quota]` as the cluster enforces it, on whatever runs in the namespace, not only the boxes
/// `build` added up (<https://kubernetes.io/docs/concepts/policy/resource-quotas/>). `None`
/// when `[quota]` sets nothing.
/// - CPU and memory are held on `limits.` as well as `requests.`: a quota of requests alone
///   lets a pod that asks little and sets no limit use far more ("Requests compared to
///   Limits"). The boxes set requests = limits, so both sums are the total `build` checked.
/// - GPUs only as `requests.nvidia.com/gpu`: extended resources cannot be overcommitted, so
///   only the `requests.` prefix is allowed for them ("Resource quota for extended resources").
/// - Storage as `requests.storage`, the sum over every claim whatever its state or class
///   ("Storage resource quota"). No `persistentvolumeclaims` count: devbox.toml sets none, and
///   any count derived from users/ would race each new user's claim against the quota's
///   update. No per-StorageClass totals either: `[quota] storage` is one number.
fn resource_quota(settings: &Settings, quota: &Quota) -> Option<Value> {
    let mut hard = std::collections::BTreeMap::new();
    if let Some(cpu) = &quota.cpu {
        hard.insert("limits.cpu", cpu.clone());
        hard.insert("requests.cpu", cpu.clone());
    }
    if let Some(memory) = &quota.memory {
        hard.insert("limits.memory", memory.clone());
        hard.insert("requests.memory", memory.clone());
    }
    if let Some(gpu) = quota.gpu {
        hard.insert("requests.nvidia.com/gpu", gpu.to_string());
    }
    if let Some(storage) = &quota.storage {
        hard.insert("requests.storage", storage.clone());
    }
    (!hard.is_empty()).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata(BASE_NAME, Some(settings.namespace), SETTINGS_SOURCE),
            "spec": {"hard": hard},
        })
    })
}

/// Per container, what makes the quota on CPU and memory livable and whole
/// (<https://kubernetes.io/docs/concepts/policy/limit-range/>). Once a quota holds `cpu` or
/// `memory`, the API server refuses a pod whose containers do not state them (a debug pod, a
/// job someone starts by hand); the LimitRange gives such a container the size of a box that
/// states none (`[defaults] resources`, else the built-in), as request and limit alike like
/// every box, so it is admitted and counted instead of refused. `max` is the quota itself: no
/// container may be larger than the namespace's whole share, and the API server requires a
/// default no larger than `max`, so the default is capped at it. `None` without a CPU or
/// memory quota.
fn limit_range(settings: &Settings, quota: &Quota, defaults: &ResolvedResources) -> Option<Value> {
    let mut default = Map::new();
    let mut max = Map::new();
    for (resource, limit, fallback) in [("cpu", &quota.cpu, &defaults.cpu), ("memory", &quota.memory, &defaults.memory)] {
        let Some(limit) = limit else { continue };
        let fits = matches!((Quantity::parse(fallback), Quantity::parse(limit)), (Ok(fallback), Ok(limit)) if fallback <= limit);
        default.insert(resource.into(), if fits { fallback } else { limit }.as_str().into());
        max.insert(resource.into(), limit.as_str().into());
    }
    (!max.is_empty()).then(|| {
        json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata(BASE_NAME, Some(settings.namespace), SETTINGS_SOURCE),
            "spec": {"limits": [{"type": "Container", "default": default, "defaultRequest": default, "max": max}]},
        })
    })
}

// --- Argo CD ---------------------------------------------------------------------------------

fn application(settings: &Settings, name: &str, spec: Value) -> Value {
    let mut metadata = metadata(name, Some(settings.argocd_namespace), SETTINGS_SOURCE);
    metadata["annotations"][ARGO_MANIFEST_GENERATE_PATHS] = OWN_DIRECTORY.into();
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": spec,
    })
}

fn source(settings: &Settings, path: &str) -> Value {
    json!({"repoURL": settings.url, "targetRevision": settings.revision, "path": path})
}

/// One Application per bundle directory, named `devbox-<user>`. Go templates with
/// `missingkey=error`, so a typo in a parameter fails instead of rendering an empty string.
fn application_set(settings: &Settings, target: &Target) -> Value {
    let directories = match target.name {
        None => json!([
            {"path": settings.path("*")},
            {"path": settings.path(GITOPS_DIR), "exclude": true},
        ]),
        Some(cluster) => json!([{"path": settings.path(&format!("{cluster}/*"))}]),
    };
    let mut labels = json!({"app.kubernetes.io/managed-by": "devbox-gen", "devbox-gen.dev/user": "{{.path.basename}}"});
    if let Some(cluster) = target.name {
        labels["devbox-gen.dev/cluster"] = cluster.into();
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": metadata(&target.named(BASE_NAME), Some(settings.argocd_namespace), SETTINGS_SOURCE),
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"git": {"repoURL": settings.url, "revision": settings.revision, "directories": directories}}],
            // Deleting the ApplicationSet, or a generator that briefly finds nothing, must not
            // delete anyone's box: the Applications go, their objects stay.
            "syncPolicy": {"preserveResourcesOnDeletion": true},
            "template": {
                "metadata": {
                    "name": format!("{USER_PREFIX}{{{{.path.basename}}}}"),
                    "labels": labels,
                    "annotations": {ARGO_MANIFEST_GENERATE_PATHS: OWN_DIRECTORY},
                },
                "spec": {
                    "project": settings.project,
                    "source": source(settings, "{{.path.path}}"),
                    "destination": {"server": target.server, "namespace": settings.namespace},
                    "syncPolicy": {
                        // The home PVC carries Prune=false,Delete=false: prune never reaches it.
                        "automated": {"prune": true, "selfHeal": true},
                        "syncOptions": ["CreateNamespace=true", "PruneLast=true"],
                        "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}},
                    },
                },
            },
        },
    })
}

/// The Namespace, from its own directory, never pruned.
fn namespace_application(settings: &Settings, target: &Target) -> Value {
    application(
        settings,
        &target.named(&format!("{BASE_NAME}-namespace")),
        json!({
            "project": settings.project,
            "source": source(settings, &settings.path(&format!("{GITOPS_DIR}/namespace/{}", target.dir()))),
            // Its objects name their namespaces; the destination's is what an AppProject
            // checks the Application itself against, and an empty one only `*` permits
            // (argo-cd AppProject.isDestinationMatched).
            "destination": {"server": target.server, "namespace": settings.namespace},
            "syncPolicy": {"automated": {"prune": false, "selfHeal": true}},
        }),
    )
}

/// Syncs `out/_gitops/argocd/<cluster>/` itself (app of apps): applied once by hand, it keeps
/// the ApplicationSet and the namespace Application current from then on.
fn gitops_application(settings: &Settings, target: &Target) -> Value {
    application(
        settings,
        &target.named(&format!("{BASE_NAME}-gitops")),
        json!({
            "project": settings.project,
            "source": source(settings, &settings.path(&format!("{GITOPS_DIR}/argocd/{}", target.dir()))),
            "destination": {"server": IN_CLUSTER, "namespace": settings.argocd_namespace},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        }),
    )
}

// --- Flux ------------------------------------------------------------------------------------

/// `main` → branch, `refs/tags/v1` → name, 40 hex digits → commit.
fn git_ref(revision: &str) -> Value {
    if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        json!({"commit": revision})
    } else if revision.starts_with("refs/") {
        json!({"name": revision})
    } else {
        json!({"branch": revision})
    }
}

/// The source of every Flux Kustomization. A private repository needs `secretRef`: a Secret in
/// Flux's namespace with `identity`/`identity.pub`/`known_hosts` (ssh://) or
/// `username`/`password` (https), as source-controller's GitRepository spec defines them.
fn git_repository(settings: &Settings, target: &Target) -> Value {
    let mut spec =
        json!({"interval": "1m", "url": settings.url, "ref": git_ref(settings.revision), "ignore": artifact_scope(settings, target)});
    if let Some(secret) = settings.secret {
        spec["secretRef"] = json!({"name": secret});
    }
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": metadata(BASE_NAME, Some(settings.flux_namespace), SETTINGS_SOURCE),
        "spec": spec,
    })
}

/// `spec.ignore`: the repository's artifact holds only what this cluster's Flux applies, since
/// kustomize-controller downloads and extracts all of it for every reconciliation (or each
/// ArtifactGenerator, for every revision): `out/`, or with `[[clusters]]`, the cluster's own
/// bundles and `out/_gitops/` directories, not the other clusters', users/ or the rest of the
/// repository. source-controller matches these gitignore rules against every file's whole path
/// (fluxcd/pkg sourceignore, go-git's matcher) and keeps walking excluded directories, so a
/// `!` rule re-includes a directory inside an excluded one, unlike git (docs/scale.md).
fn artifact_scope(settings: &Settings, target: &Target) -> String {
    let kept: Vec<String> = match target.name {
        None => vec![settings.path("")],
        Some(cluster) => vec![
            settings.path(cluster),
            settings.path(&format!("{GITOPS_DIR}/flux/{cluster}")),
            settings.path(&format!("{GITOPS_DIR}/namespace/{cluster}")),
        ],
    };
    let whose = target.name.map_or_else(|| "this Flux".to_string(), |cluster| format!("the Flux of cluster {cluster}"));
    let mut rules = format!("# devbox-gen: the artifact holds only what {whose} applies.\n/*\n");
    for path in kept {
        rules.push_str(&format!("!/{}/\n", path.trim_end_matches('/')));
    }
    rules
}

fn kustomization(settings: &Settings, name: &str, source: &str, spec: Value) -> Value {
    let mut full = json!({
        "interval": settings.flux_interval,
        "sourceRef": {"kind": "GitRepository", "name": BASE_NAME},
    });
    full.as_object_mut().expect("object").extend(spec.as_object().cloned().unwrap_or_default());
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": metadata(name, Some(settings.flux_namespace), source),
        "spec": full,
    })
}

/// Syncs `out/_gitops/flux/<cluster>/` itself: applied once by hand, it adds and prunes the
/// users' Kustomizations as users/ changes.
fn flux_gitops(settings: &Settings, target: &Target) -> Value {
    let path = settings.flux_path(&format!("{GITOPS_DIR}/flux/{}", target.dir()));
    kustomization(settings, &format!("{BASE_NAME}-gitops"), SETTINGS_SOURCE, json!({"path": path, "prune": true}))
}

/// The Namespace, never pruned.
fn flux_namespace(settings: &Settings, target: &Target) -> Value {
    let path = settings.flux_path(&format!("{GITOPS_DIR}/namespace/{}", target.dir()));
    kustomization(settings, &format!("{BASE_NAME}-namespace"), SETTINGS_SOURCE, json!({"path": path, "prune": false}))
}

/// One user's bundle: pruned (the home PVC opts out with its annotation), healthy when its
/// StatefulSet is. From the repository, or from the box's own artifact, where the bundle is
/// the root.
fn flux_user(settings: &Settings, delivered: &Delivered) -> Value {
    let name = format!("{USER_PREFIX}{}", delivered.name);
    let (source, path) = if settings.flux_artifacts {
        (json!({"kind": EXTERNAL_ARTIFACT, "name": name}), "./".to_string())
    } else {
        (json!({"kind": "GitRepository", "name": BASE_NAME}), settings.flux_path(&delivered.dir))
    };
    let mut spec = json!({
        "sourceRef": source,
        "path": path,
        "prune": true,
        "retryInterval": settings.flux_retry_interval,
        "timeout": settings.flux_timeout,
        "dependsOn": [{"name": format!("{BASE_NAME}-namespace")}],
    });
    if !delivered.statefulsets.is_empty() {
        spec["healthChecks"] = delivered
            .statefulsets
            .iter()
            .map(|(namespace, name)| json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "namespace": namespace}))
            .collect();
    }
    kustomization(settings, &name, &delivered.source, spec)
}

/// The kind of a source made by a controller other than source-controller (Flux's RFC-0012).
const EXTERNAL_ARTIFACT: &str = "ExternalArtifact";
/// The most artifacts one ArtifactGenerator may list (`MaxItems` of its `spec.artifacts`, in
/// fluxcd/source-watcher api/v1beta1/artifactgenerator_types.go).
const GENERATOR_CAPACITY: usize = 1000;
/// The alias of the repository in a generator's `copy` paths: `@devboxes/out/alice/**`.
const REPOSITORY_ALIAS: &str = BASE_NAME;

/// The boxes of one cluster, spread over generators, keyed by the shard: a prefix of the hex
/// sha256 of the box's name. One hex digit gives 16 generators; a shard of more than
/// [`GENERATOR_CAPACITY`] boxes is split by the next digit, and so on. A box's shard changes
/// only when its own shard is split, never because another box came or went elsewhere: a box
/// that moves is deleted by its old generator and made again by the new one, and each move
/// risks that race. Sorted, so `out/` is the same whatever the order of users/.
fn shards(boxes: Vec<&Delivered>) -> Vec<(String, Vec<&Delivered>)> {
    use sha2::{Digest as _, Sha256};
    let mut hashed: Vec<(String, &Delivered)> =
        boxes.into_iter().map(|b| (format!("{:x}", Sha256::digest(b.name.as_bytes())), b)).collect();
    hashed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut shards = Vec::new();
    split(&hashed, 1, &mut shards);
    shards
}

fn split<'a>(hashed: &[(String, &'a Delivered)], digits: usize, shards: &mut Vec<(String, Vec<&'a Delivered>)>) {
    for group in hashed.chunk_by(|a, b| a.0[..digits] == b.0[..digits]) {
        let prefix = &group[0].0[..digits];
        if group.len() > GENERATOR_CAPACITY && digits < group[0].0.len() {
            split(group, digits + 1, shards);
        } else {
            let mut members: Vec<&Delivered> = group.iter().map(|(_, b)| *b).collect();
            members.sort_by(|a, b| a.name.cmp(&b.name));
            shards.push((prefix.to_string(), members));
        }
    }
}

/// One ArtifactGenerator: for each of its boxes, an ExternalArtifact `devbox-<user>` in Flux's
/// namespace holding the files of the bundle at its root (`dir/**` copies the directory's
/// contents, without the directory; source-watcher internal/builder, `calculateGlobDestination`).
/// `originRevision` records the commit each artifact was cut from.
fn artifact_generator(settings: &Settings, shard: &str, boxes: &[&Delivered]) -> Value {
    let artifacts: Vec<Value> = boxes
        .iter()
        .map(|delivered| {
            json!({
                "name": format!("{USER_PREFIX}{}", delivered.name),
                "originRevision": format!("@{REPOSITORY_ALIAS}"),
                "copy": [{"from": format!("@{REPOSITORY_ALIAS}/{}/**", settings.path(&delivered.dir)), "to": "@artifact/"}],
            })
        })
        .collect();
    json!({
        "apiVersion": "source.extensions.fluxcd.io/v1beta1",
        "kind": "ArtifactGenerator",
        "metadata": metadata(&format!("{BASE_NAME}-artifacts-{shard}"), Some(settings.flux_namespace), SETTINGS_SOURCE),
        "spec": {
            "sources": [{"alias": REPOSITORY_ALIAS, "kind": "GitRepository", "name": BASE_NAME}],
            "artifacts": artifacts,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn boxes(names: impl Iterator<Item = String>) -> Vec<Delivered> {
        names
            .map(|name| Delivered {
                source: format!("users/{name}.toml"),
                cluster: None,
                dir: name.clone(),
                statefulsets: Vec::new(),
                name,
            })
            .collect()
    }

    /// Each box's shard, by name.
    fn shard_of(boxes: &[Delivered]) -> BTreeMap<String, String> {
        shards(boxes.iter().collect())
            .into_iter()
            .flat_map(|(shard, members)| members.into_iter().map(move |b| (b.name.clone(), shard.clone())))
            .collect()
    }

    #[test]
    fn shards_hold_at_most_a_generators_worth_and_split_only_where_full() {
        let few = boxes((0..3_000).map(|i| format!("user{i}")));
        let before = shard_of(&few);
        assert_eq!(before.len(), 3_000, "every box in exactly one shard");
        assert!(before.values().all(|s| s.len() == 1), "3,000 boxes fit in 16 generators");
        // 20,000 boxes: about 1,250 a hex digit, so every one-digit shard splits in two digits.
        let many = boxes((0..20_000).map(|i| format!("user{i}")));
        let shards = shards(many.iter().collect());
        assert!(shards.iter().all(|(_, members)| members.len() <= GENERATOR_CAPACITY));
        assert_eq!(shards.iter().map(|(_, m)| m.len()).sum::<usize>(), 20_000);
        assert!(shards.iter().all(|(shard, _)| shard.len() == 2));
        let after = shard_of(&many);
        // A box moves only into a part of its own shard, and only when that shard was split.
        for (name, shard) in &before {
            assert!(after[name].starts_with(shard.as_str()), "{name}: {shard} -> {}", after[name]);
        }
        // Adding boxes that fit moves nobody.
        let more = boxes((0..3_100).map(|i| format!("user{i}")));
        let grown = shard_of(&more);
        assert!(before.iter().all(|(name, shard)| &grown[name] == shard));
    }

    #[test]
    fn revisions_become_the_right_flux_reference() {
        assert_eq!(git_ref("main"), json!({"branch": "main"}));
        assert_eq!(git_ref("refs/tags/v1.2"), json!({"name": "refs/tags/v1.2"}));
        assert_eq!(git_ref(&"a".repeat(40)), json!({"commit": "a".repeat(40)}));
    }

    /// The object as the API server would read it: every field known to k8s-openapi's type.
    fn strictly<T: serde::de::DeserializeOwned>(object: &Value) -> T {
        let mut unknown = Vec::new();
        let typed = serde_ignored::deserialize(object.clone(), |path| unknown.push(path.to_string())).unwrap_or_else(|e| panic!("{e}"));
        assert!(unknown.is_empty(), "unknown fields {unknown:?} in {object}");
        typed
    }

    #[test]
    fn the_quota_is_a_valid_resource_quota_and_limit_range() {
        use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
        let settings = Settings {
            namespace: "devboxes",
            url: "https://x/y.git",
            revision: "main",
            prefix: String::new(),
            secret: None,
            argocd_namespace: "argocd",
            project: "default",
            flux_namespace: "flux-system",
            flux_interval: "10m",
            flux_retry_interval: "2m",
            flux_timeout: "10m",
            flux_artifacts: false,
        };
        let quota = Quota { cpu: Some("400".into()), memory: Some("4Gi".into()), gpu: Some(16), storage: Some("20Ti".into()) };
        let quota_object: ResourceQuota = strictly(&resource_quota(&settings, &quota).unwrap());
        let hard: Vec<String> = quota_object.spec.and_then(|s| s.hard).unwrap_or_default().into_keys().collect();
        assert_eq!(hard, ["limits.cpu", "limits.memory", "requests.cpu", "requests.memory", "requests.nvidia.com/gpu", "requests.storage"]);
        let defaults = ResolvedResources { cpu: "2".into(), memory: "8Gi".into() };
        let limits: LimitRange = strictly(&limit_range(&settings, &quota, &defaults).unwrap());
        let container = &limits.spec.unwrap().limits[0];
        let show = |values: &Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            values.iter().flatten().map(|(k, v)| format!("{k}={}", v.0)).collect::<Vec<_>>().join(" ")
        };
        // The default box's 8Gi is more than the quota's 4Gi: a LimitRange's default may not
        // exceed its max, so it is capped.
        assert_eq!((show(&container.default), show(&container.default_request)), ("cpu=2 memory=4Gi".into(), "cpu=2 memory=4Gi".into()));
        assert_eq!(show(&container.max), "cpu=400 memory=4Gi");
        let storage_only = Quota { storage: Some("1Ti".into()), ..Quota::default() };
        assert!(limit_range(&settings, &storage_only, &defaults).is_none());
        assert!(resource_quota(&settings, &Quota::default()).is_none());
    }

    #[test]
    fn nothing_without_gitops() {
        let config = DevboxConfig {
            repo: Some(crate::model::RepoSource { url: "https://x/y.git".into(), ..Default::default() }),
            ..Default::default()
        };
        assert!(emit(&config, &[]).is_empty());
    }
}
