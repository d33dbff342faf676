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
//! Writing (`write`) and comparing (`diff`) happen after, in the commands: the compiled tree
//! is the same either way.

use std::path::Path;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::{self, OutTree};
use crate::read::{self, ConfigRepo};
use rayon::prelude::*;

use crate::render::{self, Template};
use crate::resolve::ResolvedBox;
use crate::{check, delivery, resolve, validate};

/// The result of a successful compilation.
#[derive(Debug)]
pub struct Compiled {
    pub tree: OutTree,
    /// The names of the compiled boxes, sorted.
    pub users: Vec<String>,
    /// Warnings found on the way (they do not stop the build).
    pub warnings: Diagnostics,
}

/// Compiles the config repo at `root` into the tree `out/` should hold.
pub fn compile(root: &Path) -> Result<Compiled, Diagnostics> {
    let (repo, found) = timed("read", || read::read(root))?;
    compile_repo(&repo, found)
}

/// Set by `--verbose`: print each stage's duration.
pub static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stages 1 to 3 only: every box (or those of `only`, user files relative to `root`), resolved,
/// for the commands that need the boxes' settings but not their manifests (`validate`,
/// `secrets`, `ssh-config`, `show --input`). Returns the warnings beside the boxes.
pub fn resolve_boxes(root: &Path, only: Option<&[std::path::PathBuf]>) -> Result<(Vec<ResolvedBox>, Diagnostics), Diagnostics> {
    let (repo, mut found) = read::read_selected(root, only)?;
    found.extend(validate::validate(&repo));
    if found.has_errors() {
        return Err(found.sorted());
    }
    Ok((resolve::resolve(&repo)?, found))
}

/// Runs one stage; with `--verbose` (or `DEVBOX_GEN_TIMINGS` set), prints how long it took.
pub fn timed<T>(stage: &str, f: impl FnOnce() -> T) -> T {
    let verbose = VERBOSE.load(std::sync::atomic::Ordering::Relaxed) || std::env::var_os("DEVBOX_GEN_TIMINGS").is_some();
    if !verbose {
        return f();
    }
    let start = std::time::Instant::now();
    let result = f();
    eprintln!("timing: {stage:<18} {:>8.1} ms", start.elapsed().as_secs_f64() * 1000.0);
    result
}

/// Stages 2 to 6 on a config repo already read; `found` holds what reading reported.
pub fn compile_repo(repo: &ConfigRepo, mut found: Diagnostics) -> Result<Compiled, Diagnostics> {
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
    let outcomes: Vec<BoxOutcome> =
        timed("render+check+emit", || boxes.into_par_iter().map(|resolved| compile_box(resolved, &template, &root)).collect());
    let mut tree = OutTree::default();
    let mut delivered = Vec::with_capacity(outcomes.len());
    let mut failures = Vec::new();
    let mut invalid = Diagnostics::default();
    let described = template.describe(&root);
    for outcome in outcomes {
        match outcome {
            BoxOutcome::Emitted(files, summary) => {
                tree.files.extend(files);
                delivered.push(summary);
            }
            BoxOutcome::TemplateFailed { source, message } => failures.push((source, message)),
            BoxOutcome::Invalid { source, problems } => invalid.extend(check::problems_to_diagnostics(&source, problems, &described)),
        }
    }
    if !failures.is_empty() {
        return Err(render::failures_to_diagnostics(failures, &template, &root));
    }
    if invalid.has_errors() {
        return Err(invalid);
    }
    tree.files.extend(timed("delivery", || delivery::emit(&repo.settings(), &delivered)));
    Ok(Compiled { tree, users, warnings })
}

enum BoxOutcome {
    Emitted(Vec<(String, String)>, delivery::Delivered),
    TemplateFailed { source: String, message: String },
    Invalid { source: String, problems: Vec<String> },
}

/// Render → check → emit for one box.
fn compile_box(resolved: ResolvedBox, template: &Template, root: &Path) -> BoxOutcome {
    let source = resolved.source.clone();
    let rendered = match render::render_box(resolved, template, root) {
        Ok(rendered) => rendered,
        Err(message) => return BoxOutcome::TemplateFailed { source, message },
    };
    let problems = check::check_box(&rendered);
    if !problems.is_empty() {
        return BoxOutcome::Invalid { source, problems };
    }
    BoxOutcome::Emitted(emit::emit_box(&rendered), delivery::Delivered::of(&rendered))
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
