//! Stage 2, validate: every rule of docs/design.md on the files as written, in all files at once.
//!
//! Rules look at one value and say what is wrong with it and how to fix it; this module only
//! walks the files and points each finding at the key it is about. Cross-file rules (two
//! people claiming the same tailnet hostname) run last, once every file is known.

mod autostop;
mod fields;
mod ml;
mod names;
mod ssh;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

pub(crate) use fields::Finding;

/// Whether an image reference is well formed and pinned (a tag other than `latest`, or a
/// digest), as a user file's `image` must be; the check stage holds a template's to it too.
pub(crate) fn is_pinned_image(value: &str) -> bool {
    fields::image(value).is_ok()
}
pub(crate) use names::{MAX_CRON_JOB_NAME_LEN, is_dns_label, is_dns_subdomain, is_user_name, user_name_or};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Prices;
use crate::model::{DevboxConfig, GitOps, Gpu, GpuSharing, Home, Idle, Resources, Schedule, Tailscale, UserDefaults, UserFile};
use crate::read::ConfigRepo;
use crate::source::SourceFile;

/// Checks the whole config repo; returns every problem, sorted by file and line.
pub fn validate(repo: &ConfigRepo) -> Diagnostics {
    let settings = repo.settings();
    let mut diagnostics = Diagnostics::default();
    if let Some(parsed) = &repo.settings {
        let mut findings = settings_findings(&parsed.value);
        findings.0.extend(repo_path_mismatch(&parsed.value, repo.git_prefix.as_deref()));
        diagnostics.extend(findings.locate(&parsed.source));
    }
    // Judged against defaults in place of what devbox.toml says, the user files would get
    // errors of their own that are not (a dataset devbox.toml does define, say).
    if repo.settings_unreadable {
        return diagnostics.sorted();
    }
    let per_user: Vec<Diagnostics> = repo
        .users
        .par_iter()
        .map(|(name, parsed)| validate_user(name, &parsed.value, &settings, repo).without(&parsed.stand_ins).locate(&parsed.source))
        .collect();
    for found in per_user {
        diagnostics.extend(found);
    }
    for (i, key, finding) in across_users(repo, None) {
        let parsed = &repo.users[i].1;
        if is_invented(&key, &parsed.stand_ins) {
            continue;
        }
        diagnostics.push(Diagnostic::from(finding).at_span(&parsed.source, parsed.source.value_span(&key)));
    }
    diagnostics.sorted()
}

/// A warning when devbox.toml sits in a directory of its Git repository that `[repo] path` does
/// not name: Argo CD's generator and Flux's paths would point where out/ is not, every sync
/// would find nothing, and nothing would fail. (If CI copies out/ to another repository,
/// `path` is where it lands there, and the warning does not apply.)
fn repo_path_mismatch(config: &DevboxConfig, git_prefix: Option<&str>) -> Option<(String, Finding)> {
    let prefix = git_prefix?;
    let source = config.repo.as_ref().filter(|_| !config.gitops.is_empty())?;
    let path = source.path.as_deref().unwrap_or("").trim_start_matches("./").trim_matches('/');
    if path == prefix {
        return None;
    }
    let (key, said) = match &source.path {
        Some(_) => ("repo.path", format!("`[repo] path` says `{path}`")),
        None => ("repo", "`[repo] path` is not set".to_string()),
    };
    let here =
        if prefix.is_empty() { "at the root of its Git repository".to_string() } else { format!("in `{prefix}` of its Git repository") };
    let fix =
        if prefix.is_empty() { "remove `path` from `[repo]`".to_string() } else { format!("set `path = \"{prefix}\"` under `[repo]`") };
    Some((
        key.to_string(),
        Finding::warning(format!(
            "devbox.toml is {here}, but {said}: Argo CD and Flux would look for out/ where it is not, and deploy nothing"
        ))
        .help(format!("{fix}; if CI copies out/ to another repository, set it to where out/ lands there")),
    ))
}

/// Every rule of devbox.toml, on its values.
pub(crate) fn settings_findings(config: &DevboxConfig) -> Findings {
    validate_settings(config)
}

/// Every rule of a user file on user `name` of `repo`, the rules across users included. When
/// two users claim the same hostname or Secret, it is `name` that is told, as the newcomer
/// (`validate` tells the later file, whichever that is).
pub(crate) fn user_findings(repo: &ConfigRepo, name: &str) -> Findings {
    let Some((index, (_, parsed))) = repo.users.iter().enumerate().find(|(_, (n, _))| n == name) else {
        return Findings::default();
    };
    let mut found = validate_user(name, &parsed.value, &repo.settings(), repo);
    found.0.extend(conflicts_at(repo, index).0);
    found
}

/// What the rules found, by the dotted key each finding is about, before it is pointed into a
/// file: `validate` points it at the key's value, while `new` and `init`, whose values come
/// from the command line, blame the flag that gave the value.
#[derive(Debug, Default)]
pub(crate) struct Findings(pub(crate) Vec<(String, Finding)>);

/// The key of a finding about a file as a whole (a user file's name).
pub(crate) const WHOLE_FILE: &str = "";

/// Ends the key of a finding about the key itself, not its value (an `[env]` name): pointed at
/// the key.
const AT_KEY: &str = "#key";

impl Findings {
    fn check(&mut self, key: &str, result: Result<(), Finding>) {
        if let Err(finding) = result {
            self.report(key, finding);
        }
    }

    fn report(&mut self, key: &str, finding: Finding) {
        self.0.push((key.to_string(), finding));
    }

    /// Without the findings about values reading invented (`stand_ins`, dotted paths): the
    /// file's real problem there has been told already.
    fn without(mut self, stand_ins: &[String]) -> Self {
        self.0.retain(|(key, _)| !is_invented(key, stand_ins));
        self
    }

    /// Points each finding at its key's value in `file` (one about the whole file: at its path).
    fn locate(self, file: &Arc<SourceFile>) -> Diagnostics {
        let located = self.0.into_iter().map(|(key, finding)| {
            let diagnostic = Diagnostic::from(finding);
            match key.strip_suffix(AT_KEY) {
                _ if key == WHOLE_FILE => diagnostic.in_path(file.path.clone()),
                Some(key) => diagnostic.at_span(file, file.key_span(key)),
                None => diagnostic.at_span(file, file.value_span(&key)),
            }
        });
        Diagnostics(located.collect())
    }
}

/// Whether a finding's key is, or is inside, a value reading invented.
fn is_invented(key: &str, stand_ins: &[String]) -> bool {
    let key = key.strip_suffix(AT_KEY).unwrap_or(key);
    stand_ins.iter().any(|path| key.strip_prefix(path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '['])))
}

/// The largest `runAsUser`, `runAsGroup` or `fsGroup` the API server accepts.
const MAX_POD_ID: u32 = 2_147_483_647;

fn validate_settings(config: &DevboxConfig) -> Findings {
    let mut rules = Findings::default();
    let engines: Vec<(&str, &str)> = config
        .gitops
        .iter()
        .map(|engine| match engine {
            GitOps::Argocd => ("Argo CD", config.argocd.namespace.as_deref().unwrap_or(crate::defaults::ARGOCD_NAMESPACE)),
            GitOps::Flux => ("Flux", config.flux.namespace.as_deref().unwrap_or(crate::defaults::FLUX_NAMESPACE)),
        })
        .collect();
    for (i, engine) in config.gitops.iter().enumerate() {
        if config.gitops[..i].contains(engine) {
            rules.report(
                &format!("gitops[{i}]"),
                Finding::error(format!("`{}` is listed twice", engine.as_str())).label("again").help("list each engine once"),
            );
        }
    }
    match &config.namespace {
        Some(namespace) => rules
            .check("namespace", names::kubernetes_label("namespace", namespace).and_then(|()| names::boxes_namespace(namespace, &engines))),
        // The boxes' namespace is the default one: an engine's own namespace set to it is the
        // same clash, told where it was written.
        None => {
            for engine in &config.gitops {
                let (key, engine_namespace) = match engine {
                    GitOps::Argocd => ("argocd.namespace", &config.argocd.namespace),
                    GitOps::Flux => ("flux.namespace", &config.flux.namespace),
                };
                if engine_namespace.as_deref() == Some(crate::defaults::NAMESPACE) {
                    rules.report(key, names::engine_in_boxes_namespace(crate::defaults::NAMESPACE));
                }
            }
        }
    }
    if let Some(image) = &config.tailscale.image {
        rules.check("tailscale.image", fields::image(image).and_then(|()| fields::tailscale_image_version(image)));
    }
    if let Some(secret) = &config.tailscale.auth_key_secret {
        rules.check("tailscale.auth_key_secret", names::kubernetes_subdomain("Secret name", secret));
    }
    for (key, id) in [("runtime.uid", config.runtime.uid), ("runtime.gid", config.runtime.gid)] {
        if id == Some(0) {
            rules.report(
                key,
                Finding::error("the box must not run as root").help("use the uid/gid of the image's `jupyter` account, e.g. 10001"),
            );
        }
        // `IsValidUserID`/`IsValidGroupID` of k8s.io/apimachinery: runAsUser, runAsGroup and
        // fsGroup are int64s the API server holds to 0..=2147483647.
        if let Some(id) = id.filter(|id| *id > MAX_POD_ID) {
            rules.report(
                key,
                Finding::error(format!("{id} is above {MAX_POD_ID}, the largest uid or gid the API server takes for a pod"))
                    .label("too large")
                    .help("use the uid/gid of the image's `jupyter` account, e.g. 10001"),
            );
        }
    }
    let mut seen = HashMap::new();
    let mut servers: HashMap<String, &str> = HashMap::new();
    for (i, cluster) in config.clusters.iter().enumerate() {
        rules.check(&format!("clusters[{i}].name"), names::kubernetes_label("cluster name", &cluster.name));
        rules.check(&format!("clusters[{i}].name"), names::cluster_name_length(&cluster.name));
        rules.check(&format!("clusters[{i}].server"), fields::server_url(&cluster.server));
        if let Some(first) = seen.insert(cluster.name.clone(), i) {
            rules.report(
                &format!("clusters[{i}].name"),
                Finding::error(format!("cluster `{}` is listed twice", cluster.name))
                    .help(format!("remove one of the entries (the first is clusters[{first}])")),
            );
        }
        // One API server under two names gets the namespace's objects (the Namespace, its
        // ResourceQuota and LimitRange) from two Applications, each with half of the boxes.
        let server =
            url::Url::parse(&cluster.server).map_or_else(|_| cluster.server.clone(), |u| u.as_str().trim_end_matches('/').to_string());
        if let Some(other) = servers.insert(server, &cluster.name) {
            rules.report(
                &format!("clusters[{i}].server"),
                Finding::error(format!("cluster `{}` has the API server of cluster `{other}`", cluster.name))
                    .label("same cluster")
                    .help("both would deliver the namespace's Namespace, ResourceQuota and LimitRange, each counting only its own boxes: list each cluster once, and give the boxes of one cluster its name in `cluster`"),
            );
        }
    }
    if let Some(repo) = &config.repo {
        rules.check("repo.url", fields::repo_url(&repo.url));
        if config.gitops.contains(&GitOps::Flux) {
            rules.check("repo.url", fields::flux_repo_url(&repo.url));
        }
        if let Some(revision) = &repo.revision {
            rules.check("repo.revision", fields::git_revision(revision));
        }
        if let Some(path) = &repo.path {
            rules.check("repo.path", fields::repo_path(path));
        }
        if let Some(secret) = &repo.secret {
            rules.check("repo.secret", names::kubernetes_subdomain("Secret name", secret));
        }
        if config.gitops.contains(&GitOps::Flux) && repo.secret.is_none() && repo.url.starts_with("ssh://") {
            rules.report(
                "repo.url",
                Finding::error("Flux needs credentials to clone an ssh:// URL, and `[repo]` names no `secret`")
                    .label("cloned over SSH")
                    .help("add `secret = \"devboxes-repo\"` to `[repo]`: the Secret in Flux's namespace with the deploy key (`identity`, `identity.pub`) and `known_hosts`")
                    .help("`devbox-gen secrets` prints the `flux create secret git` command that makes it"),
            );
        }
    }
    validate_delivery(&mut rules, config);
    if let Some(template) = &config.template {
        rules.check("template", fields::template_path(template));
    }
    if config.defaults.tailscale.as_ref().is_some_and(|t| t.hostname.is_some()) {
        // resolve never takes a hostname from `[defaults]`: it would name every box the same.
        rules.report(
            "defaults.tailscale.hostname",
            Finding::error("a tailnet hostname in `[defaults]` would give every box the same name on the tailnet")
                .label("not a default")
                .help("set `[tailscale] hostname` in each user file, or leave it out for NAME-devbox"),
        );
    }
    for (i, name) in config.policy.allow_secret_env.iter().enumerate() {
        rules.check(&format!("policy.allow_secret_env[{i}]"), fields::env_name(name));
    }
    for (i, kind) in config.policy.allow_gpu_types.iter().enumerate() {
        rules.check(&format!("policy.allow_gpu_types[{i}]"), names::kubernetes_label("GPU type", kind));
    }
    if let Some(cpu) = &config.quota.cpu {
        rules.check("quota.cpu", fields::quota_cpu(cpu));
    }
    if let Some(memory) = &config.quota.memory {
        rules.check("quota.memory", fields::quota_bytes(memory, "memory"));
    }
    if let Some(storage) = &config.quota.storage {
        rules.check("quota.storage", fields::quota_bytes(storage, "storage"));
    }
    if let Some(prices) = &config.prices {
        validate_prices(&mut rules, prices, &config.policy.allow_gpu_types);
    }
    validate_datasets(&mut rules, config);
    if let Some(image) = &config.autostop.image {
        rules.check("autostop.image", fields::image(image));
    }
    if let Some(prefix) = &config.owners.user_prefix {
        rules.check("owners.user_prefix", autostop::user_prefix(prefix));
    }
    let defaults = SharedFields::from_defaults(&config.defaults);
    validate_shared(&mut rules, "defaults.", &defaults, config);
    validate_defaults_together(&mut rules, config);
    rules
}

/// `[datasets.NAME]`: names that make volume names, claims, and mount paths that neither hide
/// nor share a directory with anything else in the box, nor with each other.
fn validate_datasets(rules: &mut Findings, config: &DevboxConfig) {
    let mut mounts: Vec<(&String, String)> = Vec::new();
    for (name, dataset) in &config.datasets {
        let key = format!("datasets.{name}");
        rules.check(&key, ml::dataset_name(name));
        rules.check(&format!("{key}.claim"), ml::dataset_claim(&dataset.claim));
        let explicit = dataset.mount.is_some();
        let mount = dataset.mount.clone().unwrap_or_else(|| crate::defaults::dataset_mount(name));
        if explicit {
            let checked = ml::dataset_mount(&mount);
            let valid = checked.is_ok();
            rules.check(&format!("{key}.mount"), checked);
            if !valid {
                continue;
            }
        }
        // Two datasets in one directory, or one inside the other, would hide each other. It is
        // reported at a `mount` someone wrote: two default ones (`/datasets/NAME`) never meet.
        if let Some((other, other_mount)) = mounts.iter().find(|(_, other)| ml::within(&mount, other) || ml::within(other, &mount)) {
            let (moved, key, from) =
                if explicit { (name, format!("{key}.mount"), other_mount) } else { (*other, format!("datasets.{other}.mount"), &mount) };
            rules.report(
                &key,
                Finding::error(format!(
                    "datasets `{other}` and `{name}` would be mounted at `{other_mount}` and `{mount}`: one would hide the other"
                ))
                .label("overlaps another dataset")
                .help(format!("mount `{moved}` outside `{from}`, like `/datasets/{moved}`")),
            );
        }
        mounts.push((name, mount));
    }
}

/// Rules across the fields of `[defaults]` alone, for what every box that takes them gets: its
/// shared memory in the default memory, one shared GPU. A user file that sets one of the
/// values is checked in [`validate_user`], at its own key.
fn validate_defaults_together(rules: &mut Findings, config: &DevboxConfig) {
    let defaults = &config.defaults;
    if let Some(shm) = &defaults.shm {
        let memory = defaults.resources.as_ref().and_then(|r| r.memory.clone()).unwrap_or_else(|| crate::defaults::MEMORY.to_string());
        if ml::shm(shm).is_ok() && fields::memory(&memory).is_ok() {
            rules.check("defaults.shm", ml::shm_fits(shm, &memory));
        }
    }
    if let Some(gpu) = &defaults.gpu {
        if let Some(kind) = &gpu.kind {
            rules.check("defaults.gpu.type", fields::gpu_arch(kind, defaults.arch.unwrap_or_default()));
            if let Some(count) = gpu.count.filter(|c| fields::gpu_count(*c).is_ok()) {
                rules.check("defaults.gpu.count", fields::gpu_count_of(kind, count));
            }
        }
        if gpu.sharing.is_some()
            && let Some(count) = gpu.count.filter(|c| *c > 1)
        {
            rules.report("defaults.gpu.count", ml::shared_gpu_count(count));
        }
        if gpu.clients.is_some() && gpu.sharing.is_none() {
            rules.report("defaults.gpu.clients", ml::clients_without_sharing());
        }
    }
}

/// `[prices]`: numbers a price list could hold. A GPU type a box asks for without a price is
/// told at the box's `gpu.type` ([`validate_shared`]), where the person adding it looks.
fn validate_prices(rules: &mut Findings, prices: &Prices, allowed_gpus: &[String]) {
    if let Some(currency) = &prices.currency {
        rules.check("prices.currency", fields::currency(currency));
    }
    let spot = prices.spot.as_ref();
    let units = [
        ("prices.cpu_hour", Some(prices.cpu_hour)),
        ("prices.memory_gib_hour", Some(prices.memory_gib_hour)),
        ("prices.storage_gib_month", Some(prices.storage_gib_month)),
        ("prices.spot.cpu_hour", spot.and_then(|s| s.cpu_hour)),
        ("prices.spot.memory_gib_hour", spot.and_then(|s| s.memory_gib_hour)),
    ];
    for (key, value) in units {
        if let Some(value) = value {
            rules.check(key, fields::price(value));
        }
    }
    let gpus = prices.gpu_hour.iter().map(|gpu| ("prices.gpu_hour", gpu));
    let spot_gpus = spot.into_iter().flat_map(|s| &s.gpu_hour).map(|gpu| ("prices.spot.gpu_hour", gpu));
    for (table, (kind, value)) in gpus.chain(spot_gpus) {
        let key = format!("{table}.{kind}");
        rules.check(&key, fields::price(*value));
        // A warning, not an error: the price is harmless, but it is most likely a typo of a type
        // the boxes use, which would then have no price.
        if let Err(unknown) = fields::gpu_type(kind, allowed_gpus) {
            let mut finding = Finding::warning(format!("a price for `{kind}`, which is not a GKE accelerator devbox-gen knows"))
                .label("no box can use this type");
            finding.help = unknown.help.into_iter().take(1).collect();
            rules.report(&key, finding);
        }
    }
}

/// What delivery (`gitops`) needs: a repository to read from, and names Argo CD and Flux accept.
fn validate_delivery(rules: &mut Findings, config: &DevboxConfig) {
    if !config.gitops.is_empty() && config.repo.is_none() {
        rules.report(
            "gitops",
            Finding::error("`gitops` needs `[repo]`: the Git repository Argo CD and Flux read out/ from")
                .label("delivery manifests need a repository")
                .help("add `[repo]` with `url = \"https://github.com/acme/devboxes.git\"` (and `revision = \"main\"`) to devbox.toml, or remove `gitops`"),
        );
    }
    if let Some(project) = &config.argocd.project {
        rules.check("argocd.project", names::kubernetes_subdomain("Argo CD project name", project));
    }
    if let Some(namespace) = &config.argocd.namespace {
        rules.check("argocd.namespace", names::kubernetes_label("namespace", namespace));
    }
    if let Some(namespace) = &config.flux.namespace {
        rules.check("flux.namespace", names::kubernetes_label("namespace", namespace));
    }
    for (key, value) in [
        ("flux.interval", &config.flux.interval),
        ("flux.retry_interval", &config.flux.retry_interval),
        ("flux.timeout", &config.flux.timeout),
    ] {
        if let Some(value) = value {
            rules.check(key, fields::flux_duration(value));
        }
    }
    let unused = |engine: GitOps, set: bool| {
        let table = engine.as_str();
        (set && !config.gitops.contains(&engine)).then(|| {
            Finding::warning(format!("`[{table}]` is set, but `gitops` does not list `{table}`: no {table} manifests are emitted"))
                .label("unused")
                .help(format!("add `\"{table}\"` to `gitops`, or remove `[{table}]`"))
        })
    };
    let argocd_set = config.argocd.project.is_some() || config.argocd.namespace.is_some();
    if let Some(finding) = unused(GitOps::Argocd, argocd_set) {
        rules.report("argocd", finding);
    }
    let flux = &config.flux;
    let flux_set = flux.namespace.is_some()
        || flux.interval.is_some()
        || flux.retry_interval.is_some()
        || flux.timeout.is_some()
        || flux.artifact_generator.is_some();
    if let Some(finding) = unused(GitOps::Flux, flux_set) {
        rules.report("flux", finding);
    }
}

fn validate_user(name: &str, user: &UserFile, settings: &DevboxConfig, repo: &ConfigRepo) -> Findings {
    let mut rules = Findings::default();
    rules.check(WHOLE_FILE, names::user_name(name, |usable| repo.users.iter().any(|(other, _)| other == usable)));
    rules.check("email", fields::email(&user.email));
    if user.ssh.authorized_keys.is_empty() {
        rules.report(
            "ssh.authorized_keys",
            Finding::error("no public key: nobody could log in").help("add the output of `cat ~/.ssh/id_ed25519.pub`"),
        );
    }
    let mut seen_keys = HashMap::new();
    for (i, key) in user.ssh.authorized_keys.iter().enumerate() {
        let path = format!("ssh.authorized_keys[{i}]");
        match ssh::authorized_key(key) {
            Ok(fingerprint) => {
                if let Some(first) = seen_keys.insert(fingerprint, i) {
                    rules.report(
                        &path,
                        Finding::error("this key is listed twice").help(format!("remove it; it is already authorized_keys[{first}]")),
                    );
                }
            }
            Err(finding) => rules.report(&path, finding),
        }
    }
    if let Some(secret) = &user.ssh.key_secret {
        rules.check("ssh.key_secret", names::kubernetes_subdomain("Secret name", secret));
    }
    let shared = SharedFields::from_user(user);
    validate_shared(&mut rules, "", &shared, settings);
    validate_user_with_defaults(&mut rules, user, settings);
    rules
}

/// Rules across fields of which a user file sets one and `[defaults]` may give the other: each
/// is reported at the user file's key, the value this person can change. When both come from
/// `[defaults]`, [`validate_defaults_together`] reports it once, in devbox.toml.
fn validate_user_with_defaults(rules: &mut Findings, user: &UserFile, settings: &DevboxConfig) {
    let defaults = &settings.defaults;
    let own_memory = user.resources.as_ref().and_then(|r| r.memory.clone());
    let memory = own_memory
        .clone()
        .or_else(|| defaults.resources.as_ref().and_then(|r| r.memory.clone()))
        .unwrap_or_else(|| crate::defaults::MEMORY.to_string());
    // An invalid memory or shm is reported by its own rule; comparing it would say it twice.
    let memory_valid = fields::memory(&memory).is_ok();
    match (&user.shm, &defaults.shm) {
        (Some(shm), _) if memory_valid && ml::shm(shm).is_ok() => rules.check("shm", ml::shm_fits(shm, &memory)),
        (None, Some(shm)) if memory_valid && own_memory.is_some() && ml::shm(shm).is_ok() => {
            rules.check("resources.memory", ml::memory_fits_default_shm(&memory, shm));
        }
        _ => {}
    }

    // Reported at what the user file sets: its GPU type, else its arch.
    let own_kind = user.gpu.as_ref().and_then(|g| g.kind.as_ref());
    let kind = own_kind.or_else(|| defaults.gpu.as_ref().and_then(|g| g.kind.as_ref()));
    if let Some(kind) = kind
        && (own_kind.is_some() || user.arch.is_some())
    {
        let arch = user.arch.or(defaults.arch).unwrap_or_default();
        rules.check(if own_kind.is_some() { "gpu.type" } else { "arch" }, fields::gpu_arch(kind, arch));
    }

    let Some(own) = &user.gpu else { return };
    let default_gpu = defaults.gpu.as_ref();
    // As many of the type as its machines come with; told at what the user file sets.
    let own_count = own.count;
    if let Some(kind) = kind
        && (own_kind.is_some() || own_count.is_some())
    {
        let count = own_count.or_else(|| default_gpu.and_then(|g| g.count)).unwrap_or(1);
        if fields::gpu_count(count).is_ok() {
            rules.check(if own_count.is_some() { "gpu.count" } else { "gpu.type" }, fields::gpu_count_of(kind, count));
        }
    }
    let sharing = own.sharing.or_else(|| default_gpu.and_then(|g| g.sharing));
    let count = own.count.or_else(|| default_gpu.and_then(|g| g.count));
    if sharing.is_some()
        && let Some(count) = count.filter(|c| *c > 1)
    {
        if own.count.is_some() {
            rules.report("gpu.count", ml::shared_gpu_count(count));
        } else if own.sharing.is_some() {
            rules.report("gpu.sharing", ml::sharing_with_default_count(count));
        }
    }
    if own.clients.is_some() && sharing.is_none() {
        rules.report("gpu.clients", ml::clients_without_sharing());
    }
}

/// Declares [`SharedFields`] and its two constructors from one list: the optional fields that
/// [`UserFile`] and [`UserDefaults`] both have, under the same name, validated the same way by
/// [`validate_shared`]. A new shared field is one more entry here (and a rule there).
macro_rules! shared_fields {
    ($($field:ident: $type:ty),+ $(,)?) => {
        /// The fields a user file and `[defaults]` have in common, validated the same way.
        struct SharedFields<'a> {
            $($field: Option<&'a $type>,)+
            env: &'a BTreeMap<String, String>,
            /// `tailscale.hostname`: personal, so never in `[defaults]` (validate_settings
            /// refuses it there).
            hostname: Option<&'a String>,
        }

        impl<'a> SharedFields<'a> {
            fn from_user(user: &'a UserFile) -> Self {
                Self {
                    $($field: user.$field.as_ref(),)+
                    env: &user.env,
                    hostname: user.tailscale.as_ref().and_then(|t| t.hostname.as_ref()),
                }
            }

            fn from_defaults(defaults: &'a UserDefaults) -> Self {
                Self { $($field: defaults.$field.as_ref(),)+ env: &defaults.env, hostname: None }
            }
        }
    };
}

shared_fields! {
    image: String,
    cluster: String,
    resources: Resources,
    shm: String,
    datasets: Vec<String>,
    gpu: Gpu,
    home: Home,
    tailscale: Tailscale,
    idle: Idle,
    schedule: Schedule,
}

fn validate_shared(rules: &mut Findings, prefix: &str, fields: &SharedFields<'_>, settings: &DevboxConfig) {
    let at = |key: &str| format!("{prefix}{key}");
    if let Some(image) = fields.image {
        rules.check(&at("image"), fields::image(image));
    }
    if let Some(cluster) = fields.cluster {
        let known: Vec<String> = settings.clusters.iter().map(|c| c.name.clone()).collect();
        rules.check(&at("cluster"), fields::cluster(cluster, &known));
    }
    if let Some(resources) = fields.resources {
        if let Some(cpu) = &resources.cpu {
            rules.check(&at("resources.cpu"), fields::cpu(cpu));
        }
        if let Some(memory) = &resources.memory {
            rules.check(&at("resources.memory"), fields::memory(memory));
        }
    }
    if let Some(gpu) = fields.gpu {
        if let Some(kind) = &gpu.kind {
            let known = fields::gpu_type(kind, &settings.policy.allow_gpu_types);
            let priced =
                |prices: &Prices| prices.gpu_hour.contains_key(kind) || prices.spot.as_ref().is_some_and(|s| s.gpu_hour.contains_key(kind));
            // A warning: a missing price must not hold up a box, and `diff` says "price unknown".
            if let (Ok(()), Some(prices)) = (&known, &settings.prices)
                && !priced(prices)
            {
                rules.report(
                    &at("gpu.type"),
                    Finding::warning(format!("devbox.toml's `[prices] gpu_hour` has no price for `{kind}`"))
                        .label("no price")
                        .help("`devbox-gen diff` reports the cost of boxes with this GPU as unknown")
                        .help(format!("add `\"{kind}\" = PRICE` (one GPU for one hour) to `gpu_hour` in devbox.toml's `[prices]`")),
                );
            }
            rules.check(&at("gpu.type"), known);
        }
        if let Some(count) = gpu.count {
            rules.check(&at("gpu.count"), fields::gpu_count(count));
        }
        if gpu.sharing == Some(GpuSharing::Mps) {
            rules.report(&at("gpu.sharing"), ml::gpu_mps());
        }
        if let Some(clients) = gpu.clients {
            rules.check(&at("gpu.clients"), ml::gpu_clients(clients));
        }
    }
    if let Some(shm) = fields.shm {
        rules.check(&at("shm"), ml::shm(shm));
    }
    if let Some(datasets) = fields.datasets {
        let known: Vec<String> = settings.datasets.keys().cloned().collect();
        let mut seen = HashMap::new();
        for (i, name) in datasets.iter().enumerate() {
            let key = at(&format!("datasets[{i}]"));
            rules.check(&key, ml::dataset_known(name, &known));
            if let Some(first) = seen.insert(name, i) {
                rules.report(
                    &key,
                    Finding::error(format!("`{name}` is listed twice")).help(format!("remove it; it is already datasets[{first}]")),
                );
            }
        }
    }
    if let Some(home) = fields.home {
        if let Some(size) = &home.size {
            rules.check(&at("home.size"), fields::home_size(size));
        }
        if let Some(class) = &home.storage_class {
            rules.check(&at("home.storage_class"), names::kubernetes_subdomain("StorageClass name", class));
        }
    }
    if let Some(hostname) = fields.hostname {
        rules.check(&at("tailscale.hostname"), fields::tailnet_hostname(hostname));
    }
    if let Some(tailscale) = fields.tailscale {
        for (i, tag) in tailscale.tags.iter().flatten().enumerate() {
            rules.check(&at(&format!("tailscale.tags[{i}]")), fields::tailnet_tag(tag));
        }
    }
    let defined = |other: &str| fields.env.contains_key(other) || settings.defaults.env.contains_key(other);
    for (name, value) in fields.env {
        if let Err(finding) = fields::env_name(name) {
            rules.report(&at(&format!("env.{name}{AT_KEY}")), finding);
            continue;
        }
        rules.check(&at(&format!("env.{name}")), fields::env_var(name, value, &settings.policy.allow_secret_env));
        rules.check(&at(&format!("env.{name}")), fields::env_later_reference(name, value, defined));
    }
    if !fields.env.is_empty() {
        rules.check(&at("env"), fields::env_total(fields.env));
    }
    if let Some(after) = fields.idle.and_then(|i| i.after.as_ref()) {
        rules.check(&at("idle.after"), autostop::after(after));
    }
    if let Some(schedule) = fields.schedule {
        validate_schedule(rules, &at("schedule."), schedule);
    }
}

/// One `[schedule]` table as written: a zone, clock times, days each once, and, when the table
/// has both, a `stop` after its `start`.
fn validate_schedule(rules: &mut Findings, at: &str, schedule: &Schedule) {
    if let Some(zone) = &schedule.timezone {
        rules.check(&format!("{at}timezone"), autostop::timezone(zone));
    }
    let mut clock = |key: &str, value: &Option<String>| {
        let value = value.as_ref()?;
        let parsed = crate::autostop::clock(value);
        let time = parsed.as_ref().ok().copied();
        rules.check(&format!("{at}{key}"), parsed.map(|_| ()).map_err(autostop::finding));
        time
    };
    let (start, stop) = (clock("start", &schedule.start), clock("stop", &schedule.stop));
    if let (Some(start), Some(stop)) = (start, stop) {
        rules.check(&format!("{at}stop"), autostop::stop_after_start(start, stop));
    }
    let mut seen = HashMap::new();
    for (i, day) in schedule.days.iter().flatten().enumerate() {
        if let Some(first) = seen.insert(*day, i) {
            rules.report(
                &format!("{at}days[{i}]"),
                Finding::error(format!("`{day}` is listed twice")).help(format!("remove it; it is already days[{first}]")),
            );
        }
    }
}

/// The rules across users for user `name` of `repo` alone, checked after every other user so
/// that a name two users claim is reported on it: for `validate FILE...`, whose files are held
/// to every other user file of the repo.
pub(crate) fn conflicts_of(repo: &ConfigRepo, name: &str) -> Diagnostics {
    let Some(index) = repo.users.iter().position(|(n, _)| n == name) else { return Diagnostics::default() };
    conflicts_at(repo, index).locate(&repo.users[index].1.source)
}

/// The rules across users for the user at `index`, checked last.
fn conflicts_at(repo: &ConfigRepo, index: usize) -> Findings {
    Findings(across_users(repo, Some(index)).into_iter().filter(|(i, _, _)| *i == index).map(|(_, key, finding)| (key, finding)).collect())
}

/// Rules that need every file: names that must be unique across people. Each finding is about
/// one user, by index in `repo.users`; the user at `last`, if any, is checked after all others,
/// so that a name two users claim is reported on it.
fn across_users(repo: &ConfigRepo, last: Option<usize>) -> Vec<(usize, String, Finding)> {
    let mut found = Vec::new();
    let mut hostnames: HashMap<String, &str> = HashMap::new();
    let mut secrets: HashMap<String, &str> = HashMap::new();
    let auth_key_secret = repo.settings().tailscale.auth_key_secret.unwrap_or_else(|| crate::defaults::AUTH_KEY_SECRET.to_string());
    // Every box's tailnet state Secret, to its user: looked up once per user, not searched.
    let tailnet_states: HashMap<String, &str> =
        repo.users.iter().map(|(name, _)| (crate::defaults::tailnet_state_secret(name), name.as_str())).collect();
    let order = (0..repo.users.len()).filter(|i| Some(*i) != last).chain(last);
    for i in order {
        let (name, parsed) = &repo.users[i];
        let user = &parsed.value;
        let hostname = user.tailscale.as_ref().and_then(|t| t.hostname.clone()).unwrap_or_else(|| crate::defaults::hostname(name));
        if let Some(other) = hostnames.insert(hostname.clone(), name) {
            found.push((
                i,
                "tailscale.hostname".to_string(),
                Finding::error(format!("tailnet hostname `{hostname}` is also used by users/{other}.toml"))
                    .label("taken")
                    .help("every box needs its own hostname; pick another `tailscale.hostname`"),
            ));
        }
        let secret = user.ssh.key_secret.clone().unwrap_or_else(|| crate::defaults::key_secret(name));
        if secret == auth_key_secret {
            found.push((
                i,
                "ssh.key_secret".to_string(),
                Finding::error(format!("`{secret}` is the tailnet auth key Secret shared by every box"))
                    .label("shared auth key")
                    .help("this would mount the organisation's tailnet auth key in this person's box: name the box's own key Secret, e.g. `NAME-ssh`"),
            ));
        }
        if let Some(owner) = tailnet_states.get(secret.as_str()) {
            let whose = if *owner == name.as_str() { "this box's own".to_string() } else { format!("users/{owner}.toml's") };
            found.push((
                i,
                "ssh.key_secret".to_string(),
                Finding::error(format!("`{secret}` is {whose} tailnet state Secret, which holds its tailnet node key"))
                    .label("tailnet state")
                    .help("mounted at /secrets, the node key would be readable in this person's box, and with it that box's tailnet identity: name the box's own key Secret, e.g. `NAME-ssh`"),
            ));
        }
        if let Some(other) = secrets.insert(secret.clone(), name) {
            found.push((
                i,
                "ssh.key_secret".to_string(),
                Finding::error(format!("Secret `{secret}` is also the key Secret of users/{other}.toml"))
                    .label("shared")
                    .help("each box gets its own key Secret: people must not share a GitHub key"),
            ));
        }
    }
    found
}
