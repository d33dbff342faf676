//! Stage 3, resolve: defaults merged into one complete, explicit [`ResolvedBox`] per user.
//!
//! This is the whole contract with the template: it receives exactly this struct as its `box`
//! argument, nothing optional left to guess. Precedence, field by field: the user file, then
//! `[defaults]` in devbox.toml, then the built-in defaults below.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Arch, DevboxConfig, MetadataAccess, State, UserFile};
use crate::read::ConfigRepo;
use crate::validate::{default_hostname, default_key_secret};

pub const DEFAULT_NAMESPACE: &str = "devboxes";
pub const DEFAULT_CPU: &str = "2";
pub const DEFAULT_MEMORY: &str = "8Gi";
pub const DEFAULT_HOME_SIZE: &str = "50Gi";
/// Pinned: a sidecar that changes under everyone's box must be a reviewed change.
pub const DEFAULT_TAILSCALE_IMAGE: &str = "ghcr.io/tailscale/tailscale:v1.80.3";
pub const DEFAULT_AUTH_KEY_SECRET: &str = "tailscale-auth";
/// High enough to never collide with a host account (checkov CKV_K8S_40).
pub const DEFAULT_UID: u32 = 10001;

/// One box, complete: what the template renders.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedBox {
    pub name: String,
    /// The user file, relative to the config repo (`users/alice.toml`).
    pub source: String,
    pub email: String,
    pub state: State,
    pub namespace: String,
    pub cluster: Option<String>,
    pub image: String,
    pub arch: Arch,
    pub resources: ResolvedResources,
    pub gpu: Option<ResolvedGpu>,
    pub home: ResolvedHome,
    pub ssh: ResolvedSsh,
    pub tailscale: ResolvedTailscale,
    pub env: BTreeMap<String, String>,
    pub runtime: ResolvedRuntime,
    pub network: ResolvedNetwork,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedNetwork {
    pub metadata: MetadataAccess,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedResources {
    pub cpu: String,
    pub memory: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedGpu {
    #[serde(rename = "type")]
    pub kind: String,
    pub count: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedHome {
    pub size: String,
    /// `None`: the cluster's default StorageClass.
    pub storage_class: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedSsh {
    pub authorized_keys: Vec<String>,
    pub key_secret: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedTailscale {
    pub hostname: String,
    pub tags: Vec<String>,
    pub image: String,
    pub auth_key_secret: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedRuntime {
    pub uid: u32,
    pub gid: u32,
}

/// Resolves every user; reports what no layer provides (an image, a cluster among several).
pub fn resolve(repo: &ConfigRepo) -> Result<Vec<ResolvedBox>, Diagnostics> {
    let settings = repo.settings();
    let mut diagnostics = Diagnostics::default();
    let mut boxes = Vec::with_capacity(repo.users.len());
    for (name, parsed) in &repo.users {
        match resolve_user(name, &parsed.source.path, &parsed.value, &settings) {
            Ok(resolved) => boxes.push(resolved),
            Err(missing) => {
                for (message, help) in missing {
                    diagnostics
                        .push(Diagnostic::error(message).at(&parsed.source, parsed.source.value_span(""), "in this file").help(help));
                }
            }
        }
    }
    if diagnostics.has_errors() { Err(diagnostics) } else { Ok(boxes) }
}

/// The box of user `name`, or an error that suggests the closest name.
pub fn find<'a>(boxes: &'a [ResolvedBox], name: &str) -> Result<&'a ResolvedBox, Diagnostics> {
    if let Some(found) = boxes.iter().find(|b| b.name == name) {
        return Ok(found);
    }
    let mut error = Diagnostic::error(format!("no user `{name}`: users/{name}.toml does not exist"));
    let names: Vec<String> = boxes.iter().map(|b| b.name.clone()).collect();
    if let Some(near) = crate::read::closest(name, &names) {
        error = error.help(format!("did you mean `{near}`?"));
    } else {
        error = error.help(format!("create it with `devbox-gen new {name} --email ... --key ~/.ssh/devbox.pub`"));
    }
    Err(error.into())
}

type Missing = Vec<(String, String)>;

fn resolve_user(name: &str, source: &str, user: &UserFile, settings: &DevboxConfig) -> Result<ResolvedBox, Missing> {
    let defaults = &settings.defaults;
    let mut missing = Missing::new();

    let image = user.image.clone().or_else(|| defaults.image.clone());
    if image.is_none() {
        missing.push((
            "no image for this box".into(),
            "set `image = \"registry/path:tag\"` here, or `[defaults] image` in devbox.toml".into(),
        ));
    }
    let cluster = user.cluster.clone().or_else(|| defaults.cluster.clone());
    let cluster = match (&cluster, settings.clusters.as_slice()) {
        (None, [only]) => Some(only.name.clone()),
        (None, [_, _, ..]) => {
            let names: Vec<&str> = settings.clusters.iter().map(|c| c.name.as_str()).collect();
            missing.push((
                "devbox.toml lists several clusters; this box must say which is its".into(),
                format!("add `cluster = \"{}\"` (one of: {})", names[0], names.join(", ")),
            ));
            None
        }
        _ => cluster,
    };
    let resources = |pick: fn(&crate::model::Resources) -> Option<&String>, fallback: &str| {
        user.resources
            .as_ref()
            .and_then(pick)
            .or_else(|| defaults.resources.as_ref().and_then(pick))
            .cloned()
            .unwrap_or_else(|| fallback.into())
    };
    let gpu = user.gpu.as_ref().or(defaults.gpu.as_ref());
    let gpu_kind = gpu.and_then(|g| g.kind.clone()).or_else(|| defaults.gpu.as_ref().and_then(|g| g.kind.clone()));
    if gpu.is_some() && gpu_kind.is_none() {
        missing.push(("`[gpu]` needs a `type`".into(), "add e.g. `type = \"nvidia-tesla-t4\"`".into()));
    }
    let home = |pick: fn(&crate::model::Home) -> Option<&String>| {
        user.home.as_ref().and_then(pick).or_else(|| defaults.home.as_ref().and_then(pick)).cloned()
    };
    let tags = user
        .tailscale
        .as_ref()
        .and_then(|t| t.tags.clone())
        .or_else(|| defaults.tailscale.as_ref().and_then(|t| t.tags.clone()))
        .unwrap_or_default();
    let mut env = defaults.env.clone();
    env.extend(user.env.clone());

    let (Some(image), true) = (image, missing.is_empty()) else { return Err(missing) };
    let uid = settings.runtime.uid.unwrap_or(DEFAULT_UID);
    Ok(ResolvedBox {
        name: name.to_string(),
        source: source.to_string(),
        email: user.email.clone(),
        state: user.state.or(defaults.state).unwrap_or_default(),
        namespace: settings.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
        cluster,
        image,
        arch: user.arch.or(defaults.arch).unwrap_or_default(),
        resources: ResolvedResources {
            cpu: resources(|r| r.cpu.as_ref(), DEFAULT_CPU),
            memory: resources(|r| r.memory.as_ref(), DEFAULT_MEMORY),
        },
        gpu: gpu_kind.map(|kind| ResolvedGpu { kind, count: gpu.and_then(|g| g.count).unwrap_or(1) }),
        home: ResolvedHome {
            size: home(|h| h.size.as_ref()).unwrap_or_else(|| DEFAULT_HOME_SIZE.into()),
            storage_class: home(|h| h.storage_class.as_ref()),
        },
        ssh: ResolvedSsh {
            authorized_keys: user.ssh.authorized_keys.iter().map(|k| k.trim().to_string()).collect(),
            key_secret: user.ssh.key_secret.clone().unwrap_or_else(|| default_key_secret(name)),
        },
        tailscale: ResolvedTailscale {
            hostname: user.tailscale.as_ref().and_then(|t| t.hostname.clone()).unwrap_or_else(|| default_hostname(name)),
            tags,
            image: settings.tailscale.image.clone().unwrap_or_else(|| DEFAULT_TAILSCALE_IMAGE.into()),
            auth_key_secret: settings.tailscale.auth_key_secret.clone().unwrap_or_else(|| DEFAULT_AUTH_KEY_SECRET.into()),
        },
        env,
        runtime: ResolvedRuntime { uid, gid: settings.runtime.gid.unwrap_or(uid) },
        network: ResolvedNetwork { metadata: settings.network.metadata.unwrap_or_default() },
    })
}
