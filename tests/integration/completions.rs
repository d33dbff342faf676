//! `completions SHELL` and `man`, checked the way people use them: each script is loaded into the
//! real shell, which is asked to complete; each man page goes through groff and man.
//!
//! A shell or man tool that is missing skips its checks with a note locally, and fails them in
//! CI (`CI` set), where .ci/run installs them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, user_file};

#[test]
fn completions_and_man_page_come_from_the_real_flags() {
    let repo = Repo::with_alice();
    for shell in ["bash", "zsh", "fish"] {
        let run = repo.run_ok(&["completions", shell], 0);
        assert_contains!(run.stdout, "build", "{shell}");
        assert_contains!(run.stdout, "root", "{shell}");
    }
    let man = repo.run_ok(&["man"], 0);
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq"), "{}", &man.stdout[..80]);
    assert_contains!(man.stdout, ".TH devbox-gen 1");
    let run = repo.run_ok(&["completions", "tcsh"], 2);
    assert_contains!(run.stderr, "invalid value 'tcsh'");
}

#[test]
fn verbose_prints_stage_timings_and_quiet_prints_nothing() {
    let repo = Repo::with_alice();
    let run = repo.run_ok(&["-v", "build"], 0);
    for stage in ["read", "validate", "resolve", "render+check+emit", "write"] {
        assert_contains!(run.stderr, &format!("timing: {stage} "), "{stage}");
    }
    let run = repo.run_ok(&["--quiet", "build"], 0);
    assert_eq!(run.stderr, "");
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The path of `name` on PATH. Missing: a failure in CI, a skip (with a note) elsewhere.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(!in_ci(), "{name} is not installed; CI must have it (.ci/run installs it)");
        eprintln!("note: {name} is not installed, so its checks are skipped here (CI runs them)");
    }
    found
}

/// A home directory holding a config repo with alice and bob, and another directory to work
/// from. Both hold a file starting with `a`, so that a NAME completed with file names (clap's
/// fallback) cannot pass for one completed with users.
struct Setup {
    home: tempfile::TempDir,
    repo: Repo,
    elsewhere: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let repo = Repo::at(tempfile::Builder::new().prefix("repo").tempdir_in(home.path()).unwrap());
        repo.write("devbox.toml", SETTINGS);
        repo.write("users/alice.toml", &user_file("alice@example.com", KEY_ALICE));
        repo.write("users/bob.toml", &user_file("bob@example.com", KEY_ALICE_2));
        repo.write("alpha.txt", "");
        let elsewhere = home.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("alpha.txt"), "").unwrap();
        Self { home, repo, elsewhere }
    }

    /// Writes the script of `shell` to a file; its path.
    fn script(&self, shell: &str) -> PathBuf {
        let path = self.home.path().join(format!("devbox-gen.{shell}"));
        fs::write(&path, self.repo.run_ok(&["completions", shell], 0).stdout).unwrap();
        path
    }

    /// A shell run as a person's would be: in `cwd`, with this HOME and no configuration of the
    /// machine's user.
    fn shell(&self, program: &Path, cwd: &Path) -> Command {
        let mut command = Command::new(program);
        let home = self.home.path();
        command.current_dir(cwd).env("HOME", home).env("XDG_CONFIG_HOME", home.join(".config")).env("XDG_DATA_HOME", home.join(".local"));
        command
    }

    /// What to type, where, and what must complete: the candidates (bash, fish), and the
    /// line after one TAB (zsh, which inserts a unique match and shows a list otherwise).
    fn cases(&self) -> Vec<Case> {
        let repo = self.repo.path().display().to_string();
        let tilde = format!("~/{}", self.repo.path().file_name().unwrap().to_str().unwrap());
        let (in_repo, elsewhere) = (self.repo.path().to_path_buf(), self.elsewhere.clone());
        let case = |cwd: &PathBuf, line: String, words: &[&str], zsh: String| Case {
            cwd: cwd.clone(),
            line,
            words: words.iter().map(ToString::to_string).collect(),
            zsh,
        };
        vec![
            // The flags of a subcommand: clap's own bash script completed none (#14).
            case(&in_repo, "devbox-gen diff --fo".into(), &["--format"], "devbox-gen diff --format=".into()),
            case(&in_repo, "devbox-gen bu".into(), &["build"], "devbox-gen build ".into()),
            case(&in_repo, "devbox-gen show a".into(), &["alice"], "devbox-gen show alice ".into()),
            case(&elsewhere, format!("devbox-gen -C {repo} secrets b"), &["bob"], format!("devbox-gen -C {repo} secrets bob ")),
            case(&elsewhere, format!("devbox-gen -C {tilde} ssh-config a"), &["alice"], format!("devbox-gen -C {tilde} ssh-config alice ")),
            case(
                &elsewhere,
                format!("devbox-gen ssh-config -C {repo} --identity-file x a"),
                &["alice"],
                format!("devbox-gen ssh-config -C {repo} --identity-file x alice "),
            ),
            // After the NAME, its flags still complete.
            case(&in_repo, "devbox-gen show alice --in".into(), &["--input"], "devbox-gen show alice --input ".into()),
            // The values of `completions SHELL` and `man COMMAND`, not file names (fish offered those).
            case(&in_repo, "devbox-gen completions f".into(), &["fish"], "devbox-gen completions fish ".into()),
            case(&in_repo, "devbox-gen man bu".into(), &["build"], "devbox-gen man build ".into()),
        ]
    }
}

struct Case {
    cwd: PathBuf,
    line: String,
    words: Vec<String>,
    zsh: String,
}

/// Lines of `command`'s stdout, asserting it succeeded.
fn output_lines(command: &mut Command, what: &str) -> Vec<String> {
    let output = command.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    assert_eq!(stderr, "", "{what}: the shell complained");
    stdout.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Sets COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT as bash does for `$2` typed on a
/// line, calls the function the script registered for devbox-gen, prints COMPREPLY.
const BASH_DRIVER: &str = r#"
source "$1" || exit 1
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
spec=$(complete -p devbox-gen) || exit 1
function=${spec##*-F }
function=${function%% *}
COMPREPLY=()
"$function" devbox-gen "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

#[test]
fn bash_completes_flags_subcommands_and_user_names() {
    let Some(bash) = tool("bash") else { return };
    let setup = Setup::new();
    let script = setup.script("bash");
    for case in setup.cases() {
        let mut command = setup.shell(&bash, &case.cwd);
        command.args(["--norc", "--noprofile", "-c", BASH_DRIVER, "bash"]).arg(&script).arg(&case.line);
        assert_eq!(output_lines(&mut command, &case.line), case.words, "bash: `{}<TAB>`", case.line);
    }
}

#[test]
fn fish_completes_flags_subcommands_and_user_names() {
    let Some(fish) = tool("fish") else { return };
    let setup = Setup::new();
    let script = setup.script("fish");
    for case in setup.cases() {
        let mut command = setup.shell(&fish, &case.cwd);
        command.args(["--no-config", "-c", "source $argv[1]; and complete -C $argv[2]"]).arg(&script).arg(&case.line);
        // fish prints `candidate<TAB>description`.
        let words: Vec<String> = output_lines(&mut command, &case.line).iter().map(|l| l.split('\t').next().unwrap().to_string()).collect();
        assert_eq!(words, case.words, "fish: `{}<TAB>`", case.line);
    }
}

/// The interactive zsh the driver types into: the completion system, the script, and TAB bound
/// to a widget that completes as TAB does, then saves the line.
const ZSHRC: &str = r#"
PS1='> '
autoload -U compinit && compinit -u -D
source "$DEVBOX_GEN_SCRIPT"
complete-and-save() {
    zle complete-word
    print -r -- "$BUFFER" >| "$COMPLETED"
    exit
}
zle -N complete-and-save
bindkey '^I' complete-and-save
"#;

/// Types `$1` and a TAB into an interactive zsh on a pseudo-terminal (zsh/zpty), as a person
/// would, and prints the line completion left; on a timeout, what the terminal showed.
const ZSH_DRIVER: &str = r#"
zmodload zsh/zpty || exit 1
zpty shell zsh -d -i
zpty -w -n shell "$1"$'\t'
for i in {1..600}; do
    [[ -s $COMPLETED ]] && break
    sleep 0.05
done
if [[ ! -s $COMPLETED ]]; then
    print -u2 "no completion within 30s; the terminal showed:"
    while zpty -r -t shell chunk; do print -u2 -rn -- "$chunk"; done
    exit 1
fi
zpty -d shell
cat "$COMPLETED"
"#;

#[test]
fn zsh_completes_flags_subcommands_and_user_names() {
    let Some(zsh) = tool("zsh") else { return };
    let setup = Setup::new();
    let script = setup.script("zsh");
    let zdotdir = setup.home.path().join("zdotdir");
    fs::create_dir(&zdotdir).unwrap();
    fs::write(zdotdir.join(".zshrc"), ZSHRC).unwrap();
    for (i, case) in setup.cases().into_iter().enumerate() {
        let completed = setup.home.path().join(format!("completed-{i}"));
        let mut command = setup.shell(&zsh, &case.cwd);
        command
            .args(["-f", "-c", ZSH_DRIVER, "zsh", &case.line])
            .env("ZDOTDIR", &zdotdir)
            .env("DEVBOX_GEN_SCRIPT", &script)
            .env("COMPLETED", &completed);
        assert_eq!(output_lines(&mut command, &case.line), std::slice::from_ref(&case.zsh), "zsh: `{}<TAB>`", case.line);
    }
}

#[test]
fn user_names_are_not_offered_where_no_user_is_meant() {
    let Some(bash) = tool("bash") else { return };
    let setup = Setup::new();
    let script = setup.script("bash");
    let (repo, elsewhere) = (setup.repo.path().display().to_string(), &setup.elsewhere);
    // A new user's name, a second NAME, an option's value, and no -C from elsewhere.
    for line in [
        format!("devbox-gen -C {repo} new a"),
        format!("devbox-gen -C {repo} show alice a"),
        format!("devbox-gen -C {repo} show --color a"),
        "devbox-gen show a".to_string(),
    ] {
        let mut command = setup.shell(&bash, elsewhere);
        command.args(["--norc", "--noprofile", "-c", BASH_DRIVER, "bash"]).arg(&script).arg(&line);
        let words = output_lines(&mut command, &line);
        assert!(!words.iter().any(|w| w == "alice"), "bash: `{line}<TAB>` offered alice: {words:?}");
    }
}

/// The pages `man --out-dir` writes: the main one and one per subcommand.
const PAGES: [&str; 14] = [
    "devbox-gen.1",
    "devbox-gen-completions.1",
    "devbox-gen-man.1",
    "devbox-gen-init.1",
    "devbox-gen-build.1",
    "devbox-gen-validate.1",
    "devbox-gen-schema.1",
    "devbox-gen-show.1",
    "devbox-gen-new.1",
    "devbox-gen-secrets.1",
    "devbox-gen-ssh-config.1",
    "devbox-gen-wake.1",
    "devbox-gen-list.1",
    "devbox-gen-diff.1",
];

/// Writes every page with `man --out-dir`; the directory (kept alive by the TempDir).
fn man_pages(repo: &Repo) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = repo.run_ok(&["man", "--out-dir", out.to_str().unwrap()], 0);
    assert_contains!(run.stderr, &format!("wrote {} man pages", PAGES.len()));
    (dir, out)
}

/// Pages written into out/ would be files there that no build made, and users/ is input.
#[test]
fn man_writes_nothing_into_out_or_users() {
    let repo = Repo::with_alice();
    repo.run_ok(&["build"], 0);
    let before = repo.out_snapshot();
    for dir in ["out", "out/alice", "out/new/man1", "users"] {
        let path = repo.path().join(dir);
        let run = repo.run_ok(&["man", "--out-dir", path.to_str().unwrap()], 2);
        assert_contains!(run.stderr, &format!("error: {} is inside ", path.display()));
    }
    assert!(repo.out_snapshot() == before, "out/ changed");
    assert!(!repo.path().join("out/new").exists() && !repo.path().join("users/devbox-gen.1").exists());
}

#[test]
fn man_writes_one_page_per_subcommand_and_every_page_it_refers_to() {
    let repo = Repo::with_alice();
    let (_dir, out) = man_pages(&repo);
    let mut written: Vec<String> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    let mut expected = PAGES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(written, expected);

    // Every devbox-gen page a page refers to exists (the single page of before named ten that
    // did not), and the main one refers to all of them.
    for page in PAGES {
        let text = fs::read_to_string(out.join(page)).unwrap().replace("\\fB", "").replace("\\fR", "").replace("\\-", "-");
        let mut named: Vec<&str> = text.match_indices("(1)").map(|(i, _)| text[..i].rsplit([' ', '\n', ',']).next().unwrap()).collect();
        // (Not `devbox-gen-COMMAND(1)`, which is how `man COMMAND` says what it prints.)
        named.retain(|name| name.starts_with("devbox-gen") && name.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        for name in &named {
            assert!(PAGES.contains(&format!("{name}.1").as_str()), "{page} refers to {name}(1), which is not written");
        }
        named.sort();
        named.dedup();
        assert_eq!(named.len(), if page == "devbox-gen.1" { PAGES.len() - 1 } else { 1 }, "{page}: {named:?}");
    }

    // `man` and `man COMMAND` print the same pages.
    assert_eq!(repo.run_ok(&["man"], 0).stdout, fs::read_to_string(out.join("devbox-gen.1")).unwrap());
    assert_eq!(repo.run_ok(&["man", "ssh-config"], 0).stdout, fs::read_to_string(out.join("devbox-gen-ssh-config.1")).unwrap());
    assert_contains!(repo.run_ok(&["man", "help"], 2).stderr, "invalid value 'help'");
}

/// The long options `devbox-gen ARGS --help` lists.
fn long_options(repo: &Repo, args: &[&str]) -> Vec<String> {
    let help = repo.run_ok(&[args, &["--help"]].concat(), 0).stdout;
    let options: Vec<String> = help
        .lines()
        // An option's own line (`  -C, --root <DIR>`, `      --color`), not a wrapped help
        // line that happens to start with a flag: those are indented further.
        .filter(|line| line.trim_start().starts_with('-') && line.len() - line.trim_start().len() <= 6)
        .filter_map(|line| line.split([',', ' ']).find(|word| word.starts_with("--")).map(str::to_string))
        .collect();
    assert!(options.len() >= 5, "{help}");
    options
}

#[test]
fn every_man_page_has_its_options_exit_status_environment_and_files() {
    let repo = Repo::with_alice();
    let (_dir, out) = man_pages(&repo);
    for page in PAGES {
        let text = fs::read_to_string(out.join(page)).unwrap();
        let command = page.strip_prefix("devbox-gen").unwrap().strip_suffix(".1").unwrap().trim_start_matches('-');
        let args: Vec<&str> = if command.is_empty() { vec![] } else { vec![command] };
        let title = page.strip_suffix(".1").unwrap();
        assert_contains!(text, &format!(".TH {title} 1"), "{page}");
        for option in long_options(&repo, &args) {
            assert_contains!(text, &format!("\\fB{}\\fR", option.replace('-', "\\-")), "{page}: {option}");
        }
        for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES", ".SH \"SEE ALSO\""] {
            assert_contains!(text, section, "{page}");
        }
        for variable in ["NO_COLOR", "DEVBOX_GEN_TIMINGS"] {
            assert_contains!(text, variable, "{page}");
        }
        for file in ["devbox.toml", "users/*.toml", "out/", ".devbox\\-gen/build\\-cache.json"] {
            assert_contains!(text, file, "{page}");
        }
    }
    // Exit 1 only where something can be stale or changed.
    for (page, one) in
        [("devbox-gen-diff.1", true), ("devbox-gen-build.1", true), ("devbox-gen-schema.1", true), ("devbox-gen-show.1", false)]
    {
        let text = fs::read_to_string(out.join(page)).unwrap();
        assert_eq!(text.contains("\n.TP\n\\fB1\\fR\n"), one, "{page}");
    }
    let new = fs::read_to_string(out.join("devbox-gen-new.1")).unwrap();
    assert_contains!(new, "HOME");
}

/// Runs `program` on `page`; its stderr.
fn warnings(program: &mut Command, page: &Path) -> String {
    let output = program.arg(page).output().unwrap();
    assert!(output.status.success(), "{program:?} {}: {}", page.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn man_pages_render_without_warnings() {
    let groff = tool("groff");
    let man = tool("man");
    if groff.is_none() && man.is_none() {
        return;
    }
    let repo = Repo::with_alice();
    let (dir, out) = man_pages(&repo);
    let groff_warnings =
        |page: &Path| groff.as_ref().map(|groff| warnings(Command::new(groff).args(["-ww", "-man", "-Tutf8", "-z"]), page));
    let man_warnings = |page: &Path| {
        man.as_ref().map(|man| {
            warnings(Command::new(man).env("MANWIDTH", "80").args(["--warnings", "-l"]).stdout(std::process::Stdio::null()), page)
        })
    };

    // Both checkers do complain about a page that is wrong, so their silence below means something.
    let broken = dir.path().join("broken.1");
    fs::write(&broken, ".TH broken 1\n.SH NAME\nbroken \\- a page\n.XX undefined macro\n").unwrap();
    for found in [groff_warnings(&broken), man_warnings(&broken)].into_iter().flatten() {
        assert_contains!(found, "warning");
    }

    for page in PAGES {
        let page = out.join(page);
        for found in [groff_warnings(&page), man_warnings(&page)].into_iter().flatten() {
            assert_eq!(found, "", "{}", page.display());
        }
    }
}
