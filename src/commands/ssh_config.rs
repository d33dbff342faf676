//! `devbox-gen ssh-config [NAME]`: `~/.ssh/config` entries for VS Code Remote-SSH, one per box.
//!
//! A box is reached over the tailnet by its tailnet hostname (MagicDNS), where the tailscale
//! sidecar forwards to sshd on port 2222, running as the image's `jupyter` user. Without NAME,
//! every running box: stopped and archived boxes have no pod to answer.

use crate::diagnostic::Diagnostics;
use crate::model::State;
use crate::pipeline::resolve_boxes;
use crate::resolve::{self, ResolvedBox};
use crate::{Context, Outcome};

/// sshd's port in the box (`sshPort` of the embedded template; it cannot bind 22 as non-root).
pub const SSH_PORT: u16 = 2222;
/// The account sshd runs as and logs in (the image's `jupyter`).
pub const SSH_USER: &str = "jupyter";

pub fn run(context: &mut Context, name: Option<&str>, identity_file: &str) -> Result<Outcome, Diagnostics> {
    let (boxes, warnings) = resolve_boxes(&context.root, None)?;
    context.warn(warnings);
    let selected: Vec<&ResolvedBox> = match name {
        Some(name) => vec![resolve::find(&boxes, name)?],
        None => boxes.iter().filter(|b| b.state == State::Running).collect(),
    };
    print!("{}", config(&selected, identity_file));
    Ok(Outcome::Clean)
}

/// The entries, with a first line saying where they go.
pub fn config(boxes: &[&ResolvedBox], identity_file: &str) -> String {
    let mut out = String::from("# devbox-gen ssh-config: VS Code Remote-SSH hosts; append to ~/.ssh/config\n");
    if boxes.is_empty() {
        out.push_str("# (no running boxes)\n");
    }
    for resolved in boxes {
        let host = &resolved.tailscale.hostname;
        out.push('\n');
        match resolved.state {
            State::Running => {}
            State::Stopped | State::Archived => out.push_str(&format!(
                "# {} is {}: nothing answers until its user file says `state = \"running\"`\n",
                resolved.name,
                format!("{:?}", resolved.state).to_lowercase()
            )),
        }
        out.push_str(&format!(
            "Host {host}\n    HostName {host}\n    User {SSH_USER}\n    Port {SSH_PORT}\n    IdentityFile {}\n    IdentitiesOnly yes\n",
            quoted(identity_file)
        ));
    }
    out
}

/// ssh_config takes double quotes around an argument with spaces.
fn quoted(value: &str) -> String {
    if value.contains(char::is_whitespace) { format!("\"{value}\"") } else { value.to_string() }
}
