//! Every built-in default, in one place: what a box or devbox.toml gets when neither the user
//! file nor devbox.toml says otherwise (docs/design.md, "Defaults and their precedence").
//!
//! Only [`crate::resolve`](mod@crate::resolve) fills them in, into the resolved box and the
//! resolved settings; every later stage and command reads those, not these constants. What the *template*
//! decides (sshd's port, the key Secret's mount) is not here: commands read it back from the
//! rendered bundle ([`crate::render::contract`]).

use crate::model::{Arch, MetadataAccess, State};

// --- A box (user file > `[defaults]` > these) ------------------------------------------------

pub(crate) const STATE: State = State::Running;
pub(crate) const ARCH: Arch = Arch::Amd64;
pub(crate) const CPU: &str = "2";
pub(crate) const MEMORY: &str = "8Gi";
/// GPUs per box, when the user's `[gpu]` and `[defaults] gpu` both leave `count` out.
pub(crate) const GPU_COUNT: u32 = 1;
pub(crate) const HOME_SIZE: &str = "50Gi";
/// Standard VMs: a Spot VM can be reclaimed at any moment, which only its user may accept.
pub(crate) const SPOT: bool = false;

/// Where a dataset of devbox.toml's `[datasets]` is mounted without a `mount` of its own:
/// `/datasets/imagenet`.
pub(crate) fn dataset_mount(name: &str) -> String {
    format!("/datasets/{name}")
}

/// The tailnet hostname of user `name`: `alice-devbox` (user file > this; never `[defaults]`).
pub(crate) fn hostname(name: &str) -> String {
    format!("{name}-devbox")
}

/// The Secret holding the box's own key, of user `name`: `alice-ssh` (user file > this; never
/// `[defaults]`).
pub(crate) fn key_secret(name: &str) -> String {
    format!("{name}-ssh")
}

/// The Secret where the tailscale sidecar of user `name`'s box keeps its state, the node key
/// among it: `alice-tailnet` (the embedded template's `names(box).tailscaleState`).
pub(crate) fn tailnet_state_secret(name: &str) -> String {
    format!("{name}-tailnet")
}

/// The CronJob that starts user `name`'s box when its working hours begin: `alice-wake` (the
/// embedded template's `names(box).wakeCronJob`).
pub(crate) fn wake_cron_job(name: &str) -> String {
    format!("{name}-wake")
}

// --- devbox.toml's shared settings (devbox.toml > these) -------------------------------------

pub(crate) const NAMESPACE: &str = "devboxes";
/// Pinned: a sidecar that changes under everyone's box must be a reviewed change.
pub(crate) const TAILSCALE_IMAGE: &str = "ghcr.io/tailscale/tailscale:v1.80.3";
pub(crate) const AUTH_KEY_SECRET: &str = "tailscale-auth";
/// High enough to never collide with a host account (checkov CKV_K8S_40). The gid defaults
/// to the uid.
pub(crate) const UID: u32 = 10001;
/// The image of the `idle` container and of the CronJob that starts a box in the morning: a
/// POSIX `sh` and `curl`, nothing else. Pinned by digest (the multi-arch index of the tag):
/// it holds a token, and nothing of the person's choosing runs in it.
pub(crate) const AUTOSTOP_IMAGE: &str = "curlimages/curl:8.11.1@sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69";
pub(crate) const METADATA_ACCESS: MetadataAccess = MetadataAccess::Block;

// --- Delivery (devbox.toml > these) ----------------------------------------------------------

/// `[repo] revision`.
pub(crate) const REVISION: &str = "main";
/// `[argocd] namespace`.
pub(crate) const ARGOCD_NAMESPACE: &str = "argocd";
/// `[argocd] project`.
pub(crate) const ARGOCD_PROJECT: &str = "default";
/// `[flux] namespace`.
pub(crate) const FLUX_NAMESPACE: &str = "flux-system";
/// `[flux] interval`.
pub(crate) const FLUX_INTERVAL: &str = "10m";
/// `[flux] retry_interval`.
pub(crate) const FLUX_RETRY_INTERVAL: &str = "2m";
/// `[flux] timeout`.
pub(crate) const FLUX_TIMEOUT: &str = "10m";
