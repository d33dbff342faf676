//! `devbox-gen completions SHELL` and `devbox-gen man`: generated from the clap definition, so
//! they can never disagree with the real flags.
//!
//! clap's static scripts complete flags, subcommands and fixed values, but not the NAME of an
//! existing user: that needs the config repo's users/ directory at completion time. Each script
//! gets a few lines of its own shell for it, which read `-C DIR` from the command line being
//! completed, as devbox-gen itself would.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use clap::{Command, CommandFactory, ValueEnum};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::{Context, Outcome};

const BIN: &str = "devbox-gen";

/// The subcommands whose NAME is an existing user, the file stem of DIR/users/NAME.toml.
/// (`new` takes a name too, but a new one: completing the existing ones would only mislead.)
const USER_NAME_COMMANDS: [&str; 4] = ["show", "secrets", "ssh-config", "wake"];

pub(super) fn completions(shell: Shell) -> Result<Outcome, Diagnostics> {
    print(script(shell).as_bytes())
}

/// The script `devbox-gen completions SHELL` prints.
fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buffer);
    let script = String::from_utf8(buffer).expect("clap_complete writes UTF-8");
    // `generate` has built `cmd`: every global option is on every subcommand now.
    let value_options = options_with_values(&cmd);
    match shell {
        Shell::Bash => bash(&script, &value_options),
        Shell::Zsh => zsh(&script),
        Shell::Fish => fish(&script, &value_options),
        _ => script,
    }
}

/// Every `-x`/`--long` that takes a value (besides `-C`/`--root`, which the scripts read): the
/// word after one is its value, never a subcommand or a NAME.
fn options_with_values(cmd: &Command) -> Vec<String> {
    fn visit(cmd: &Command, names: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments().filter(|a| !a.is_positional() && a.get_action().takes_values() && a.get_id() != "root") {
            names.extend(
                arg.get_short().into_iter().chain(arg.get_all_short_aliases().unwrap_or_default()).map(|short| format!("-{short}")),
            );
            names.extend(arg.get_long().into_iter().chain(arg.get_all_aliases().unwrap_or_default()).map(|long| format!("--{long}")));
        }
        for sub in cmd.get_subcommands() {
            visit(sub, names);
        }
    }
    let mut names = BTreeSet::new();
    visit(cmd, &mut names);
    names.into_iter().collect()
}

/// clap_complete 4.6 spells the states of its bash script two ways when the binary's name has a
/// hyphen (clap-rs/clap#6421): the loop that walks the words escapes the name's hyphens with
/// `__` and appends `__subcmd__diff` (`devbox__gen__subcmd__diff`), while the case labels escape
/// the whole path at once, the name's hyphen included, with `__subcmd__`
/// (`devbox__subcmd__gen__subcmd__diff`). No label ever matched, so nothing after a subcommand
/// completed. Respelling the labels the loop's way is a no-op once clap agrees with itself.
fn bash(script: &str, value_options: &[String]) -> String {
    let escaped = BIN.replace('-', "__");
    let fixed = script.replace(&format!("{}__subcmd__", BIN.replace('-', "__subcmd__")), &format!("{escaped}__subcmd__"));
    fixed
        + &BASH_USER_NAMES
            .replace("@complete@", &format!("_{escaped}"))
            .replace("@value_options@", &value_options.join(" | "))
            .replace("@commands@", &USER_NAME_COMMANDS.join(" | "))
}

/// Wraps clap's function: after it, when the word is the NAME of a user-name subcommand, the
/// users replace its answer (which is then only the subcommand's flags).
const BASH_USER_NAMES: &str = r#"
# devbox-gen: the NAME of show, secrets and ssh-config is a user of the config repo, a stem of
# DIR/users/*.toml, with DIR from -C/--root on the command line (default: the current directory).
_devbox_gen_user_names() {
    @complete@ "$@"
    local cur="$2" root=. sub="" positionals=0 word i file names=()
    [[ $cur == -* ]] && return 0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -C | --root)
                # bash splits `--root=DIR` into three words (`=` is in COMP_WORDBREAKS).
                [[ ${COMP_WORDS[i + 1]} == = ]] && i=$((i + 1))
                i=$((i + 1))
                root="${COMP_WORDS[i]}"
                ;;
            -C?*) root="${word#-C}" ;;
            @value_options@)
                [[ ${COMP_WORDS[i + 1]} == = ]] && i=$((i + 1))
                i=$((i + 1))
                ;;
            -*) ;;
            *)
                if [[ -z $sub ]]; then
                    sub="$word"
                else
                    positionals=$((positionals + 1))
                fi
                ;;
        esac
    done
    # Past COMP_CWORD, the word being completed is the value of an option.
    ((i == COMP_CWORD && positionals == 0)) || return 0
    case "$sub" in
        @commands@) ;;
        *) return 0 ;;
    esac
    # COMP_WORDS holds DIR as typed: undo the quotes and the `~` the shell will expand.
    root="${root#[\"\']}"
    root="${root%[\"\']}"
    [[ $root == "~" || $root == "~/"* ]] && root="$HOME${root:1}"
    for file in "$root"/users/*.toml; do
        [[ -f $file ]] || continue
        file="${file##*/}"
        names+=("${file%.toml}")
    done
    ((${#names[@]})) && COMPREPLY=($(compgen -W "${names[*]}" -- "$cur"))
    return 0
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _devbox_gen_user_names -o nosort -o bashdefault -o default devbox-gen
else
    complete -F _devbox_gen_user_names -o bashdefault -o default devbox-gen
fi
"#;

/// The NAME arguments of the user-name subcommands complete with `_default` (files) in clap's
/// script; they get the function below instead. It goes right after the `#compdef` line: when
/// the script is autoloaded from $fpath, its last lines run the completion, so everything it
/// calls must be defined above them.
fn zsh(script: &str) -> String {
    let (first, rest) = script.split_once('\n').unwrap_or((script, ""));
    let mut out = format!("{first}\n{ZSH_USER_NAMES}");
    let mut section = "";
    for line in rest.lines() {
        // clap opens each subcommand's `_arguments` with a `(NAME)` case label.
        if let Some(name) = line.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
            section = name;
        }
        let user_name = USER_NAME_COMMANDS.contains(&section)
            && (line.starts_with("':name -- ") || line.starts_with("'::name -- "))
            && line.ends_with(":_default' \\");
        match line.strip_suffix("_default' \\") {
            Some(head) if user_name => out.push_str(&format!("{head}_devbox-gen__user_names' \\\n")),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Reads DIR from the command line (`$LBUFFER`): by the time `_arguments` calls this, `words`
/// holds only the subcommand's words, and `-C` may have come before it.
const ZSH_USER_NAMES: &str = r#"
# devbox-gen: the NAME of show, secrets and ssh-config is a user of the config repo, a stem of
# DIR/users/*.toml, with DIR from -C/--root on the command line (default: the current directory).
_devbox-gen__user_names() {
    local root=. i expl
    local -a tokens users
    tokens=(${(z)LBUFFER})
    for (( i = 1; i <= $#tokens; i++ )); do
        case $tokens[i] in
            (devbox-gen|*/devbox-gen) root=. ;;
            (-C|--root) root=$tokens[i+1]; (( i++ )) ;;
            (-C?*) root=${tokens[i]#-C} ;;
            (--root=*) root=${tokens[i]#--root=} ;;
        esac
    done
    root=${(Q)root}
    [[ $root == '~' || $root == '~/'* ]] && root=$HOME${root#\~}
    users=($root/users/*.toml(N-.:t:r))
    _wanted users expl 'user' compadd -a users
}

"#;

fn fish(script: &str, value_options: &[String]) -> String {
    let quoted: Vec<String> = value_options.iter().map(|o| format!("'{o}'")).collect();
    let users = FISH_USER_NAMES.replace("@value_options@", &quoted.join(" ")).replace("@commands@", &USER_NAME_COMMANDS.join(" "));
    // clap_complete's fish script completes no positional argument's values: `completions` and
    // `man` offered file names. Once one is there, nothing more is offered.
    let shells: Vec<String> = Shell::value_variants().iter().map(ToString::to_string).collect();
    let pages = crate::cli::MAN_PAGES;
    let positionals: String = [("completions", shells), ("man", pages.iter().map(ToString::to_string).collect())]
        .iter()
        .map(|(command, values)| {
            // A value is on the line once one is there other than the subcommand's own name.
            let seen: Vec<&str> = values.iter().map(String::as_str).filter(|value| value != command).collect();
            let (values, seen) = (values.join(" "), seen.join(" "));
            format!(
                "complete -c devbox-gen -n '__fish_devbox_gen_using_subcommand {command}; and not __fish_seen_subcommand_from {seen}' -f -a '{values}'\n\
                 complete -c devbox-gen -n '__fish_devbox_gen_using_subcommand {command}; and __fish_seen_subcommand_from {seen}' -f\n"
            )
        })
        .collect();
    format!("{script}{users}\n# devbox-gen: the values of `completions SHELL` and `man COMMAND`.\n{positionals}")
}

/// fish adds completions up: one more `complete` line, with `-f` so that file names do not
/// come with the users.
const FISH_USER_NAMES: &str = r#"
# devbox-gen: the NAME of show, secrets and ssh-config is a user of the config repo, a stem of
# DIR/users/*.toml, with DIR from -C/--root on the command line (default: the current directory).
# Prints DIR when the token being completed is such a NAME; fails otherwise.
function __fish_devbox_gen_user_root
    set -l tokens (commandline -opc)
    set -l root .
    set -l sub
    set -l positionals 0
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case '-C' '--root'
                set i (math $i + 1)
                set root $tokens[$i]
            case '-C?*'
                set root (string sub --start 3 -- $tokens[$i])
            case '--root=*'
                set root (string sub --start 8 -- $tokens[$i])
            case @value_options@
                set i (math $i + 1)
            case '-*'
            case '*'
                if test -z "$sub"
                    set sub $tokens[$i]
                else
                    set positionals (math $positionals + 1)
                end
        end
        set i (math $i + 1)
    end
    # Past the last token, the one being completed is the value of an option.
    test $i -eq (math (count $tokens) + 1); or return 1
    test $positionals -eq 0; or return 1
    contains -- "$sub" @commands@; or return 1
    # The `~` the shell will expand. (`string replace` fails when it replaces nothing.)
    if string match -q -r '^~(/|$)' -- $root
        set root (string replace -r '^~' -- $HOME $root)
    end
    printf '%s\n' $root
end

function __fish_devbox_gen_user_names
    set -l root (__fish_devbox_gen_user_root); or return
    for file in $root/users/*.toml
        test -f $file; and string replace -r '^.*/(.*)\.toml$' '$1' -- $file
    end
end

complete -c devbox-gen -n '__fish_devbox_gen_user_root >/dev/null' -f -a '(__fish_devbox_gen_user_names)' -d user
"#;

pub(super) fn man(context: &Context, command: Option<&str>, out_dir: Option<&Path>) -> Result<Outcome, Diagnostics> {
    let pages = man_pages().map_err(|e| Diagnostics::from(Diagnostic::error(format!("cannot render the man pages: {e}"))))?;
    let Some(dir) = out_dir else {
        let file = match command {
            Some(command) => format!("{BIN}-{command}.1"),
            None => format!("{BIN}.1"),
        };
        // clap accepts only the names of MAN_PAGES, and a unit test keeps those the pages.
        let (_, text) = pages.iter().find(|(name, _)| *name == file).expect("a page for every subcommand");
        return print(text.as_bytes());
    };
    let fail = |e: std::io::Error, path: &Path| -> Diagnostics {
        Diagnostic::error(format!("cannot write {}: {e}", path.display())).in_path(path.display().to_string()).into()
    };
    if let Some(part) = crate::protected_part(&dir.join(format!("{BIN}.1")), &context.root) {
        return Err(Diagnostic::error(format!("{} is inside {part}", dir.display()))
            .help("out/ holds only what devbox-gen generates, and users/ what it reads: give --out-dir a directory elsewhere, like `man/`")
            .into());
    }
    fs::create_dir_all(dir).map_err(|e| fail(e, dir))?;
    for (file, text) in &pages {
        let path = dir.join(file);
        crate::file::replace(&path, text).map_err(|e| fail(e, &path))?;
    }
    context.status(&format!("wrote {} man pages to {}", pages.len(), dir.display()));
    Ok(Outcome::Clean)
}

/// Every page, as (file name, roff): devbox-gen.1 first, then devbox-gen-SUBCOMMAND.1.
fn man_pages() -> std::io::Result<Vec<(String, String)>> {
    // No `help` subcommand: it would be a page of its own saying less than `--help`.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Built once here, so every subcommand carries the global options and is named
    // `devbox-gen-SUBCOMMAND` (its page's title) and `devbox-gen SUBCOMMAND` (its synopsis).
    cmd.build();
    let mut pages = vec![(format!("{BIN}.1"), man_page(&cmd, None)?)];
    for sub in cmd.get_subcommands() {
        pages.push((format!("{BIN}-{}.1", sub.get_name()), man_page(sub, Some(sub.get_name()))?));
    }
    Ok(pages)
}

/// clap_mangen's sections, with EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO added where
/// man-pages(7) puts them (clap_mangen's `render` has no place for them).
fn man_page(cmd: &Command, subcommand: Option<&str>) -> std::io::Result<String> {
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    // Not clap_mangen's title: it writes the empty date as nothing, so the source ("devbox-gen
    // 0.2.0") became the date and the manual's name the source. `""` keeps each in its place.
    let title = cmd.get_display_name().unwrap_or(BIN);
    let source = format!("{BIN} {}", cmd.get_version().unwrap_or_default());
    let mut head = Roff::new();
    head.control("TH", [title, "1", "\"\"", &source, "devbox-gen manual"]);
    // No hyphenation: it splits paths and flags (`de-` / `vbox.toml`) where a reader copies them.
    head.control("nh", []);
    head.to_writer(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    let statuses = exit_statuses(cmd);
    // An after_help that is not the exit status block still has its place (EXTRA).
    if statuses.is_none() && cmd.get_after_help().is_some() {
        man.render_extra_section(&mut out)?;
    }
    extra_sections(subcommand, statuses).to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    see_also(cmd, subcommand).to_writer(&mut out)?;
    let text = String::from_utf8(out).expect("clap_mangen writes UTF-8");
    // Each piece starts with roff's apostrophe preamble; the page needs it once.
    let preamble = Roff::new().render();
    Ok(format!("{preamble}{}", text.replace(&preamble, "")))
}

/// The `Exit status:` block under a subcommand's --help (cli.rs), as (code, meaning): the page
/// says what --help says.
fn exit_statuses(cmd: &Command) -> Option<Vec<(String, String)>> {
    let help = cmd.get_after_help()?.to_string();
    let lines = help.strip_prefix("Exit status:")?.lines().filter(|line| !line.trim().is_empty());
    lines
        .map(|line| {
            let (code, meaning) = line.trim().split_once(char::is_whitespace)?;
            code.parse::<u8>().ok()?;
            Some((code.to_string(), meaning.trim().to_string()))
        })
        .collect()
}

/// The pages without an exit status block of their own: the main page, and the subcommands
/// that read no config repo.
fn default_exit_statuses(subcommand: Option<&str>) -> Vec<(String, String)> {
    let statuses: &[(&str, &str)] = match subcommand {
        None => &[
            ("0", "success; for build --check, schema --check and diff: nothing would change"),
            ("1", "build --check found out/ stale, schema --check found schema/ stale, or diff found changes"),
            (
                "2",
                "an error: a bad command line, invalid input, a template failure or a refused change; every problem is reported on stderr, and nothing under out/ changes",
            ),
        ],
        Some("completions") => &[("0", "success"), ("2", "a bad command line, such as a shell it does not know")],
        Some("man") => &[("0", "success"), ("2", "a bad command line, or a page that cannot be written")],
        Some(_) => &[("0", "success"), ("2", "an error")],
    };
    statuses.iter().map(|(code, meaning)| (code.to_string(), meaning.to_string())).collect()
}

fn extra_sections(subcommand: Option<&str>, statuses: Option<Vec<(String, String)>>) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in statuses.unwrap_or_else(|| default_exit_statuses(subcommand)) {
        item(&mut roff, vec![bold(code)], &meaning);
    }
    roff.control("PP", []);
    roff.text([roman("--help and --version exit 0.")]);

    roff.control("SH", ["ENVIRONMENT"]);
    item(&mut roff, vec![bold("NO_COLOR")], "When set and not empty, no colours (unless --color=always); see https://no-color.org.");
    item(&mut roff, vec![bold("DEVBOX_GEN_TIMINGS")], "When set (to anything), print how long each stage took, as --verbose does.");
    item(
        &mut roff,
        vec![bold("DEVBOX_GEN_RENDER_TIMEOUT")],
        "Seconds the template may take for one box (default 60) before devbox-gen stops with exit 2: jrsonnet cannot interrupt an evaluation that never ends.",
    );
    item(
        &mut roff,
        vec![bold("DEVBOX_GEN_RENDER_MEMORY")],
        "MiB devbox-gen may hold while a box has been rendering for a second (default 4096) before it stops with exit 2: a template that grows a value without end.",
    );
    if matches!(subcommand, None | Some("new")) {
        item(&mut roff, vec![bold("HOME")], "Replaces a leading ~ in the key files given to new, when the shell did not expand it.");
    }

    roff.control("SH", ["FILES"]);
    roff.text([roman("Relative to the config repo, DIR of -C/--root (default: the current directory):")]);
    let files = [
        ("devbox.toml", "The settings: clusters, defaults for every user, the delivery (Argo CD, Flux), an optional template."),
        ("users/*.toml", "One file per person; the file stem is the user's NAME."),
        ("out/", "The generated bundles, one directory per user: all that build writes, besides the build cache."),
        (
            ".devbox-gen/build-cache.json",
            "The build cache: only a shortcut, never committed (the directory ignores itself); safe to delete.",
        ),
        ("schema/*.json", "The JSON Schemas of devbox.toml and the user files, written by schema."),
    ];
    for (file, text) in files {
        item(&mut roff, vec![italic(file)], text);
    }
    roff
}

fn see_also(cmd: &Command, subcommand: Option<&str>) -> Roff {
    let names: Vec<String> = match subcommand {
        None => cmd.get_subcommands().map(|sub| format!("{BIN}-{}", sub.get_name())).collect(),
        Some(_) => vec![BIN.to_string()],
    };
    let mut line = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name));
        line.push(roman("(1)"));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text(line);
    roff
}

/// One `.TP` entry: a tag, then its paragraph.
fn item(roff: &mut Roff, tag: Vec<clap_mangen::roff::Inline>, text: &str) {
    roff.control("TP", []);
    roff.text(tag);
    roff.text([roman(text)]);
}

fn print(bytes: &[u8]) -> Result<Outcome, Diagnostics> {
    crate::stdio::print(bytes)?;
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::MAN_PAGES;

    #[test]
    fn man_pages_lists_every_subcommand() {
        let names: Vec<String> = Cli::command().disable_help_subcommand(true).get_subcommands().map(|s| s.get_name().to_string()).collect();
        assert_eq!(names, MAN_PAGES);
    }

    #[test]
    fn user_name_commands_take_a_user_name_first() {
        let cmd = Cli::command();
        for name in USER_NAME_COMMANDS {
            let sub = cmd.find_subcommand(name).unwrap_or_else(|| panic!("no subcommand {name}"));
            let first = sub.get_positionals().next().map(|a| a.get_id().as_str());
            assert_eq!(first, Some("name"), "{name}");
        }
    }

    #[test]
    fn value_options_are_the_options_that_take_a_value() {
        let mut cmd = Cli::command();
        cmd.build();
        let options = options_with_values(&cmd);
        for option in ["--color", "--format", "--base", "--key", "--identity-file"] {
            assert!(options.iter().any(|o| o == option), "{option} missing from {options:?}");
        }
        for flag in ["--root", "-C", "--check", "--input", "--quiet"] {
            assert!(!options.iter().any(|o| o == flag), "{flag} in {options:?}");
        }
    }

    #[test]
    fn zsh_user_names_replace_the_default_action_of_each_name() {
        let script = script(Shell::Zsh);
        assert_eq!(script.matches(":_devbox-gen__user_names' \\").count(), USER_NAME_COMMANDS.len(), "{script}");
    }
}
