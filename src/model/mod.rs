//! The file formats people write: `users/NAME.toml` and `devbox.toml`.
//!
//! These types are the single source of truth for parsing *and* for the JSON Schemas in
//! `schema/` (editors validate and complete while typing), so every field carries the doc
//! comment a person reads on hover. Everything is optional here except what docs/design.md
//! requires; defaults are merged later by `resolve`, where the whole picture is known.

/// `as_str` and `Display` for an enum people write by name: the name in the file (its serde
/// name), for messages and generated text.
macro_rules! serde_names {
    ($type:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $type {
            /// The name as written in the files (the serde name).
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod devbox;
mod user;

pub(crate) use devbox::Prices;
pub(crate) use devbox::Quota;
#[cfg(test)]
pub(crate) use devbox::RepoSource;
#[cfg(test)]
pub(crate) use devbox::SpotPrices;
pub(crate) use devbox::{DevboxConfig, GitOps, MetadataAccess, OwnerPermission};
pub(crate) use user::{Arch, Gpu, GpuSharing, Home, Idle, Resources, Schedule, State, Tailscale, UserDefaults, UserFile, Weekday};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_serde_name<T: serde::Serialize + std::fmt::Display>(value: T, name: &str) {
        assert_eq!(serde_json::to_value(&value).unwrap(), serde_json::Value::from(name));
        assert_eq!(value.to_string(), name);
    }

    #[test]
    fn names_are_the_serde_names() {
        for state in [State::Running, State::Stopped, State::Archived] {
            assert_serde_name(state, state.as_str());
        }
        for arch in [Arch::Amd64, Arch::Arm64] {
            assert_serde_name(arch, arch.as_str());
        }
        for gitops in [GitOps::Argocd, GitOps::Flux] {
            assert_serde_name(gitops, gitops.as_str());
        }
        for access in [MetadataAccess::Block, MetadataAccess::Allow] {
            assert_serde_name(access, access.as_str());
        }
        for sharing in [GpuSharing::TimeSharing, GpuSharing::Mps] {
            assert_serde_name(sharing, sharing.as_str());
        }
        assert_eq!([State::Stopped.as_str(), Arch::Arm64.as_str(), GitOps::Argocd.as_str()], ["stopped", "arm64", "argocd"]);
    }
}
