//! Every built-in default, in one place: what a box or devbox.toml gets when neither the user
//! file nor devbox.toml says otherwise (docs/design.md, "Defaults and their precedence").
//!
//! Only [`crate::resolve`] fills them in, into the resolved box and the resolved settings;
//! every later stage and command reads those, not these constants. What the *template*
//! decides (sshd's port, the key Secret's mount) is not here: commands read it back from the
//! rendered bundle ([`crate::render::contract`]).

use crate::model::{Arch, MetadataAccess, State};

// --- A box (user file > `[defaults]` > these) ------------------------------------------------

pub const STATE: State = State::Running;
pub const ARCH: Arch = Arch::Amd64;
pub const CPU: &str = "2";
pub const MEMORY: &str = "8Gi";
/// GPUs per box, when the user's `[gpu]` and `[defaults] gpu` both leave `count` out.
pub const GPU_COUNT: u32 = 1;
pub const HOME_SIZE: &str = "50Gi";

/// The tailnet hostname of user `name`: `alice-devbox` (user file > this; never `[defaults]`).
pub fn hostname(name: &str) -> String {
    format!("{name}-devbox")
}

/// The Secret holding the box's own key, of user `name`: `alice-ssh` (user file > this; never
/// `[defaults]`).
pub fn key_secret(name: &str) -> String {
    format!("{name}-ssh")
}

// --- devbox.toml's shared settings (devbox.toml > these) -------------------------------------

pub const NAMESPACE: &str = "devboxes";
/// Pinned: a sidecar that changes under everyone's box must be a reviewed change.
pub const TAILSCALE_IMAGE: &str = "ghcr.io/tailscale/tailscale:v1.80.3";
pub const AUTH_KEY_SECRET: &str = "tailscale-auth";
/// High enough to never collide with a host account (checkov CKV_K8S_40). The gid defaults
/// to the uid.
pub const UID: u32 = 10001;
pub const METADATA_ACCESS: MetadataAccess = MetadataAccess::Block;

// --- Delivery (devbox.toml > these) ----------------------------------------------------------

/// `[repo] revision`.
pub const REVISION: &str = "main";
/// `[argocd] namespace`.
pub const ARGOCD_NAMESPACE: &str = "argocd";
/// `[argocd] project`.
pub const ARGOCD_PROJECT: &str = "default";
/// `[flux] namespace`.
pub const FLUX_NAMESPACE: &str = "flux-system";
