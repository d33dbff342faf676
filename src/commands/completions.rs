//! `devbox-gen completions SHELL` and `devbox-gen man`: generated from the clap definition, so
//! they can never disagree with the real flags.

use std::io::Write;

use clap::CommandFactory;

use crate::Outcome;
use crate::cli::Cli;
use crate::diagnostic::{Diagnostic, Diagnostics};

pub(super) fn completions(shell: clap_complete::Shell) -> Result<Outcome, Diagnostics> {
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "devbox-gen", &mut buffer);
    print(&buffer)
}

pub(super) fn man() -> Result<Outcome, Diagnostics> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buffer)
        .map_err(|e| Diagnostics::from(Diagnostic::error(format!("cannot render the man page: {e}"))))?;
    print(&buffer)
}

fn print(bytes: &[u8]) -> Result<Outcome, Diagnostics> {
    // A closed pipe (`devbox-gen man | head`) is not an error.
    let _ = std::io::stdout().lock().write_all(bytes);
    Ok(Outcome::Clean)
}
