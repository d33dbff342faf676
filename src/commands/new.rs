//! `devbox-gen new NAME --email E --ssh-key-file ~/.ssh/id_ed25519.pub [--image I ...]`: a
//! person's first user file, written only if it passes the same reading and validation as
//! every other one, and never over an existing file.
//!
//! The file sets what the flags give; everything else comes from `[defaults]` in devbox.toml,
//! and is shown as commented lines with the values the box gets today, so changing one is
//! uncommenting it. A value that breaks a rule is blamed on the flag that gave it: the file
//! it would have gone into does not exist, so a `users/NAME.toml:4:9` would point at nothing.

use std::fs;
use std::path::{Path, PathBuf};

use crate::authorized_keys::private_key_at;
use crate::cli::NewArgs;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::model::DevboxConfig;
use crate::read::{self, ConfigRepo};
use crate::resolve::{self, ResolvedBox};
use crate::text::flag;
use crate::validate::{self, Finding};
use crate::{Context, Outcome};

/// A public key file is a few hundred bytes; anything much larger is the wrong file.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// One authorized key, and the flag (with its value) it came from.
struct Key {
    text: String,
    from: String,
}

/// The flags' values, checked for their shape, as they go into the file.
struct Given<'a> {
    args: &'a NewArgs,
    keys: Vec<Key>,
    gpu: Option<(String, Option<u32>)>,
}

pub(super) fn run(context: &mut Context, args: &NewArgs) -> Result<Outcome, Diagnostics> {
    let name = args.name.as_str();
    validate::user_name_or(name, |usable| format!("use `{usable}`: `devbox-gen new {usable} ...`"))
        .map_err(|finding| Diagnostics::from(Diagnostic::from(finding)))?;
    let relative = format!("users/{name}.toml");
    let path = context.root.join(&relative);
    if let Some(link) = read::link_on_the_way(&context.root, "users") {
        return Err(read::refuse_link(&link).into());
    }
    if path.symlink_metadata().is_ok() {
        return Err(Diagnostic::error(format!("{relative} already exists"))
            .in_path(relative.clone())
            .help(format!("edit {relative} instead, or choose another name; `devbox-gen new` never overwrites a file"))
            .into());
    }
    let (repo, found) = read::read(&context.root)?;
    settings_errors(&repo, found)?;
    let settings = repo.settings();
    let mut problems = Diagnostics::default();
    let mut keys = Vec::new();
    for file in &args.ssh_key_file {
        match keys_in_file(file) {
            Ok(found) => keys.extend(found),
            Err(problem) => problems.push(problem),
        }
    }
    for text in &args.ssh_key {
        match key_from_flag(text) {
            Ok(key) => keys.push(key),
            Err(problem) => problems.push(problem),
        }
    }
    let gpu = match args.gpu.as_deref().map(gpu_flag).transpose() {
        Ok(gpu) => gpu,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    problems.extend(missing(args, &settings, repo.settings.is_some()));
    let given = Given { args, keys, gpu };

    // First a file without the comments, to resolve the values the box gets from `[defaults]`;
    // it also reports every flag's problem along with those found above.
    let (resolved, _) = check(&repo, &given, &user_file(&given, None), problems)?;
    let text = user_file(&given, Some(&resolved));
    let (_, warnings) = check(&repo, &given, &text, Diagnostics::default())?;
    context.warn(warnings);
    fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).and_then(|()| crate::file::create_new(&path, &text)).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(format!("cannot write {relative}: {e}")).in_path(relative.clone()).help("check that users/ is writable"),
        )
    })?;
    context.status(&format!("wrote {relative}"));
    let cmd = super::invocation(context);
    context.status(&format!("next: create its Secrets (`{cmd} secrets {name}`), run `{cmd} build`, and open a pull request"));
    Ok(Outcome::Clean)
}

/// devbox.toml's errors: a user file written beside a broken devbox.toml would not build.
fn settings_errors(repo: &ConfigRepo, found: Diagnostics) -> Result<(), Diagnostics> {
    let in_settings = |d: &Diagnostic| d.is_error() && location_path(d) == Some("devbox.toml");
    let mut errors = Diagnostics(found.0.into_iter().filter(in_settings).collect());
    errors.extend(Diagnostics(validate::validate(repo).0.into_iter().filter(in_settings).collect()));
    if errors.has_errors() { Err(errors) } else { Ok(()) }
}

fn location_path(diagnostic: &Diagnostic) -> Option<&str> {
    match &diagnostic.location {
        Some(Location::Span { file, .. }) => Some(&file.path),
        Some(Location::Path(path)) => Some(path),
        None => None,
    }
}

/// What neither a flag nor devbox.toml provides, said in terms of the flags that provide it.
fn missing(args: &NewArgs, settings: &DevboxConfig, has_settings: bool) -> Diagnostics {
    let mut missing = Diagnostics::default();
    if args.image.is_none() && settings.defaults.image.is_none() {
        let mut error = Diagnostic::error("no image for this box: devbox.toml has no `[defaults] image`")
            .help("pass `--image REGISTRY/PATH:TAG` (pinned by a tag or a digest), or set `[defaults] image` in devbox.toml for every box");
        if !has_settings {
            error = error.help("this config repo has no devbox.toml yet: `devbox-gen init --image REGISTRY/PATH:TAG` writes one");
        }
        missing.push(error);
    }
    let clusters: Vec<&str> = settings.clusters.iter().map(|c| c.name.as_str()).collect();
    if args.cluster.is_none() && settings.defaults.cluster.is_none() && clusters.len() > 1 {
        missing.push(
            Diagnostic::error(format!("devbox.toml lists several clusters ({}): this box must say which is its", clusters.join(", ")))
                .help(format!("pass `--cluster {}`, or another of them", clusters[0])),
        );
    }
    missing
}

/// A finding about a value given on the command line, blamed on its flag: `--email grace: ...`.
fn blame(from: &str, finding: Finding) -> Diagnostic {
    let mut diagnostic = Diagnostic::from(finding);
    diagnostic.message = format!("{from}: {}", diagnostic.message);
    diagnostic
}

/// The authorized keys in a public key file (one key per line, `authorized_keys` style).
fn keys_in_file(path: &Path) -> Result<Vec<Key>, Diagnostic> {
    let shown = path.display().to_string();
    let from = flag("--ssh-key-file", &shown);
    let path = expand_home(path);
    let fail = |message: &str, help: &str| Diagnostic::error(format!("{from}: {message}")).help(help.to_string());
    let example = "pass your public key, e.g. `--ssh-key-file ~/.ssh/id_ed25519.pub`";
    let metadata = fs::metadata(&path).map_err(|e| fail(&format!("cannot read it: {e}"), example))?;
    if metadata.is_dir() {
        return Err(fail("this is a directory", example));
    }
    // Read through a bound, not by its size: a pipe has none (`--ssh-key-file <(ssh-add -L)`,
    // `/dev/stdin`).
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .and_then(|file| std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_KEY_FILE_BYTES + 1), &mut bytes))
        .map_err(|e| fail(&format!("cannot read it: {e}"), example))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(fail("not a public key file", example));
    }
    let text = String::from_utf8(bytes).map_err(|e| fail(&format!("cannot read it: {e}"), "pass a UTF-8 public key file"))?;
    if private_key_at(&text).is_some() {
        // Never echoed, never copied anywhere.
        return Err(fail(
            "this is a private key",
            "pass the public half, the `.pub` file beside it: the private key never leaves your machine",
        ));
    }
    let lines: Vec<(usize, &str)> =
        text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')).map(|(i, l)| (i + 1, l)).collect();
    if lines.is_empty() {
        return Err(fail("holds no key", example));
    }
    let several = lines.len() > 1;
    let keys = lines
        .into_iter()
        .map(|(line, text)| Key { text: text.to_string(), from: if several { format!("{from}, line {line}") } else { from.clone() } });
    Ok(keys.collect())
}

fn key_from_flag(text: &str) -> Result<Key, Diagnostic> {
    if private_key_at(text).is_some() {
        return Err(Diagnostic::error("--ssh-key: this is a private key")
            .help("pass the public key (`cat ~/.ssh/id_ed25519.pub`): the private key never leaves your machine"));
    }
    if text.trim().contains('\n') {
        return Err(Diagnostic::error("--ssh-key: one key per flag, and this holds several lines")
            .help("pass `--ssh-key` once for each key, or the file that holds them with `--ssh-key-file`"));
    }
    Ok(Key { text: text.trim().to_string(), from: flag("--ssh-key", text) })
}

/// `--gpu TYPE[:COUNT]`: the type and count are checked later, by the rules of `[gpu]`.
fn gpu_flag(value: &str) -> Result<(String, Option<u32>), Diagnostic> {
    match value.split_once(':') {
        None => Ok((value.to_string(), None)),
        Some((kind, count)) => match count.parse::<u32>() {
            Ok(count) => Ok((kind.to_string(), Some(count))),
            Err(_) => {
                // An example the person can run: their type, or a real one when they gave none.
                let kind = if kind.is_empty() { "nvidia-l4" } else { kind };
                Err(Diagnostic::error(format!("{}: `{count}` is not a number of GPUs", flag("--gpu", value)))
                    .help(format!("write the type, or the type and a count: `--gpu {kind}` or `--gpu {kind}:2`")))
            }
        },
    }
}

/// `~/x` as the shell would have expanded it, had the path not been quoted.
pub(super) fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// The text of the new file; with `resolved`, what no flag sets as comments with the values
/// the box gets today.
fn user_file(given: &Given<'_>, resolved: Option<&ResolvedBox>) -> String {
    let args = given.args;
    let mut out = String::from("#:schema ../schema/user.schema.json\n");
    out.push_str(&format!(
        "# {}'s developer box (see \"A user file\" in the devbox-gen README). What is not set here\n\
         # comes from [defaults] in devbox.toml; the commented lines show what the box gets today.\n",
        args.name
    ));
    out.push_str(&format!("email = {}\n", toml_string(&args.email)));
    let mut lines = Lines { out, comments: resolved.is_some() };
    let r = resolved;
    lines.string("state", args.state.as_deref(), r.map(|r| r.state.as_str()), "running | stopped | archived");
    lines.string("image", args.image.as_deref(), r.map(|r| r.image.as_str()), "");
    lines.string("arch", args.arch.as_deref(), r.map(|r| r.arch.as_str()), "amd64 | arm64");
    lines.string("cluster", args.cluster.as_deref(), r.and_then(|r| r.cluster.as_deref()), "");
    // Shown only when `[defaults]` sets them: they change what the box is.
    lines.string("shm", None, r.and_then(|r| r.shm.as_deref()), "/dev/shm, counted in the memory");
    let spot = r.is_some_and(|r| r.spot).then_some(toml::Value::Boolean(true));
    lines.value("spot", None, spot, "can be stopped at any time, with 30 s notice");
    let datasets: Vec<toml::Value> =
        r.map(|r| r.datasets.iter().map(|d| toml::Value::String(d.name.clone())).collect()).unwrap_or_default();
    lines.value("datasets", None, (!datasets.is_empty()).then_some(toml::Value::Array(datasets)), "mounted read-only");

    lines.table("resources", args.cpu.is_some() || args.memory.is_some());
    lines.string("cpu", args.cpu.as_deref(), r.map(|r| r.resources.cpu.as_str()), "");
    lines.string("memory", args.memory.as_deref(), r.map(|r| r.resources.memory.as_str()), "");

    let default_gpu = r.and_then(|r| r.gpu.as_ref());
    if given.gpu.is_some() || default_gpu.is_some() {
        lines.table("gpu", given.gpu.is_some());
        let (kind, count) = given.gpu.as_ref().map_or((None, None), |(kind, count)| (Some(kind.as_str()), *count));
        lines.string("type", kind, default_gpu.map(|g| g.kind.as_str()), "");
        let count = count.map(|c| toml::Value::Integer(c.into()));
        lines.value("count", count, default_gpu.map(|g| toml::Value::Integer(g.count.into())), "1, 2, 4, 8 or 16");
        lines.string("sharing", None, default_gpu.and_then(|g| g.sharing).map(crate::model::GpuSharing::as_str), "one GPU, shared");
        lines.value("clients", None, default_gpu.and_then(|g| g.clients).map(|c| toml::Value::Integer(c.into())), "");
    }

    lines.table("home", args.home_size.is_some() || args.storage_class.is_some());
    lines.string("size", args.home_size.as_deref(), r.map(|r| r.home.size.as_str()), "may grow, never shrink");
    let class = r.and_then(|r| r.home.storage_class.as_deref());
    lines.string("storage_class", args.storage_class.as_deref(), class, "cannot change once the volume exists");

    lines.table("ssh", true);
    lines.out.push_str("authorized_keys = [\n");
    for key in &given.keys {
        lines.out.push_str(&format!("  {},\n", toml_string(&key.text)));
    }
    lines.out.push_str("]\n");

    let default_tags = r.map(|r| r.tailscale.tags.clone()).unwrap_or_default();
    let tags_set = !args.tags.is_empty();
    if args.hostname.is_some() || tags_set || !default_tags.is_empty() {
        lines.table("tailscale", args.hostname.is_some() || tags_set);
        lines.string("hostname", args.hostname.as_deref(), r.map(|r| r.tailscale.hostname.as_str()), "");
        let array = |tags: &[String]| toml::Value::Array(tags.iter().cloned().map(toml::Value::String).collect());
        let note = "applied when the box's machine first logs in";
        lines.value("tags", tags_set.then(|| array(&args.tags)), (!default_tags.is_empty()).then(|| array(&default_tags)), note);
    }

    // Shown only when `[defaults]` sets them: the owner reads here that the box stops by itself.
    if let Some(idle) = r.map(|r| &r.idle).filter(|idle| idle.after_seconds.is_some()) {
        lines.table("idle", false);
        lines.string("after", None, Some(&idle.after), "stops after this long unused; \"never\" keeps it running");
    }
    if let Some(hours) = r.and_then(|r| r.schedule.as_ref()) {
        lines.table("schedule", false);
        lines.string("timezone", None, Some(&hours.timezone), "");
        let days = hours.days.iter().map(|day| toml::Value::String(day.as_str().to_string())).collect();
        lines.value("days", None, Some(toml::Value::Array(days)), "[] for no working hours");
        lines.string("start", None, Some(&hours.start), "started then, kept running until stop");
        lines.string("stop", None, Some(&hours.stop), "");
    }
    lines.out
}

/// Writes `key = value` for what a flag set and `# key = value` for what the box gets anyway.
struct Lines {
    out: String,
    /// Whether the defaults are known yet (the second pass), and so shown.
    comments: bool,
}

impl Lines {
    fn string(&mut self, key: &str, set: Option<&str>, default: Option<&str>, note: &str) {
        let string = |s: &str| toml::Value::String(s.to_string());
        self.value(key, set.map(string), default.map(string), note);
    }

    fn value(&mut self, key: &str, set: Option<toml::Value>, default: Option<toml::Value>, note: &str) {
        let setting = match (set, default) {
            (Some(value), _) => format!("{key} = {value}"),
            (None, Some(value)) if self.comments => format!("# {key} = {value}"),
            _ => return,
        };
        if note.is_empty() {
            self.out.push_str(&format!("{setting}\n"));
        } else {
            self.out.push_str(&format!("{setting:<34} # {note}\n"));
        }
    }

    /// A table's header, commented when nothing in it is set (and then only with the defaults).
    fn table(&mut self, name: &str, set: bool) {
        if set {
            self.out.push_str(&format!("\n[{name}]\n"));
        } else if self.comments {
            self.out.push_str(&format!("\n# [{name}]\n"));
        }
    }
}

/// Reads, validates and resolves `text` as users/NAME.toml beside the repo's other files;
/// returns its box and warnings, or its problems (and the `earlier` ones), blamed on the flags
/// that gave the values.
fn check(repo: &ConfigRepo, given: &Given<'_>, text: &str, earlier: Diagnostics) -> Result<(ResolvedBox, Diagnostics), Diagnostics> {
    let name = given.args.name.as_str();
    let (parsed, found) = read::from_texts(None, &[(name, text)]);
    if found.has_errors() {
        let mut problems = earlier;
        problems.extend(unlocated(found));
        return Err(problems);
    }
    let mut all = ConfigRepo {
        root: repo.root.clone(),
        settings: repo.settings.clone(),
        settings_unreadable: repo.settings_unreadable,
        users: repo.users.clone(),
        git_prefix: repo.git_prefix.clone(),
    };
    all.users.extend(parsed.users);
    all.users.sort_by(|a, b| a.0.cmp(&b.0));
    // A key file that could not be read has said so already; "no public key" would repeat it.
    let keys_failed = earlier.has_errors() && given.keys.is_empty();
    let mut problems = earlier;
    let mut warnings = Diagnostics::default();
    for (key, finding) in validate::user_findings(&all, name).0 {
        if keys_failed && key == "ssh.authorized_keys" {
            continue;
        }
        let diagnostic = blame_key(given, &key, finding);
        if diagnostic.is_error() { problems.push(diagnostic) } else { warnings.push(diagnostic) }
    }
    if problems.has_errors() {
        return Err(problems);
    }
    // The new box must fit `[quota]` with all the others, as `build` will hold it to.
    let everyone = resolve::resolve(&all).map_err(unlocated)?;
    crate::quota::refuse_breaches(&all, &everyone, crate::pipeline::pod_overhead(&all, &everyone)?)?;
    all.users.retain(|(n, _)| n == name);
    let boxes = resolve::resolve(&all).map_err(unlocated)?;
    let resolved = boxes.into_iter().next().ok_or_else(|| Diagnostic::error(format!("users/{name}.toml could not be read back")))?;
    Ok((resolved, warnings))
}

/// Blames the flag that gave the value at `key` of the user file.
fn blame_key(given: &Given<'_>, key: &str, finding: Finding) -> Diagnostic {
    let args = given.args;
    let named = |name: &str, value: Option<&String>| value.map(|v| flag(name, v));
    let gpu = args.gpu.as_ref().map(|v| flag("--gpu", v));
    let from = match key {
        "email" => Some(flag("--email", &args.email)),
        "image" => named("--image", args.image.as_ref()),
        "cluster" => named("--cluster", args.cluster.as_ref()),
        "resources.cpu" => named("--cpu", args.cpu.as_ref()),
        "resources.memory" => named("--memory", args.memory.as_ref()),
        "gpu.type" | "gpu.count" => gpu,
        "home.size" => named("--home-size", args.home_size.as_ref()),
        "home.storage_class" => named("--storage-class", args.storage_class.as_ref()),
        "tailscale.hostname" => named("--hostname", args.hostname.as_ref()),
        _ => indexed(key, "tailscale.tags")
            .and_then(|i| named("--tag", args.tags.get(i)))
            .or_else(|| indexed(key, "ssh.authorized_keys").and_then(|i| given.keys.get(i)).map(|k| k.from.clone())),
    };
    match from {
        Some(from) => blame(&from, finding),
        // A value no flag gave (the default hostname NAME-devbox, taken by another box).
        None if key == "tailscale.hostname" => Diagnostic::from(finding).help("choose another with `--hostname`"),
        None => Diagnostic::from(finding),
    }
}

/// `i` of `prefix[i]`.
fn indexed(key: &str, prefix: &str) -> Option<usize> {
    key.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Problems without the place in the file `new` did not write: the file does not exist.
fn unlocated(found: Diagnostics) -> Diagnostics {
    let unlocated = found.0.into_iter().map(|mut d| {
        if location_path(&d).is_some_and(|p| p.starts_with("users/")) {
            d.location = None;
        }
        d
    });
    Diagnostics(unlocated.collect())
}
