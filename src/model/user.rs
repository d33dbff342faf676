use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One developer box: `users/NAME.toml`, where the file stem is the person's name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "devbox-gen user file")]
pub(crate) struct UserFile {
    /// Owner of the box, recorded in every object's annotations.
    #[schemars(length(min = 3, max = 254))]
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
    /// Shared memory at /dev/shm, in binary units (e.g. `"8Gi"`): PyTorch's DataLoader workers
    /// pass batches through it, and without this the container runtime gives 64 MiB. It is
    /// memory: it counts against `resources.memory`, of which it must leave a quarter (at
    /// least 1Gi) to everything else. Default: `[defaults] shm`, else none.
    #[schemars(extend("examples" = ["8Gi", "512Mi"]))]
    pub shm: Option<String>,
    /// Run on GKE Spot VMs: cheaper, but Google stops the box whenever it needs the capacity,
    /// with about 30 seconds' notice. Running processes and unsaved Jupyter kernels are lost;
    /// the home volume stays. Default: `[defaults] spot`, else false.
    pub spot: Option<bool>,
    /// Datasets of devbox.toml's `[datasets]` to mount read-only, by name (e.g.
    /// `["imagenet"]`). Replaces `[defaults] datasets`: `[]` mounts none.
    #[schemars(extend("examples" = [["imagenet"]], "uniqueItems" = true))]
    pub datasets: Option<Vec<String>>,
    /// An optional GPU (GKE accelerator).
    pub gpu: Option<Gpu>,
    /// When the box stops by itself: after `after` without activity (SSH traffic, Jupyter,
    /// CPU, GPU). Default: `[defaults] idle`, else never.
    pub idle: Option<Idle>,
    /// Working hours: the box is started at `start` on `days` and kept running until `stop`;
    /// outside them `[idle]` governs it. Each key falls back to `[defaults] schedule`'s.
    pub schedule: Option<Schedule>,
    /// The persistent home volume, mounted at /storage.
    pub home: Option<Home>,
    /// Who may log in, and which Secret holds the box's own (GitHub) key.
    pub ssh: Ssh,
    /// How the box joins the tailnet.
    pub tailscale: Option<Tailscale>,
    /// Extra environment variables for the main container. Kubernetes expands `$(NAME)` in a
    /// value to a variable set before it (`HOME`, `SSH_AUTH_SOCK`, `DEVBOX_NAME`, then these by
    /// name) and reads `$$` as `$`. A value holds no NUL, and `NAME=value` with its closing NUL
    /// fits in 128 KiB, what Linux's execve(2) passes.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
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
    /// Default shared memory at /dev/shm, in binary units (e.g. `"8Gi"`); it must fit in the
    /// memory of every box that takes it.
    #[schemars(extend("examples" = ["8Gi"]))]
    pub shm: Option<String>,
    /// Whether boxes run on GKE Spot VMs unless their user file says otherwise (see `spot` in a
    /// user file: they can be stopped at any time).
    pub spot: Option<bool>,
    /// Datasets of `[datasets]` every box mounts, by name, unless its user file lists its own.
    #[schemars(extend("examples" = [["imagenet"]], "uniqueItems" = true))]
    pub datasets: Option<Vec<String>>,
    /// Default GPU.
    pub gpu: Option<Gpu>,
    /// Default `[idle]`: when boxes stop by themselves.
    pub idle: Option<Idle>,
    /// Default working hours; a user file's `[schedule]` overrides them key by key.
    pub schedule: Option<Schedule>,
    /// Default home volume size and storage class.
    pub home: Option<Home>,
    /// Default tailnet tags. Not `hostname`: every box would have the same name on the tailnet.
    #[schemars(extend("not" = {"required": ["hostname"]}))]
    pub tailscale: Option<Tailscale>,
    /// Environment variables every box gets; a user file overrides them one by one.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}))]
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
    /// CPU cores, e.g. `"8"` or `"500m"`; at least `"100m"`.
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
    /// How many GPUs (default 1): 1, 2, 4, 8 or 16, as GKE attaches them to a node. With
    /// `sharing`, 1: GKE gives a container at most one shared GPU.
    #[schemars(range(min = 1, max = 16), extend("enum" = [1, 2, 4, 8, 16]))]
    pub count: Option<u32>,
    /// Share one physical GPU with other boxes: `time-sharing` (GKE node pools created with
    /// `gpu-sharing-strategy=time-sharing`). `mps` is refused: GKE's MPS needs `hostIPC`, which
    /// the bundle rules forbid. Default: a whole GPU.
    pub sharing: Option<GpuSharing>,
    /// With `sharing`: the node pool's `max-shared-clients-per-gpu` to select (2 to 48), so
    /// that the box lands on GPUs split that many ways. Default: any shared node of the type.
    #[schemars(range(min = 2, max = 48))]
    pub clients: Option<u32>,
}

/// How a GPU is shared between containers (GKE's `cloud.google.com/gke-gpu-sharing-strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum GpuSharing {
    /// Containers take turns on the whole GPU, its memory shared without limits.
    TimeSharing,
    /// NVIDIA's Multi-Process Service: refused, GKE's MPS clients need the host's IPC namespace.
    /// Read only to say so; not offered by the schema, so editors do not complete it.
    #[schemars(skip)]
    Mps,
}

serde_names!(GpuSharing { TimeSharing => "time-sharing", Mps => "mps" });

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
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
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

/// When a running box stops by itself. Stopping scales its StatefulSet to zero: the home
/// volume, and everything on it, stays; `devbox-gen wake NAME` says how to start it again.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Idle {
    /// How long the box may go without activity before it stops: hours and minutes like
    /// `"2h"`, `"90m"` or `"1h30m"` (at least 10 minutes), or `"never"`. Activity is an SSH
    /// session with traffic, Jupyter kernels or terminals in use, a process using CPU, GPU use,
    /// or a hold (`touch -d 18:00 ~/.devbox-hold` in the box).
    #[schemars(extend("examples" = ["2h", "90m", "never"]))]
    pub after: Option<String>,
}

/// Working hours: on `days`, from `start` to `stop` in `timezone`, the box runs (it is started
/// at `start` if it was stopped). Outside them a box that is running, started by hand or still
/// busy at `stop`, stops once `[idle] after` has passed without activity.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Schedule {
    /// IANA time zone of the hours, e.g. `"Europe/Berlin"`, `"America/New_York"`, `"UTC"`.
    #[schemars(extend("examples" = ["Europe/Berlin"]))]
    pub timezone: Option<String>,
    /// Working days. Default: Monday to Friday. `[]`: no working hours (only `[idle]`).
    #[schemars(extend("examples" = [["mon", "tue", "wed", "thu", "fri"]], "uniqueItems" = true))]
    pub days: Option<Vec<Weekday>>,
    /// When working hours begin, `"HH:MM"` (24-hour clock), e.g. `"08:00"`.
    #[schemars(extend("examples" = ["08:00"]))]
    pub start: Option<String>,
    /// When working hours end, `"HH:MM"`, later than `start` on the same day, e.g. `"19:00"`.
    #[schemars(extend("examples" = ["19:00"]))]
    pub stop: Option<String>,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

serde_names!(Weekday { Mon => "mon", Tue => "tue", Wed => "wed", Thu => "thu", Fri => "fri", Sat => "sat", Sun => "sun" });
