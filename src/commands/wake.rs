//! `devbox-gen wake NAME`: the commands that start a box its `[idle]` window or `[schedule]`
//! stopped, for its owner (with devbox.toml's `[owners] allow = ["scale"]`) or an admin.
//!
//! Waking is the cluster's business, not Git's: a box that stops by itself has no `replicas` in
//! its manifest, so Argo CD and Flux leave whatever the cluster has. A box whose user file says
//! `state = "stopped"` is the opposite: Git sets its replicas to zero and would undo a wake at
//! the next sync, so `wake` refuses it and says which line to change instead.

use crate::autostop;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{OwnerPermission, State};
use crate::pipeline::resolve_user;
use crate::resolve::{self, ResolvedBox};
use crate::{Context, Outcome};

pub(super) fn run(context: &mut Context, name: &str) -> Result<Outcome, Diagnostics> {
    let (repo, boxes, warnings) = resolve_user(&context.root, name)?;
    context.warn(warnings);
    let resolved = resolve::find(&boxes, name)?;
    let cluster =
        repo.settings().clusters.iter().find(|c| Some(&c.name) == resolved.cluster.as_ref()).map(|c| (c.name.clone(), c.server.clone()));
    crate::stdio::print(commands(resolved, cluster)?)?;
    Ok(Outcome::Clean)
}

/// The commands, with comments saying what stops the box again; an error for a box Git keeps
/// stopped.
pub(super) fn commands(resolved: &ResolvedBox, cluster: Option<(String, String)>) -> Result<String, Diagnostics> {
    let name = &resolved.name;
    if resolved.state != State::Running {
        let what = if resolved.state == State::Archived {
            "has no pod, only its home volume"
        } else {
            "is kept at zero replicas by Argo CD or Flux"
        };
        return Err(Diagnostic::error(format!("{}'s box is {} in Git: it {what}, and a wake would be undone", name, resolved.state))
            .in_path(resolved.source.clone())
            .help(format!("set `state = \"running\"` in {} and merge it: Git always wins over a wake", resolved.source))
            .into());
    }
    let namespace = &resolved.namespace;
    let pod = format!("{name}-0");
    let mut out = format!("# devbox-gen wake {name}\n");
    if let Some((cluster, server)) = cluster {
        out.push_str(&format!("# The box is in cluster `{cluster}` ({server}): run these with your kubectl context for it.\n"));
    }
    if !resolved.autostops() {
        // The owner's Role ([owners]) reads the pod by name, never the namespace's events.
        let who = match &resolved.owner {
            Some(owner) if owner.allow.iter().any(|p| matches!(p, OwnerPermission::Logs | OwnerPermission::Exec)) => {
                format!(" ({} may, with devbox.toml's [owners]; so may an admin)", owner.user)
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            "# {name}'s box has neither [idle] nor [schedule]: Git keeps it running, and nothing stops it by itself.\n\
             # If it is not running, look at why{who}:\n\
             kubectl --namespace {namespace} get pod {pod}\n\
             # Why the StatefulSet makes no pod, in its events: this needs an admin, as it lists the namespace's events.\n\
             kubectl --namespace {namespace} describe statefulset {name}\n"
        ));
        return Ok(out);
    }
    out.push_str(&format!("# {}\n", stops_when(resolved)));
    let can_scale = resolved.owner.as_ref().is_some_and(|o| o.allow.contains(&OwnerPermission::Scale));
    if can_scale {
        let user = &resolved.owner.as_ref().expect("checked above").user;
        out.push_str(&format!("# {user} may run these (devbox.toml's [owners] allow = [\"scale\"]); so may an admin.\n"));
    } else {
        out.push_str(
            "# Needs permission to scale the StatefulSet: an admin, or the owner once devbox.toml has [owners] allow = [\"scale\"].\n",
        );
    }
    out.push_str(&format!(
        "kubectl --namespace {namespace} scale statefulset {name} --replicas=1\n\
         kubectl --namespace {namespace} wait --for=create pod/{pod} --timeout=2m\n\
         kubectl --namespace {namespace} wait --for=condition=Ready pod/{pod} --timeout=10m\n\
         # Then `ssh {host}`; in the box, `cat /run/devbox/idle` says why it runs and when it stops.\n\
         # To keep it past the idle window: `touch -d '+3 hours' ~/.devbox-hold` in the box.\n",
        host = resolved.tailscale.hostname,
    ));
    Ok(out)
}

/// `It stops after 2h without activity, and outside working hours (mon-fri 08:00-19:00 Europe/Berlin).`
pub(super) fn stops_when(resolved: &ResolvedBox) -> String {
    let idle = match resolved.idle.after_seconds {
        Some(seconds) => {
            format!("It stops after {} without activity (SSH traffic, Jupyter, CPU or GPU use, a hold)", autostop::human(seconds))
        }
        None => "It does not stop by itself".to_string(),
    };
    match &resolved.schedule {
        Some(hours) => format!("{idle}, but not during working hours ({}), when it is started at {}.", hours.describe(), hours.start),
        None => format!("{idle}."),
    }
}
