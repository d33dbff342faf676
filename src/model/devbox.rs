use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::UserDefaults;

/// `devbox.toml`: organisation-wide settings. Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "devbox-gen settings")]
pub(crate) struct DevboxConfig {
    /// Namespace of every box (default `devboxes`), the boxes' own: not `default`, not a `kube-`
    /// one, not Argo CD's or Flux's.
    pub namespace: Option<String>,
    /// Delivery manifests to emit: `argocd` and/or `flux`.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true))]
    pub gitops: Vec<GitOps>,
    /// A jsonnet template that replaces the embedded one; it may
    /// `import 'devbox-gen/devbox.libsonnet'` and extend it. Relative to this file.
    pub template: Option<String>,
    /// Defaults for every user file.
    #[serde(default)]
    pub defaults: UserDefaults,
    /// The tailscale sidecar.
    #[serde(default)]
    pub tailscale: TailscaleSettings,
    /// The user the image runs as (its `jupyter` account).
    #[serde(default)]
    pub runtime: Runtime,
    /// Where Argo CD / Flux read `out/` from. Required when `gitops` is set.
    pub repo: Option<RepoSource>,
    /// Argo CD delivery settings (with `gitops = ["argocd"]`).
    #[serde(default)]
    pub argocd: ArgoCdSettings,
    /// Flux delivery settings (with `gitops = ["flux"]`).
    #[serde(default)]
    pub flux: FluxSettings,
    /// Target clusters. With more than one, each user names theirs with `cluster = ...`.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Read-only datasets a box can mount by name (`datasets = ["imagenet"]` in a user file):
    /// `[datasets.imagenet]` with the `claim` that holds it.
    #[serde(default)]
    pub datasets: BTreeMap<String, Dataset>,
    /// What the boxes may reach on the network.
    #[serde(default)]
    pub network: NetworkSettings,
    /// Exceptions to rules that are errors by default.
    #[serde(default)]
    pub policy: Policy,
    /// What the boxes cost, so that `devbox-gen diff` states the monthly cost change of a PR.
    /// Without it, the diff states the change in resources (CPU, memory, GPUs, disk) instead.
    pub prices: Option<Prices>,
    /// What the boxes of the namespace may take together, in each cluster.
    #[serde(default)]
    pub quota: Quota,
    /// What stops idle boxes and starts them at the beginning of working hours (users'
    /// `[idle]` and `[schedule]`).
    #[serde(default)]
    pub autostop: AutostopSettings,
    /// What each person may do to their own box with kubectl, as themselves. Default: nothing.
    #[serde(default)]
    pub owners: OwnerAccess,
}

/// The image of the `idle` container (which stops an idle box) and of the CronJob that starts
/// a box at the beginning of its working hours.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct AutostopSettings {
    /// An image with a POSIX `sh` and `curl`, pinned by tag or digest. Default: the pinned
    /// `curlimages/curl` of this devbox-gen version.
    #[schemars(extend("examples" = ["curlimages/curl:8.11.1"]))]
    pub image: Option<String>,
}

/// Access for each box's owner (`email` in the user file) to that box only: a Role limited to
/// the box's own StatefulSet and pod by name, bound to the owner as a Kubernetes User.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct OwnerAccess {
    /// What owners may do: `scale` (wake or stop a box that has `[idle]` or `[schedule]`;
    /// `devbox-gen wake NAME` prints the command), `logs` (read its containers' logs), `exec`
    /// (run commands in its containers: RBAC cannot name a container, so this includes the
    /// tailscale sidecar and the box's tailnet identity). Default: `[]`, no access.
    #[serde(default)]
    #[schemars(extend("examples" = [["scale", "logs"]]))]
    pub allow: Vec<OwnerPermission>,
    /// What the cluster's authenticator puts before an email to make the user name, e.g.
    /// `"oidc:"` for an OIDC issuer configured with `--oidc-username-prefix=oidc:`. GKE names
    /// Google accounts by their email alone: `""`, the default.
    pub user_prefix: Option<String>,
}

/// One thing an owner may do to their own box.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OwnerPermission {
    /// Scale the box's StatefulSet (wake it, stop it).
    Scale,
    /// Read the logs of the box's pod.
    Logs,
    /// Run commands in the box's pod.
    Exec,
}

serde_names!(OwnerPermission { Scale => "scale", Logs => "logs", Exec => "exec" });

/// What the boxes of the namespace may take together, in each cluster (with `[[clusters]]`,
/// each cluster's boxes count against their own). `build`, `diff` and `validate` refuse a
/// users/ whose boxes add up to more; with `gitops`, a ResourceQuota and a LimitRange beside the
/// Namespace make the cluster hold everything else in the namespace to the same numbers. Every
/// key is optional: a resource without one is not limited.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Quota {
    /// CPU cores the running boxes may request together, a quantity like `resources.cpu`
    /// (`"400"`, `"63500m"`). Stopped and archived boxes have no pod and do not count.
    #[schemars(extend("examples" = ["400"]))]
    pub cpu: Option<String>,
    /// Memory the running boxes may request together, in binary units (`"1600Gi"`, `"2Ti"`).
    /// Stopped and archived boxes do not count.
    #[schemars(extend("examples" = ["1600Gi"]))]
    pub memory: Option<String>,
    /// GPUs (`nvidia.com/gpu`) the running boxes may request together: the sum of their
    /// `gpu.count`. `0` allows none.
    pub gpu: Option<u32>,
    /// Home volume space of every box, running, stopped and archived alike (their claims stay),
    /// in binary units (`"20Ti"`).
    #[schemars(extend("examples" = ["20Ti"]))]
    pub storage: Option<String>,
}

/// Exceptions to rules that are errors by default, each one by name (never a switch that
/// turns a rule off), so that every exception is a reviewed line of this file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Policy {
    /// `[env]` names to accept although they look like secrets (they contain `TOKEN`, `SECRET`,
    /// `PASSWORD`, `PASSWD`, `API_KEY` or `PRIVATE`), e.g. `TOKENIZERS_PARALLELISM`. `[env]`
    /// values are committed to Git and written into the pod spec in clear text, so list only
    /// names whose values are not secret.
    #[serde(default)]
    #[schemars(extend("examples" = [["TOKENIZERS_PARALLELISM"]]))]
    pub allow_secret_env: Vec<String>,
    /// GPU types (`[gpu] type`) to accept although this version of devbox-gen does not know
    /// them, e.g. an accelerator newer than the tool. Check the name first
    /// (`gcloud compute accelerator-types list`): a box that asks for a type no node has stays
    /// Pending.
    #[serde(default)]
    pub allow_gpu_types: Vec<String>,
}

/// The boxes' egress.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct NetworkSettings {
    /// Egress to the cloud metadata server (169.254.169.254, and fd00:ec2::254 and fd20:ce::254 on
    /// IPv6): `block` (default) or `allow`.
    /// Without Workload Identity the metadata server gives any pod the node's service-account
    /// token; choose `allow` only when the boxes use Workload Identity (GKE's metadata server
    /// then answers there with the box's own identity).
    pub metadata: Option<MetadataAccess>,
}

/// Whether a box may reach the cloud metadata server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MetadataAccess {
    /// A NetworkPolicy denies egress to 169.254.169.254/32 and to EC2's and Compute Engine's IPv6
    /// metadata addresses; everything else stays open.
    #[default]
    Block,
    /// No egress restriction (for Workload Identity).
    Allow,
}

serde_names!(MetadataAccess { Block => "block", Allow => "allow" });

/// A GitOps engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GitOps {
    Argocd,
    Flux,
}

serde_names!(GitOps { Argocd => "argocd", Flux => "flux" });

/// Settings of the tailscale sidecar shared by all boxes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct TailscaleSettings {
    /// Sidecar image, pinned (e.g. `ghcr.io/tailscale/tailscale:v1.80.3`).
    pub image: Option<String>,
    /// Secret holding the auth key under `TS_AUTHKEY` (default `tailscale-auth`).
    pub auth_key_secret: Option<String>,
}

/// The account the main container runs as; it must exist in the image as `jupyter`
/// with its home at /storage/jupyter.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Runtime {
    /// UID of `jupyter` in the image (default 10001); 1 to 2147483647, as a pod's runAsUser.
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub uid: Option<u32>,
    /// GID of `jupyter` in the image, also the volume's fsGroup (default: the uid); 1 to 2147483647.
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub gid: Option<u32>,
}

/// The Git repository Argo CD / Flux sync from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct RepoSource {
    /// Clone URL.
    pub url: String,
    /// Branch, tag or commit (default `main`). Flux reads a 40-hex-digit value as a commit,
    /// `refs/...` as a full reference (`refs/tags/v1`), anything else as a branch.
    pub revision: Option<String>,
    /// Directory of this config repo inside the Git repository, when it is not the
    /// repository's root (e.g. `deploy/devboxes`). Default: the root.
    pub path: Option<String>,
    /// Secret with the credentials Flux clones with (its GitRepository's `spec.secretRef`), in
    /// Flux's namespace: `identity`, `identity.pub` and `known_hosts` for an `ssh://` URL,
    /// `username` and `password` for https. Required with `flux` and an `ssh://` URL.
    /// `devbox-gen secrets` prints how to create it.
    pub secret: Option<String>,
}

/// How the Argo CD objects are set up.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ArgoCdSettings {
    /// The Argo CD project of the Applications (default `default`).
    pub project: Option<String>,
    /// The namespace Argo CD runs in, where its Applications and ApplicationSets live
    /// (default `argocd`).
    pub namespace: Option<String>,
}

/// How the Flux objects are set up.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct FluxSettings {
    /// The namespace Flux runs in, where its GitRepository and Kustomizations live
    /// (default `flux-system`).
    pub namespace: Option<String>,
    /// How often each Kustomization applies its directory again, correcting drift (default
    /// `10m`); a new commit is applied at once whatever the interval. A Go duration: `60m`,
    /// `1h30m`.
    pub interval: Option<String>,
    /// How soon a box's Kustomization tries again after a failed reconciliation (default `2m`).
    pub retry_interval: Option<String>,
    /// How long a box's reconciliation may take, its health check included (default `10m`): a
    /// box that cannot become ready holds one of kustomize-controller's workers that long.
    pub timeout: Option<String>,
    /// Give each box's Kustomization an artifact of its own bundle, cut from the repository by
    /// Flux's ArtifactGenerator, instead of the whole repository (default `false`). Without it,
    /// every reconciliation of every box downloads and extracts the whole repository; with it,
    /// about one bundle, and a merge reconciles only the boxes it changed. Needs Flux 2.7 or
    /// later with the source-watcher component, and kustomize-controller started with
    /// `--feature-gates=ExternalArtifact=true` (docs/scale.md).
    pub artifact_generator: Option<bool>,
}

/// A dataset shared by the boxes that list it, mounted read-only in each.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Dataset {
    /// An existing PersistentVolumeClaim in the boxes' namespace that holds the data, bound to a
    /// volume with the `ReadOnlyMany` access mode so that every box can mount it at once. It is
    /// mounted read-only: the kubelet then never changes its files' group (fsGroup) either.
    #[schemars(extend("examples" = ["imagenet-ro"]))]
    pub claim: String,
    /// Where the boxes see it: an absolute path outside /storage (the home), /tmp, /dev and the
    /// image's system directories. Default `/datasets/NAME`.
    #[schemars(extend("examples" = ["/datasets/imagenet"]))]
    pub mount: Option<String>,
}

/// One target cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Cluster {
    /// Short name, used by `cluster = ...` in user files.
    pub name: String,
    /// API server URL as Argo CD knows it.
    pub server: String,
}

/// Prices of what the boxes use, from the cloud's price list (e.g. GKE Autopilot's), in one
/// currency. `devbox-gen diff` prices a running box at 730 hours a month (CPU, memory and
/// GPUs), and every home volume by the month, running or not. Prices are per unit, exact to a
/// billionth.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Prices {
    /// ISO 4217 code of the prices (default `USD`, written `$` in the diff).
    #[schemars(extend("examples" = ["USD", "EUR"]), regex(pattern = "^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// One CPU core for one hour (a running box pays for its pod's requests).
    #[schemars(extend("examples" = [0.0316]))]
    #[schemars(range(min = 0))]
    pub cpu_hour: f64,
    /// One GiB of memory for one hour.
    #[schemars(extend("examples" = [0.0042]))]
    #[schemars(range(min = 0))]
    pub memory_gib_hour: f64,
    /// One GiB of home volume for one month, whatever the box's state.
    #[schemars(extend("examples" = [0.17]))]
    #[schemars(range(min = 0))]
    pub storage_gib_month: f64,
    /// One GPU for one hour, by GKE accelerator type (`[gpu] type`), e.g.
    /// `{ "nvidia-l4" = 0.71 }`. A box with a type not listed here is reported with its price
    /// unknown.
    #[serde(default)]
    #[schemars(extend("additionalProperties" = {"type": "number", "format": "double", "minimum": 0}))]
    pub gpu_hour: std::collections::BTreeMap<String, f64>,
    /// Prices on Spot VMs, for boxes scheduled on Spot nodes (node selector
    /// `cloud.google.com/gke-spot: "true"`). A price left out here is the on-demand one above.
    /// Disks have no Spot price.
    pub spot: Option<SpotPrices>,
}

/// Spot prices of compute; each one left out is the on-demand price.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SpotPrices {
    /// One CPU core for one hour on Spot.
    #[schemars(range(min = 0))]
    pub cpu_hour: Option<f64>,
    /// One GiB of memory for one hour on Spot.
    #[schemars(range(min = 0))]
    pub memory_gib_hour: Option<f64>,
    /// One GPU for one hour on Spot, by GKE accelerator type.
    #[serde(default)]
    #[schemars(extend("additionalProperties" = {"type": "number", "format": "double", "minimum": 0}))]
    pub gpu_hour: std::collections::BTreeMap<String, f64>,
}
