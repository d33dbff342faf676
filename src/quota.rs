//! Between resolve and render: the totals of `[quota]` in devbox.toml, refused before merge.
//!
//! The cluster enforces the same numbers with the ResourceQuota that [`crate::delivery`] emits,
//! but only when a pod or claim is created: a pull request that goes over would merge, sync,
//! and leave someone's box Pending with a `forbidden: exceeded quota` event nobody reviewing
//! sees. So `build`, `diff` and `validate` add up the resolved boxes of *every* user (the build
//! cache skips rendering unchanged boxes, never resolving them) and refuse a users/ that does
//! not fit, naming who takes most.
//!
//! What counts is what Kubernetes counts (<https://kubernetes.io/docs/concepts/policy/resource-quotas/>):
//! CPU, memory and GPUs are requested by pods, and only a running box has one;
//! `requests.storage` sums every PersistentVolumeClaim, and a stopped or archived box keeps its
//! home volume. Totals are per namespace of each cluster, as a ResourceQuota is. A running
//! box's pod requests its own `resources` plus what the template's other containers ask for
//! (the embedded template's tailscale sidecar: 250m CPU and 256Mi), and the ResourceQuota
//! counts both: the [`Overhead`] is read from one box rendered by the real template, so a
//! custom template's sidecars count too.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Quota, State};
use crate::quantity::Quantity;
use crate::read::ConfigRepo;
use crate::render::Object;
use crate::resolve::ResolvedBox;

/// What a running box's pod requests beyond the box's own `resources`: the containers the
/// template adds around the person's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overhead {
    pub cpu: Quantity,
    pub memory: Quantity,
}

/// The [`Overhead`] of a box that stops by itself (it has the template's `idle` container) and
/// of one that does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overheads {
    pub plain: Overhead,
    pub autostop: Overhead,
}

impl Overheads {
    pub(crate) const NONE: Self = Self { plain: Overhead::NONE, autostop: Overhead::NONE };

    pub(crate) fn of(&self, resolved: &ResolvedBox) -> Overhead {
        if resolved.autostops() { self.autostop } else { self.plain }
    }
}

impl Overhead {
    pub(crate) const NONE: Self = Self { cpu: Quantity::ZERO, memory: Quantity::ZERO };

    /// Whether a quota counts it: only `cpu` and `memory` are requested per container.
    pub(crate) fn matters(quota: &Quota) -> bool {
        quota.cpu.is_some() || quota.memory.is_some()
    }

    /// Read off one box rendered as running: its pod's effective requests
    /// ([`crate::render::contract::pod_requests`]), less the box's own.
    pub(crate) fn measure(resolved: &ResolvedBox, objects: &[Object]) -> Self {
        let Some(pod) =
            objects.iter().find(|o| crate::check::kind(o) == "StatefulSet").and_then(|o| o.get("spec")?.get("template")?.get("spec"))
        else {
            return Self::NONE;
        };
        let pod = crate::render::contract::pod_requests(pod);
        let own = |q: &str| Quantity::parse(q).unwrap_or(Quantity::ZERO);
        Self { cpu: pod.cpu.excess_over(own(&resolved.resources.cpu)), memory: pod.memory.excess_over(own(&resolved.resources.memory)) }
    }
}

/// How many users a breach names.
const SHOWN: usize = 5;

/// A resource `[quota]` limits, by its key there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Cpu,
    Memory,
    Gpu,
    Storage,
}

impl Resource {
    pub(crate) const ALL: [Self; 4] = [Self::Cpu, Self::Memory, Self::Gpu, Self::Storage];

    fn key(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "gpu",
            Self::Storage => "storage",
        }
    }

    /// The quota as written in devbox.toml, and parsed; `None` when unset (or unreadable, which
    /// validation has reported already).
    pub(crate) fn limit(self, quota: &Quota) -> Option<(String, Quantity)> {
        let written = match self {
            Self::Cpu => quota.cpu.clone()?,
            Self::Memory => quota.memory.clone()?,
            Self::Gpu => quota.gpu?.to_string(),
            Self::Storage => quota.storage.clone()?,
        };
        let parsed = Quantity::parse(&written).ok()?;
        Some((written, parsed))
    }

    /// What one box takes of it; `None` for nothing (a box without a pod asks for no CPU).
    pub(crate) fn of(self, resolved: &ResolvedBox, overhead: Overhead) -> Option<Quantity> {
        let running = resolved.state == State::Running;
        match self {
            Self::Cpu => running.then(|| Quantity::parse(&resolved.resources.cpu).ok().map(|q| q + overhead.cpu)).flatten(),
            Self::Memory => running.then(|| Quantity::parse(&resolved.resources.memory).ok().map(|q| q + overhead.memory)).flatten(),
            Self::Gpu => resolved.gpu.as_ref().filter(|_| running).map(|gpu| Quantity::units(u128::from(gpu.count))),
            Self::Storage => Quantity::parse(&resolved.home.size).ok(),
        }
    }

    /// A total or an amount as people write this resource: `4.5` (cores, GPUs), `1600Gi`.
    pub(crate) fn show(self, amount: Quantity) -> String {
        match self {
            Self::Cpu | Self::Gpu => amount.decimal(),
            Self::Memory | Self::Storage => amount.binary(),
        }
    }

    /// `24 CPUs`, `1 GPU`, `100Gi`, `1094432Mi (about 1068.8Gi)`: an amount with its unit.
    pub(crate) fn amount(self, amount: Quantity) -> String {
        let unit = match self {
            Self::Cpu => "CPU",
            Self::Gpu => "GPU",
            Self::Memory | Self::Storage => return amount.binary_readable(),
        };
        let shown = self.show(amount);
        if shown == "1" { format!("1 {unit}") } else { format!("{shown} {unit}s") }
    }
}

/// `(user, amount, state)`: one box's share of a total.
type Share = (String, Quantity, State);

/// What the boxes of one namespace of one cluster take of one resource.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Usage {
    pub cluster: Option<String>,
    pub namespace: String,
    pub total: Quantity,
    /// `(user, amount, state)`, the largest first (then by name): who to talk to.
    pub by_user: Vec<Share>,
}

/// The usage of `resource` in each namespace of each cluster that has a box taking some.
pub(crate) fn usage(boxes: &[ResolvedBox], resource: Resource, overheads: Overheads) -> Vec<Usage> {
    let mut by_namespace: BTreeMap<(Option<&str>, &str), Vec<Share>> = BTreeMap::new();
    for resolved in boxes {
        if let Some(amount) = resource.of(resolved, overheads.of(resolved)).filter(|amount| !amount.is_zero()) {
            by_namespace.entry((resolved.cluster.as_deref(), resolved.namespace.as_str())).or_default().push((
                resolved.name.clone(),
                amount,
                resolved.state,
            ));
        }
    }
    by_namespace
        .into_iter()
        .map(|((cluster, namespace), mut by_user)| {
            by_user.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Usage {
                cluster: cluster.map(str::to_string),
                namespace: namespace.to_string(),
                total: by_user.iter().map(|(_, amount, _)| *amount).sum(),
                by_user,
            }
        })
        .collect()
}

/// Refuses boxes that add up to more than a `[quota]` in some namespace: one error per resource
/// and cluster, at the quota's line in devbox.toml. `overheads` is what each running pod requests
/// beyond its box's `resources` ([`Overhead::measure`]).
pub(crate) fn refuse_breaches(repo: &ConfigRepo, boxes: &[ResolvedBox], overheads: Overheads) -> Result<(), Diagnostics> {
    let overhead = overheads.plain;
    let Some(settings) = &repo.settings else { return Ok(()) };
    let mut breaches = Diagnostics::default();
    for resource in Resource::ALL {
        let Some((written, limit)) = resource.limit(&settings.value.quota) else { continue };
        for usage in usage(boxes, resource, overheads).into_iter().filter(|usage| usage.total > limit) {
            let span = settings.source.value_span(&format!("quota.{}", resource.key()));
            let mut diagnostic = breach(resource, &written, limit, &usage);
            let extra = match resource {
                Resource::Cpu => overhead.cpu,
                Resource::Memory => overhead.memory,
                _ => Quantity::ZERO,
            };
            if !extra.is_zero() {
                diagnostic = diagnostic.help(format!(
                    "each running box counts {} more than its `resources.{}`: what the template's other containers (the tailscale sidecar) request{}",
                    resource.amount(extra),
                    resource.key(),
                    if boxes.iter().any(ResolvedBox::autostops) { ", and a box with `[idle]` or `[schedule]` its idle container too" } else { "" }
                ));
            }
            breaches.push(diagnostic.at(&settings.source, span, "the quota"));
        }
    }
    if breaches.is_empty() { Ok(()) } else { Err(breaches) }
}

fn breach(resource: Resource, written: &str, limit: Quantity, usage: &Usage) -> Diagnostic {
    let key = resource.key();
    let place = match &usage.cluster {
        Some(cluster) => format!("namespace `{}` of cluster `{cluster}`", usage.namespace),
        None => format!("namespace `{}`", usage.namespace),
    };
    let total = resource.amount(usage.total);
    let taken = match resource {
        Resource::Cpu | Resource::Gpu => format!("the running boxes request {total}"),
        Resource::Memory => format!("the running boxes request {total} of memory"),
        Resource::Storage => format!("the home volumes take {total}"),
    };
    let over = resource.amount(usage.total.excess_over(limit));
    let mut largest: Vec<String> = usage
        .by_user
        .iter()
        .take(SHOWN)
        .map(|(user, amount, state)| match state {
            State::Running => format!("{user} {}", resource.show(*amount)),
            _ => format!("{user} {} ({state})", resource.show(*amount)),
        })
        .collect();
    if usage.by_user.len() > SHOWN {
        largest.push(format!("and {}", crate::text::plural(usage.by_user.len() - SHOWN, "other", "others")));
    }
    let diagnostic = Diagnostic::error(format!("`[quota] {key}` is exceeded in {place}: {taken}, {over} more than the quota of {written}"))
        .help(format!("largest first: {}", largest.join(", ")));
    match resource {
        Resource::Cpu | Resource::Memory => diagnostic.help(format!(
            "raise `[quota] {key}`, or lower `resources.{key}` or set `state = \"stopped\"` in some user files: only running boxes count"
        )),
        Resource::Gpu => diagnostic
            .help("raise `[quota] gpu`, or remove `[gpu]` or set `state = \"stopped\"` in some user files: only running boxes count"),
        Resource::Storage => diagnostic
            .help("every home volume counts, of running, stopped and archived boxes alike: the claim stays when the pod goes")
            .help("raise `[quota] storage`: a home volume cannot shrink, so only a smaller `home.size` for new boxes makes room"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 a@b";

    /// The resolved boxes of users `(name, extra lines of the user file)` under `settings`.
    fn boxes(settings: &str, users: &[(&str, &str)]) -> (ConfigRepo, Vec<ResolvedBox>) {
        let texts: Vec<(String, String)> = users
            .iter()
            .map(|(name, extra)| {
                (name.to_string(), format!("email = \"{name}@example.com\"\nssh.authorized_keys = [\"{KEY}\"]\n{extra}\n"))
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let settings = format!("defaults.image = \"registry.example.com/devbox:1\"\n{settings}");
        let (repo, found) = crate::read::from_texts(Some(&settings), &borrowed);
        assert!(!found.has_errors(), "{found:?}");
        let resolved = crate::resolve::resolve(&repo).unwrap_or_else(|e| panic!("{e:?}"));
        (repo, resolved)
    }

    fn totals(boxes: &[ResolvedBox], resource: Resource) -> Vec<(Option<String>, String)> {
        usage(boxes, resource, Overheads::NONE).into_iter().map(|u| (u.cluster, resource.show(u.total))).collect()
    }

    #[test]
    fn only_running_boxes_request_cpu_memory_and_gpus_but_every_home_counts() {
        let (_, boxes) = boxes(
            "",
            &[
                ("alice", "resources = { cpu = \"8\", memory = \"32Gi\" }\ngpu = { type = \"nvidia-l4\", count = 2 }"),
                ("bob", "resources.cpu = \"500m\"\nhome.size = \"1Ti\""),
                ("carol", "state = \"stopped\"\ngpu.type = \"nvidia-l4\""),
                ("dave", "state = \"archived\"\nhome.size = \"200Gi\""),
            ],
        );
        assert_eq!(totals(&boxes, Resource::Cpu), [(None, "8.5".into())]);
        assert_eq!(totals(&boxes, Resource::Memory), [(None, "40Gi".into())]);
        assert_eq!(totals(&boxes, Resource::Gpu), [(None, "2".into())]);
        // 50Gi (alice, built-in) + 1Ti + 50Gi (carol) + 200Gi (dave, archived)
        assert_eq!(totals(&boxes, Resource::Storage), [(None, "1324Gi".into())]);
        let storage = &usage(&boxes, Resource::Storage, Overheads::NONE)[0];
        let order: Vec<&str> = storage.by_user.iter().map(|(user, _, _)| user.as_str()).collect();
        assert_eq!(order, ["bob", "dave", "alice", "carol"], "largest first, then by name");
    }

    #[test]
    fn each_cluster_counts_its_own_boxes() {
        let clusters = "[[clusters]]\nname = \"east\"\nserver = \"https://east.example.com\"\n[[clusters]]\nname = \"west\"\nserver = \"https://west.example.com\"\n";
        let (_, boxes) = boxes(
            clusters,
            &[("alice", "cluster = \"east\"\nresources.cpu = \"4\""), ("bob", "cluster = \"west\""), ("carol", "cluster = \"east\"")],
        );
        assert_eq!(totals(&boxes, Resource::Cpu), [(Some("east".into()), "6".into()), (Some("west".into()), "2".into())]);
        assert_eq!(totals(&boxes, Resource::Gpu), []);
    }

    #[test]
    fn a_breach_is_refused_at_the_quota_with_the_largest_users() {
        let users: Vec<(String, String)> =
            (0..7).map(|i| (format!("user{i}"), format!("resources.cpu = \"{}\"", if i == 3 { 8 } else { 2 }))).collect();
        let users: Vec<(&str, &str)> = users.iter().map(|(n, e)| (n.as_str(), e.as_str())).collect();
        let (repo, resolved) = boxes("[quota]\ncpu = \"16\"\nstorage = \"1Ti\"", &users);
        let breaches = refuse_breaches(&repo, &resolved, Overheads::NONE).unwrap_err();
        assert_eq!(breaches.0.len(), 1, "storage (350Gi) fits: {breaches:?}");
        let breach = &breaches.0[0];
        assert_eq!(
            breach.message,
            "`[quota] cpu` is exceeded in namespace `devboxes`: the running boxes request 20 CPUs, 4 CPUs more than the quota of 16"
        );
        assert_eq!(breach.help[0], "largest first: user3 8, user0 2, user1 2, user2 2, user4 2, and 2 others");
        let (fits, _) = boxes("[quota]\ncpu = \"20\"\ngpu = 0", &users);
        assert!(refuse_breaches(&fits, &resolved, Overheads::NONE).is_ok(), "exactly the quota fits");
        let sidecar = Overhead { cpu: Quantity::parse("250m").unwrap(), memory: Quantity::ZERO };
        let over = refuse_breaches(&fits, &resolved, Overheads { plain: sidecar, autostop: sidecar }).unwrap_err();
        assert!(over.0[0].message.contains("request 21.75 CPUs"), "{:?}", over.0[0].message);
    }
}
