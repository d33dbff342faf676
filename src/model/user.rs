use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One developer box: `users/NAME.toml`, where the file stem is the person's name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "devbox-gen user file")]
pub(crate) struct UserFile {
    /// Owner of the box, recorded in every object's annotations.
    pub email: String,
    /// `running` (default): one pod. `stopped`: no pod, the home volume is kept.
    /// `archived`: only the home volume is kept.
    pub state: Option<State>,
    /// Container image, pinned by tag or digest. Default: `[defaults] image` in devbox.toml.
    pub image: Option<String>,
    /// CPU architecture of the node the box runs on.
    pub arch: Option<Arch>,
    /// Which cluster of devbox.toml's `[[clusters]]` the box lives in; needed only when
    /// several are listed.
    pub cluster: Option<String>,
    /// CPU and memory, reserved and limited (Kubernetes quantities).
    pub resources: Option<Resources>,
    /// An optional GPU (GKE accelerator).
    pub gpu: Option<Gpu>,
    /// The persistent home volume, mounted at /storage.
    pub home: Option<Home>,
    /// Who may log in, and which Secret holds the box's own (GitHub) key.
    pub ssh: Ssh,
    /// How the box joins the tailnet.
    pub tailscale: Option<Tailscale>,
    /// Extra environment variables for the main container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `[defaults]` in devbox.toml: any user field except `email` and `ssh`, which are personal.
///
/// The shared fields are repeated from [`UserFile`] on purpose: `#[serde(flatten)]` would hide
/// unknown keys from `serde_ignored` and drop `additionalProperties: false` from the schema.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct UserDefaults {
    /// Default for `state`.
    pub state: Option<State>,
    /// Default container image, pinned by tag or digest.
    pub image: Option<String>,
    /// Default CPU architecture.
    pub arch: Option<Arch>,
    /// Default cluster name.
    pub cluster: Option<String>,
    /// Default CPU and memory.
    pub resources: Option<Resources>,
    /// Default GPU.
    pub gpu: Option<Gpu>,
    /// Default home volume size and storage class.
    pub home: Option<Home>,
    /// Default tailnet tags.
    pub tailscale: Option<Tailscale>,
    /// Environment variables every box gets; a user file overrides them one by one.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What the cluster should do with the box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// One pod runs.
    #[default]
    Running,
    /// The StatefulSet is scaled to zero; the home volume is kept.
    Stopped,
    /// Only the home volume (and what it needs) is kept.
    Archived,
}

serde_names!(State { Running => "running", Stopped => "stopped", Archived => "archived" });

/// CPU architecture (the `kubernetes.io/arch` node label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Arch {
    #[default]
    Amd64,
    Arm64,
}

serde_names!(Arch { Amd64 => "amd64", Arm64 => "arm64" });

/// CPU and memory as Kubernetes quantities; requests equal limits (Guaranteed QoS).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Resources {
    /// CPU cores, e.g. `"8"` or `"500m"`.
    #[schemars(extend("examples" = ["8", "500m"]))]
    pub cpu: Option<String>,
    /// Memory, e.g. `"32Gi"` (binary units; `32GB` means 10^9 bytes and is refused).
    #[schemars(extend("examples" = ["32Gi", "512Mi"]))]
    pub memory: Option<String>,
}

/// A GPU attached to the box.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Gpu {
    /// GKE accelerator name, e.g. `nvidia-tesla-t4`, `nvidia-l4`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// How many GPUs (default 1).
    #[schemars(range(min = 1, max = 16))]
    pub count: Option<u32>,
}

/// The persistent home volume.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Home {
    /// Size, e.g. `"200Gi"`. It can grow (if the storage class allows expansion), never shrink.
    pub size: Option<String>,
    /// StorageClass name. Cannot change once the volume exists. Default: the cluster's.
    pub storage_class: Option<String>,
}

/// SSH access.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Ssh {
    /// Public keys allowed to log in as `jupyter` (at least one). Never a private key.
    #[schemars(length(min = 1))]
    pub authorized_keys: Vec<String>,
    /// Secret with `id_ed25519` and `id_ed25519.pub`, mounted at /secrets. Default `NAME-ssh`.
    pub key_secret: Option<String>,
}

/// Tailnet membership.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Tailscale {
    /// Machine name on the tailnet. Default: `NAME-devbox`.
    pub hostname: Option<String>,
    /// ACL tags to advertise, e.g. `["tag:devbox"]`.
    pub tags: Option<Vec<String>>,
}
