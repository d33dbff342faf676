//! `devbox-gen build [--check]`: compile, refuse what Kubernetes cannot apply, then write
//! (or, with `--check`, only list what would change).
//!
//! The build cache ([`crate::cache`]) lets a build skip the boxes whose inputs and files have
//! not changed since the last one; `--check` uses it too, but never writes it.

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::{self, BuildLock, Seen};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::git::Failure;
use crate::model::GitOps;
use crate::pipeline::{self, Against, Compiled, Sink};
use crate::read::{self, ConfigRepo, LeavingLink};
use crate::text::plural;
use crate::write::{self, Changes, Existing, Staging};
use crate::{Context, Outcome, check, emit, render};

pub(super) fn run(context: &mut Context, check_only: bool) -> Result<Outcome, Diagnostics> {
    if !check_only {
        crate::interrupt::clean_up_on_signals();
    }
    // Without a config repo there is nothing to lock: reading says what is wrong with the path.
    let _lock = if check_only || !context.root.is_dir() {
        None
    } else {
        let waiting = || context.status("waiting for another build of this repo to finish (it holds .devbox-gen/lock)");
        Some(BuildLock::acquire(&context.root, waiting).map_err(|error| {
            let help = if error.kind() == std::io::ErrorKind::InvalidInput {
                "devbox-gen writes only inside the config repo: delete it (it only holds a cache) and build again"
            } else {
                "devbox-gen keeps its build cache and lock in .devbox-gen/ beside out/: make the config repo writable"
            };
            Diagnostics::from(
                Diagnostic::error(format!("cannot lock the build: {error}")).in_path(format!("{}/lock", cache::CACHE_DIR)).help(help),
            )
        })?)
    };
    // git answers on its own thread while the boxes compile.
    let links = {
        let root = context.root.clone();
        std::thread::spawn(move || read::links_leaving_the_repository(&root))
    };
    let working = context.progress("compiling users/");
    let before = pipeline::read_against_out(context)?;
    // Into an `out/` that holds nothing generated yet, each bundle is written into the new
    // `out/` as soon as it is emitted: the writing overlaps the compiling, and the tree is
    // never all in memory.
    let staging = if !check_only && before.out_is_new() { Some(Staging::new(&context.root)?) } else { None };
    let write_bundle = staging.as_ref().map(|staging| |files: &[(String, String)]| staging.write_bundle(files));
    let sink: Option<Sink> = match &write_bundle {
        Some(write) => Some(write),
        None => None,
    };
    let Against { mut compiled, existing, cache, repo } = before.compile(context, sink)?;
    context.warn(std::mem::take(&mut compiled.warnings));
    let rendered: BTreeSet<&str> = compiled.tree.files.keys().filter_map(|path| emit::bundle_of(path)).collect();
    let homes_before = existing.home_volume_tree(&rendered);
    check::refuse_impossible_changes(&homes_before, &compiled.tree, &repo)?;
    context.warn(Diagnostics(check::warn_namespace_moves(&homes_before, &compiled.tree).into_iter().collect()));
    let (warnings, foreign_manifests) = write::foreign_files(&existing, &compiled);
    context.warn(warnings);
    let (links, unread) = match links.join().unwrap_or(Ok(Vec::new())) {
        Ok(links) => (links, None),
        Err(repository) => (Vec::new(), Some(repository)),
    };
    let leaving_links = refused_by_argo_cd(links, &repo);
    context.warn(Diagnostics(leaving_links.iter().map(leaving_link_warning).collect()));
    if let Some(repository) = unread.filter(|_| argo_cd_may_read(&repo)) {
        context.warn(Diagnostics(vec![
            Diagnostic::warning(format!(
                "git refuses to read {repository}, which another user owns: links Argo CD refuses were not looked for"
            ))
            .help(Failure::trust_help(&repository)),
        ]));
    }
    let changes = context.timed("compare", || write::changes(&existing, &compiled));
    if !check_only {
        let written = context.timed("write", || write::apply(&context.root, &existing, &compiled, &changes, staging))?;
        let files = files_now(&existing, &changes, written);
        context.timed("save cache", || {
            cache.save(&context.root, files, std::mem::take(&mut compiled.bundles), render::imported(), render::passed_over())
        });
    }
    drop(working);
    report(context, &compiled, &changes, check_only, &foreign_manifests, leaving_links.len())
}

/// The links that stop Argo CD from reading the repository, where Argo CD may read it: with
/// `gitops` naming it, or with no `gitops` (the team applies out/ its own way).
fn refused_by_argo_cd(links: Vec<LeavingLink>, repo: &ConfigRepo) -> Vec<LeavingLink> {
    if argo_cd_may_read(repo) { links } else { Vec::new() }
}

fn argo_cd_may_read(repo: &ConfigRepo) -> bool {
    let engines = repo.settings().gitops;
    engines.is_empty() || engines.contains(&GitOps::Argocd)
}

fn leaving_link_warning(link: &LeavingLink) -> Diagnostic {
    Diagnostic::warning(format!("{} is a symbolic link to `{}`, outside the git repository", link.path, link.target.escape_debug()))
        .in_path(link.path.clone())
        .help("Argo CD's repo-server refuses a whole repository that holds a link that is absolute or leads outside it (\"repository contains out-of-bounds symlinks\"), so no Application of it syncs; `build --check` fails while it is there")
        .help("replace the link with the file itself, or with a relative link that stays inside the repository")
}

/// Every generated file of `out/` after writing, as the next build's cache should know it.
fn files_now(existing: &Existing, changes: &Changes, written: BTreeMap<String, Seen>) -> BTreeMap<String, Seen> {
    if existing.generated.is_empty() {
        return written; // a new out/: what was written is all there is
    }
    let gone: BTreeSet<&String> = changes.removed.iter().collect();
    let mut files: BTreeMap<String, Seen> =
        existing.generated.iter().filter(|(path, _)| !gone.contains(path)).map(|(path, seen)| (path.clone(), *seen)).collect();
    files.extend(written);
    files
}

fn report(
    context: &Context,
    compiled: &Compiled,
    changes: &Changes,
    check_only: bool,
    foreign_manifests: &[String],
    leaving_links: usize,
) -> Result<Outcome, Diagnostics> {
    let users = compiled.users.len();
    for removed in removed_bundles(changes, &compiled.users) {
        context.status(&format!(
            "note: users/{removed}.toml is gone, so its bundle leaves out/; its home volume stays in the cluster (prune is disabled for it)"
        ));
    }
    if check_only {
        if changes.is_empty() && foreign_manifests.is_empty() && leaving_links == 0 {
            context.status(&format!("out/ is up to date ({})", plural(users, "user", "users")));
            return Ok(Outcome::Clean);
        }
        let lines: String = changes
            .lines()
            .into_iter()
            .chain(foreign_manifests.iter().map(|path| format!("foreign out/{path}")))
            .map(|line| line + "\n")
            .collect();
        crate::stdio::print(lines)?;
        if !changes.is_empty() {
            context.status(&format!(
                "out/ is stale: {}; run `devbox-gen build`",
                plural(changes.count(), "file would change", "files would change")
            ));
        }
        // A build keeps them, so only a person can clear this: Argo CD applies every manifest
        // of a directory without a kustomization.yaml (a new one under out/, out/_gitops/...),
        // and so does Flux, which generates one listing them all.
        if !foreign_manifests.is_empty() {
            let (them, they) = if foreign_manifests.len() == 1 { ("it", "it") } else { ("them", "they") };
            context.status(&format!(
                "out/ holds {} devbox-gen did not write, which Argo CD or Flux may apply as they are: delete {them} (a build keeps {them}), or have the template emit what {they} should hold",
                plural(foreign_manifests.len(), "manifest", "manifests"),
            ));
        }
        if leaving_links > 0 {
            context.status(&format!(
                "the repository holds {} Argo CD refuses: replace {}",
                plural(leaving_links, "link", "links"),
                if leaving_links == 1 { "it" } else { "them" }
            ));
        }
        return Ok(Outcome::Changed);
    }
    // The build keeps what it did not write, so "up to date" alone would read as a pass that
    // `build --check` then fails.
    let but = if foreign_manifests.is_empty() {
        String::new()
    } else {
        format!(
            ", but it holds {} devbox-gen did not write: `build --check` fails until a person deletes {}",
            plural(foreign_manifests.len(), "manifest", "manifests"),
            if foreign_manifests.len() == 1 { "it" } else { "them" }
        )
    };
    if changes.is_empty() {
        context.status(&format!("out/ is up to date ({}){but}", plural(users, "user", "users")));
    } else {
        context.status(&format!(
            "built {} into out/: {} created, {} updated, {} removed{but}",
            plural(users, "user", "users"),
            changes.created.len(),
            changes.updated.len(),
            changes.removed.len()
        ));
    }
    Ok(Outcome::Clean)
}

/// Users whose bundle leaves out/: their user file is gone (a bundle that only moves to another
/// cluster's directory still has its user).
fn removed_bundles<'a>(changes: &'a Changes, users: &[String]) -> Vec<&'a str> {
    let removed: BTreeSet<&str> =
        changes.removed.iter().filter_map(|p| emit::bundle_of(p)).filter(|user| !users.iter().any(|u| u == user)).collect();
    removed.into_iter().collect()
}
