//! `devbox-gen diff [--base REF] [--format text|markdown|json]`: compile users/ in memory and
//! say what that changes compared with the committed `out/` (on disk, or at REF through git):
//! the risks first, then a diff per resource. Writes nothing. Refuses, like `build`, what
//! Kubernetes cannot apply.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};

use codespan_reporting::term::termcolor::{BufferWriter, ColorChoice};

use crate::cache::{BuildCache, Digest, StoredCache};
use crate::cli::Format;
use crate::diagnostic::Diagnostics;
use crate::diff::render::{self, Baseline};
use crate::diff::{self, git};
use crate::emit;
use crate::pipeline::{self, Against};
use crate::{Context, Outcome, check, write};

pub(super) fn run(context: &mut Context, base: Option<&str>, format: Format) -> Result<Outcome, Diagnostics> {
    let (plan, baseline) = match base {
        None => (against_disk(context)?, Baseline::Disk),
        Some(rev) => (against_revision(context, rev)?, Baseline::Revision(rev)),
    };

    let color = match format {
        Format::Text => crate::color_choice(context.color, std::io::stdout().is_terminal()),
        Format::Markdown | Format::Json => ColorChoice::Never,
    };
    let writer = BufferWriter::stdout(color);
    let mut buffer = writer.buffer();
    let written = match format {
        Format::Text => render::text::render(&plan, &baseline, &mut buffer),
        Format::Markdown => buffer.write_all(render::markdown::render(&plan, &baseline).as_bytes()),
        Format::Json => buffer.write_all(render::json::render(&plan, &baseline).as_bytes()),
    };
    // Rendered to memory, then printed: a closed pipe (`diff | head`) is not an error, a full
    // disk is (the PR comment would be empty).
    match written.and_then(|()| writer.print(&buffer)) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => return Err(crate::stdio::unwritable(&error)),
        _ => {}
    }
    Ok(if plan.is_empty() { Outcome::Clean } else { Outcome::Changed })
}

/// The plan against `out/` on disk. Only what differs is read and parsed: bundles the build
/// cache vouches for are not even rendered, and files whose hash matches are not read.
fn against_disk(context: &mut Context) -> Result<diff::Plan, Diagnostics> {
    let Against { mut compiled, existing, repo, .. } = pipeline::read_against_out(context)?.compile(context, None)?;
    context.warn(std::mem::take(&mut compiled.warnings));
    context.warn(write::foreign_files(&existing, &compiled).0);
    let kept_owners = compiled.kept.iter().filter_map(|path| emit::bundle_of(path)).map(str::to_string);
    let (after, same, mut unchanged_owners) =
        diff::split_unchanged(std::mem::take(&mut compiled.tree), |path, text| existing.holds(path, Digest::of(text.as_bytes())));
    unchanged_owners.extend(kept_owners);
    let before = existing.tree_of(|path| !compiled.kept.contains(path) && !same.contains(path));
    check::refuse_impossible_changes(&before, &after, &repo)?;
    let rendered: BTreeSet<&str> = after.files.keys().filter_map(|path| emit::bundle_of(path)).collect();
    check::refuse_impossible_changes(&existing.hand_made_claims(&rendered), &after, &repo)?;
    Ok(diff::plan_changes(&before, &after, &unchanged_owners, &BTreeMap::new()).priced(repo.settings().prices.as_ref()))
}

/// The plan against `out/` at a git revision: every box is rendered (the cache knows the work
/// tree, not the revision), but only the blobs that differ are read.
fn against_revision(context: &mut Context, rev: &str) -> Result<diff::Plan, Diagnostics> {
    let (repo, mut compiled) = pipeline::compile(context)?;
    context.warn(std::mem::take(&mut compiled.warnings));
    // What the work tree's out/ holds besides: what the PR adds there by hand is applied too.
    let cache = pipeline::template_of(&repo)
        .map(|template| BuildCache::from_stored(StoredCache::read(&context.root), &template))
        .unwrap_or_default();
    let existing = write::read_existing(&context.root, &cache)?;
    // Argo CD and Flux apply the branch's committed out/, not this compile: said first when
    // they differ (a hand-written manifest, kept by `build`, is said by its own risk).
    let stale = write::changes(&existing, &compiled);
    let mut out_behind: Vec<String> = stale.created.iter().chain(&stale.updated).chain(&stale.removed).cloned().collect();
    out_behind.sort();
    let (warnings, kept) = write::foreign_files(&existing, &compiled);
    context.warn(warnings);
    let hand_written = applied_hand_written(kept, &stale, &compiled, &repo.settings());
    let paths: Vec<String> = hand_written.keys().cloned().collect();
    compiled.tree.files.extend(existing.foreign_tree(&paths).files);
    let hand_written_paths: BTreeSet<String> = paths.into_iter().collect();
    let mut at = git::read_out_at(&context.root, rev, &compiled.tree, &hand_written_paths)?;
    let notes: Vec<diff::Note> = at.notes.iter().map(diff::Note::from).collect();
    context.warn(Diagnostics(std::mem::take(&mut at.notes)));
    let same: BTreeSet<&str> = at.same.iter().map(String::as_str).collect();
    let (after, _, unchanged_owners) = diff::split_unchanged(compiled.tree, |path, _| same.contains(path));
    check::refuse_impossible_changes(&at.differing, &after, &repo)?;
    let rendered: BTreeSet<&str> = after.files.keys().filter_map(|path| emit::bundle_of(path)).collect();
    let mut hand_made = at.hand_made_claims;
    hand_made.files.retain(|path, _| write::is_claim_of(path, &rendered));
    check::refuse_impossible_changes(&hand_made, &after, &repo)?;
    let mut plan = diff::plan_changes(&at.differing, &after, &unchanged_owners, &hand_written).priced(repo.settings().prices.as_ref());
    // Less what is told as hand-written already (`foreign-manifest`).
    let mut untold = stale;
    untold.removed.retain(|path| !hand_written.contains_key(path));
    plan.risks.extend(diff::risk::foreign::out_behind(&untold));
    plan.risks.sort_by(diff::risk::order);
    Ok(diff::Plan { out_behind, notes, ..plan })
}

/// The files of the branch's `out/` that no compile makes, where Argo CD or Flux reads them,
/// with who applies each: the ones `build` keeps (`kept`), and those it would delete although
/// they carry the generated header (copied by hand, or left by a stale build). They are
/// applied as they are, so `diff --base` shows and checks them as the branch's side.
fn applied_hand_written(
    mut kept: Vec<String>,
    stale: &write::Changes,
    compiled: &pipeline::Compiled,
    settings: &crate::model::DevboxConfig,
) -> BTreeMap<String, String> {
    kept.extend(stale.removed.iter().filter(|path| write::is_manifest(path)).cloned());
    let readers = crate::diff::risk::foreign::Readers {
        argocd: settings.gitops.contains(&crate::model::GitOps::Argocd),
        flux: settings.gitops.contains(&crate::model::GitOps::Flux),
        bundles: compiled.tree.files.keys().filter_map(|path| path.strip_suffix("/kustomization.yaml")).collect(),
    };
    kept.into_iter().filter_map(|path| readers.applying(&path).map(|applied| (path, applied))).collect()
}
