//! One file per subcommand. Each is a short workflow over the pipeline; none prints a
//! diagnostic itself (they are returned, and `run` prints them once).

mod build;
mod completions;
mod diff;
mod init;
mod list;
mod new;
mod schema;
mod secrets;
mod show;
mod ssh_config;
mod validate;
mod wake;

use crate::cli::Command;
use crate::diagnostic::Diagnostics;
use crate::{Context, Outcome};

pub(crate) fn run(command: &Command, context: &mut Context) -> Result<Outcome, Diagnostics> {
    match command {
        Command::Build { check } => build::run(context, *check),
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man { command, out_dir } => completions::man(context, command.as_deref(), out_dir.as_deref()),
        Command::Validate { files } => validate::run(context, files),
        Command::Schema { check } => schema::run(context, *check),
        Command::Show { name, input: true } => show::input(context, name.as_deref()),
        Command::Show { name, input: false } => show::run(context, name.as_deref().unwrap_or_default()),
        Command::Diff { base, format } => diff::run(context, base.as_deref(), *format),
        Command::Init(args) => init::run(context, args),
        Command::New(args) => new::run(context, args),
        Command::Secrets { name, key, auth_key_file, deploy_key } => secrets::run(context, name, key, auth_key_file, deploy_key),
        Command::SshConfig { name, identity_file } => ssh_config::run(context, name.as_deref(), identity_file.as_deref()),
        Command::Wake { name } => wake::run(context, name),
        Command::List { format } => list::run(context, *format),
    }
}

/// How to run devbox-gen again on this config repo, for the next steps a command prints: with
/// the same `-C`, so that they work pasted into the same shell.
fn invocation(context: &Context) -> String {
    let root = context.root.display().to_string();
    if root == "." { "devbox-gen".to_string() } else { format!("devbox-gen {}", crate::text::flag("-C", &root)) }
}
