//! `devbox-gen ssh-config [NAME]`: `~/.ssh/config` entries for VS Code Remote-SSH, one per box.
//!
//! A box is reached over the tailnet by its tailnet hostname (MagicDNS), where the tailscale
//! sidecar forwards to sshd, running as the image's `jupyter` user. sshd's port is the
//! template's to decide (the embedded one's `sshPort`, 2222): it is read from the rendered box,
//! its StatefulSet's container port named `ssh`. Without NAME, every running box: stopped and
//! archived boxes have no pod to answer.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::State;
use crate::pipeline::{render_as_running, resolve_repo};
use crate::render::contract;
use crate::resolve::{self, ResolvedBox};
use crate::{Context, Outcome};

/// The account sshd runs as and logs in: the image's `jupyter`, whose uid `[runtime] uid`
/// names (start.sh and sshd_config's `AllowUsers` require it; not a setting of the template).
pub(super) const SSH_USER: &str = "jupyter";

pub(super) fn run(context: &mut Context, name: Option<&str>, identity_file: &str) -> Result<Outcome, Diagnostics> {
    let (repo, boxes, warnings) = resolve_repo(&context.root, None)?;
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
    print!("{}", config(&hosts, identity_file));
    Ok(Outcome::Clean)
}

/// The entries, with a first line saying where they go: each box with sshd's port in it.
pub(super) fn config(boxes: &[(&ResolvedBox, u16)], identity_file: &str) -> String {
    let mut out = String::from("# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config\n");
    if boxes.is_empty() {
        out.push_str("# (no running boxes)\n");
    }
    for (resolved, port) in boxes {
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
        out.push_str(&format!(
            "Host {host}\n    HostName {host}\n    User {SSH_USER}\n    Port {port}\n    IdentityFile {}\n    IdentitiesOnly yes\n",
            quoted(identity_file)
        ));
    }
    out
}

/// ssh_config takes double quotes around an argument with spaces.
fn quoted(value: &str) -> String {
    if value.contains(char::is_whitespace) { format!("\"{value}\"") } else { value.to_string() }
}
