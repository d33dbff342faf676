//! `devbox-gen build [--check]`: compile, refuse what Kubernetes cannot apply, then write
//! (or, with `--check`, only list what would change).

use std::collections::BTreeMap;

use crate::check::{self, HomeVolume};
use crate::diagnostic::Diagnostics;
use crate::emit::OutTree;
use crate::pipeline::compile;
use crate::write;
use crate::{Context, Outcome};

pub fn run(context: &mut Context, check_only: bool) -> Result<Outcome, Diagnostics> {
    let compiled = compile(&context.root)?;
    context.warn(compiled.warnings);
    let existing = write::read_existing(&context.root)?;
    refuse_impossible_changes(&existing.tree(), &compiled.tree)?;
    context.warn(write::foreign_warnings(&existing));
    let changes = write::changes(&existing, &compiled.tree);
    let users = compiled.boxes.len();
    for removed in removed_bundles(&existing.tree(), &compiled.tree) {
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
    write::apply(&context.root, &existing, &compiled.tree, &changes)?;
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

/// Home volumes by user, from the PVC files of a tree.
pub fn home_volumes(tree: &OutTree) -> BTreeMap<String, HomeVolume> {
    let mut volumes = BTreeMap::new();
    for (path, text) in &tree.files {
        let Some((user, file)) = path.split_once('/') else { continue };
        if !file.starts_with("persistentvolumeclaim-") {
            continue;
        }
        let Ok(object) = serde_saphyr::from_str::<crate::render::Object>(text) else { continue };
        if let Some(volume) = HomeVolume::of(&object) {
            volumes.insert(user.to_string(), volume);
        }
    }
    volumes
}

fn refuse_impossible_changes(before: &OutTree, after: &OutTree) -> Result<(), Diagnostics> {
    let impossible = check::impossible_changes(&home_volumes(before), &home_volumes(after));
    if impossible.is_empty() {
        return Ok(());
    }
    Err(Diagnostics(impossible.iter().map(check::ImpossibleChange::to_diagnostic).collect()))
}

fn removed_bundles<'a>(before: &'a OutTree, after: &OutTree) -> Vec<&'a str> {
    let kept: Vec<&str> = after.bundles().collect();
    before.bundles().filter(|b| !kept.contains(b)).collect()
}
