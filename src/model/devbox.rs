use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::UserDefaults;

/// `devbox.toml`: organisation-wide settings. Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "devbox-gen settings")]
pub(crate) struct DevboxConfig {
    /// Namespace of every box (default `devboxes`).
    pub namespace: Option<String>,
    /// Delivery manifests to emit: `argocd` and/or `flux`.
    #[serde(default)]
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
    /// What the boxes may reach on the network.
    #[serde(default)]
    pub network: NetworkSettings,
    /// Exceptions to rules that are errors by default.
    #[serde(default)]
    pub policy: Policy,
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
    /// Egress to the cloud metadata server 169.254.169.254: `block` (default) or `allow`.
    /// Without Workload Identity the metadata server gives any pod the node's service-account
    /// token; choose `allow` only when the boxes use Workload Identity (GKE's metadata server
    /// then answers there with the box's own identity).
    pub metadata: Option<MetadataAccess>,
}

/// Whether a box may reach the cloud metadata server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MetadataAccess {
    /// A NetworkPolicy denies egress to 169.254.169.254/32; everything else stays open.
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
    /// UID of `jupyter` in the image (default 10001).
    pub uid: Option<u32>,
    /// GID of `jupyter` in the image, also the volume's fsGroup (default 10001).
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
