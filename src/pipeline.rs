//! The whole compilation, readable top to bottom, like Tanka's `process.Process`:
//!
//! 1. [`read`]: devbox.toml and users/*.toml into typed values with source spans;
//! 2. [`validate`]: every rule, every file, every problem;
//! 3. [`resolve`]: defaults merged into one complete box per user;
//! 4. [`render`]: the jsonnet template, once per box;
//! 5. [`check`]: the objects are valid Kubernetes and obey the safety rules;
//! 6. [`emit`]: the bytes of every file of `out/`, in memory;
//! 7. [`delivery`]: what Argo CD and Flux need to sync the bundles (`out/_gitops/`).
//!
//! Stages 4 to 6 run per box, in parallel, so a box's objects are dropped as soon as its
//! files exist: memory holds the output, not every intermediate form of it. Stage 7 runs once,
//! on what each box left behind for it ([`delivery::Delivered`]).
//!
//! A box whose inputs are those of the last build, and whose files `out/` still holds byte for
//! byte, skips stages 4 to 6: its files are *kept* ([`Earlier`], [`crate::cache`]).
//!
//! Stage 8 happens after, in the commands: writing (`write`) or, instead, comparing (`diff`);
//! the compiled tree is the same either way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cache::{self, BuildCache, BundleRecord, Digest};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{self, OutTree};
use crate::read::{self, ConfigRepo};
use rayon::prelude::*;

use crate::render::{self, Template};
use crate::resolve::ResolvedBox;
use crate::write::{Existing, Staging};
use crate::{check, delivery, resolve, validate};

/// The result of a successful compilation.
#[derive(Debug)]
pub struct Compiled {
    /// The files of the boxes that were rendered, and of `out/_gitops/`.
    pub tree: OutTree,
    /// Files of the boxes that were not rendered again: `out/` already holds them, unchanged.
    pub kept: BTreeSet<String>,
    /// Files already written to the staging directory of a new `out/` (not in `tree`).
    pub staged: BTreeSet<String>,
    /// What each user file rendered to, for the next build's cache.
    pub bundles: BTreeMap<String, BundleRecord>,
    /// The names of the compiled boxes, sorted.
    pub users: Vec<String>,
    /// Warnings found on the way (they do not stop the build).
    pub warnings: Diagnostics,
}

/// Compiles the config repo at `root` into the tree `out/` should hold.
/// Every box is rendered: nothing is taken from an earlier build.
pub fn compile(root: &Path) -> Result<Compiled, Diagnostics> {
    let (repo, found) = timed("read", || read::read(root))?;
    compile_repo(&repo, found, None, None)
}

/// Compiles the config repo at `root` against `out/` as it is now: boxes that the build cache
/// and `out/` vouch for are kept, not rendered. Returns what `out/` holds and the cache beside
/// the result, for the command to write, compare and save. With `stage`, a build into an
/// `out/` that holds nothing generated yet writes each bundle into a staging directory as soon
/// as it is emitted, so the writing overlaps the compiling and the tree is never all in memory.
pub fn compile_against_out(root: &Path, stage: bool) -> Result<Against, Diagnostics> {
    let (repo, found) = timed("read", || read::read(root))?;
    // A missing template is reported by compile_repo, after the user files' own problems.
    let cache = match template_of(&repo) {
        Ok(template) => timed("load cache", || BuildCache::load(root, &template)),
        Err(_) => BuildCache::default(),
    };
    let existing = timed("read out/", || crate::write::read_existing(root, &cache))?;
    let staging = if stage && existing.generated.is_empty() { Some(Staging::new(root)?) } else { None };
    let compiled = compile_repo(&repo, found, Some(&Earlier { cache: &cache, existing: &existing }), staging.as_ref())?;
    Ok(Against { compiled, existing, cache, staging })
}

/// A compilation against `out/`, with what it was compiled against.
pub struct Against {
    pub compiled: Compiled,
    pub existing: Existing,
    pub cache: BuildCache,
    /// The new `out/` being assembled, when bundles were written as they were emitted.
    pub staging: Option<Staging>,
}

/// What an earlier build left that this one may reuse: its cache, and `out/` as it is now.
pub struct Earlier<'a> {
    pub cache: &'a BuildCache,
    pub existing: &'a Existing,
}

impl Earlier<'_> {
    /// The files of this user's bundle, if the last build rendered them from the same inputs
    /// and `out/` still holds them byte for byte.
    fn reusable(&self, source: &str, fingerprint: Digest) -> Option<&BundleRecord> {
        let record = self.cache.bundle(source, fingerprint)?;
        record.files.iter().all(|(path, digest)| self.existing.holds(path, *digest)).then_some(record)
    }
}

/// Set by `--verbose`: print each stage's duration.
pub static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stages 1 to 3 only: every box (or those of `only`, user files relative to `root`), resolved,
/// for the commands that need the boxes' settings but not their manifests (`validate`,
/// `show --input`). Returns the warnings beside the boxes.
pub fn resolve_boxes(root: &Path, only: Option<&[std::path::PathBuf]>) -> Result<(Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let (_, boxes, warnings) = resolve_repo(root, only)?;
    Ok((boxes, warnings))
}

/// [`resolve_boxes`], with the config repo it read: for the commands that go on to render some
/// of the boxes ([`render_as_running`]) or read devbox.toml.
pub fn resolve_repo(root: &Path, only: Option<&[std::path::PathBuf]>) -> Result<(ConfigRepo, Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let (repo, mut found) = read::read_selected(root, only)?;
    found.extend(validate::validate(&repo));
    if found.has_errors() {
        return Err(found.sorted());
    }
    let boxes = resolve::resolve(&repo)?;
    Ok((repo, boxes, found))
}

/// Stage 4 alone, for the commands that read back what the template decides
/// ([`render::contract`]: `ssh-config`'s port, `secrets`' mounts): the objects of each box, in
/// order, rendered as if the box were running (a stopped or archived box runs with the same
/// settings once it is back; an archived bundle holds no pod). Nothing is checked or written.
pub fn render_as_running(repo: &ConfigRepo, boxes: &[&ResolvedBox]) -> Result<Vec<Vec<render::Object>>, Diagnostics> {
    if boxes.is_empty() {
        return Ok(Vec::new());
    }
    let template = template_of(repo)?;
    let root = repo.root.canonicalize().unwrap_or_else(|_| repo.root.clone());
    let rendered: Vec<Result<Vec<render::Object>, (String, String)>> = boxes
        .par_iter()
        .map(|resolved| {
            let running = ResolvedBox { state: crate::model::State::Running, ..(*resolved).clone() };
            match render::render_box(running, &template, &root) {
                Ok(rendered) => Ok(rendered.objects),
                Err(message) => Err((resolved.source.clone(), message)),
            }
        })
        .collect();
    let mut objects = Vec::with_capacity(rendered.len());
    let mut failures = Vec::new();
    for result in rendered {
        match result {
            Ok(rendered) => objects.push(rendered),
            Err(failure) => failures.push(failure),
        }
    }
    if failures.is_empty() { Ok(objects) } else { Err(render::failures_to_diagnostics(failures, &template, &root)) }
}

fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed) || std::env::var_os("DEVBOX_GEN_TIMINGS").is_some()
}

/// Runs one stage; with `--verbose` (or `DEVBOX_GEN_TIMINGS` set), prints how long it took.
pub fn timed<T>(stage: &str, f: impl FnOnce() -> T) -> T {
    if !verbose() {
        return f();
    }
    let start = std::time::Instant::now();
    let result = f();
    eprintln!("timing: {stage:<18} {:>8.1} ms", start.elapsed().as_secs_f64() * 1000.0);
    result
}

/// Stages 2 to 7 on a config repo already read; `found` holds what reading reported. Boxes
/// that `earlier` vouches for are not rendered again; with `staging`, bundles are written there
/// as they are emitted.
pub fn compile_repo(
    repo: &ConfigRepo,
    mut found: Diagnostics,
    earlier: Option<&Earlier>,
    staging: Option<&Staging>,
) -> Result<Compiled, Diagnostics> {
    let root = repo.root.as_path();
    found.extend(timed("validate", || validate::validate(repo)));
    if found.has_errors() {
        return Err(found.sorted());
    }
    let warnings = found;
    let boxes = timed("resolve", || resolve::resolve(repo))?;
    let template = template_of(repo)?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let users: Vec<String> = boxes.iter().map(|b| b.name.clone()).collect();
    let outcomes: Vec<BoxOutcome> = timed("render+check+emit", || {
        boxes
            .into_par_iter()
            .map(|resolved| {
                let fingerprint = cache::fingerprint(&resolved);
                match earlier.and_then(|earlier| earlier.reusable(&resolved.source, fingerprint)) {
                    Some(record) => BoxOutcome::Kept(record.clone()),
                    None => compile_box(resolved, fingerprint, &template, &root, earlier, staging),
                }
            })
            .collect()
    });
    let mut tree = OutTree::default();
    let mut kept = BTreeSet::new();
    let mut staged = BTreeSet::new();
    let mut unwritable = Diagnostics::default();
    let mut bundles = BTreeMap::new();
    let mut delivered = Vec::with_capacity(outcomes.len());
    let mut reused = 0;
    let mut failures = Vec::new();
    let mut invalid = Diagnostics::default();
    let described = template.describe(&root);
    for outcome in outcomes {
        match outcome {
            BoxOutcome::Emitted { changed, unchanged, record } => {
                if staging.is_some() {
                    staged.extend(record.files.iter().map(|(path, _)| path.clone()));
                }
                tree.files.extend(changed);
                kept.extend(unchanged);
                delivered.push(record.delivered.clone());
                bundles.insert(record.delivered.source.clone(), record);
            }
            BoxOutcome::Kept(record) => {
                reused += 1;
                kept.extend(record.files.iter().map(|(path, _)| path.clone()));
                delivered.push(record.delivered.clone());
                bundles.insert(record.delivered.source.clone(), record);
            }
            BoxOutcome::TemplateFailed { source, message } => failures.push((source, message)),
            BoxOutcome::Unwritable(diagnostics) => unwritable.extend(diagnostics),
            BoxOutcome::Invalid { source, problems } => invalid.extend(check::problems_to_diagnostics(&source, problems, &described)),
        }
    }
    if verbose() && earlier.is_some() {
        eprintln!("cache: {reused} of {} bundles unchanged since the last build, not rendered again", delivered.len());
    }
    if !failures.is_empty() {
        return Err(render::failures_to_diagnostics(failures, &template, &root));
    }
    if invalid.has_errors() {
        return Err(invalid);
    }
    if unwritable.has_errors() {
        return Err(unwritable);
    }
    tree.files.extend(timed("delivery", || delivery::emit(&repo.settings(), &delivered)));
    Ok(Compiled { tree, kept, staged, bundles, users, warnings })
}

enum BoxOutcome {
    /// Rendered: the files `out/` does not hold yet (empty when they went to the staging
    /// directory), and the paths of those it holds byte for byte.
    Emitted {
        changed: Vec<(String, String)>,
        unchanged: Vec<String>,
        record: BundleRecord,
    },
    Kept(BundleRecord),
    TemplateFailed {
        source: String,
        message: String,
    },
    Unwritable(Diagnostics),
    Invalid {
        source: String,
        problems: Vec<String>,
    },
}

/// Render → check → emit for one box. Files `out/` already holds byte for byte are not kept
/// in memory (a `build --check` on a fresh clone holds only what changed).
fn compile_box(
    resolved: ResolvedBox,
    fingerprint: Digest,
    template: &Template,
    root: &Path,
    earlier: Option<&Earlier>,
    staging: Option<&Staging>,
) -> BoxOutcome {
    let source = resolved.source.clone();
    let rendered = match render::render_box(resolved, template, root) {
        Ok(rendered) => rendered,
        Err(message) => return BoxOutcome::TemplateFailed { source, message },
    };
    let problems = check::check_box(&rendered);
    if !problems.is_empty() {
        return BoxOutcome::Invalid { source, problems };
    }
    let files = emit::emit_box(&rendered);
    let digests: Vec<(String, Digest)> = files.iter().map(|(path, text)| (path.clone(), Digest::of(text.as_bytes()))).collect();
    let on_disk: Vec<String> = digests
        .iter()
        .filter(|(path, digest)| earlier.is_some_and(|e| e.existing.holds(path, *digest)))
        .map(|(path, _)| path.clone())
        .collect();
    let record = BundleRecord { fingerprint, files: digests, delivered: delivery::Delivered::of(&rendered) };
    if let Some(staging) = staging {
        return match staging.write_bundle(&files) {
            Ok(()) => BoxOutcome::Emitted { changed: Vec::new(), unchanged: Vec::new(), record },
            Err(diagnostics) => BoxOutcome::Unwritable(diagnostics),
        };
    }
    let changed = files.into_iter().filter(|(path, _)| !on_disk.contains(path)).collect();
    BoxOutcome::Emitted { changed, unchanged: on_disk, record }
}

/// The template devbox.toml names, or the embedded one.
pub fn template_of(repo: &ConfigRepo) -> Result<Template, Diagnostics> {
    let Some(settings) = &repo.settings else { return Ok(Template::Embedded) };
    let Some(relative) = &settings.value.template else { return Ok(Template::Embedded) };
    let path = repo.root.join(relative);
    match path.symlink_metadata() {
        Ok(m) if m.is_file() => Ok(Template::File(path.canonicalize().unwrap_or(path))),
        _ => Err(Diagnostic::error(format!("template `{relative}` does not exist"))
            .at(&settings.source, settings.source.value_span("template"), "no such file")
            .help("give a path relative to devbox.toml, or remove `template` to use the embedded default")
            .into()),
    }
}
