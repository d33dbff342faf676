//! devbox-gen compiles one TOML file per person into Kubernetes developer-box bundles that
//! Argo CD or Flux sync from Git.
//!
//! This library is the binary's, not a stable API: the command line (and the files it reads
//! and writes, docs/design.md) is the contract. What is public is what the binary, the
//! property tests (`tests/properties.rs`) and the benchmarks (`benches/stages.rs`) call, stage
//! by stage:
//!
//! - [`run`]: the whole command line, as `main` runs it;
//! - [`read()`] (a config repo on disk) or [`from_texts`] (in memory) → [`ConfigRepo`];
//! - [`validate()`] → [`Diagnostics`] ([`Diagnostic`] each, [`render_plain`] to read them);
//! - [`resolve()`] → one [`ResolvedBox`] per user, and its [`fingerprint`] (the build cache's key);
//! - [`render_box`] with a [`Template`] → [`RenderedBox`]; [`check_box`]; [`emit_box`] (and
//!   [`to_yaml`], one object);
//! - [`compile_repo`]: all of the above after reading, into a [`Compiled`] tree ([`OutTree`]);
//!   [`compile_against_out`]: the same against `out/` and the build cache ([`Against`]);
//! - [`schema_files`]: the JSON Schemas of devbox.toml and a user file.
//!
//! Inside, the modules follow the data: read → validate → resolve → render → check → emit →
//! delivery → write (or diff, which compares instead of writing), strung together by the
//! pipeline module. Each command is a thin workflow over that pipeline; [`run`] is the one
//! place that prints diagnostics and decides the exit code. Everything else is `pub(crate)`;
//! docs/architecture.md is the map.

#![warn(unreachable_pub)]

mod authorized_keys;
mod autostop;
mod cache;
mod check;
mod cli;
mod commands;
mod defaults;
mod delivery;
mod diagnostic;
mod diff;
mod emit;
mod file;
mod git;
mod interrupt;
mod model;
mod pipeline;
mod progress;
mod quantity;
mod quota;
mod read;
mod render;
mod resolve;
mod schema;
mod source;
mod stdio;
mod text;
mod validate;
mod write;

pub use crate::cache::fingerprint;
pub use crate::check::check_box;
pub use crate::diagnostic::{Diagnostic, Diagnostics, render_plain};
pub use crate::emit::{OutTree, emit_box, to_yaml};
pub use crate::pipeline::{Against, Compiled, compile_against_out, compile_repo};
pub use crate::read::{ConfigRepo, from_texts, read};
pub use crate::render::{RenderedBox, Template, render_box};
pub use crate::resolve::{ResolvedBox, resolve};
pub use crate::schema::files as schema_files;
pub use crate::validate::validate;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use codespan_reporting::term::termcolor::{self, BufferedStandardStream};

use crate::cli::{Cli, ColorChoice, MessageFormat};

/// How a command ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: `--check` found something stale, `diff` found changes.
    Changed,
}

/// Exit code for errors: bad input, a template failure, a refused change.
pub(crate) const EXIT_ERROR: u8 = 2;

/// What every command gets: where to work, what to print, and where warnings go.
pub(crate) struct Context {
    pub(crate) root: std::path::PathBuf,
    pub(crate) quiet: bool,
    /// `--verbose` (or `DEVBOX_GEN_TIMINGS` set): print each stage's duration ([`Context::timed`]).
    pub(crate) verbose: bool,
    /// `--color`, for commands that colour their stdout ([`color_choice`] decides).
    pub(crate) color: ColorChoice,
    warnings: Diagnostics,
}

impl Context {
    /// A context for `root` with the command line's defaults: not quiet, no timings (unless
    /// `DEVBOX_GEN_TIMINGS` is set), colours on a terminal only.
    fn new(root: std::path::PathBuf) -> Self {
        let verbose = std::env::var_os("DEVBOX_GEN_TIMINGS").is_some();
        Self { root, quiet: false, verbose, color: ColorChoice::Auto, warnings: Diagnostics::default() }
    }

    pub(crate) fn warn(&mut self, warnings: Diagnostics) {
        self.warnings.extend(warnings);
    }

    /// A progress line on a terminal while slow work runs (see [`progress`]), unless `--quiet`.
    pub(crate) fn progress(&self, message: &str) -> progress::Progress {
        progress::Progress::start(message, !self.quiet)
    }

    /// A progress or summary line on stderr, unless `--quiet`.
    pub(crate) fn status(&self, line: &str) {
        if !self.quiet {
            stdio::status_line(format_args!("{line}"));
        }
    }

    /// Runs one stage; with `--verbose` (or `DEVBOX_GEN_TIMINGS` set), prints how long it took.
    pub(crate) fn timed<T>(&self, stage: &str, f: impl FnOnce() -> T) -> T {
        if !self.verbose {
            return f();
        }
        let start = std::time::Instant::now();
        let result = f();
        stdio::status_line(format_args!("timing: {stage:<18} {:>8.1} ms", start.elapsed().as_secs_f64() * 1000.0));
        result
    }
}

/// Runs the command line; returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { 0 });
        }
    };
    let mut context = Context::new(cli.root.clone());
    context.quiet = cli.quiet;
    context.verbose |= cli.verbose;
    context.color = cli.color;
    let result = commands::run(&cli.command, &mut context);
    // Buffered: a report is many small pieces, and a thousand of them were as many thousand
    // writes. `render` flushes at its end, before anything else is printed.
    let mut stderr = BufferedStandardStream::stderr(color_choice(cli.color, std::io::stderr().is_terminal()));
    let mut report = |diagnostics: &Diagnostics| {
        let _ = diagnostic::render(diagnostics, &mut stderr);
        if cli.message_format == MessageFormat::Github {
            stdio::to_stderr(&diagnostic::github_annotations(diagnostics, &checkout_prefix(&cli.root, "GITHUB_WORKSPACE")));
        }
    };
    let warnings = std::mem::take(&mut context.warnings).sorted();
    if !cli.quiet && !warnings.is_empty() {
        report(&warnings);
    }
    let (outcome, errors) = match result {
        Ok(outcome) => (Some(outcome), Diagnostics::default()),
        Err(errors) => (None, errors.sorted()),
    };
    // Written whatever the outcome: `[]` tells GitLab that earlier problems are fixed.
    let unwritten_report = cli.code_quality_report.as_ref().and_then(|path| {
        let mut everything = warnings;
        everything.extend(errors.clone());
        if let Some(part) = protected_part(path, &cli.root) {
            return Some(
                diagnostic::Diagnostic::error(format!("the Code Quality report {} would be written into {part}", path.display()))
                    .help("out/ holds only what devbox-gen generates, and users/ and devbox.toml are what it reads: give --code-quality-report a file elsewhere"),
            );
        }
        // A link committed under the report's name would have the report written wherever it
        // points: into out/, or any file the CI job can write.
        if std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
            return Some(
                diagnostic::Diagnostic::error(format!("the Code Quality report {} is a symbolic link", path.display()))
                    .help("devbox-gen does not write through links: delete it, or give --code-quality-report another file"),
            );
        }
        let text = diagnostic::code_quality_report(&everything, &checkout_prefix(&cli.root, "CI_PROJECT_DIR"));
        let failure = file::replace(path, &text).err()?;
        Some(
            diagnostic::Diagnostic::error(format!("cannot write the Code Quality report {}: {failure}", path.display()))
                .help("give --code-quality-report a file in a directory that exists and can be written"),
        )
    });
    let code = match outcome {
        Some(Outcome::Clean) => 0,
        Some(Outcome::Changed) => 1,
        None => {
            report(&errors);
            let count = errors.error_count();
            // Only `build` writes; for it, say that the failure left out/ alone (unless it
            // stopped during an in-place update's renames, which says so itself).
            let writes = matches!(cli.command, cli::Command::Build { check: false })
                && !errors.0.iter().any(|e| e.message.starts_with(write::PARTLY_UPDATED));
            match (count > 1, writes) {
                (true, true) => stdio::status_line(format_args!("error: {count} problems; nothing under out/ was changed")),
                (false, true) => stdio::status_line(format_args!("error: nothing under out/ was changed")),
                (true, false) => stdio::status_line(format_args!("error: {count} problems")),
                (false, false) => {}
            }
            EXIT_ERROR
        }
    };
    match unwritten_report {
        Some(failure) => {
            report(&failure.into());
            ExitCode::from(EXIT_ERROR)
        }
        None => ExitCode::from(code),
    }
}

/// The part of the config repo a file devbox-gen was asked to write would land in, when it is
/// one nothing but devbox-gen (`out/`) or its user (`users/`, `devbox.toml`) may write: a
/// report or a man page there would be built, applied or read as input.
pub(crate) fn protected_part(path: &std::path::Path, root: &std::path::Path) -> Option<&'static str> {
    // The nearest directory that exists: the path and its parents may be about to be made.
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let (canonical, found) = parent.ancestors().find_map(|dir| {
        let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
        dir.canonicalize().ok().map(|canonical| (canonical, dir))
    })?;
    // What lies between the directory found and the path, as if it were made there.
    let rest = path.strip_prefix(found).unwrap_or(path);
    let full = canonical.join(rest);
    let root = root.canonicalize().ok()?;
    if full.starts_with(write::out_dir(&root)) {
        Some("out/")
    } else if full.starts_with(root.join("users")) {
        Some("users/")
    } else if full == root.join("devbox.toml") {
        Some("devbox.toml")
    } else {
        None
    }
}

/// Where the config repo is in the checkout the CI system annotates (`$GITHUB_WORKSPACE` on
/// GitHub, `$CI_PROJECT_DIR` on GitLab: `workspace_variable`), as a path prefix with a trailing
/// `/`: empty when it is the checkout's root, or not inside it.
fn checkout_prefix(root: &std::path::Path, workspace_variable: &str) -> String {
    let Some(workspace) = std::env::var_os(workspace_variable).and_then(|w| std::path::PathBuf::from(w).canonicalize().ok()) else {
        return String::new();
    };
    let Ok(root) = root.canonicalize() else { return String::new() };
    match root.strip_prefix(&workspace) {
        Ok(inside) if !inside.as_os_str().is_empty() => format!("{}/", inside.to_string_lossy().replace('\\', "/")),
        _ => String::new(),
    }
}

/// Colours only on a terminal (`is_terminal`: the stream written to is one), never with
/// `NO_COLOR` (<https://no-color.org>).
pub(crate) fn color_choice(choice: ColorChoice, is_terminal: bool) -> termcolor::ColorChoice {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => termcolor::ColorChoice::Always,
        ColorChoice::Never => termcolor::ColorChoice::Never,
        ColorChoice::Auto if no_color || !is_terminal => termcolor::ColorChoice::Never,
        ColorChoice::Auto => termcolor::ColorChoice::Auto,
    }
}
