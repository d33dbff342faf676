//! The command line, as clap sees it. Only parsing lives here; each subcommand's behaviour is
//! in `commands/`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum, ValueHint};

/// Compile one TOML file per person into GitOps-ready Kubernetes developer-box bundles.
#[derive(Debug, Parser)]
#[command(name = "devbox-gen", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("DEVBOX_GEN_COMMIT_INFO"), ")"), about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// The config repo. Commands read DIR/devbox.toml and DIR/users/*.toml and write only inside
    /// DIR: `build` out/ and its cache .devbox-gen/, `new` one users/NAME.toml, `schema` schema/,
    /// `init` the starting files (`man --out-dir` writes where it is told).
    #[arg(short = 'C', long = "root", value_name = "DIR", default_value = ".", global = true, value_hint = ValueHint::DirPath)]
    pub root: PathBuf,

    /// When to use colours.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// How to print errors and warnings: `human`, with a snippet of the file; `github` also
    /// prints each as a GitHub Actions annotation, shown on the PR at the file and line.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = MessageFormat::Human, global = true)]
    pub message_format: MessageFormat,

    /// Also write every error and warning to FILE as a GitLab Code Quality report (the job's
    /// `artifacts:reports:codequality`), which the merge request shows at the file and line;
    /// `[]` when there are none.
    #[arg(long, value_name = "FILE", global = true, value_hint = ValueHint::FilePath)]
    pub code_quality_report: Option<PathBuf>,

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormat {
    Human,
    Github,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print a shell completion script (e.g. `devbox-gen completions bash > /etc/bash_completion.d/devbox-gen`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (e.g. `devbox-gen man > devbox-gen.1`), or write every
    /// page with `--out-dir`.
    Man {
        /// Print this subcommand's page, devbox-gen-COMMAND(1), instead of the main one.
        #[arg(value_name = "COMMAND", value_parser = MAN_PAGES, conflicts_with = "out_dir")]
        command: Option<String>,
        /// Write every page (devbox-gen.1, devbox-gen-build.1, ...) into DIR instead of printing one.
        #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
        out_dir: Option<PathBuf>,
    },
    /// Write the starting files of a new config repo: a commented devbox.toml, schema/, users/,
    /// .gitignore and a CI workflow. Refuses to overwrite a file that exists, unless --force.
    #[command(after_help = EXIT_INIT)]
    Init(InitArgs),
    /// Compile users/ into out/.
    #[command(after_help = EXIT_BUILD)]
    Build {
        /// Write nothing; list what would change and exit 1 if out/ is stale.
        #[arg(long)]
        check: bool,
    },
    /// Parse and check user files (all of users/ when none is given); write nothing.
    #[command(after_help = EXIT_VALIDATE)]
    Validate {
        /// User files to check, e.g. users/alice.toml.
        #[arg(value_hint = ValueHint::FilePath)]
        files: Vec<PathBuf>,
    },
    /// Write the JSON Schemas of the file formats to schema/.
    #[command(after_help = EXIT_SCHEMA)]
    Schema {
        /// Write nothing; exit 1 if schema/ is stale.
        #[arg(long)]
        check: bool,
    },
    /// Print one user's bundle to stdout.
    #[command(after_help = EXIT_OK_OR_ERROR)]
    Show {
        /// The user's name (the file stem of users/NAME.toml).
        #[arg(required_unless_present = "input", value_parser = user_name)]
        name: Option<String>,
        /// Print the template's input instead: the resolved `box` as JSON (all users, as an
        /// array, when no NAME is given). What a custom template receives, and what
        /// `bench/gojsonnet_render.py` feeds go-jsonnet.
        #[arg(long)]
        input: bool,
    },
    /// Write a new users/NAME.toml (refuses to overwrite one), validated like every user file.
    /// What no flag sets comes from `[defaults]` in devbox.toml, shown in the file as comments.
    #[command(after_help = EXIT_NEW)]
    // Boxed: the flags would make every `Command` as big as this one.
    New(Box<NewArgs>),
    /// Print the kubectl commands that create the Secrets a box references, reading the keys
    /// from files. Reads and writes no secret itself.
    #[command(after_help = EXIT_OK_OR_ERROR)]
    Secrets {
        /// The user's name (the file stem of users/NAME.toml).
        #[arg(value_parser = user_name)]
        name: String,
        /// The private key the box uses for GitHub, as a file on your machine.
        #[arg(long, value_name = "FILE", default_value = "~/.ssh/devbox_github", value_hint = ValueHint::FilePath)]
        key: String,
        /// A file holding the tailscale auth key (a reusable, tagged key).
        #[arg(long, value_name = "FILE", default_value = "~/.config/devbox/tailscale-authkey", value_hint = ValueHint::FilePath)]
        auth_key_file: String,
        /// With Flux and `[repo] secret`: the private deploy key Flux clones the config repo with
        /// (ssh://), or a file holding the access token (https).
        #[arg(long, value_name = "FILE", default_value = "~/.ssh/devboxes_deploy", value_hint = ValueHint::FilePath)]
        deploy_key: String,
    },
    /// Print ~/.ssh/config entries for VS Code Remote-SSH: one box, or every running box.
    #[command(after_help = EXIT_OK_OR_ERROR)]
    SshConfig {
        /// The user's name; without it, every running box.
        #[arg(value_parser = user_name)]
        name: Option<String>,
        /// The private key to log in with, for every box. Without it, each entry names the
        /// private key in ~/.ssh whose .pub the box lists among its authorized keys, or, without
        /// one, no key: ssh then offers its default keys and the agent's.
        #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        identity_file: Option<String>,
    },
    /// Print the kubectl commands that start a box stopped by `[idle]` or outside its
    /// `[schedule]`, and wait until it is ready. Changes nothing itself.
    #[command(after_help = EXIT_OK_OR_ERROR)]
    Wake {
        /// The user's name (the file stem of users/NAME.toml).
        #[arg(value_parser = user_name)]
        name: String,
    },
    /// List every box, one line each: state, CPU, memory, GPU, home, when it stops by itself,
    /// owner; then what each namespace's boxes take together, beside `[quota]`. Writes nothing.
    #[command(after_help = EXIT_OK_OR_ERROR)]
    List {
        /// text for terminals, markdown for a PR or a wiki page, json (what `show --input`
        /// prints) for scripts.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what compiling users/ changes in out/: a risk summary and a per-resource diff.
    /// Writes nothing.
    #[command(after_help = EXIT_DIFF)]
    Diff {
        /// Compare with out/ as committed at this git revision (e.g. origin/main) instead of
        /// out/ on disk. Read through git; the work tree is not touched.
        #[arg(long, value_name = "REF", value_hint = ValueHint::Other)]
        base: Option<String>,
        /// text for terminals, markdown for a PR comment, json for bots.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// A user, named as people name them: `alice`, or her file as a shell completes it
/// (`users/alice.toml`, `./users/alice.toml`, `alice.toml`).
fn user_name(given: &str) -> Result<String, String> {
    let name = given.strip_prefix("./").unwrap_or(given);
    let name = name.strip_prefix("users/").unwrap_or(name);
    let name = name.strip_suffix(".toml").unwrap_or(name);
    if name.is_empty() {
        return Err("give a user's name, like `alice` for users/alice.toml".to_string());
    }
    Ok(name.to_string())
}

/// The pages `devbox-gen man COMMAND` prints: one per subcommand (a unit test keeps this list
/// equal to the subcommands).
pub(crate) const MAN_PAGES: [&str; 13] =
    ["completions", "man", "init", "build", "validate", "schema", "show", "new", "secrets", "ssh-config", "wake", "list", "diff"];

/// `devbox-gen new`'s flags: the personal fields, and the ones people most often set for
/// themselves; everything else stays with `[defaults]`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keys").required(true).multiple(true).args(["ssh_key_file", "ssh_key"])))]
pub(crate) struct NewArgs {
    /// The user's name: the file stem of users/NAME.toml.
    // A new name: completing the existing ones (or file names) would only mislead.
    #[arg(value_hint = ValueHint::Other)]
    pub name: String,
    /// The owner's email address.
    #[arg(long, value_hint = ValueHint::EmailAddress)]
    pub email: String,
    /// A file of public keys allowed to log in, one a line like authorized_keys, e.g.
    /// ~/.ssh/id_ed25519.pub. Repeatable.
    // `--key` was its name before there was `--ssh-key`; scripts keep working.
    #[arg(long, value_name = "FILE", alias = "key", value_hint = ValueHint::FilePath)]
    pub ssh_key_file: Vec<PathBuf>,
    /// A public key allowed to log in, as text: 'ssh-ed25519 AAAA... you@laptop'. Repeatable.
    // A pasted private key starts with `-----`: clap would refuse it as an unknown flag and
    // echo it whole; taken as a value, `new` refuses it without showing it.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true, value_hint = ValueHint::Other)]
    pub ssh_key: Vec<String>,
    /// The container image, pinned by a tag or digest (default: `[defaults] image`).
    #[arg(long, value_hint = ValueHint::Other)]
    pub image: Option<String>,
    /// CPU cores, e.g. 8 or 500m (requests = limits).
    #[arg(long, value_hint = ValueHint::Other)]
    pub cpu: Option<String>,
    /// Memory, e.g. 32Gi (requests = limits).
    #[arg(long, value_hint = ValueHint::Other)]
    pub memory: Option<String>,
    /// A GPU: its GKE accelerator type and how many (default 1), e.g. nvidia-l4 or nvidia-l4:2.
    #[arg(long, value_name = "TYPE[:COUNT]", value_hint = ValueHint::Other)]
    pub gpu: Option<String>,
    /// The size of the home volume, e.g. 200Gi; it may grow later, never shrink.
    #[arg(long, value_hint = ValueHint::Other)]
    pub home_size: Option<String>,
    /// The StorageClass of the home volume; it cannot change once the volume exists.
    #[arg(long, value_hint = ValueHint::Other)]
    pub storage_class: Option<String>,
    /// The CPU architecture of the node.
    #[arg(long, value_parser = ["amd64", "arm64"])]
    pub arch: Option<String>,
    /// running, stopped (no pod, the home is kept) or archived (only the home is kept).
    #[arg(long, value_parser = ["running", "stopped", "archived"])]
    pub state: Option<String>,
    /// The cluster of the box, when devbox.toml lists several and has no default.
    #[arg(long, value_hint = ValueHint::Other)]
    pub cluster: Option<String>,
    /// The box's name on the tailnet (default NAME-devbox).
    #[arg(long, value_hint = ValueHint::Other)]
    pub hostname: Option<String>,
    /// A tailnet ACL tag, e.g. tag:devbox. Repeatable; replaces the `[defaults]` tags.
    #[arg(long = "tag", value_name = "TAG", value_hint = ValueHint::Other)]
    pub tags: Vec<String>,
}

/// `devbox-gen init`'s flags: what devbox.toml cannot have a sensible default for.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The namespace of every box (default devboxes).
    #[arg(long, value_hint = ValueHint::Other)]
    pub namespace: Option<String>,
    /// The image of every box that does not name its own, pinned by a tag or digest.
    #[arg(long, value_hint = ValueHint::Other)]
    pub image: Option<String>,
    /// Emit delivery manifests for Argo CD and/or Flux (repeatable); needs --repo-url.
    #[arg(long, value_parser = ["argocd", "flux"], value_delimiter = ',', requires = "repo_url")]
    pub gitops: Vec<String>,
    /// The Git URL Argo CD or Flux clone this config repo from, e.g.
    /// https://github.com/acme/devboxes.git.
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub repo_url: Option<String>,
    /// The CI workflow to write: github (.github/workflows/devboxes.yml), gitlab
    /// (.gitlab-ci.yml) or none.
    #[arg(long, value_enum, default_value_t = Ci::Github)]
    pub ci: Ci,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

/// The CI workflow `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Ci {
    Github,
    Gitlab,
    None,
}

// What each command's exit status means, under its --help (docs/design.md, "Commands").
const EXIT_BUILD: &str = "Exit status:
  0  out/ is written and current (with --check: out/ is current)
  1  only with --check: out/ is stale; run `devbox-gen build`
  2  an error: invalid input, a template failure or a refused change; nothing under out/ changed";
const EXIT_DIFF: &str = "Exit status:
  0  compiling users/ changes nothing in out/
  1  it changes out/: the report says how
  2  an error, or a change Kubernetes cannot apply: a home volume shrunk or of another class";
const EXIT_VALIDATE: &str = "Exit status:
  0  every file is valid (warnings may be printed)
  2  a file has an error";
const EXIT_SCHEMA: &str = "Exit status:
  0  schema/ is written and current (with --check: schema/ is current)
  1  only with --check: schema/ is stale; run `devbox-gen schema`
  2  an error";
const EXIT_NEW: &str = "Exit status:
  0  users/NAME.toml is written
  2  an error (a flag's value, a file that exists); nothing is written";
const EXIT_INIT: &str = "Exit status:
  0  the files are written
  2  an error (a flag's value, a file that exists without --force); nothing is written";
const EXIT_OK_OR_ERROR: &str = "Exit status:
  0  success
  2  an error";

/// How `diff` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Markdown,
    Json,
}
