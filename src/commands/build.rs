//! `devbox-gen build [--check]`: compile, refuse what Kubernetes cannot apply, then write
//! (or, with `--check`, only list what would change).

use crate::check;
use crate::diagnostic::Diagnostics;
use crate::emit;
use crate::pipeline::{compile, timed};
use crate::write;
use crate::{Context, Outcome};

pub fn run(context: &mut Context, check_only: bool) -> Result<Outcome, Diagnostics> {
    let working = context.progress("compiling users/");
    let compiled = compile(&context.root)?;
    context.warn(compiled.warnings);
    let existing = timed("read out/", || write::read_existing(&context.root))?;
    check::refuse_impossible_changes(&existing.home_volume_tree(), &compiled.tree)?;
    context.warn(write::foreign_warnings(&existing));
    let changes = timed("compare", || write::changes(&existing, &compiled.tree));
    if !check_only {
        timed("write", || write::apply(&context.root, &existing, &compiled.tree, &changes))?;
    }
    drop(working);
    let users = compiled.users.len();
    for removed in removed_bundles(&changes, &compiled.users) {
        context.status(&format!(
            "note: users/{removed}.toml is gone, so its bundle leaves out/; its home volume stays in the cluster (prune is disabled for it)"
        ));
    }
    if check_only {
        if changes.is_empty() {
            context.status(&format!("out/ is up to date ({users} users)"));
            return Ok(Outcome::Clean);
        }
        for line in changes.lines() {
            println!("{line}");
        }
        context.status(&format!("out/ is stale: {} files would change; run `devbox-gen build`", changes.count()));
        return Ok(Outcome::Changed);
    }
    if changes.is_empty() {
        context.status(&format!("out/ is up to date ({users} users)"));
    } else {
        context.status(&format!(
            "built {users} users into out/: {} created, {} updated, {} removed",
            changes.created.len(),
            changes.updated.len(),
            changes.removed.len()
        ));
    }
    Ok(Outcome::Clean)
}

/// Users whose bundle leaves out/: their user file is gone (a bundle that only moves to another
/// cluster's directory still has its user).
fn removed_bundles<'a>(changes: &'a write::Changes, users: &[String]) -> Vec<&'a str> {
    let removed: std::collections::BTreeSet<&str> =
        changes.removed.iter().filter_map(|p| emit::bundle_of(p)).filter(|user| !users.iter().any(|u| u == user)).collect();
    removed.into_iter().collect()
}
