//! `devbox-gen new NAME --email E --key ~/.ssh/devbox.pub`: a person's first user file, written
//! only if it passes the same reading and validation as every other one, and never over an
//! existing file.
//!
//! The file sets only what is personal (email, key, and the cluster when one must be named);
//! everything else comes from `[defaults]` in devbox.toml, and is shown as commented lines with
//! the values the box gets today, so changing one is uncommenting it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::read::{self, ConfigRepo};
use crate::resolve::{self, ResolvedBox};
use crate::{Context, Outcome, validate};

/// A public key file is a few hundred bytes; anything much larger is the wrong file.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

pub(super) fn run(context: &mut Context, name: &str, email: &str, cluster: Option<&str>, key: &Path) -> Result<Outcome, Diagnostics> {
    let relative = format!("users/{name}.toml");
    if let Err(finding) = validate::user_name(name) {
        return Err(Diagnostic::from(finding).in_path(relative).into());
    }
    let path = context.root.join(&relative);
    if path.symlink_metadata().is_ok() {
        return Err(Diagnostic::error(format!("{relative} already exists"))
            .in_path(relative.clone())
            .help(format!("edit {relative} instead, or choose another name; `devbox-gen new` never overwrites a file"))
            .into());
    }
    let keys = public_keys(key)?;
    let (repo, _) = read::read(&context.root)?;
    // First resolve a minimal file, to show the values the box gets in the comments.
    let minimal = user_file(name, email, cluster, &keys, None);
    let resolved = check(&repo, name, &minimal)?;
    let text = user_file(name, email, cluster, &keys, Some(&resolved));
    check(&repo, name, &text)?;
    write_new(&path, &text).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error(format!("cannot write {relative}: {e}")).in_path(relative.clone()).help("check that users/ is writable"),
        )
    })?;
    context.status(&format!("wrote {relative}"));
    context.status(&format!("next: create its Secrets (`devbox-gen secrets {name}`), run `devbox-gen build`, and open a pull request"));
    Ok(Outcome::Clean)
}

/// The authorized keys in a public key file (one key per line, `authorized_keys` style).
fn public_keys(path: &Path) -> Result<Vec<String>, Diagnostics> {
    let path = expand_home(path);
    let shown = path.display().to_string();
    let fail =
        |message: String, help: &str| -> Diagnostics { Diagnostic::error(message).in_path(shown.clone()).help(help.to_string()).into() };
    let metadata = fs::metadata(&path)
        .map_err(|e| fail(format!("cannot read the key file {shown}: {e}"), "pass your public key, e.g. `--key ~/.ssh/devbox.pub`"))?;
    if !metadata.is_file() || metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(fail(format!("{shown} is not a public key file"), "pass your public key, e.g. `--key ~/.ssh/devbox.pub`"));
    }
    let text =
        fs::read_to_string(&path).map_err(|e| fail(format!("cannot read the key file {shown}: {e}"), "pass a UTF-8 public key file"))?;
    if text.contains("PRIVATE KEY-----") || text.contains("PuTTY-User-Key-File") {
        // Never echoed, never copied anywhere.
        return Err(fail(
            format!("{shown} is a private key"),
            "pass the public half, the `.pub` file beside it: the private key never leaves your machine",
        ));
    }
    let keys: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
    if keys.is_empty() {
        return Err(fail(format!("{shown} holds no key"), "pass your public key, e.g. `--key ~/.ssh/devbox.pub`"));
    }
    Ok(keys)
}

/// `~/x` as the shell would have expanded it, had the path not been quoted.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// The text of the new file; with `resolved`, the effective settings as comments.
fn user_file(name: &str, email: &str, cluster: Option<&str>, keys: &[String], resolved: Option<&ResolvedBox>) -> String {
    // `# key = value`, with a note aligned after it.
    let line = |key: &str, value: &str, note: &str| {
        let setting = format!("# {key} = {}", toml_string(value));
        if note.is_empty() { format!("{setting}\n") } else { format!("{setting:<34} # {note}\n") }
    };
    let mut out = String::from("#:schema ../schema/user.schema.json\n");
    out.push_str(&format!(
        "# {name}'s developer box (see \"A user file\" in the devbox-gen README). What is not set here\n\
         # comes from [defaults] in devbox.toml; the commented lines show what the box gets today.\n"
    ));
    out.push_str(&format!("email = {}\n", toml_string(email)));
    if let Some(cluster) = cluster {
        out.push_str(&format!("cluster = {}\n", toml_string(cluster)));
    }
    if let Some(resolved) = resolved {
        out.push_str(&line("state", resolved.state.as_str(), "running | stopped | archived"));
        out.push_str(&line("image", &resolved.image, ""));
        out.push_str(&line("arch", resolved.arch.as_str(), "amd64 | arm64"));
        if let (None, Some(cluster)) = (cluster, &resolved.cluster) {
            out.push_str(&line("cluster", cluster, ""));
        }
        out.push_str("\n# [resources]\n");
        out.push_str(&line("cpu", &resolved.resources.cpu, ""));
        out.push_str(&line("memory", &resolved.resources.memory, ""));
        out.push_str("\n# [home]\n");
        out.push_str(&line("size", &resolved.home.size, "may grow, never shrink"));
        if let Some(class) = &resolved.home.storage_class {
            out.push_str(&line("storage_class", class, "cannot change once the volume exists"));
        }
    }
    out.push_str("\n[ssh]\nauthorized_keys = [\n");
    for key in keys {
        out.push_str(&format!("  {},\n", toml_string(key)));
    }
    out.push_str("]\n");
    out
}

/// Reads, validates and resolves `text` as users/NAME.toml beside the repo's other files;
/// returns its box, or the problems of this file (and of devbox.toml).
fn check(repo: &ConfigRepo, name: &str, text: &str) -> Result<ResolvedBox, Diagnostics> {
    let relative = format!("users/{name}.toml");
    let (parsed, found) = read::from_texts(None, &[(name, text)]);
    if found.has_errors() {
        return Err(found);
    }
    let new_users = parsed.users;
    let mut all = ConfigRepo { root: repo.root.clone(), settings: None, users: Vec::new() };
    all.settings = repo.settings.as_ref().map(|s| read::Parsed { source: s.source.clone(), value: s.value.clone() });
    all.users = repo.users.iter().map(|(n, p)| (n.clone(), read::Parsed { source: p.source.clone(), value: p.value.clone() })).collect();
    all.users.extend(new_users);
    all.users.sort_by(|a, b| a.0.cmp(&b.0));
    let concerns = |d: &Diagnostic| match &d.location {
        Some(Location::Span { file, .. }) => file.path == relative || file.path == "devbox.toml",
        Some(Location::Path(path)) => *path == relative || path == "devbox.toml",
        None => false,
    };
    let problems = Diagnostics(validate::validate(&all).0.into_iter().filter(|d| concerns(d) && d.is_error()).collect());
    if problems.has_errors() {
        return Err(problems);
    }
    all.users.retain(|(n, _)| n == name);
    let boxes = resolve::resolve(&all)?;
    boxes.into_iter().next().ok_or_else(|| Diagnostic::error(format!("{relative} could not be read back")).into())
}

/// Creates the file; fails if it appeared meanwhile.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(text.as_bytes())
}
