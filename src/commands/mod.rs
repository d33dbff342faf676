//! One file per subcommand. Each is a short workflow over the pipeline; none prints a
//! diagnostic itself (they are returned, and `run` prints them once).

mod build;
mod completions;
mod diff;
mod schema;
mod show;
mod validate;

use crate::cli::Command;
use crate::diagnostic::Diagnostics;
use crate::{Context, Outcome};

pub fn run(command: &Command, context: &mut Context) -> Result<Outcome, Diagnostics> {
    match command {
        Command::Build { check } => build::run(context, *check),
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man => completions::man(),
        Command::Validate { files } => validate::run(context, files),
        Command::Schema { check } => schema::run(context, *check),
        Command::Show { name } => show::run(context, name),
        Command::Diff { base, format } => diff::run(context, base.as_deref(), *format),
    }
}
