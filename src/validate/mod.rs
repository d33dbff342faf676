//! Stage 2, validate: every rule of docs/design.md on the files as written, in all files at once.
//!
//! Rules look at one value and say what is wrong with it and how to fix it; this module only
//! walks the files and points each finding at the key it is about. Cross-file rules (two
//! people claiming the same tailnet hostname) run last, once every file is known.

mod fields;
mod names;
mod ssh;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

pub(crate) use fields::Finding;
pub(crate) use names::{is_dns_label, user_name_or};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{DevboxConfig, GitOps, Gpu, Home, Resources, Tailscale, UserDefaults, UserFile};
use crate::read::ConfigRepo;
use crate::source::SourceFile;

/// Checks the whole config repo; returns every problem, sorted by file and line.
pub fn validate(repo: &ConfigRepo) -> Diagnostics {
    let settings = repo.settings();
    let mut diagnostics = Diagnostics::default();
    if let Some(parsed) = &repo.settings {
        diagnostics.extend(settings_findings(&parsed.value).locate(&parsed.source));
    }
    let per_user: Vec<Diagnostics> =
        repo.users.par_iter().map(|(name, parsed)| validate_user(name, &parsed.value, &settings).locate(&parsed.source)).collect();
    for found in per_user {
        diagnostics.extend(found);
    }
    for (i, key, finding) in across_users(repo, None) {
        let source = &repo.users[i].1.source;
        diagnostics.push(Diagnostic::from(finding).at_span(source, source.value_span(&key)));
    }
    diagnostics.sorted()
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
    let mut found = validate_user(name, &parsed.value, &repo.settings());
    for (i, key, finding) in across_users(repo, Some(index)) {
        if i == index {
            found.report(&key, finding);
        }
    }
    found
}

/// What the rules found, by the dotted key each finding is about, before it is pointed into a
/// file: `validate` points it at the key's value, while `new` and `init`, whose values come
/// from the command line, blame the flag that gave the value.
#[derive(Debug, Default)]
pub(crate) struct Findings(pub(crate) Vec<(String, Finding)>);

/// The key of a finding about a file as a whole (a user file's name).
pub(crate) const WHOLE_FILE: &str = "";

impl Findings {
    fn check(&mut self, key: &str, result: Result<(), Finding>) {
        if let Err(finding) = result {
            self.report(key, finding);
        }
    }

    fn report(&mut self, key: &str, finding: Finding) {
        self.0.push((key.to_string(), finding));
    }

    /// Points each finding at its key's value in `file` (one about the whole file: at its path).
    fn locate(self, file: &Arc<SourceFile>) -> Diagnostics {
        let located = self.0.into_iter().map(|(key, finding)| {
            let diagnostic = Diagnostic::from(finding);
            if key == WHOLE_FILE { diagnostic.in_path(file.path.clone()) } else { diagnostic.at_span(file, file.value_span(&key)) }
        });
        Diagnostics(located.collect())
    }
}

fn validate_settings(config: &DevboxConfig) -> Findings {
    let mut rules = Findings::default();
    if let Some(namespace) = &config.namespace {
        rules.check("namespace", names::kubernetes_label("namespace", namespace));
    }
    if let Some(image) = &config.tailscale.image {
        rules.check("tailscale.image", fields::image(image));
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
    }
    let mut seen = HashMap::new();
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
    let defaults = SharedFields::from_defaults(&config.defaults);
    validate_shared(&mut rules, "defaults.", &defaults, config);
    rules
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
    if let Some(finding) = unused(GitOps::Flux, config.flux.namespace.is_some()) {
        rules.report("flux", finding);
    }
}

fn validate_user(name: &str, user: &UserFile, settings: &DevboxConfig) -> Findings {
    let mut rules = Findings::default();
    rules.check(WHOLE_FILE, names::user_name(name));
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
    rules
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
    gpu: Gpu,
    home: Home,
    tailscale: Tailscale,
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
            rules.check(&at("gpu.type"), fields::gpu_type(kind, &settings.policy.allow_gpu_types));
        }
        if let Some(count) = gpu.count {
            rules.check(&at("gpu.count"), fields::gpu_count(count));
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
    for (name, value) in fields.env {
        rules.check(&at(&format!("env.{name}")), fields::env_var(name, value, &settings.policy.allow_secret_env));
    }
}

/// Rules that need every file: names that must be unique across people. Each finding is about
/// one user, by index in `repo.users`; the user at `last`, if any, is checked after all others,
/// so that a name two users claim is reported on it.
fn across_users(repo: &ConfigRepo, last: Option<usize>) -> Vec<(usize, String, Finding)> {
    let mut found = Vec::new();
    let mut hostnames: HashMap<String, &str> = HashMap::new();
    let mut secrets: HashMap<String, &str> = HashMap::new();
    let auth_key_secret = repo.settings().tailscale.auth_key_secret.unwrap_or_else(|| crate::defaults::AUTH_KEY_SECRET.to_string());
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
