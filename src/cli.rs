//! The command line, as clap sees it. Only parsing lives here; each subcommand's behaviour is
//! in `commands/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Compile one TOML file per person into GitOps-ready Kubernetes developer-box bundles.
#[derive(Debug, Parser)]
#[command(name = "devbox-gen", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// The config repo: reads DIR/devbox.toml and DIR/users/*.toml, writes only inside DIR/out/.
    #[arg(short = 'C', long = "root", value_name = "DIR", default_value = ".", global = true)]
    pub root: PathBuf,

    /// When to use colours.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print how long each stage took.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print a shell completion script (e.g. `devbox-gen completions bash > /etc/bash_completion.d/devbox-gen`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (e.g. `devbox-gen man > devbox-gen.1`).
    Man,
    /// Compile users/ into out/.
    Build {
        /// Write nothing; list what would change and exit 1 if out/ is stale.
        #[arg(long)]
        check: bool,
    },
    /// Parse and check user files (all of users/ when none is given); write nothing.
    Validate {
        /// User files to check, e.g. users/alice.toml.
        files: Vec<PathBuf>,
    },
    /// Write the JSON Schemas of the file formats to schema/.
    Schema {
        /// Write nothing; exit 1 if schema/ is stale.
        #[arg(long)]
        check: bool,
    },
    /// Print one user's bundle to stdout.
    Show {
        /// The user's name (the file stem of users/NAME.toml).
        #[arg(required_unless_present = "input")]
        name: Option<String>,
        /// Print the template's input instead: the resolved `box` as JSON (all users, as an
        /// array, when no NAME is given). What a custom template receives, and what
        /// `bench/gojsonnet_render.py` feeds go-jsonnet.
        #[arg(long)]
        input: bool,
    },
    /// Write a new users/NAME.toml (refuses to overwrite one), validated like every user file.
    New {
        /// The user's name: the file stem of users/NAME.toml.
        name: String,
        /// The owner's email address.
        #[arg(long)]
        email: String,
        /// The public key allowed to log in, e.g. ~/.ssh/devbox.pub (read from this file).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The cluster of the box, when devbox.toml lists several and has no default.
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Print the kubectl commands that create the Secrets a box references, reading the keys
    /// from files. Reads and writes no secret itself.
    Secrets {
        /// The user's name (the file stem of users/NAME.toml).
        name: String,
        /// The private key the box uses for GitHub, as a file on your machine.
        #[arg(long, value_name = "FILE", default_value = "~/.ssh/devbox_github")]
        key: String,
        /// A file holding the tailscale auth key (a reusable, tagged key).
        #[arg(long, value_name = "FILE", default_value = "~/.config/devbox/tailscale-authkey")]
        auth_key_file: String,
        /// With Flux and `[repo] secret`: the private deploy key Flux clones the config repo with
        /// (ssh://), or a file holding the access token (https).
        #[arg(long, value_name = "FILE", default_value = "~/.ssh/devboxes_deploy")]
        deploy_key: String,
    },
    /// Print ~/.ssh/config entries for VS Code Remote-SSH: one box, or every running box.
    SshConfig {
        /// The user's name; without it, every running box.
        name: Option<String>,
        /// The private key to log in with.
        #[arg(long, value_name = "FILE", default_value = "~/.ssh/devbox")]
        identity_file: String,
    },
    /// Show what compiling users/ changes in out/: a risk summary and a per-resource diff.
    /// Writes nothing; exits 0 when nothing changes, 1 when something does.
    Diff {
        /// Compare with out/ as committed at this git revision (e.g. origin/main) instead of
        /// out/ on disk. Read through git; the work tree is not touched.
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// text for terminals, markdown for a PR comment, json for bots.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// How `diff` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Markdown,
    Json,
}
