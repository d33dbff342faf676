//! Stage 3, resolve: defaults merged into one complete, explicit [`ResolvedBox`] per user.
//!
//! This is the whole contract with the template: it receives exactly this struct as its `box`
//! argument, nothing optional left to guess. Precedence, field by field: the user file, then
//! `[defaults]` in devbox.toml, then the built-in defaults of [`crate::defaults`]. devbox.toml's
//! own settings (namespace, sidecar, delivery) resolve the same way into [`ResolvedSettings`],
//! which the boxes, `delivery` and the commands share.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use crate::autostop;
use crate::defaults;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Arch, DevboxConfig, GpuSharing, MetadataAccess, OwnerPermission, State, UserFile, Weekday};
use crate::read::ConfigRepo;
use crate::validate::MAX_CRON_JOB_NAME_LEN;

/// devbox.toml's settings that are not per box, with the built-in defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResolvedSettings {
    /// The namespace of every box (and of `out/_gitops/`'s Namespace).
    pub namespace: String,
    pub tailscale_image: String,
    pub auth_key_secret: String,
    pub runtime: ResolvedRuntime,
    pub network: ResolvedNetwork,
    /// `[repo] revision`, for Argo CD and Flux.
    pub revision: String,
    pub argocd_namespace: String,
    pub argocd_project: String,
    pub flux_namespace: String,
    /// `[flux] interval`, `retry_interval`, `timeout`: Go durations.
    pub flux_interval: String,
    pub flux_retry_interval: String,
    pub flux_timeout: String,
    /// What a box gets without `resources` of its own: `[defaults] resources`, then the
    /// built-in. The LimitRange gives it to any container that states none.
    pub default_resources: ResolvedResources,
    pub autostop: ResolvedAutostop,
}

/// devbox.toml's shared settings: devbox.toml, then the built-in defaults.
pub(crate) fn resolve_settings(config: &DevboxConfig) -> ResolvedSettings {
    let or = |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_string());
    let uid = config.runtime.uid.unwrap_or(defaults::UID);
    ResolvedSettings {
        namespace: or(&config.namespace, defaults::NAMESPACE),
        tailscale_image: or(&config.tailscale.image, defaults::TAILSCALE_IMAGE),
        auth_key_secret: or(&config.tailscale.auth_key_secret, defaults::AUTH_KEY_SECRET),
        runtime: ResolvedRuntime { uid, gid: config.runtime.gid.unwrap_or(uid) },
        network: ResolvedNetwork { metadata: config.network.metadata.unwrap_or(defaults::METADATA_ACCESS) },
        revision: or(&config.repo.as_ref().and_then(|r| r.revision.clone()), defaults::REVISION),
        argocd_namespace: or(&config.argocd.namespace, defaults::ARGOCD_NAMESPACE),
        argocd_project: or(&config.argocd.project, defaults::ARGOCD_PROJECT),
        flux_namespace: or(&config.flux.namespace, defaults::FLUX_NAMESPACE),
        flux_interval: or(&config.flux.interval, defaults::FLUX_INTERVAL),
        flux_retry_interval: or(&config.flux.retry_interval, defaults::FLUX_RETRY_INTERVAL),
        flux_timeout: or(&config.flux.timeout, defaults::FLUX_TIMEOUT),
        default_resources: ResolvedResources {
            cpu: or(&config.defaults.resources.as_ref().and_then(|r| r.cpu.clone()), defaults::CPU),
            memory: or(&config.defaults.resources.as_ref().and_then(|r| r.memory.clone()), defaults::MEMORY),
        },
        autostop: ResolvedAutostop { image: or(&config.autostop.image, defaults::AUTOSTOP_IMAGE) },
    }
}

/// One box, complete: what the template renders.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResolvedBox {
    pub(crate) name: String,
    /// The user file, relative to the config repo (`users/alice.toml`).
    pub(crate) source: String,
    pub(crate) email: String,
    pub(crate) state: State,
    pub(crate) namespace: String,
    pub(crate) cluster: Option<String>,
    pub(crate) image: String,
    pub(crate) arch: Arch,
    pub(crate) resources: ResolvedResources,
    /// Shared memory at /dev/shm; `None`: none of ours, the container runtime's 64 MiB.
    pub(crate) shm: Option<String>,
    /// On GKE Spot VMs.
    pub(crate) spot: bool,
    /// The datasets it mounts read-only, by name (so reordering the list changes nothing).
    pub(crate) datasets: Vec<ResolvedDataset>,
    pub(crate) gpu: Option<ResolvedGpu>,
    pub(crate) home: ResolvedHome,
    pub(crate) ssh: ResolvedSsh,
    pub(crate) tailscale: ResolvedTailscale,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) runtime: ResolvedRuntime,
    pub(crate) network: ResolvedNetwork,
    /// `[idle]`: when the box stops by itself.
    pub(crate) idle: ResolvedIdle,
    /// `[schedule]`: its working hours; `None` without them (or with `days = []`).
    pub(crate) schedule: Option<ResolvedSchedule>,
    /// The image that stops the box when idle and starts it at the start of working hours.
    pub(crate) autostop: ResolvedAutostop,
    /// What the owner may do to the box (devbox.toml's `[owners]`); `None`: nothing.
    pub(crate) owner: Option<ResolvedOwner>,
}

/// `[idle] after`, as written and in seconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedIdle {
    /// `"2h"`, or `"never"`.
    pub after: String,
    /// `None`: never.
    pub after_seconds: Option<u64>,
}

/// Working hours, complete.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedSchedule {
    pub timezone: String,
    /// Sorted, each once.
    pub days: Vec<Weekday>,
    /// `"08:00"`.
    pub start: String,
    pub stop: String,
    /// When the CronJob starts the box: `"0 8 * * 1-5"`, in `timezone`.
    pub start_cron: String,
}

impl ResolvedSchedule {
    /// `mon-fri 08:00-19:00 Europe/Berlin`, as messages write working hours.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}-{} {}", autostop::days_text(&self.days), self.start, self.stop, self.timezone)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedAutostop {
    pub image: String,
}

/// The owner as the cluster knows them, and what they may do.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedOwner {
    /// The Kubernetes user name: `[owners] user_prefix` and the email.
    pub user: String,
    /// Sorted, each once, never empty.
    pub allow: Vec<OwnerPermission>,
}

impl ResolvedBox {
    /// Whether the box stops by itself or is started by its schedule: then the cluster, not
    /// Git, decides whether its pod runs (Git's `state = "stopped"` still wins: a stopped box
    /// has neither).
    pub(crate) fn autostops(&self) -> bool {
        self.state == State::Running && (self.idle.after_seconds.is_some() || self.schedule.is_some())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedNetwork {
    pub metadata: MetadataAccess,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedResources {
    pub cpu: String,
    pub memory: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedGpu {
    #[serde(rename = "type")]
    pub kind: String,
    pub count: u32,
    /// `None`: whole GPUs.
    pub sharing: Option<GpuSharing>,
    /// The node pool's `max-shared-clients-per-gpu` to select; `None`: any (or not shared).
    pub clients: Option<u32>,
}

/// A dataset of devbox.toml's `[datasets]`, as a box mounts it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedDataset {
    pub name: String,
    pub claim: String,
    pub mount: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedHome {
    pub size: String,
    /// `None`: the cluster's default StorageClass.
    pub storage_class: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedSsh {
    pub authorized_keys: Vec<String>,
    pub key_secret: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedTailscale {
    pub hostname: String,
    pub tags: Vec<String>,
    pub image: String,
    pub auth_key_secret: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ResolvedRuntime {
    pub uid: u32,
    pub gid: u32,
}

/// Resolves every user; reports what no layer provides (an image, a cluster among several).
pub fn resolve(repo: &ConfigRepo) -> Result<Vec<ResolvedBox>, Diagnostics> {
    let settings = repo.settings();
    let shared = resolve_settings(&settings);
    let mut diagnostics = Diagnostics::default();
    let mut boxes = Vec::with_capacity(repo.users.len());
    let resolved: Vec<_> = repo
        .users
        .par_iter()
        .map(|(name, parsed)| (parsed, resolve_user(name, &parsed.source.path, &parsed.value, &settings, &shared)))
        .collect();
    for (parsed, result) in resolved {
        match result {
            Ok(resolved) => boxes.push(resolved),
            Err(missing) => {
                for (key, message, help) in missing {
                    // At the key when the file has it (`[gpu]`, `[schedule]`), else its first line.
                    let (span, label) =
                        if key.is_empty() { (parsed.source.value_span(""), "in this file") } else { (parsed.source.key_span(key), "here") };
                    diagnostics.push(Diagnostic::error(message).at(&parsed.source, span, label).help(help));
                }
            }
        }
    }
    if settings.template.is_none() {
        diagnostics.extend(wake_names_taken(repo, &boxes));
    }
    if diagnostics.has_errors() { Err(diagnostics) } else { Ok(boxes) }
}

/// The embedded template names the ServiceAccount and CronJob that wake a box with working
/// hours `NAME-wake`, so a user named `alice-wake` in alice's namespace would have a
/// ServiceAccount of the same name: told at that user's file by `validate` and `new`, not only
/// by `build` once both bundles are rendered. (A custom template names its objects itself;
/// `build` refuses any two bundles that share an object.)
fn wake_names_taken(repo: &ConfigRepo, boxes: &[ResolvedBox]) -> Diagnostics {
    let woken: HashMap<String, &ResolvedBox> =
        boxes.iter().filter(|b| b.schedule.is_some() && b.state == State::Running).map(|b| (defaults::wake_cron_job(&b.name), b)).collect();
    let mut diagnostics = Diagnostics::default();
    for taken in boxes {
        let Some(owner) = woken.get(taken.name.as_str()).filter(|o| o.namespace == taken.namespace && o.cluster == taken.cluster) else {
            continue;
        };
        // Only for a clash: a search of every user file for each of 10,000 boxes would not be.
        let Some((_, parsed)) = repo.users.iter().find(|(name, _)| *name == taken.name) else { continue };
        diagnostics.push(
            Diagnostic::error(format!(
                "`{}` is the name of the ServiceAccount that wakes users/{}.toml's box at the start of its working hours",
                taken.name, owner.name
            ))
            .at(&parsed.source, parsed.source.value_span(""), "in this file")
            .help(format!(
                "both boxes would have a ServiceAccount `{}` in namespace `{}`: rename users/{}.toml",
                taken.name, taken.namespace, taken.name
            )),
        );
    }
    diagnostics
}

/// The box of user `name`, or an error that suggests the closest name.
pub(crate) fn find<'a>(boxes: &'a [ResolvedBox], name: &str) -> Result<&'a ResolvedBox, Diagnostics> {
    if let Some(found) = boxes.iter().find(|b| b.name == name) {
        return Ok(found);
    }
    let names: Vec<String> = boxes.iter().map(|b| b.name.clone()).collect();
    let mut error = no_user(name, &names);
    if crate::validate::is_user_name(name) && crate::read::closest(name, &names).is_none() {
        error = error.help(format!("create it with `devbox-gen new {name} --email ... --ssh-key-file ~/.ssh/id_ed25519.pub`"));
    }
    Err(error.into())
}

/// There is no user `name` among `names`: said as what `name` is (a name no file could have,
/// `../x`, is not said to be a missing `users/../x.toml`), with the nearest name, if any.
pub(crate) fn no_user(name: &str, names: &[String]) -> Diagnostic {
    let mut error = if crate::validate::is_user_name(name) {
        Diagnostic::error(format!("no user `{name}`: users/{name}.toml does not exist"))
    } else {
        Diagnostic::error(format!(
            "no user `{name}`: a user is named by her file in users/, without `.toml` (`alice` for users/alice.toml)"
        ))
    };
    if let Some(near) = crate::read::closest(name, names) {
        error = error.help(format!("did you mean `{near}`?"));
    }
    error
}

/// What a box lacks: the key of the user file it is about (`""`: the file as a whole), the
/// message and the help.
type Missing = Vec<(&'static str, String, String)>;

fn resolve_user(
    name: &str,
    source: &str,
    user: &UserFile,
    settings: &DevboxConfig,
    shared: &ResolvedSettings,
) -> Result<ResolvedBox, Missing> {
    let defaults = &settings.defaults;
    let mut missing = Missing::new();

    let image = user.image.clone().or_else(|| defaults.image.clone());
    if image.is_none() {
        missing.push((
            "",
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
                "",
                "devbox.toml lists several clusters; this box must say which is its".into(),
                format!(
                    "add `cluster = \"{}\"` here (one of: {}), or `cluster = \"{}\"` under devbox.toml's `[defaults]` for every box that does not say",
                    names[0],
                    names.join(", "),
                    names[0]
                ),
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
    // A box has a GPU when its user file or `[defaults]` has a `[gpu]` table; each of its keys
    // then comes from the user's table, else from `[defaults]`'s.
    let has_gpu = user.gpu.is_some() || defaults.gpu.is_some();
    let gpu_kind = user.gpu.as_ref().and_then(|g| g.kind.clone()).or_else(|| defaults.gpu.as_ref().and_then(|g| g.kind.clone()));
    let gpu_count =
        user.gpu.as_ref().and_then(|g| g.count).or_else(|| defaults.gpu.as_ref().and_then(|g| g.count)).unwrap_or(defaults::GPU_COUNT);
    if has_gpu && gpu_kind.is_none() {
        missing.push(("gpu", "`[gpu]` needs a `type`".into(), "add e.g. `type = \"nvidia-tesla-t4\"`".into()));
    }
    let gpu_sharing = user.gpu.as_ref().and_then(|g| g.sharing).or_else(|| defaults.gpu.as_ref().and_then(|g| g.sharing));
    let gpu_clients = user.gpu.as_ref().and_then(|g| g.clients).or_else(|| defaults.gpu.as_ref().and_then(|g| g.clients));
    // One value, like `tailscale.tags`: a user's list replaces the default one (`[]`: none).
    let wanted: BTreeSet<&String> = user.datasets.as_ref().or(defaults.datasets.as_ref()).into_iter().flatten().collect();
    let mut datasets = Vec::with_capacity(wanted.len());
    for name in wanted {
        match settings.datasets.get(name) {
            Some(dataset) => datasets.push(ResolvedDataset {
                name: name.clone(),
                claim: dataset.claim.clone(),
                mount: dataset.mount.clone().unwrap_or_else(|| defaults::dataset_mount(name)),
            }),
            None => missing.push((
                "datasets",
                format!("no dataset named `{name}` in devbox.toml"),
                format!("add `[datasets.{name}]` with its `claim` to devbox.toml, or remove `{name}` from `datasets`"),
            )),
        }
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
    let idle = resolve_idle(user, settings);
    let schedule = resolve_schedule(user, settings, &idle, &mut missing);
    let state = user.state.or(defaults.state).unwrap_or(defaults::STATE);
    if schedule.is_some() && state == State::Running && settings.template.is_none() {
        missing.extend(wake_cron_job_too_long(name, user));
    }
    let owner = (!settings.owners.allow.is_empty()).then(|| {
        let mut allow = settings.owners.allow.clone();
        allow.sort();
        allow.dedup();
        ResolvedOwner { user: format!("{}{}", settings.owners.user_prefix.as_deref().unwrap_or(""), user.email), allow }
    });

    let (Some(image), true) = (image, missing.is_empty()) else { return Err(missing) };
    Ok(ResolvedBox {
        name: name.to_string(),
        source: source.to_string(),
        email: user.email.clone(),
        state,
        namespace: shared.namespace.clone(),
        cluster,
        image,
        arch: user.arch.or(defaults.arch).unwrap_or(defaults::ARCH),
        resources: ResolvedResources {
            cpu: resources(|r| r.cpu.as_ref(), defaults::CPU),
            memory: resources(|r| r.memory.as_ref(), defaults::MEMORY),
        },
        shm: user.shm.clone().or_else(|| defaults.shm.clone()),
        spot: user.spot.or(defaults.spot).unwrap_or(defaults::SPOT),
        datasets,
        gpu: gpu_kind.map(|kind| ResolvedGpu { kind, count: gpu_count, sharing: gpu_sharing, clients: gpu_clients }),
        home: ResolvedHome {
            size: home(|h| h.size.as_ref()).unwrap_or_else(|| defaults::HOME_SIZE.into()),
            storage_class: home(|h| h.storage_class.as_ref()),
        },
        ssh: ResolvedSsh {
            authorized_keys: user.ssh.authorized_keys.iter().map(|k| k.trim().to_string()).collect(),
            key_secret: user.ssh.key_secret.clone().unwrap_or_else(|| defaults::key_secret(name)),
        },
        tailscale: ResolvedTailscale {
            hostname: user.tailscale.as_ref().and_then(|t| t.hostname.clone()).unwrap_or_else(|| defaults::hostname(name)),
            tags,
            image: shared.tailscale_image.clone(),
            auth_key_secret: shared.auth_key_secret.clone(),
        },
        env,
        runtime: shared.runtime.clone(),
        network: shared.network.clone(),
        idle,
        schedule,
        autostop: shared.autostop.clone(),
        owner,
    })
}

/// `[idle] after`: the user file's, then `[defaults]`'s, then never. Validation has refused
/// what [`autostop::after_seconds`] cannot read, so here it only converts.
fn resolve_idle(user: &UserFile, settings: &DevboxConfig) -> ResolvedIdle {
    let after = user
        .idle
        .as_ref()
        .and_then(|i| i.after.clone())
        .or_else(|| settings.defaults.idle.as_ref().and_then(|i| i.after.clone()))
        .unwrap_or_else(|| autostop::NEVER.to_string());
    let after_seconds = autostop::after_seconds(&after).ok().flatten();
    ResolvedIdle { after, after_seconds }
}

/// A running box with working hours gets a CronJob that starts it, which the embedded template
/// names after the box (`NAME-wake`): a name the API server refuses for a CronJob is told here, at
/// the user file's `[schedule]` (or the file, when the hours are `[defaults]`'), before anything
/// is rendered. A custom template names its objects itself; the check stage holds those to the
/// same limit.
fn wake_cron_job_too_long(name: &str, user: &UserFile) -> Option<(&'static str, String, String)> {
    let cron_job = defaults::wake_cron_job(name);
    if cron_job.len() <= MAX_CRON_JOB_NAME_LEN {
        return None;
    }
    let longest = MAX_CRON_JOB_NAME_LEN - (cron_job.len() - name.len());
    let key = if user.schedule.is_some() { "schedule" } else { "" };
    Some((
        key,
        format!(
            "`{name}` is too long a name for a box with working hours: its wake CronJob `{cron_job}` would have {} characters, and the API server refuses a CronJob name longer than {MAX_CRON_JOB_NAME_LEN}",
            cron_job.len()
        ),
        format!(
            "rename users/{name}.toml so that its name has at most {longest} characters, or {} (`[idle]` alone has no CronJob)",
            if user.schedule.is_some() {
                "remove `[schedule]`"
            } else {
                "keep this box out of `[defaults] schedule` with `[schedule]` and `days = []` here"
            }
        ),
    ))
}

/// `[schedule]`, key by key from the user file, then `[defaults]`; days default to Monday to
/// Friday. Working hours need an idle window: outside them it is what stops the box.
fn resolve_schedule(user: &UserFile, settings: &DevboxConfig, idle: &ResolvedIdle, missing: &mut Missing) -> Option<ResolvedSchedule> {
    let (own, default) = (user.schedule.as_ref(), settings.defaults.schedule.as_ref());
    if own.is_none() && default.is_none() {
        return None;
    }
    let pick = |field: fn(&crate::model::Schedule) -> Option<&String>| own.and_then(field).or_else(|| default.and_then(field)).cloned();
    let mut days =
        own.and_then(|s| s.days.clone()).or_else(|| default.and_then(|s| s.days.clone())).unwrap_or_else(|| autostop::WORKDAYS.to_vec());
    days.sort();
    days.dedup();
    if days.is_empty() {
        return None;
    }
    let (timezone, start, stop) = (pick(|s| s.timezone.as_ref()), pick(|s| s.start.as_ref()), pick(|s| s.stop.as_ref()));
    let mut lacks = |key: &str, example: &str| {
        missing.push((
            "schedule",
            format!("`[schedule]` needs `{key}`"),
            format!("add `{key} = {example}` to `[schedule]` here, or to devbox.toml's `[defaults] schedule`"),
        ));
    };
    if timezone.is_none() {
        lacks("timezone", "\"Europe/Berlin\"");
    }
    if start.is_none() {
        lacks("start", "\"08:00\"");
    }
    if stop.is_none() {
        lacks("stop", "\"19:00\"");
    }
    if idle.after_seconds.is_none() {
        missing.push((
            "schedule",
            "working hours need an idle window: outside them, `[idle] after` is what stops the box".into(),
            "add `[idle]` with `after = \"1h\"` here (or `[defaults] idle` in devbox.toml), or remove `[schedule]`".into(),
        ));
    }
    let (timezone, start, stop) = (timezone?, start?, stop?);
    let (start_time, stop_time) = (autostop::clock(&start).ok()?, autostop::clock(&stop).ok()?);
    // Validation compares the two when one table has both; here one may come from `[defaults]`.
    if stop_time <= start_time {
        missing.push((
            "schedule",
            format!("working hours would end ({stop}) before they begin ({start})"),
            "`[schedule] stop` is later the same day than `start`; set both here if `[defaults] schedule` has the other".into(),
        ));
        return None;
    }
    let start_cron = autostop::start_cron(start_time, &days);
    Some(ResolvedSchedule { timezone, days, start, stop, start_cron })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every user file of these tests has an image, so only the field under test can be missing.
    const USER: &str =
        "email = \"alice@example.com\"\nimage = \"registry.example.com/box:1\"\nssh.authorized_keys = [\"ssh-ed25519 AAAA alice\"]\n";

    fn config(toml: &str) -> DevboxConfig {
        toml::from_str(toml).unwrap_or_else(|e| panic!("{toml}: {e}"))
    }

    /// Alice's box from the user file `USER` + `user` and devbox.toml `settings` (dotted keys
    /// only, so that fragments concatenate), or the first thing reported missing.
    fn alice(user: &str, settings: &str) -> Result<ResolvedBox, String> {
        let file: UserFile = toml::from_str(&format!("{USER}{user}")).unwrap_or_else(|e| panic!("{user}: {e}"));
        let settings = config(settings);
        resolve_user("alice", "users/alice.toml", &file, &settings, &resolve_settings(&settings))
            .map_err(|missing| format!("error: {}", missing[0].1))
    }

    /// One field of a box, set in the user file, in `[defaults]`, in both or in neither.
    struct Layered {
        field: &'static str,
        /// In every run: what makes the field meaningful (a `[gpu]` table, say).
        base_user: &'static str,
        base_settings: &'static str,
        user: &'static str,
        /// Empty: the field has no `[defaults]` layer.
        defaults: &'static str,
        get: fn(&ResolvedBox) -> String,
        /// With `user` and `defaults`; with `defaults` alone; with neither (the built-in).
        expected: [&'static str; 3],
    }

    fn gpu(b: &ResolvedBox) -> String {
        b.gpu.as_ref().map_or("no gpu".into(), |g| format!("{} x{}", g.kind, g.count))
    }

    fn datasets(b: &ResolvedBox) -> String {
        b.datasets.iter().map(|d| format!("{} at {}", d.claim, d.mount)).collect::<Vec<_>>().join(", ")
    }

    #[test]
    fn each_box_field_takes_the_user_file_then_defaults_then_the_built_in() {
        let cases = [
            Layered {
                field: "state",
                base_user: "",
                base_settings: "",
                user: "state = \"stopped\"",
                defaults: "defaults.state = \"archived\"",
                get: |b| format!("{:?}", b.state),
                expected: ["Stopped", "Archived", "Running"],
            },
            Layered {
                field: "arch",
                base_user: "",
                base_settings: "",
                user: "arch = \"amd64\"",
                defaults: "defaults.arch = \"arm64\"",
                get: |b| format!("{:?}", b.arch),
                expected: ["Amd64", "Arm64", "Amd64"],
            },
            Layered {
                field: "cluster",
                base_user: "",
                base_settings: "",
                user: "cluster = \"east\"",
                defaults: "defaults.cluster = \"west\"",
                get: |b| format!("{:?}", b.cluster),
                expected: ["Some(\"east\")", "Some(\"west\")", "None"],
            },
            Layered {
                field: "cluster, when devbox.toml lists one",
                base_user: "",
                base_settings: "clusters = [{ name = \"only\", server = \"https://k8s.example.com\" }]\n",
                user: "cluster = \"east\"",
                defaults: "defaults.cluster = \"west\"",
                get: |b| format!("{:?}", b.cluster),
                expected: ["Some(\"east\")", "Some(\"west\")", "Some(\"only\")"],
            },
            Layered {
                field: "resources.cpu",
                base_user: "",
                base_settings: "",
                user: "resources.cpu = \"8\"",
                defaults: "defaults.resources.cpu = \"4\"",
                get: |b| b.resources.cpu.clone(),
                expected: ["8", "4", "2"],
            },
            Layered {
                field: "resources.cpu, key by key",
                base_user: "resources.memory = \"32Gi\"\n",
                base_settings: "",
                user: "resources.cpu = \"8\"",
                defaults: "defaults.resources.cpu = \"4\"",
                get: |b| format!("{} {}", b.resources.cpu, b.resources.memory),
                expected: ["8 32Gi", "4 32Gi", "2 32Gi"],
            },
            Layered {
                field: "resources.memory",
                base_user: "",
                base_settings: "",
                user: "resources.memory = \"32Gi\"",
                defaults: "defaults.resources.memory = \"16Gi\"",
                get: |b| b.resources.memory.clone(),
                expected: ["32Gi", "16Gi", "8Gi"],
            },
            Layered {
                field: "gpu.type",
                base_user: "",
                base_settings: "",
                user: "gpu.type = \"nvidia-l4\"",
                defaults: "defaults.gpu.type = \"nvidia-tesla-t4\"",
                get: gpu,
                expected: ["nvidia-l4 x1", "nvidia-tesla-t4 x1", "no gpu"],
            },
            Layered {
                field: "gpu.type, the user's [gpu] without one",
                base_user: "gpu.count = 2\n",
                base_settings: "",
                user: "gpu.type = \"nvidia-l4\"",
                defaults: "defaults.gpu.type = \"nvidia-tesla-t4\"",
                get: gpu,
                expected: ["nvidia-l4 x2", "nvidia-tesla-t4 x2", "error: `[gpu]` needs a `type`"],
            },
            // The bug this fixes: a user's [gpu] without `count` took 1, not [defaults]' count.
            Layered {
                field: "gpu.count, the user's [gpu] without one",
                base_user: "gpu.type = \"nvidia-l4\"\n",
                base_settings: "",
                user: "gpu.count = 4",
                defaults: "defaults.gpu.count = 2",
                get: gpu,
                expected: ["nvidia-l4 x4", "nvidia-l4 x2", "nvidia-l4 x1"],
            },
            Layered {
                field: "gpu.count, the GPU from [defaults]",
                base_user: "",
                base_settings: "defaults.gpu.type = \"nvidia-tesla-t4\"\n",
                user: "gpu.count = 4",
                defaults: "defaults.gpu.count = 2",
                get: gpu,
                expected: ["nvidia-tesla-t4 x4", "nvidia-tesla-t4 x2", "nvidia-tesla-t4 x1"],
            },
            Layered {
                field: "gpu.sharing",
                base_user: "gpu.type = \"nvidia-l4\"\n",
                base_settings: "",
                user: "gpu.sharing = \"time-sharing\"",
                defaults: "defaults.gpu.sharing = \"mps\"",
                get: |b| format!("{:?}", b.gpu.as_ref().and_then(|g| g.sharing)),
                expected: ["Some(TimeSharing)", "Some(Mps)", "None"],
            },
            Layered {
                field: "gpu.clients",
                base_user: "gpu.type = \"nvidia-l4\"\ngpu.sharing = \"time-sharing\"\n",
                base_settings: "",
                user: "gpu.clients = 4",
                defaults: "defaults.gpu.clients = 2",
                get: |b| format!("{:?}", b.gpu.as_ref().and_then(|g| g.clients)),
                expected: ["Some(4)", "Some(2)", "None"],
            },
            Layered {
                field: "shm",
                base_user: "",
                base_settings: "",
                user: "shm = \"8Gi\"",
                defaults: "defaults.shm = \"2Gi\"",
                get: |b| format!("{:?}", b.shm),
                expected: ["Some(\"8Gi\")", "Some(\"2Gi\")", "None"],
            },
            Layered {
                field: "spot",
                base_user: "",
                base_settings: "",
                user: "spot = false",
                defaults: "defaults.spot = true",
                get: |b| b.spot.to_string(),
                expected: ["false", "true", "false"],
            },
            Layered {
                field: "datasets (one value, sorted by name)",
                base_user: "",
                base_settings: "datasets.imagenet.claim = \"imagenet-ro\"\ndatasets.coco = { claim = \"coco-ro\", mount = \"/data/coco\" }\n",
                user: "datasets = [\"imagenet\", \"coco\"]",
                defaults: "defaults.datasets = [\"imagenet\"]",
                get: datasets,
                expected: ["coco-ro at /data/coco, imagenet-ro at /datasets/imagenet", "imagenet-ro at /datasets/imagenet", ""],
            },
            Layered {
                field: "datasets, an empty list over [defaults]",
                base_user: "",
                base_settings: "datasets.imagenet.claim = \"imagenet-ro\"\n",
                user: "datasets = []",
                defaults: "defaults.datasets = [\"imagenet\"]",
                get: datasets,
                expected: ["", "imagenet-ro at /datasets/imagenet", ""],
            },
            Layered {
                field: "home.size",
                base_user: "",
                base_settings: "",
                user: "home.size = \"200Gi\"",
                defaults: "defaults.home.size = \"100Gi\"",
                get: |b| b.home.size.clone(),
                expected: ["200Gi", "100Gi", "50Gi"],
            },
            Layered {
                field: "home.storage_class",
                base_user: "home.size = \"200Gi\"\n",
                base_settings: "",
                user: "home.storage_class = \"premium-rwo\"",
                defaults: "defaults.home.storage_class = \"standard-rwo\"",
                get: |b| format!("{:?}", b.home.storage_class),
                expected: ["Some(\"premium-rwo\")", "Some(\"standard-rwo\")", "None"],
            },
            Layered {
                field: "tailscale.tags (one value)",
                base_user: "",
                base_settings: "",
                user: "tailscale.tags = [\"tag:gpu\"]",
                defaults: "defaults.tailscale.tags = [\"tag:devbox\", \"tag:eu\"]",
                get: |b| b.tailscale.tags.join(","),
                expected: ["tag:gpu", "tag:devbox,tag:eu", ""],
            },
            Layered {
                field: "env (name by name)",
                base_user: "env.OWN = \"1\"\n",
                base_settings: "",
                user: "env.EDITOR = \"vim\"",
                defaults: "defaults.env.EDITOR = \"nano\"",
                get: |b| format!("{:?}", b.env),
                expected: ["{\"EDITOR\": \"vim\", \"OWN\": \"1\"}", "{\"EDITOR\": \"nano\", \"OWN\": \"1\"}", "{\"OWN\": \"1\"}"],
            },
            Layered {
                field: "ssh.key_secret (no [defaults] layer)",
                base_user: "",
                base_settings: "",
                user: "ssh.key_secret = \"alice-github\"",
                defaults: "",
                get: |b| b.ssh.key_secret.clone(),
                expected: ["alice-github", "alice-ssh", "alice-ssh"],
            },
            Layered {
                field: "tailscale.hostname (no [defaults] layer)",
                base_user: "",
                base_settings: "",
                user: "tailscale.hostname = \"alice-gpu\"",
                defaults: "",
                get: |b| b.tailscale.hostname.clone(),
                expected: ["alice-gpu", "alice-devbox", "alice-devbox"],
            },
        ];
        for case in cases {
            let (base_user, base_settings) = (case.base_user, case.base_settings);
            let runs = [
                (format!("{base_user}{}\n", case.user), format!("{base_settings}{}\n", case.defaults)),
                (base_user.to_string(), format!("{base_settings}{}\n", case.defaults)),
                (base_user.to_string(), base_settings.to_string()),
            ];
            for ((user, settings), expected) in runs.iter().zip(case.expected) {
                let got = alice(user, settings).map_or_else(|error| error, |b| (case.get)(&b));
                assert_eq!(got, expected, "{}\nuser file: {user}\ndevbox.toml: {settings}", case.field);
            }
        }
    }

    #[test]
    fn the_image_has_no_built_in_default() {
        let image = |user: &str, settings: &str| -> Result<String, String> {
            let file: UserFile = toml::from_str(&format!("email = \"a@example.com\"\nssh.authorized_keys = [\"k\"]\n{user}")).unwrap();
            let settings = config(settings);
            resolve_user("alice", "users/alice.toml", &file, &settings, &resolve_settings(&settings))
                .map(|b| b.image)
                .map_err(|missing| missing[0].1.clone())
        };
        assert_eq!(image("image = \"u:1\"", "defaults.image = \"d:1\""), Ok("u:1".into()));
        assert_eq!(image("", "defaults.image = \"d:1\""), Ok("d:1".into()));
        assert_eq!(image("", ""), Err("no image for this box".into()));
    }

    /// One setting of devbox.toml: set there, or the built-in default.
    struct Setting {
        field: &'static str,
        base: &'static str,
        set: &'static str,
        get: fn(&ResolvedSettings) -> String,
        /// Set; not set (the built-in).
        expected: [&'static str; 2],
    }

    #[test]
    fn each_setting_takes_devbox_toml_then_the_built_in() {
        let cases = [
            Setting {
                field: "namespace",
                base: "",
                set: "namespace = \"boxes\"",
                get: |s| s.namespace.clone(),
                expected: ["boxes", "devboxes"],
            },
            Setting {
                field: "tailscale.image",
                base: "",
                set: "tailscale.image = \"ghcr.io/tailscale/tailscale:v1.90.0\"",
                get: |s| s.tailscale_image.clone(),
                expected: ["ghcr.io/tailscale/tailscale:v1.90.0", "ghcr.io/tailscale/tailscale:v1.80.3"],
            },
            Setting {
                field: "tailscale.auth_key_secret",
                base: "",
                set: "tailscale.auth_key_secret = \"ts-key\"",
                get: |s| s.auth_key_secret.clone(),
                expected: ["ts-key", "tailscale-auth"],
            },
            Setting {
                field: "runtime.uid",
                base: "",
                set: "runtime.uid = 2000",
                get: |s| s.runtime.uid.to_string(),
                expected: ["2000", "10001"],
            },
            Setting {
                field: "runtime.gid",
                base: "",
                set: "runtime.gid = 3000",
                get: |s| s.runtime.gid.to_string(),
                expected: ["3000", "10001"],
            },
            Setting {
                field: "runtime.gid, the uid set",
                base: "runtime.uid = 2000\n",
                set: "runtime.gid = 3000",
                get: |s| s.runtime.gid.to_string(),
                expected: ["3000", "2000"],
            },
            Setting {
                field: "network.metadata",
                base: "",
                set: "network.metadata = \"allow\"",
                get: |s| format!("{:?}", s.network.metadata),
                expected: ["Allow", "Block"],
            },
            Setting {
                field: "repo.revision",
                base: "repo.url = \"https://git.example.com/devboxes.git\"\n",
                set: "repo.revision = \"refs/tags/v1\"",
                get: |s| s.revision.clone(),
                expected: ["refs/tags/v1", "main"],
            },
            Setting {
                field: "argocd.namespace",
                base: "",
                set: "argocd.namespace = \"gitops\"",
                get: |s| s.argocd_namespace.clone(),
                expected: ["gitops", "argocd"],
            },
            Setting {
                field: "argocd.project",
                base: "",
                set: "argocd.project = \"devboxes\"",
                get: |s| s.argocd_project.clone(),
                expected: ["devboxes", "default"],
            },
            Setting {
                field: "flux.namespace",
                base: "",
                set: "flux.namespace = \"flux\"",
                get: |s| s.flux_namespace.clone(),
                expected: ["flux", "flux-system"],
            },
            Setting {
                field: "default_resources (the LimitRange's default), from [defaults] resources",
                base: "defaults.resources.memory = \"16Gi\"\n",
                set: "defaults.resources.cpu = \"4\"",
                get: |s| format!("{} {}", s.default_resources.cpu, s.default_resources.memory),
                expected: ["4 16Gi", "2 16Gi"],
            },
        ];
        for case in cases {
            let runs = [format!("{}{}\n", case.base, case.set), case.base.to_string()];
            for (settings, expected) in runs.iter().zip(case.expected) {
                assert_eq!((case.get)(&resolve_settings(&config(settings))), expected, "{}\ndevbox.toml: {settings}", case.field);
            }
        }
    }

    #[test]
    fn boxes_carry_the_resolved_settings() {
        let settings = "namespace = \"boxes\"\ntailscale.image = \"ts:2\"\ntailscale.auth_key_secret = \"ts-key\"\nruntime.uid = 2000\nnetwork.metadata = \"allow\"\n";
        let shared = resolve_settings(&config(settings));
        let resolved = alice("", settings).unwrap();
        assert_eq!(
            (resolved.namespace, resolved.tailscale.image, resolved.tailscale.auth_key_secret, resolved.runtime, resolved.network),
            (shared.namespace, shared.tailscale_image, shared.auth_key_secret, shared.runtime, shared.network)
        );
    }
}
