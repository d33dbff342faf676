//! The whole compilation, readable top to bottom, like Tanka's `process.Process`:
//!
//! 1. [`read`]: devbox.toml and users/*.toml into typed values with source spans;
//! 2. [`validate`](mod@validate): every rule, every file, every problem;
//! 3. [`resolve`](mod@resolve): defaults merged into one complete box per user, and the
//!    totals of every box held to devbox.toml's `[quota]` ([`quota`]);
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
//! the compiled tree is the same either way. This module reads but never writes: a build into
//! a new `out/` passes a [`Sink`] that writes each bundle as soon as it is emitted, and the
//! compilation only hands the files over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cache::{self, BuildCache, BundleRecord, Digest, StoredCache};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{self, OutTree};
use crate::read::{self, ConfigRepo};
use rayon::prelude::*;

use crate::render::{self, Template};
use crate::resolve::ResolvedBox;
use crate::write::Existing;
use crate::{Context, check, delivery, quota, resolve, validate};

/// The result of a successful compilation.
#[derive(Debug)]
pub struct Compiled {
    /// The files of the boxes that were rendered, and of `out/_gitops/`.
    pub tree: OutTree,
    /// Files of the boxes that were not rendered again: `out/` already holds them, unchanged.
    pub(crate) kept: BTreeSet<String>,
    /// Files handed to the build's [`Sink`] as they were emitted (not in `tree`).
    pub(crate) staged: BTreeSet<String>,
    /// What each user file rendered to, for the next build's cache.
    pub(crate) bundles: BTreeMap<String, BundleRecord>,
    /// The names of the compiled boxes, sorted.
    pub(crate) users: Vec<String>,
    /// Warnings found on the way (they do not stop the build).
    pub(crate) warnings: Diagnostics,
}

/// Compiles the config repo at the context's root into the tree `out/` should hold, and
/// returns it with the repo as read (to locate what a later check refuses).
/// Every box is rendered: nothing is taken from an earlier build.
pub(crate) fn compile(context: &Context) -> Result<(ConfigRepo, Compiled), Diagnostics> {
    let (repo, found) = context.timed("read", || read::read(&context.root))?;
    let compiled = compile_stages(context, &repo, found, None, None)?;
    Ok((repo, compiled))
}

/// Stages 2 to 7 on a config repo already read (by [`read()`](crate::read()) or
/// [`from_texts`](crate::from_texts)); `found` holds what reading reported. Every box is
/// rendered, `out/` is neither read nor written, and the result is all in memory.
pub fn compile_repo(repo: &ConfigRepo, found: Diagnostics) -> Result<Compiled, Diagnostics> {
    compile_stages(&Context::new(repo.root.clone()), repo, found, None, None)
}

/// Compiles the config repo at `root` against `out/` as it is now, as `build --check` and
/// `diff` do: boxes that the build cache and `out/` vouch for are kept, not rendered. Nothing
/// is written.
pub fn compile_against_out(root: &Path) -> Result<Against, Diagnostics> {
    let context = Context::new(root.to_path_buf());
    read_against_out(&context)?.compile(&context, None)
}

/// Stage 1 for a compilation against `out/`: the config repo, and the build cache and `out/`
/// as they are now. The command looks at `out/` (is it new?) before it compiles, to decide
/// where the bundles go ([`Before::compile`]'s `sink`).
pub(crate) fn read_against_out(context: &Context) -> Result<Before, Diagnostics> {
    let root = context.root.as_path();
    // The cache file is parsed while users/ is read: only deciding whether it applies needs
    // the template that devbox.toml names.
    let (read, stored) = context.timed("read (and parse the cache)", || rayon::join(|| read::read(root), || StoredCache::read(root)));
    let (repo, found) = read?;
    // A missing template is reported by compile_stages, after the user files' own problems.
    let cache = match template_of(&repo) {
        Ok(template) => BuildCache::from_stored(stored, &template),
        Err(_) => BuildCache::default(),
    };
    let existing = context.timed("read out/", || crate::write::read_existing(root, &cache))?;
    Ok(Before { repo, found, cache, existing })
}

/// The config repo as read, and what an earlier build left that this one may reuse.
pub(crate) struct Before {
    repo: ConfigRepo,
    /// What reading reported.
    found: Diagnostics,
    cache: BuildCache,
    existing: Existing,
}

impl Before {
    /// Whether `out/` holds no generated file yet (a first build, a fresh clone).
    pub(crate) fn out_is_new(&self) -> bool {
        self.existing.generated.is_empty()
    }

    /// Stages 2 to 7, against `out/` as read. With `sink`, each rendered bundle's files go to
    /// it as soon as they are emitted, instead of into [`Compiled::tree`].
    pub(crate) fn compile(self, context: &Context, sink: Option<Sink>) -> Result<Against, Diagnostics> {
        let Before { repo, found, cache, existing } = self;
        let compiled = compile_stages(context, &repo, found, Some(&Earlier { cache: &cache, existing: &existing }), sink)?;
        Ok(Against { compiled, existing, cache, repo })
    }
}

/// Where a build that streams puts each rendered bundle's files (`out/`-relative path,
/// contents) as soon as they are emitted. It is called from the rayon workers, one bundle at a
/// time, in no particular order; `build` passes one that writes into the staging directory of
/// a new `out/` ([`crate::write::Staging::write_bundle`]), so the writing overlaps the
/// compiling and the tree is never all in memory.
pub(crate) type Sink<'a> = &'a (dyn Fn(&[(String, String)]) -> Result<(), Diagnostics> + Sync);

/// A compilation against `out/`, with what it was compiled against.
pub struct Against {
    /// The compiled tree; its `kept` files are those `out/` holds already.
    pub compiled: Compiled,
    pub(crate) existing: Existing,
    pub(crate) cache: BuildCache,
    /// The config repo it was compiled from, for diagnostics that point into it.
    pub(crate) repo: ConfigRepo,
}

/// What an earlier build left that this one may reuse: its cache, and `out/` as it is now.
struct Earlier<'a> {
    cache: &'a BuildCache,
    existing: &'a Existing,
}

impl Earlier<'_> {
    /// The files of this user's bundle, if the last build rendered them from the same inputs
    /// and `out/` still holds them byte for byte.
    fn reusable(&self, source: &str, fingerprint: Digest) -> Option<&BundleRecord> {
        let record = self.cache.bundle(source, fingerprint)?;
        let holds = |path: &String| self.cache.recorded(path).is_some_and(|digest| self.existing.holds(path, digest));
        record.files.iter().all(holds).then_some(record)
    }
}

/// Stages 1 to 3 only: every box (or those of `only`, user files relative to `root`), resolved,
/// for the commands that need the boxes' settings but not their manifests (`validate`,
/// `show --input`). Returns the warnings beside the boxes.
pub(crate) fn resolve_boxes(root: &Path, only: Option<&[std::path::PathBuf]>) -> Result<(Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let (_, boxes, warnings) = resolve_repo(root, only)?;
    Ok((boxes, warnings))
}

/// Stages 1 to 3 for `validate`: [`resolve_boxes`], and the totals held to `[quota]` as
/// `build` holds them. Named files (`only`, each once, devbox.toml not among the user files)
/// are also held to the other user files of the repo: the names that must be unique, and the
/// totals of every box when the others resolve.
pub(crate) fn validate_boxes(root: &Path, only: Option<&[std::path::PathBuf]>) -> Result<(Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let Some(only) = only else {
        let (repo, boxes, warnings) = resolve_repo(root, None)?;
        refuse_over_quota(&repo, &boxes)?;
        return Ok((boxes, warnings));
    };
    // Each file once; devbox.toml, which every read includes, is not a user file.
    let settings = std::fs::canonicalize(root.join("devbox.toml")).ok();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for file in only {
        let canonical = std::fs::canonicalize(root.join(file)).ok();
        let known = files.iter().any(|f| std::fs::canonicalize(root.join(f)).ok().is_some_and(|c| Some(c) == canonical));
        if !known && (canonical.is_none() || canonical != settings) {
            files.push(file.clone());
        }
    }
    let (repo, boxes, mut warnings) = resolve_repo(root, Some(&files))?;
    // The files are held to the other user files of the repo too: a hostname or key Secret
    // that another claims, and the namespace's totals, which every box counts towards.
    let Ok((mut whole, _)) = read::read(root) else { return Ok((boxes, warnings)) };
    for (name, parsed) in &repo.users {
        whole.users.retain(|(other, _)| other != name);
        whole.users.push((name.clone(), parsed.clone()));
    }
    whole.users.sort_by(|a, b| a.0.cmp(&b.0));
    let mut conflicts = Diagnostics::default();
    for (name, _) in &repo.users {
        conflicts.extend(validate::conflicts_of(&whole, name));
    }
    if conflicts.has_errors() {
        return Err(conflicts.sorted());
    }
    warnings.extend(conflicts);
    // Only when every other file resolves: their own problems are theirs to hear about.
    if let Ok(all) = resolve::resolve(&whole) {
        refuse_over_quota(&whole, &all)?;
    }
    Ok((boxes, warnings))
}

/// The boxes' totals held to `[quota]`.
fn refuse_over_quota(repo: &ConfigRepo, boxes: &[ResolvedBox]) -> Result<(), Diagnostics> {
    match pod_overhead(repo, boxes) {
        Ok(overheads) => quota::refuse_breaches(repo, boxes, overheads),
        // The template fails for the box the overhead is measured on: say which user files
        // it fails for, as `build` would, unless it fails for that variant alone.
        Err(probe) => {
            render_as_running(repo, &boxes.iter().collect::<Vec<_>>())?;
            Err(probe)
        }
    }
}

/// [`resolve_boxes`], with the config repo it read: for the commands that go on to render some
/// of the boxes ([`render_as_running`]) or read devbox.toml.
pub(crate) fn resolve_repo(
    root: &Path,
    only: Option<&[std::path::PathBuf]>,
) -> Result<(ConfigRepo, Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let (repo, mut found) = read::read_selected(root, only)?;
    found.extend(validate::validate(&repo));
    if found.has_errors() {
        return Err(found.sorted());
    }
    let boxes = resolve::resolve(&repo)?;
    Ok((repo, boxes, found))
}

/// Stages 1 to 3 for a command about one user (`wake`, `secrets`, `ssh-config NAME`, `show
/// --input NAME`): only devbox.toml and that user's file are read and validated, so a
/// teammate's broken file does not stop someone from waking her own box. A name without a
/// file reads every file, so that the error can suggest the nearest name.
pub(crate) fn resolve_user(root: &Path, name: &str) -> Result<(ConfigRepo, Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let file = std::path::PathBuf::from(format!("users/{name}.toml"));
    let is_a_user_file = crate::validate::is_user_name(name) && root.join(&file).symlink_metadata().is_ok_and(|m| m.is_file());
    resolve_repo(root, is_a_user_file.then_some(std::slice::from_ref(&file)))
}

/// Stage 4 alone, for the commands that read back what the template decides
/// ([`render::contract`]: `ssh-config`'s port, `secrets`' mounts): the objects of each box, in
/// order, rendered as if the box were running (a stopped or archived box runs with the same
/// settings once it is back; an archived bundle holds no pod). Nothing is checked or written.
pub(crate) fn render_as_running(repo: &ConfigRepo, boxes: &[&ResolvedBox]) -> Result<Vec<Vec<render::Object>>, Diagnostics> {
    if boxes.is_empty() {
        return Ok(Vec::new());
    }
    let template = template_of(repo)?;
    let root = repo.root.canonicalize().unwrap_or_else(|_| repo.root.clone());
    let rendered: Vec<Result<Vec<render::Object>, (String, render::TemplateFailure)>> = boxes
        .par_iter()
        .map(|resolved| {
            let running = ResolvedBox { state: crate::model::State::Running, ..(*resolved).clone() };
            match render::render_box(running, &template, &root) {
                Ok(rendered) => Ok(rendered.objects),
                Err(failure) => Err((resolved.source.clone(), failure)),
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

/// What each running pod requests beyond its box's `resources`, read off one box rendered by
/// the repo's template; nothing is rendered when no `[quota]` counts CPU or memory.
pub(crate) fn pod_overhead(repo: &ConfigRepo, boxes: &[ResolvedBox]) -> Result<quota::Overheads, Diagnostics> {
    let counted = repo.settings.as_ref().is_some_and(|s| quota::Overhead::matters(&s.value.quota));
    if !counted {
        return Ok(quota::Overheads::NONE);
    }
    measure_overhead(repo, boxes)
}

/// [`pod_overhead`], whatever `[quota]` says: for the totals `list` shows.
pub(crate) fn measure_overhead(repo: &ConfigRepo, boxes: &[ResolvedBox]) -> Result<quota::Overheads, Diagnostics> {
    let Some(probe) = boxes.iter().find(|b| b.state == crate::model::State::Running) else {
        return Ok(quota::Overheads::NONE);
    };
    // The same box twice: without and with an idle window, for the idle container's share.
    let plain = ResolvedBox { idle: resolve::ResolvedIdle { after: "never".into(), after_seconds: None }, schedule: None, ..probe.clone() };
    let autostop = ResolvedBox { idle: resolve::ResolvedIdle { after: "1h".into(), after_seconds: Some(3600) }, ..plain.clone() };
    let objects = render_as_running(repo, &[&plain, &autostop])?;
    let measure = |i: usize, probe: &ResolvedBox| quota::Overhead::measure(probe, objects.get(i).map_or(&[][..], Vec::as_slice));
    Ok(quota::Overheads { plain: measure(0, &plain), autostop: measure(1, &autostop) })
}

/// Stages 2 to 7 on a config repo already read; `found` holds what reading reported. Boxes
/// that `earlier` vouches for are not rendered again; with `sink`, bundles go there as they are
/// emitted.
fn compile_stages(
    context: &Context,
    repo: &ConfigRepo,
    mut found: Diagnostics,
    earlier: Option<&Earlier>,
    sink: Option<Sink>,
) -> Result<Compiled, Diagnostics> {
    let root = repo.root.as_path();
    found.extend(context.timed("validate", || validate::validate(repo)));
    if found.has_errors() {
        return Err(found.sorted());
    }
    let mut warnings = found;
    let boxes = context.timed("resolve", || resolve::resolve(repo))?;
    // Before the cache decides what to render: the totals are of every box, kept or not. A
    // template that fails for the box the overhead is measured on is reported by the render
    // below instead, which names every user file it fails for, not that one alone.
    let overheads = pod_overhead(repo, &boxes);
    if let Ok(overheads) = overheads {
        quota::refuse_breaches(repo, &boxes, overheads)?;
    }
    let template = template_of(repo)?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let users: Vec<String> = boxes.iter().map(|b| b.name.clone()).collect();
    let shared = SharedObjects::default();
    let outcomes: Vec<BoxOutcome> = context.timed("render+check+emit", || {
        boxes
            .into_par_iter()
            .map(|resolved| {
                let fingerprint = cache::fingerprint(&resolved);
                match earlier.and_then(|earlier| earlier.reusable(&resolved.source, fingerprint)) {
                    Some(record) => BoxOutcome::Kept(record.clone()),
                    None => compile_box(resolved, fingerprint, &template, &root, &shared, earlier, sink),
                }
            })
            .collect()
    });
    let mut tree = OutTree::default();
    // Gathered, then sorted once: at 10,000 boxes each holds up to 100,000 paths, which a set
    // would take one by one.
    let mut kept = Vec::new();
    let mut staged = Vec::new();
    let mut unwritable = Diagnostics::default();
    let mut bundles = BTreeMap::new();
    let mut reused = 0;
    let mut failures = Vec::new();
    let mut invalid = Vec::new();
    let described = template.describe(&root);
    for outcome in outcomes {
        match outcome {
            BoxOutcome::Emitted { changed, unchanged, record } => {
                if sink.is_some() {
                    staged.extend(record.files.iter().cloned());
                }
                tree.files.extend(changed);
                kept.extend(unchanged);
                bundles.insert(record.delivered.source.clone(), record);
            }
            BoxOutcome::Kept(record) => {
                reused += 1;
                kept.extend(record.files.iter().cloned());
                bundles.insert(record.delivered.source.clone(), record);
            }
            BoxOutcome::TemplateFailed { source, failure } => failures.push((source, failure)),
            BoxOutcome::Unwritable(diagnostics) => unwritable.extend(diagnostics),
            BoxOutcome::Invalid { source, problems } => invalid.push((source, problems)),
        }
    }
    if context.verbose && earlier.is_some() {
        let bundles = crate::text::plural(bundles.len(), "bundle", "bundles");
        crate::stdio::status_line(format_args!("cache: {reused} of {bundles} unchanged since the last build, not rendered again"));
    }
    if !failures.is_empty() {
        return Err(render::failures_to_diagnostics(failures, &template, &root));
    }
    // Every box rendered, yet the variants the overhead is measured on did not.
    overheads?;
    if !invalid.is_empty() {
        return Err(check::invalid_bundles_to_diagnostics(invalid, &described));
    }
    let claims = bundles.values().map(|r| (r.delivered.source.as_str(), r.delivered.cluster.as_deref(), r.objects.as_slice()));
    let shared_objects = check::objects_in_two_bundles(claims);
    if shared_objects.has_errors() {
        return Err(shared_objects);
    }
    if unwritable.has_errors() {
        return Err(unwritable);
    }
    // Every box's record holds its check warnings, rendered now or kept from the last build.
    let bundle_warnings =
        bundles.values().flat_map(|record| record.warnings.iter().map(|w| (record.delivered.source.clone(), w.clone()))).collect();
    warnings.extend(check::bundle_warnings_to_diagnostics(bundle_warnings, &described));
    let delivered: Vec<&delivery::Delivered> = bundles.values().map(|record| &record.delivered).collect();
    tree.files.extend(context.timed("delivery", || delivery::emit(&repo.settings(), &delivered)));
    let (kept, staged) = (kept.into_iter().collect(), staged.into_iter().collect());
    Ok(Compiled { tree, kept, staged, bundles, users, warnings })
}

enum BoxOutcome {
    /// Rendered: the files `out/` does not hold yet (empty when they went to the sink), and
    /// the paths of those it holds byte for byte.
    Emitted {
        changed: Vec<(String, String)>,
        unchanged: Vec<String>,
        record: BundleRecord,
    },
    Kept(BundleRecord),
    TemplateFailed {
        source: String,
        failure: render::TemplateFailure,
    },
    /// The sink refused the bundle's files.
    Unwritable(Diagnostics),
    Invalid {
        source: String,
        problems: Vec<String>,
    },
}

/// The objects every box of a namespace renders alike (the scripts ConfigMap), each written
/// once: the first box to render one emits its file, the others check that theirs is the same
/// object and only record the file's digest (each bundle's cache record names every file it
/// needs, so the file stays while any box that needs it is kept).
#[derive(Default)]
struct SharedObjects(std::sync::Mutex<std::collections::HashMap<String, SharedFile>>);

struct SharedFile {
    object: render::Object,
    /// The user file of the box that rendered it first, to name in a conflict.
    source: String,
    digest: Digest,
}

/// What a box's shared objects add to its files.
#[derive(Default)]
struct Claimed {
    /// Files this box is the first to render: to write.
    new: Vec<(String, String)>,
    /// Every shared file the box needs, with its digest, for its cache record.
    needed: Vec<(String, Digest)>,
}

impl SharedObjects {
    /// Takes the box's shared objects out of `rendered`, leaving those it is the first to
    /// render (for the check stage) and returning their files. An object that another box of
    /// the namespace rendered differently is a template bug, reported as the box's problem.
    fn claim(&self, rendered: &mut render::RenderedBox) -> Result<Claimed, String> {
        let mut claimed = Claimed::default();
        let mut first = Vec::new();
        for object in std::mem::take(&mut rendered.shared) {
            let path = emit::shared_path(&rendered.resolved, &object);
            // Poisoned only by a panic elsewhere, which aborts the build anyway.
            let mut files = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match files.get(&path) {
                Some(known) if known.object == object => claimed.needed.push((path, known.digest)),
                Some(known) => {
                    return Err(format!(
                        "{} is rendered differently for {} and for {}: an object marked `{}: {}` must be the same in every box of the namespace",
                        check::object_id(&object),
                        known.source,
                        rendered.resolved.source,
                        render::SCOPE_ANNOTATION,
                        render::NAMESPACE_SCOPE,
                    ));
                }
                None => {
                    let text = emit::shared_text(&object);
                    let digest = Digest::of(text.as_bytes());
                    files.insert(path.clone(), SharedFile { object: object.clone(), source: rendered.resolved.source.clone(), digest });
                    claimed.needed.push((path.clone(), digest));
                    claimed.new.push((path, text));
                    first.push(object);
                }
            }
        }
        rendered.shared = first;
        Ok(claimed)
    }
}

/// Render → check → emit for one box. Files `out/` already holds byte for byte are not kept
/// in memory (a `build --check` on a fresh clone holds only what changed).
fn compile_box(
    resolved: ResolvedBox,
    fingerprint: Digest,
    template: &Template,
    root: &Path,
    shared: &SharedObjects,
    earlier: Option<&Earlier>,
    sink: Option<Sink>,
) -> BoxOutcome {
    let source = resolved.source.clone();
    let mut rendered = match render::render_box(resolved, template, root) {
        Ok(rendered) => rendered,
        Err(failure) => return BoxOutcome::TemplateFailed { source, failure },
    };
    // Before the claim, which leaves a shared object only with the first box to render it.
    let warnings = check::unemitted_config_maps(&rendered);
    let claimed = match shared.claim(&mut rendered) {
        Ok(claimed) => claimed,
        Err(problem) => return BoxOutcome::Invalid { source, problems: vec![problem] },
    };
    let problems = check::check_box(&rendered);
    if !problems.is_empty() {
        return BoxOutcome::Invalid { source, problems };
    }
    let mut files = emit::emit_box(&rendered);
    let largest_file = files.iter().map(|(_, text)| text.len()).max().unwrap_or(0);
    let problems = check::too_big_to_apply(&rendered.objects, largest_file);
    if !problems.is_empty() {
        return BoxOutcome::Invalid { source, problems };
    }
    let paths = files.iter().map(|(path, _)| path).chain(claimed.needed.iter().map(|(path, _)| path)).cloned().collect();
    // Hashed only to compare with an earlier out/: a file written is hashed as it is written.
    let on_disk: Vec<String> = match earlier {
        Some(earlier) => files
            .iter()
            .map(|(path, text)| (path, Digest::of(text.as_bytes())))
            .chain(claimed.needed.iter().map(|(path, digest)| (path, *digest)))
            .filter(|(path, digest)| earlier.existing.holds(path, *digest))
            .map(|(path, _)| path.clone())
            .collect(),
        None => Vec::new(),
    };
    files.extend(claimed.new);
    let objects = rendered.objects.iter().map(check::object_id).collect();
    let record = BundleRecord { fingerprint, files: paths, delivered: delivery::Delivered::of(&rendered), objects, warnings };
    if let Some(sink) = sink {
        return match sink(&files) {
            Ok(()) => BoxOutcome::Emitted { changed: Vec::new(), unchanged: Vec::new(), record },
            Err(diagnostics) => BoxOutcome::Unwritable(diagnostics),
        };
    }
    let changed = files.into_iter().filter(|(path, _)| !on_disk.contains(path)).collect();
    BoxOutcome::Emitted { changed, unchanged: on_disk, record }
}

/// The template devbox.toml names, or the embedded one.
pub(crate) fn template_of(repo: &ConfigRepo) -> Result<Template, Diagnostics> {
    let Some(settings) = &repo.settings else { return Ok(Template::Embedded) };
    let Some(relative) = &settings.value.template else { return Ok(Template::Embedded) };
    let path = repo.root.join(relative);
    let (what, label) = match path.symlink_metadata() {
        Ok(m) if m.is_file() => return Ok(Template::File(path.canonicalize().unwrap_or(path))),
        Ok(m) if m.is_dir() => ("is a directory", "not a file"),
        Ok(m) if m.is_symlink() => ("is a symbolic link, which devbox-gen does not follow", "a link"),
        Ok(_) => ("is not a file", "not a file"),
        Err(_) => ("does not exist", "no such file"),
    };
    Err(Diagnostic::error(format!("template `{relative}` {what}"))
        .at(&settings.source, settings.source.value_span("template"), label)
        .help("give the path of the template file relative to devbox.toml, like `templates/devbox.jsonnet`, or remove `template` to use the embedded default")
        .into())
}
