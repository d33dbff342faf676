//! devbox-gen compiles one TOML file per person into Kubernetes developer-box bundles that
//! Argo CD or Flux sync from Git.
//!
//! The modules follow the data: [`read`] → [`validate`] → [`resolve`] → [`render`] →
//! [`check`] → [`emit`] → [`delivery`] → [`write`] (or [`diff`], which compares instead of writing), strung
//! together by [`pipeline::compile`]. Each command in [`commands`] is a thin workflow over that
//! pipeline; [`run`] is the one place that prints diagnostics and decides the exit code.

pub mod cache;
pub mod check;
pub mod cli;
pub mod commands;
pub mod defaults;
pub mod delivery;
pub mod diagnostic;
pub mod diff;
pub mod emit;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod quantity;
pub mod read;
pub mod render;
pub mod resolve;
pub mod schema;
pub mod source;
pub mod validate;
pub mod write;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use codespan_reporting::term::termcolor::{self, StandardStream};

use crate::cli::{Cli, ColorChoice};
use crate::diagnostic::Diagnostics;

/// How a command ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: `--check` found something stale, `diff` found changes.
    Changed,
}

/// Exit code for errors: bad input, a template failure, a refused change.
pub const EXIT_ERROR: u8 = 2;

/// What every command gets: where to work, and where warnings go.
pub struct Context {
    pub root: std::path::PathBuf,
    pub quiet: bool,
    /// `--color`, for commands that colour their stdout ([`color_choice`] decides).
    pub color: ColorChoice,
    warnings: Diagnostics,
}

impl Context {
    pub fn warn(&mut self, warnings: Diagnostics) {
        self.warnings.extend(warnings);
    }

    /// A progress line on a terminal while slow work runs (see [`progress`]), unless `--quiet`.
    pub fn progress(&self, message: &str) -> progress::Progress {
        progress::Progress::start(message, !self.quiet)
    }

    /// A progress or summary line on stderr, unless `--quiet`.
    pub fn status(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
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
    pipeline::VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    let mut context = Context { root: cli.root.clone(), quiet: cli.quiet, color: cli.color, warnings: Diagnostics::default() };
    let result = commands::run(&cli.command, &mut context);
    let mut stderr = StandardStream::stderr(color_choice(cli.color, std::io::stderr().is_terminal()));
    let warnings = std::mem::take(&mut context.warnings).sorted();
    if !cli.quiet && !warnings.is_empty() {
        let _ = diagnostic::render(&warnings, &mut stderr);
    }
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Changed) => ExitCode::from(1),
        Err(errors) => {
            let errors = errors.sorted();
            let _ = diagnostic::render(&errors, &mut stderr);
            let count = errors.error_count();
            // Only `build` writes; for it, say that the failure left out/ alone.
            let writes = matches!(cli.command, cli::Command::Build { check: false });
            match (count > 1, writes) {
                (true, true) => eprintln!("error: {count} problems; nothing under out/ was changed"),
                (false, true) => eprintln!("error: nothing under out/ was changed"),
                (true, false) => eprintln!("error: {count} problems"),
                (false, false) => {}
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Colours only on a terminal (`is_terminal`: the stream written to is one), never with
/// `NO_COLOR` (https://no-color.org).
pub fn color_choice(choice: ColorChoice, is_terminal: bool) -> termcolor::ColorChoice {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => termcolor::ColorChoice::Always,
        ColorChoice::Never => termcolor::ColorChoice::Never,
        ColorChoice::Auto if no_color || !is_terminal => termcolor::ColorChoice::Never,
        ColorChoice::Auto => termcolor::ColorChoice::Auto,
    }
}
