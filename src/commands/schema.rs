//! `devbox-gen schema [--check]`: the JSON Schemas editors use, written from the Rust types.

use std::fs;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::schema;
use crate::{Context, Outcome};

pub(super) fn run(context: &mut Context, check_only: bool) -> Result<Outcome, Diagnostics> {
    crate::read::require_config_repo(&context.root)?;
    let dir = context.root.join("schema");
    let mut stale = Vec::new();
    for (file, text) in schema::files() {
        let path = dir.join(file);
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push((file, path, text));
        }
    }
    if stale.is_empty() {
        context.status("schema/ is up to date");
        return Ok(Outcome::Clean);
    }
    if check_only {
        let lines: String = stale.iter().map(|(file, _, _)| format!("update schema/{file}\n")).collect();
        crate::stdio::print(lines)?;
        context.status("schema/ is stale; run `devbox-gen schema`");
        return Ok(Outcome::Changed);
    }
    let links: Vec<Diagnostic> = stale
        .iter()
        .filter_map(|(file, _, _)| crate::read::link_on_the_way(&context.root, &format!("schema/{file}")))
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|link| crate::read::refuse_link(link))
        .collect();
    if !links.is_empty() {
        return Err(Diagnostics(links));
    }
    let fail = |e: std::io::Error, path: &std::path::Path| -> Diagnostics {
        let help = if dir.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            "schema/ holds the schemas: move the file named `schema` away, and run `devbox-gen schema` again"
        } else {
            "check that the config repo is writable"
        };
        Diagnostic::error(format!("cannot write {}: {e}", path.display())).in_path(path.display().to_string()).help(help).into()
    };
    fs::create_dir_all(&dir).map_err(|e| fail(e, &dir))?;
    for (file, path, text) in stale {
        crate::file::replace(&path, &text).map_err(|e| fail(e, &path))?;
        context.status(&format!("wrote schema/{file}"));
    }
    Ok(Outcome::Clean)
}
