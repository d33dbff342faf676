//! `devbox-gen init [--image I] [--namespace NS] [--gitops argocd|flux --repo-url URL]`: the
//! files a new config repo starts with, so that `init`, `new` and `build` are the whole
//! quick start: a commented devbox.toml (every setting with its default, validated before it
//! is written), the schemas `devbox-gen schema` writes, an empty users/, a .gitignore for the
//! build cache, and the CI workflow of ci-templates/.
//!
//! It never overwrites a file without `--force`: every file that would be replaced is listed
//! and nothing is written. A file that already holds exactly what `init` would write is not a
//! conflict, so running it twice is harmless.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cli::{Ci, InitArgs};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::validate::{self, Finding};
use crate::{Context, Outcome, cache, defaults, read, schema, text};

const GITHUB_WORKFLOW: &str = include_str!("../../ci-templates/github/devboxes.yml");
const GITLAB_CI: &str = include_str!("../../ci-templates/gitlab/.gitlab-ci.yml");

/// The Secret `init` names in `[repo]` when Flux must clone over SSH (the rule that requires
/// one suggests the same name).
const FLUX_REPO_SECRET: &str = "devboxes-repo";

pub(super) fn run(context: &mut Context, args: &InitArgs) -> Result<Outcome, Diagnostics> {
    // Where the config repo sits in its Git repository: what `[repo] path` must say.
    let prefix = crate::read::git_prefix(&context.root).filter(|prefix| !prefix.is_empty());
    let settings = devbox_toml(args, prefix.as_deref());
    check(args, &settings)?;
    let root = &context.root;
    let mut files: Vec<(String, String)> = vec![("devbox.toml".into(), settings)];
    files.extend(schema::files().into_iter().map(|(file, text)| (format!("schema/{file}"), text)));
    match args.ci {
        Ci::Github => files.push((".github/workflows/devboxes.yml".into(), GITHUB_WORKFLOW.into())),
        Ci::Gitlab => files.push((".gitlab-ci.yml".into(), GITLAB_CI.into())),
        Ci::None => {}
    }
    // users/ only needs a file to exist in Git while it has no user.
    let users = root.join("users");
    if fs::read_dir(&users).map_or(true, |mut entries| entries.next().is_none()) {
        files.push(("users/.gitkeep".into(), String::new()));
    }

    // A link among the files is replaced (see `write`); one on the way to them, or the
    // .gitignore that is appended to, would be written through.
    let mut links: Vec<String> = files
        .iter()
        .filter_map(|(relative, _)| relative.rsplit_once('/').and_then(|(dir, _)| crate::read::link_on_the_way(root, dir)))
        .chain(crate::read::link_on_the_way(root, ".gitignore"))
        .collect();
    links.sort();
    links.dedup();
    if !links.is_empty() {
        return Err(Diagnostics(links.iter().map(|link| crate::read::refuse_link(link).help("nothing was written")).collect()));
    }
    let mut conflicts = Vec::new();
    for (relative, text) in &files {
        let path = root.join(relative);
        match fs::symlink_metadata(&path) {
            Err(_) => {}
            Ok(meta) if meta.is_dir() => {
                return Err(Diagnostic::error(format!("{relative} is a directory"))
                    .in_path(relative.clone())
                    .help("nothing was written: move it away, then run `devbox-gen init` again")
                    .into());
            }
            Ok(_) if fs::read_to_string(&path).ok().as_deref() == Some(text) => {}
            Ok(_) => conflicts.push(relative.clone()),
        }
    }
    if !conflicts.is_empty() && !args.force {
        return Err(Diagnostic::error(format!("`devbox-gen init` would overwrite what exists: {}", conflicts.join(", ")))
            .help(if conflicts.len() == 1 {
                "nothing was written: move it away, or pass --force to replace it"
            } else {
                "nothing was written: move them away, or pass --force to replace them"
            })
            .into());
    }

    let mut written = Vec::new();
    for (relative, text) in &files {
        let path = root.join(relative);
        if fs::read_to_string(&path).ok().as_deref() == Some(text) {
            continue;
        }
        fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .and_then(|()| crate::file::replace(&path, text))
            .map_err(|e| write_error(relative, &e, &written))?;
        context.status(&format!("wrote {relative}"));
        written.push(relative.clone());
    }
    if let Some(done) = ignore_cache(root).map_err(|e| write_error(".gitignore", &e, &written))? {
        context.status(done);
    }
    if let Some(prefix) = &prefix {
        let ci = match args.ci {
            Ci::Github => Some((".github/workflows/devboxes.yml", "GitHub runs workflows only from the repository's root")),
            Ci::Gitlab => Some((".gitlab-ci.yml", "GitLab reads .gitlab-ci.yml only at the repository's root")),
            Ci::None => None,
        };
        if let Some((file, why)) = ci {
            context.status(&format!(
                "note: this config repo is the directory `{prefix}` of its Git repository, and {why}: move {prefix}/{file} there, run its steps in `{prefix}` (`devbox-gen -C {prefix}`), and prefix its paths with `{prefix}/`"
            ));
        }
    }
    next_steps(context, args);
    Ok(Outcome::Clean)
}

/// What to run next, with the same `-C` as this run.
fn next_steps(context: &Context, args: &InitArgs) {
    let cmd = super::invocation(context);
    if args.image.is_none() {
        context.status(&format!(
            "note: devbox.toml names no image yet: set `[defaults] image`, or give each box one (`{cmd} new NAME --image ...`)"
        ));
    }
    context.status(&format!("next: `{cmd} new NAME --email EMAIL --ssh-key-file ~/.ssh/id_ed25519.pub`, then `{cmd} build`"));
}

fn write_error(relative: &str, error: &std::io::Error, written: &[String]) -> Diagnostics {
    let mut diagnostic = Diagnostic::error(format!("cannot write {relative}: {error}")).in_path(relative.to_string());
    if !written.is_empty() {
        diagnostic = diagnostic.help(format!("already written: {}; run `devbox-gen init --force` once it is fixed", written.join(", ")));
    }
    diagnostic.into()
}

/// Makes .gitignore ignore the build cache: created if missing, else one entry appended (it is
/// people's file, never replaced). What it did, if anything.
fn ignore_cache(root: &Path) -> std::io::Result<Option<&'static str>> {
    let path: PathBuf = root.join(".gitignore");
    let entry = format!("/{}/", cache::CACHE_DIR);
    let lines = format!("# devbox-gen's build cache (`devbox-gen build`): local, safe to delete\n{entry}\n");
    let existing = match fs::read_to_string(&path) {
        Ok(existing) => existing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::file::replace(&path, &lines)?;
            return Ok(Some("wrote .gitignore"));
        }
        Err(e) => return Err(e),
    };
    let ignored = existing.lines().map(str::trim).any(|line| line.trim_matches('/') == cache::CACHE_DIR);
    if ignored {
        return Ok(None);
    }
    let separator = if existing.is_empty() || existing.ends_with('\n') { "" } else { "\n" };
    crate::file::replace(&path, &format!("{existing}{separator}{lines}"))?;
    Ok(Some("added the build cache to .gitignore"))
}

/// `key = value` when a flag gave it, else `# key = example`; the note aligned after either.
fn setting(key: &str, set: Option<String>, example: String, note: &str) -> String {
    let line = match set {
        Some(value) => format!("{key} = {value}"),
        None => format!("# {key} = {example}"),
    };
    if note.is_empty() { format!("{line}\n") } else { format!("{line:<42} # {note}\n") }
}

/// A TOML string.
fn quoted(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// A TOML array of strings.
fn strings(values: &[String]) -> String {
    toml::Value::Array(values.iter().map(|v| toml::Value::String(v.clone())).collect()).to_string()
}

/// devbox.toml: every section, with what it is for, its defaults commented out, and what the
/// flags set. The defaults come from [`defaults`], so the comments cannot drift from them.
fn devbox_toml(args: &InitArgs, git_prefix: Option<&str>) -> String {
    let example = |key: &str, value: String, note: &str| setting(key, None, value, note);
    let mut out = String::from(
        "#:schema ./schema/devbox.schema.json\n\
         # Settings for every developer box of this config repo (\"devbox.toml\" in the devbox-gen\n\
         # README has them all). Every field is optional: a commented line shows the default or an\n\
         # example, and uncommenting it sets it. `devbox-gen validate` checks this file; editors\n\
         # complete it with schema/devbox.schema.json.\n",
    );
    out.push_str("\n# The namespace of every box.\n");
    out.push_str(&setting("namespace", args.namespace.as_deref().map(quoted), quoted(defaults::NAMESPACE), ""));
    out.push_str("\n# Delivery: Argo CD Applications and/or Flux Kustomizations that sync out/, written to\n# out/_gitops/. They need [repo] below.\n");
    let mut engines = args.gitops.clone();
    engines.sort();
    engines.dedup();
    let gitops = (!engines.is_empty()).then(|| strings(&engines));
    out.push_str(&setting("gitops", gitops, strings(&["argocd".into()]), "argocd and/or flux"));
    out.push_str(
        "\n# A jsonnet template that replaces the embedded one, relative to this file. It may\n\
         # `import 'devbox-gen/devbox.libsonnet'` and extend it instead of starting over.\n",
    );
    out.push_str(&example("template", quoted("templates/devbox.jsonnet"), ""));

    out.push_str(
        "\n# Defaults for every users/NAME.toml: any user field except email, ssh and\n\
         # tailscale.hostname, which are personal. A user file overrides them one by one.\n[defaults]\n",
    );
    let image_note = if args.image.is_some() { "pinned by a tag or a digest" } else { "every box needs one: here, or in its user file" };
    let image = args.image.as_deref().map(quoted);
    out.push_str(&setting("image", image, quoted("registry.example.com/devbox/jupyter:2024.06"), image_note));
    out.push_str(&example("arch", quoted(defaults::ARCH.as_str()), "amd64 | arm64"));
    out.push_str(&example("state", quoted(defaults::STATE.as_str()), "running | stopped | archived"));
    out.push_str(&example("cluster", quoted("prod"), "a name from [[clusters]] below"));
    let resources = format!("{{ cpu = {}, memory = {} }}", quoted(defaults::CPU), quoted(defaults::MEMORY));
    out.push_str(&example("resources", resources, "requests = limits"));
    let home = format!("{{ size = {}, storage_class = \"standard-rwo\" }}", quoted(defaults::HOME_SIZE));
    out.push_str(&example("home", home, "no class: the cluster's default"));
    out.push_str(&example("gpu", format!("{{ type = \"nvidia-tesla-t4\", count = {} }}", defaults::GPU_COUNT), ""));
    out.push_str(&example("shm", quoted("2Gi"), "/dev/shm, counted in the memory; none: the runtime's 64Mi"));
    out.push_str(&example("spot", defaults::SPOT.to_string(), "GKE Spot VMs: cheaper, stopped at 30 s notice"));
    out.push_str(&example("datasets", strings(&["imagenet".into()]), "names from [datasets] below, mounted read-only"));
    out.push_str(&example("tailscale", "{ tags = [\"tag:devbox\"] }".into(), "applied when a box's machine first logs in"));
    out.push_str(&example("env", "{ EDITOR = \"vim\" }".into(), "merged with each user file's [env]"));
    out.push_str(&example("idle", "{ after = \"2h\" }".into(), "stop a box after 2h without activity; default never"));
    out.push_str(&example(
        "schedule",
        "{ timezone = \"Europe/Berlin\", days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], start = \"08:00\", stop = \"19:00\" }"
            .into(),
        "working hours: started at start, kept until stop",
    ));

    out.push_str("\n# The tailscale sidecar that joins every box to the tailnet.\n[tailscale]\n");
    out.push_str(&example("image", quoted(defaults::TAILSCALE_IMAGE), "pinned"));
    out.push_str(&example("auth_key_secret", quoted(defaults::AUTH_KEY_SECRET), "the Secret with the auth key, under TS_AUTHKEY"));

    out.push_str("\n# The image's `jupyter` account, which the box runs as (its home: /storage/jupyter).\n[runtime]\n");
    out.push_str(&example("uid", defaults::UID.to_string(), ""));
    out.push_str(&example("gid", defaults::UID.to_string(), "default: the uid; also the volume's fsGroup"));

    out.push_str("\n# The Git repository Argo CD or Flux read out/ from; required with `gitops`.\n");
    let url = args.repo_url.as_deref();
    out.push_str(if url.is_some() { "[repo]\n" } else { "# [repo]\n" });
    out.push_str(&setting("url", url.map(quoted), quoted("https://github.com/acme/devboxes.git"), "https:// or ssh://"));
    out.push_str(&example("revision", quoted(defaults::REVISION), "a branch, refs/tags/..., or a commit SHA"));
    let path = git_prefix.filter(|_| url.is_some()).map(quoted);
    out.push_str(&setting("path", path, quoted("deploy/devboxes"), "only if devbox.toml is not at the repository root"));
    // Flux cannot clone over SSH without credentials; naming the Secret is what validation wants.
    let flux_over_ssh = args.gitops.iter().any(|g| g == "flux") && url.is_some_and(|u| u.starts_with("ssh://"));
    let secret = flux_over_ssh.then(|| quoted(FLUX_REPO_SECRET));
    out.push_str(&setting("secret", secret, quoted(FLUX_REPO_SECRET), "Flux: the Secret it clones with (`devbox-gen secrets`)"));

    out.push_str(
        "\n# Egress to the cloud metadata server 169.254.169.254: `block` it, or `allow` it only with\n\
         # Workload Identity (without it, that server gives any pod the node's credentials).\n[network]\n",
    );
    out.push_str(&example("metadata", quoted(defaults::METADATA_ACCESS.as_str()), "block | allow"));

    out.push_str("\n# Argo CD's objects (with gitops = [\"argocd\"]).\n[argocd]\n");
    out.push_str(&example("project", quoted(defaults::ARGOCD_PROJECT), "the Applications' project"));
    out.push_str(&example("namespace", quoted(defaults::ARGOCD_NAMESPACE), "where Argo CD runs"));
    out.push_str("\n# Flux's objects (with gitops = [\"flux\"]).\n[flux]\n");
    out.push_str(&example("namespace", quoted(defaults::FLUX_NAMESPACE), "where Flux runs"));
    out.push_str(&example("interval", quoted(defaults::FLUX_INTERVAL), "re-apply each box this often (drift)"));
    out.push_str(&example("retry_interval", quoted(defaults::FLUX_RETRY_INTERVAL), "after a failed apply"));
    out.push_str(&example("timeout", quoted(defaults::FLUX_TIMEOUT), "for one box, health check included"));
    out.push_str(&example("artifact_generator", "false".into(), "true: each box reads its own bundle (Flux 2.7+)"));

    out.push_str(
        "\n# Exceptions to rules that are errors otherwise, each by name, so that a reviewer sees\n\
         # every one. [env] values are committed to Git and land in the pod spec: allow a\n\
         # secret-looking name only when its value is no secret. A box that asks for a GPU type no\n\
         # node has stays Pending: allow a type only once `gcloud compute accelerator-types list`\n\
         # has it.\n[policy]\n",
    );
    out.push_str(&example("allow_secret_env", strings(&["TOKENIZERS_PARALLELISM".into()]), "names, not values"));
    out.push_str(&example("allow_gpu_types", "[]".into(), "types newer than this devbox-gen"));

    out.push_str(
        "\n# What the boxes may take together, per namespace of each cluster: devbox-gen refuses a\n\
         # users/ that goes over, and with `gitops` the Namespace gets a ResourceQuota (and a\n\
         # LimitRange) with these numbers. No key: no limit.\n[quota]\n",
    );
    out.push_str(&example("cpu", quoted("400"), "CPUs of the running boxes"));
    out.push_str(&example("memory", quoted("1600Gi"), "memory of the running boxes"));
    out.push_str(&example("gpu", "16".into(), "GPUs of the running boxes"));
    out.push_str(&example("storage", quoted("20Ti"), "home volumes of every box, archived ones too"));

    out.push_str(
        "\n# What stops a box with [idle] (its `idle` container) and starts one with [schedule] (a\n\
         # CronJob): an image with a POSIX sh and curl, nothing else.\n[autostop]\n",
    );
    out.push_str(&example("image", quoted(defaults::AUTOSTOP_IMAGE), "pinned"));
    out.push_str(
        "\n# What each person may do to their own box with kubectl, as the Kubernetes user named by\n\
         # their email: scale (`devbox-gen wake NAME`), logs, exec. exec reaches every container of\n\
         # the pod, the tailscale sidecar and its tailnet identity included.\n[owners]\n",
    );
    out.push_str(&example("allow", strings(&["scale".into(), "logs".into()]), "default: nothing"));
    out.push_str(&example("user_prefix", quoted(""), "e.g. \"oidc:\" for --oidc-username-prefix; GKE: none"));

    out.push_str(
        "\n# Read-only datasets a box mounts by name (`datasets = [\"imagenet\"]`): each an existing\n\
         # PersistentVolumeClaim in the namespace, bound ReadOnlyMany so every box can mount it.\n[datasets]\n",
    );
    out.push_str(&example(
        "imagenet",
        "{ claim = \"imagenet-ro\", mount = \"/datasets/imagenet\" }".into(),
        "mount: default /datasets/NAME",
    ));

    out.push_str(
        "\n# Prices from the cloud's price list, so that `devbox-gen diff` states what a change costs\n\
         # a month: 730 hours of a running box's CPU, memory and GPUs, and every home volume.\n\
         # Without them, it states the change in resources. Uncomment the header with the prices.\n# [prices]\n",
    );
    out.push_str(&example("currency", quoted("USD"), "ISO 4217 code"));
    out.push_str(&example("cpu_hour", "0.0316".into(), "one core for one hour"));
    out.push_str(&example("memory_gib_hour", "0.0042".into(), "one GiB of memory for one hour"));
    out.push_str(&example("storage_gib_month", "0.17".into(), "one GiB of home volume for one month"));
    out.push_str(&example("gpu_hour", "{ \"nvidia-l4\" = 0.71 }".into(), "one GPU for one hour, by type"));
    out.push_str(&example("spot", "{ cpu_hour = 0.0095, memory_gib_hour = 0.0013 }".into(), "on Spot nodes; left out: on demand"));

    out.push_str(
        "\n# Target clusters. With one, every box lives there; with several, each user file (or\n\
         # [defaults]) names its `cluster`, and out/ gets a directory per cluster.\n# [[clusters]]\n",
    );
    out.push_str(&example("name", quoted("prod"), "at most 44 characters"));
    out.push_str(&example("server", quoted("https://kubernetes.default.svc"), "the API server, as Argo CD knows it"));
    out
}

/// Validates the devbox.toml `init` would write, as `validate` would; a value that breaks a
/// rule is blamed on the flag that gave it.
fn check(args: &InitArgs, text: &str) -> Result<(), Diagnostics> {
    let (repo, found) = read::from_texts(Some(text), &[]);
    // The text is generated: a parse error here is a bug of this file, reported as it is.
    if found.has_errors() {
        return Err(found);
    }
    let Some(parsed) = &repo.settings else { return Ok(()) };
    let mut problems = Diagnostics::default();
    for (key, finding) in validate::settings_findings(&parsed.value).0 {
        let diagnostic = blame(args, &key, finding);
        if diagnostic.is_error() {
            problems.push(diagnostic);
        }
    }
    if problems.has_errors() { Err(problems) } else { Ok(()) }
}

fn blame(args: &InitArgs, key: &str, finding: Finding) -> Diagnostic {
    let flag = |name: &str, value: Option<&String>| value.map(|v| text::flag(name, v));
    let from = match key {
        "namespace" => flag("--namespace", args.namespace.as_ref()),
        "defaults.image" => flag("--image", args.image.as_ref()),
        "repo.url" => flag("--repo-url", args.repo_url.as_ref()),
        "gitops" => Some(text::flag("--gitops", &args.gitops.join(","))),
        _ => None,
    };
    // No location: the devbox.toml the finding is about was not written.
    let mut diagnostic = Diagnostic::from(finding);
    if let Some(from) = from {
        diagnostic.message = format!("{from}: {}", diagnostic.message);
    }
    diagnostic
}
