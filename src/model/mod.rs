//! The file formats people write: `users/NAME.toml` and `devbox.toml`.
//!
//! These types are the single source of truth for parsing *and* for the JSON Schemas in
//! `schema/` (editors validate and complete while typing), so every field carries the doc
//! comment a person reads on hover. Everything is optional here except what docs/design.md
//! requires; defaults are merged later by `resolve`, where the whole picture is known.

mod devbox;
mod user;

pub use devbox::{
    ArgoCdSettings, Cluster, DevboxConfig, FluxSettings, GitOps, MetadataAccess, NetworkSettings, RepoSource, Runtime, TailscaleSettings,
};
pub use user::{Arch, Gpu, Home, Resources, Ssh, State, Tailscale, UserDefaults, UserFile};
