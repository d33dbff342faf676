//! `devbox-gen ssh-config [NAME]`: `~/.ssh/config` entries for VS Code Remote-SSH, one per box.
//!
//! A box is reached over the tailnet by its tailnet hostname (MagicDNS), where the tailscale
//! sidecar forwards to sshd, running as the image's `jupyter` user. sshd's port is the
//! template's to decide (the embedded one's `sshPort`, 2222): it is read from the rendered box,
//! its StatefulSet's container port named `ssh`. Without NAME, every running box: stopped and
//! archived boxes have no pod to answer.
//!
//! Each entry names the key ssh logs in with only when it knows one the box accepts: with
//! `IdentitiesOnly yes`, ssh offers nothing but the named file, so a wrong or missing one shuts
//! out a person whose key is elsewhere or only in an agent (1Password, Secretive, a YubiKey).
//! Without `--identity-file`, the key is the private key in `~/.ssh` whose `.pub` is one of the
//! box's authorized keys; without such a key, the entry names none and ssh offers its default
//! keys and the agent's.

use std::path::Path;

use ssh_key::public::KeyData;

use crate::authorized_keys;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::State;
use crate::pipeline::{render_as_running, resolve_repo, resolve_user};
use crate::render::contract;
use crate::resolve::{self, ResolvedBox};
use crate::{Context, Outcome};

/// The account sshd runs as and logs in: the image's `jupyter`, whose uid `[runtime] uid`
/// names (start.sh and sshd_config's `AllowUsers` require it; not a setting of the template).
pub(super) const SSH_USER: &str = "jupyter";

pub(super) fn run(context: &mut Context, name: Option<&str>, identity_file: Option<&str>) -> Result<Outcome, Diagnostics> {
    let (repo, boxes, warnings) = match name {
        Some(name) => resolve_user(&context.root, name)?,
        None => resolve_repo(&context.root, None)?,
    };
    context.warn(warnings);
    let selected: Vec<&ResolvedBox> = match name {
        Some(name) => vec![resolve::find(&boxes, name)?],
        None => boxes.iter().filter(|b| b.state == State::Running).collect(),
    };
    let rendered = render_as_running(&repo, &selected)?;
    let mut hosts = Vec::with_capacity(selected.len());
    let mut missing = Diagnostics::default();
    for (resolved, objects) in selected.into_iter().zip(&rendered) {
        match contract::ssh_port(objects) {
            Some(port) => hosts.push((resolved, port)),
            None => missing.push(
                Diagnostic::error("the template's StatefulSet has no container port named `ssh`")
                    .in_path(resolved.source.clone())
                    .help("ssh-config reads sshd's port from it: name sshd's port `ssh` in the devbox container, as the embedded template does (`sshPort`)"),
            ),
        }
    }
    if missing.has_errors() {
        return Err(missing);
    }
    let local_keys = match identity_file {
        Some(_) => Vec::new(),
        None => std::env::var_os("HOME").map(|home| local_keys(&Path::new(&home).join(".ssh"))).unwrap_or_default(),
    };
    let entries: Vec<Entry> = hosts
        .into_iter()
        .map(|(resolved, port)| {
            let identity = match identity_file {
                Some(file) => Identity::Given(file.to_string()),
                None => key_for(resolved, &local_keys).map_or(Identity::Unknown, |file| Identity::Found(format!("~/.ssh/{file}"))),
            };
            Entry { resolved, port, identity }
        })
        .collect();
    let mut unknown = Diagnostics::default();
    if let Some(file) = identity_file {
        unknown.extend(given_identity_problems(file, &entries));
    }
    for entry in entries.iter().filter(|e| matches!(e.identity, Identity::Unknown)) {
        unknown.push(
            Diagnostic::warning(format!(
                "no private key in ~/.ssh has its `.pub` among {}'s authorized keys: its entry names no key",
                entry.resolved.name
            ))
            .in_path(entry.resolved.source.clone())
            .help("ssh then offers its default keys (~/.ssh/id_*) and the agent's, which is right for a key in an agent (1Password, Secretive, a YubiKey)")
            .help("name the key with `--identity-file FILE` otherwise"),
        );
    }
    context.warn(unknown);
    crate::stdio::print(config(&entries))?;
    Ok(Outcome::Clean)
}

/// One host entry: the box, sshd's port, and the key it is reached with.
struct Entry<'a> {
    resolved: &'a ResolvedBox,
    port: u16,
    identity: Identity,
}

/// Which key an entry names.
enum Identity {
    /// `--identity-file`, for every box.
    Given(String),
    /// A key of `~/.ssh` the box accepts (`~/.ssh/NAME`).
    Found(String),
    /// None: ssh offers its default keys and the agent's.
    Unknown,
}

/// The private keys of `dir` (`~/.ssh`) with their public keys: each `NAME.pub` that holds an
/// OpenSSH public key and has its `NAME` beside it, by name.
fn local_keys(dir: &Path) -> Vec<(String, KeyData)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut keys: Vec<(String, KeyData)> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let private = name.strip_suffix(".pub")?;
            if !dir.join(private).is_file() {
                return None;
            }
            let text = std::fs::read_to_string(dir.join(&name)).ok()?;
            let key = authorized_keys::parse(text.lines().next()?).ok()?;
            Some((private.to_string(), key.key.key_data().clone()))
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

/// What would keep `--identity-file` from logging in, as warnings: with `IdentitiesOnly yes`,
/// ssh offers that key alone. A file that does not exist, or whose public key (the file
/// itself when it is a `.pub`, which selects a key of the agent, else the `.pub` beside it)
/// is not among a box's authorized keys.
fn given_identity_problems(file: &str, entries: &[Entry<'_>]) -> Diagnostics {
    let mut problems = Diagnostics::default();
    let path = super::new::expand_home(Path::new(file));
    let public = if file.ends_with(".pub") {
        path.clone()
    } else {
        path.with_file_name(format!("{}.pub", path.file_name().unwrap_or_default().to_string_lossy()))
    };
    if !path.is_file() {
        problems.push(
            Diagnostic::warning(format!("--identity-file {file}: no such file"))
                .help("ssh offers no other key with `IdentitiesOnly yes`: name your private key, or its `.pub` for a key in an agent"),
        );
        return problems;
    }
    let Some(key) = std::fs::read_to_string(&public).ok().and_then(|text| authorized_keys::parse(text.lines().next()?).ok()) else {
        return problems; // no public key beside it to compare: ssh will tell
    };
    let key = key.key.key_data().clone();
    for entry in entries {
        if !accepts(entry.resolved, &key) {
            problems.push(
                Diagnostic::warning(format!("--identity-file {file}: its key is not among {}'s authorized keys", entry.resolved.name))
                    .in_path(entry.resolved.source.clone())
                    .help("ssh offers no other key with `IdentitiesOnly yes`: add the key to the user file, or name another"),
            );
        }
    }
    problems
}

/// The first of `local_keys` that `resolved` lists among its authorized keys.
fn key_for<'k>(resolved: &ResolvedBox, local_keys: &'k [(String, KeyData)]) -> Option<&'k str> {
    local_keys.iter().find(|(_, key)| accepts(resolved, key)).map(|(file, _)| file.as_str())
}

/// Whether `resolved` lists `key` among its authorized keys.
fn accepts(resolved: &ResolvedBox, key: &KeyData) -> bool {
    resolved.ssh.authorized_keys.iter().filter_map(|line| authorized_keys::parse(line).ok()).any(|parsed| parsed.key.key_data() == key)
}

/// The entries, with a first line saying where they go: each box with sshd's port in it.
fn config(entries: &[Entry<'_>]) -> String {
    // A blank line first: appended (`>> ~/.ssh/config`) to a file whose last line has no
    // newline, as editors leave it, the comment would end that line and break it for ssh.
    let mut out = String::from("\n# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config\n");
    if entries.is_empty() {
        out.push_str("# (no running boxes)\n");
    }
    for Entry { resolved, port, identity } in entries {
        let host = &resolved.tailscale.hostname;
        out.push('\n');
        match resolved.state {
            // VS Code only says it could not connect: say here why, and what to run.
            State::Running if resolved.autostops() => {
                out.push_str(&format!("# {} `devbox-gen wake {}` starts it.\n", super::wake::stops_when(resolved), resolved.name))
            }
            State::Running => {}
            State::Stopped | State::Archived => out.push_str(&format!(
                "# {} is {}: nothing answers until its user file says `state = \"running\"`\n",
                resolved.name, resolved.state
            )),
        }
        if matches!(identity, Identity::Unknown) {
            out.push_str("# No key of ~/.ssh is among its authorized keys: ssh offers its default keys and the agent's.\n");
        }
        out.push_str(&format!("Host {host}\n    HostName {host}\n    User {SSH_USER}\n    Port {port}\n"));
        if let Identity::Given(file) | Identity::Found(file) = identity {
            out.push_str(&format!("    IdentityFile {}\n    IdentitiesOnly yes\n", quoted(file)));
        }
    }
    out
}

/// ssh_config takes double quotes around an argument with spaces.
fn quoted(value: &str) -> String {
    if value.contains(char::is_whitespace) { format!("\"{value}\"") } else { value.to_string() }
}
