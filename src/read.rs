//! Stage 1, read: `devbox.toml` and `users/*.toml` from the config repo into typed values,
//! each kept with its [`SourceFile`] so later stages can point at the exact key.
//!
//! Reading is strict about the *files* (regular `.toml` files only, no symlinks out of the
//! repo, UTF-8, a sane size, never a private key) and lenient about nothing: every unknown key
//! is reported with the closest known one, and every value of the wrong type with its fix, in
//! every file, before anything is built.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use toml::de::DeTable;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{DevboxConfig, UserFile};
use crate::schema;
use crate::source::SourceFile;

mod links;
mod recovery;
mod toml_version;

pub(crate) use links::{LeavingLink, links_leaving_the_repository};

/// Larger user files are refused: a person's box fits in a few hundred bytes, and a
/// multi-megabyte file in users/ is a mistake (or an attack on the reviewer's patience).
pub(crate) const MAX_FILE_BYTES: u64 = 256 * 1024;

/// A parsed file and the source it came from.
#[derive(Debug, Clone)]
pub(crate) struct Parsed<T> {
    pub source: Arc<SourceFile>,
    pub value: T,
    /// Values reading invented for required keys that were missing or wrong (dotted paths),
    /// each already reported: validation says nothing of them.
    pub stand_ins: Vec<String>,
}

/// One user's file; `name` is its stem.
pub(crate) type UserEntry = (String, Parsed<UserFile>);

/// Everything the config repo says, as written.
#[derive(Debug)]
pub struct ConfigRepo {
    pub(crate) root: PathBuf,
    /// `None` when the repo has no devbox.toml (all defaults), or one that cannot be read.
    pub(crate) settings: Option<Parsed<DevboxConfig>>,
    /// devbox.toml is there but could not be read (reading reported why): the user files are
    /// not judged against settings that are not what it says.
    pub(crate) settings_unreadable: bool,
    /// Sorted by name.
    pub(crate) users: Vec<UserEntry>,
    /// Where the config repo sits in the Git work tree it is in (`deploy/devboxes`, `` at its
    /// root); `None` outside Git, or when not read from disk.
    pub(crate) git_prefix: Option<String>,
}

impl ConfigRepo {
    pub(crate) fn settings(&self) -> DevboxConfig {
        self.settings.as_ref().map(|s| s.value.clone()).unwrap_or_default()
    }
}

/// Reads the whole config repo. Every problem of every file is reported; a file with values of
/// the wrong type is returned without them (see `read/recovery.rs`), so validation reports its other
/// problems in the same run, and only files that cannot be read at all (not TOML, a wrong
/// required value) are left out. `Err` only when there is no config repo to read at all.
pub fn read(root: &Path) -> Result<(ConfigRepo, Diagnostics), Diagnostics> {
    read_selected(root, None)
}

/// The config repo must exist: a mistyped `-C` is an error, not a new directory to write into.
pub(crate) fn require_config_repo(root: &Path) -> Result<(), Diagnostics> {
    if root.is_dir() {
        return Ok(());
    }
    Err(Diagnostic::error(format!("config repo `{}` is not a directory", root.display()))
        .help("pass the folder that holds devbox.toml and users/ with `-C DIR`")
        .into())
}

/// The first symbolic link on the way from the config repo's root to `relative` (`schema`,
/// then `schema/devbox.schema.json`), as that part of the path, if there is one. devbox-gen
/// reads and writes only inside the config repo, so it follows no link: a directory that is
/// one could send a write anywhere the user can write.
pub(crate) fn link_on_the_way(root: &Path, relative: &str) -> Option<String> {
    let mut path = root.to_path_buf();
    let mut parts = Vec::new();
    for part in relative.split('/') {
        path.push(part);
        parts.push(part);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => return Some(parts.join("/")),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The error for a link [`link_on_the_way`] found.
pub(crate) fn refuse_link(link: &str) -> Diagnostic {
    Diagnostic::error(format!("{link} is a symbolic link")).in_path(link.to_string()).help(format!(
        "devbox-gen reads and writes only inside the config repo and follows no link: replace {link} with the directory or file itself"
    ))
}

/// Like [`read`], but only the given user files (for `validate FILE...`).
pub(crate) fn read_selected(root: &Path, only: Option<&[PathBuf]>) -> Result<(ConfigRepo, Diagnostics), Diagnostics> {
    let mut diagnostics = Diagnostics::default();
    require_config_repo(root)?;
    let settings_path = root.join("devbox.toml");
    let settings = if settings_path.symlink_metadata().is_ok() {
        load::<DevboxConfig>(&settings_path, "devbox.toml".into(), &mut diagnostics).filter(without_stand_ins)
    } else {
        None
    };

    let files = match only {
        // Like `git -C`, relative paths are relative to the config repo.
        Some(paths) => paths
            .iter()
            .map(|p| root.join(p))
            .map(|p| {
                let shown = display_path(root, &p);
                (p, shown)
            })
            .collect(),
        None => list_user_files(root, &mut diagnostics),
    };
    let loaded: Vec<(Option<UserEntry>, Diagnostics)> = files
        .par_iter()
        .map(|(path, display)| {
            let mut local = Diagnostics::default();
            let entry = user_name(path, display, &mut local)
                .and_then(|name| load::<UserFile>(path, display.clone(), &mut local).map(|parsed| (name, parsed)));
            (entry, local)
        })
        .collect();
    let mut users = Vec::with_capacity(loaded.len());
    for (entry, local) in loaded {
        diagnostics.extend(local);
        users.extend(entry);
    }
    users.sort_by(|a, b| a.0.cmp(&b.0));
    let settings_unreadable = settings.is_none() && settings_path.symlink_metadata().is_ok();
    let git_prefix = git_prefix(root);
    Ok((ConfigRepo { root: root.to_path_buf(), settings, settings_unreadable, users, git_prefix }, diagnostics))
}

/// The directory `root` is, relative to the top of the Git work tree holding it (the nearest
/// directory above with a `.git`, a directory or a worktree's file); `None` outside Git. Found
/// without running git: a build must not need it.
pub(crate) fn git_prefix(root: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let top = root.ancestors().find(|dir| dir.join(".git").symlink_metadata().is_ok())?;
    let relative = root.strip_prefix(top).ok()?;
    Some(relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

/// Reads a config repo from texts instead of files (for fuzzing and tests of the later stages):
/// the same parsing and the same diagnostics as [`read`].
pub fn from_texts(settings: Option<&str>, users: &[(&str, &str)]) -> (ConfigRepo, Diagnostics) {
    let mut diagnostics = Diagnostics::default();
    let text_given = settings.is_some();
    let settings =
        settings.and_then(|text| parse::<DevboxConfig>("devbox.toml".into(), text.to_string(), &mut diagnostics)).filter(without_stand_ins);
    let mut parsed_users = Vec::new();
    for (name, text) in users {
        let shown = format!("users/{name}.toml");
        if let Some(parsed) = parse::<UserFile>(shown, text.to_string(), &mut diagnostics) {
            parsed_users.push((name.to_string(), parsed));
        }
    }
    parsed_users.sort_by(|a, b| a.0.cmp(&b.0));
    let settings_unreadable = text_given && settings.is_none();
    (ConfigRepo { root: PathBuf::from("."), settings, settings_unreadable, users: parsed_users, git_prefix: None }, diagnostics)
}

fn display_path(root: &Path, path: &Path) -> String {
    let shown = path.strip_prefix(root).unwrap_or(path);
    shown.to_string_lossy().replace('\\', "/")
}

/// The nearest directory above `root` that holds devbox.toml and users/, as a relative path
/// (`..`, `../..`) when `root` is relative, so the help reads as the user typed.
fn enclosing_config_repo(root: &Path) -> Option<PathBuf> {
    let absolute = root.canonicalize().ok()?;
    absolute.ancestors().skip(1).enumerate().find(|(_, dir)| dir.join("devbox.toml").is_file() && dir.join("users").is_dir()).map(
        |(up, dir)| {
            let base = if root == Path::new(".") { Path::new("") } else { root };
            if root.is_absolute() { dir.to_path_buf() } else { base.join(std::iter::repeat_n("..", up + 1).collect::<PathBuf>()) }
        },
    )
}

/// Lists `users/*.toml`, refusing what is not a regular TOML file.
fn list_user_files(root: &Path, diagnostics: &mut Diagnostics) -> Vec<(PathBuf, String)> {
    if let Some(link) = link_on_the_way(root, "users") {
        diagnostics.push(refuse_link(&link));
        return Vec::new();
    }
    let dir = root.join("users");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            let mut diagnostic = Diagnostic::error(format!("cannot read the users/ directory: {e}")).in_path(dir.display().to_string());
            // Run from inside a config repo (users/, say): the repo is a parent, not a new one.
            let inside = (e.kind() == std::io::ErrorKind::NotFound && !root.join("devbox.toml").exists())
                .then(|| enclosing_config_repo(root))
                .flatten();
            diagnostic = match inside {
                Some(up) => diagnostic.help(format!(
                    "{} holds devbox.toml and users/: run devbox-gen there, or pass `-C {}`",
                    up.display(),
                    up.display()
                )),
                None => diagnostic.help("create users/NAME.toml, one file per person"),
            };
            diagnostics.push(diagnostic);
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let shown = display_path(root, &path);
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name == ".toml" {
            diagnostics.push(
                Diagnostic::warning(format!("{shown} has no name, so it is not read as a user file"))
                    .in_path(shown)
                    .help("name it after its person: users/NAME.toml"),
            );
            continue;
        }
        if let Some(visible) = file_name.strip_prefix('.') {
            // .gitkeep and editor files are not user files; a hidden `.NAME.toml` may be one
            // that someone meant to keep, and would leave out without a word.
            if visible.len() > ".toml".len() && visible.ends_with(".toml") {
                diagnostics.push(
                    Diagnostic::warning(format!("{shown} is hidden, so it is not read as a user file"))
                        .in_path(shown)
                        .help(format!("rename it to users/{visible}, if it is one")),
                );
            }
            continue;
        }
        if is_editor_leftover_or_notes(&file_name) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else { continue };
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if file_type.is_symlink() {
            diagnostics.push(
                Diagnostic::error("symbolic links are not read in users/")
                    .in_path(shown)
                    .help("replace the link with the file itself: devbox-gen never follows links out of the config repo"),
            );
        } else if !file_type.is_file() || !is_toml {
            let help = if is_toml {
                "move it out of users/: it is named like a user file, but is not a file"
            } else {
                "move this entry out of users/, or rename it to NAME.toml if it is a user file"
            };
            diagnostics.push(Diagnostic::error("users/ may only hold one `NAME.toml` file per person").in_path(shown).help(help));
        } else {
            files.push((path, shown));
        }
    }
    files.sort();
    files
}

/// Files people and editors leave beside user files, which are not one: an editor's backup
/// (`alice.toml~`, `#alice.toml#`, `alice.toml.swp`, `.bak`, `.orig`, `.rej`) and notes
/// (`README.md`). Refusing them would fail an editor's build on save; anything else that is
/// not `NAME.toml` (a misnamed `alice.tml`) is still an error.
fn is_editor_leftover_or_notes(file_name: &str) -> bool {
    const SUFFIXES: [&str; 7] = ["~", ".swp", ".swo", ".bak", ".orig", ".rej", ".md"];
    SUFFIXES.iter().any(|suffix| file_name.ends_with(suffix)) || (file_name.starts_with('#') && file_name.ends_with('#'))
}

fn user_name(path: &Path, shown: &str, diagnostics: &mut Diagnostics) -> Option<String> {
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) => Some(stem.to_string()),
        None => {
            diagnostics.push(Diagnostic::error("the file name is not valid UTF-8").in_path(shown.to_string()));
            None
        }
    }
}

/// devbox.toml with an invented value is not passed on: every user file would be judged
/// against it (a user file's own stand-ins are only left out of its own validation).
fn without_stand_ins(settings: &Parsed<DevboxConfig>) -> bool {
    settings.stand_ins.is_empty()
}

/// Reads and parses one TOML file into `T`, collecting every problem.
fn load<T: DeserializeOwned + JsonSchema>(path: &Path, shown: String, diagnostics: &mut Diagnostics) -> Option<Parsed<T>> {
    let text = read_text(path, &shown, diagnostics)?;
    parse(shown, text, diagnostics)
}

fn read_text(path: &Path, shown: &str, diagnostics: &mut Diagnostics) -> Option<String> {
    let fail = |message: String, help: &str| Diagnostic::error(message).in_path(shown.to_string()).help(help.to_string());
    let metadata = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) => {
            diagnostics.push(fail(format!("cannot read {shown}: {e}"), "check the path and its permissions"));
            return None;
        }
    };
    if metadata.file_type().is_symlink() {
        diagnostics.push(fail(format!("{shown} is a symbolic link"), "replace the link with the file itself"));
        return None;
    }
    if !metadata.is_file() {
        // Reading a FIFO or a device would block or never end.
        let help = if metadata.is_dir() && shown != "devbox.toml" {
            "give the files themselves (`validate users/alice.toml`), or none to read all of users/"
        } else {
            "replace it with a TOML file"
        };
        diagnostics.push(fail(format!("{shown} is not a regular file"), help));
        return None;
    }
    if metadata.len() > MAX_FILE_BYTES {
        diagnostics.push(fail(
            format!("{shown} is {} bytes, more than the {MAX_FILE_BYTES} a devbox file may have", metadata.len()),
            "a user file describes one box in a few lines; check that the right file is in users/",
        ));
        return None;
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            diagnostics.push(fail(format!("cannot read {shown}: {e}"), "check the file's permissions"));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            diagnostics.push(fail(
                format!("{shown}:{line}:{column}: the file is not valid UTF-8"),
                "save the file as UTF-8 (TOML files must be UTF-8)",
            ));
            None
        }
    }
}

/// A control character TOML allows nowhere (anything below U+0020 but tab, newline and carriage
/// return, and DEL), named: a terminal shows a NUL as nothing at all, so the parser's own
/// message ("expected `=`") would point at an empty spot. Such a byte comes from a tool that
/// wrote binary into the file or a bad copy and paste.
fn control_character(file: &Arc<SourceFile>) -> Option<(usize, Diagnostic)> {
    let text = &file.text;
    let (at, found) = text
        .char_indices()
        .find(|&(at, c)| (c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r')) || (c == '\r' && !text[at + 1..].starts_with('\n')))?;
    let name = match found {
        '\0' => "a NUL",
        '\x1b' => "an escape",
        '\x7f' => "a DEL",
        '\r' => "a carriage return without a line feed after it",
        _ => "a control character",
    };
    Some((
        at,
        Diagnostic::error(format!("this file contains {name} (U+{:04X}), which TOML does not allow anywhere", u32::from(found)))
            .at(file, at..at + 1, "here")
            .help("delete it (`sed -i 's/[[:cntrl:]]//g'` would also remove tabs and line ends: edit the line instead); a tab is the only control character TOML allows besides line ends"),
    ))
}

/// What reads a config repo's TOML besides devbox-gen, and reads only TOML 1.0.
const TOML_1_0_TOOLS: &str = "taplo (the editors' check of the `#:schema` line, and its pre-commit hook) and Python's tomllib";

fn parse<T: DeserializeOwned + JsonSchema>(shown: String, text: String, diagnostics: &mut Diagnostics) -> Option<Parsed<T>> {
    // A byte order mark is what some Windows editors add, and people do not see: read past it,
    // and say that taplo and tomllib will not.
    let (text, byte_order_mark) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest.to_string(), true),
        None => (text, false),
    };
    if byte_order_mark {
        diagnostics.push(
            Diagnostic::warning("the file starts with a byte order mark")
                .in_path(shown.clone())
                .help(format!("{TOML_1_0_TOOLS} refuse it: save the file as UTF-8 without a byte order mark")),
        );
    }
    if let Some(offset) = crate::authorized_keys::private_key_at(&text) {
        let file = Arc::new(SourceFile::unparsed(shown, String::new()));
        let (line, column) = line_column(&text, offset);
        // A file outside the config repo (`validate ~/.ssh/id_ed25519`) was never committed.
        let outside = Path::new(&file.path).is_absolute() || file.path.starts_with("../");
        let help = if outside {
            "it is not a user file: `validate` takes the files of users/ (and devbox.toml), which hold public keys only; nothing of it was printed or copied"
        } else {
            "remove it now and rotate it: it must never be committed. A box's own key belongs in the Kubernetes Secret `NAME-ssh` (`kubectl -n devboxes create secret generic NAME-ssh --from-file=id_ed25519 --from-file=id_ed25519.pub`); users/ holds public keys only"
        };
        diagnostics.push(Diagnostic::error(format!("{}:{line}:{column}: this file contains a private key", file.path)).help(help));
        return None;
    }
    let document = match DeTable::parse(&text) {
        Ok(document) => document,
        Err(last) => {
            // Every syntax error of the file, in its order, as the parser recovers from each:
            // `parse` keeps only its last (which is told, should recovery find none).
            let file = Arc::new(SourceFile::unparsed(shown, text.clone()));
            let before = diagnostics.0.len();
            let (_, mut errors) = DeTable::parse_recoverable(&text);
            errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
            let control = control_character(&file);
            let control_at = control.as_ref().map(|(at, _)| *at);
            if let Some((_, diagnostic)) = control {
                diagnostics.push(diagnostic);
            }
            let mut seen = std::collections::HashSet::new();
            // The table header a duplicate was reported at, until the next header: the keys
            // under a table defined twice are each "duplicate" too, and told once, by the header.
            let mut repeated_table: Option<usize> = None;
            for error in &errors {
                let start = error.span().map_or(0, |s| s.start);
                // The control character's own error is told above, by name.
                if Some(start) == control_at || !seen.insert(start) {
                    continue;
                }
                let header = is_table_header(&text, start);
                if header {
                    repeated_table = None;
                }
                if is_duplicate(error) {
                    if repeated_table.is_some() && !header {
                        continue;
                    }
                    if header {
                        repeated_table = Some(start);
                    }
                }
                diagnostics.push(toml_error(&file, error, "this is not valid TOML"));
            }
            if diagnostics.0.len() == before {
                diagnostics.push(toml_error(&file, &last, "this is not valid TOML"));
            }
            return None;
        }
    };
    let file = Arc::new(SourceFile::indexed(shown, text.clone(), document.get_ref()));
    for (span, newer) in toml_version::newer_than_1_0(&text) {
        diagnostics.push(
            Diagnostic::error(newer.message())
                .at(&file, span, newer.label())
                .help(format!("{TOML_1_0_TOOLS} read TOML 1.0: they refuse the whole file"))
                .help(newer.help()),
        );
    }
    let recovered = recovery::deserialize::<T>(&file, document);
    if !recovered.ignored.is_empty() {
        let schema = recovery::Schema::of::<T>();
        for key in &recovered.ignored {
            diagnostics.push(unknown_key::<T>(&file, &schema, key));
        }
    }
    diagnostics.0.extend(recovered.problems);
    // A file with wrong values is still passed on when the rest of it could be read: validation
    // then reports its other problems in the same run, and the errors above stop the build.
    recovered.value.map(|value| Parsed { source: file, value, stand_ins: recovered.stand_ins })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    SourceFile::unparsed(String::new(), text.to_string()).line_column(offset)
}

/// A TOML syntax error: the parser's own words, which are about the text (`invalid basic
/// string, expected `"``), not about the model.
fn toml_error(file: &Arc<SourceFile>, error: &toml::de::Error, label: &str) -> Diagnostic {
    let message = error.message().trim().to_string();
    let span = error.span().unwrap_or(0..0);
    let diagnostic = Diagnostic::error(first_line(&message)).at(file, span, label);
    if is_duplicate(error) {
        return diagnostic.help("TOML allows each key, and each `[table]`, once: it is already defined above in this file; keep one (merge two `[table]` sections into one)");
    }
    diagnostic
}

fn is_duplicate(error: &toml::de::Error) -> bool {
    error.message().trim_start().starts_with("duplicate key")
}

/// Whether the error at `offset` is on a line that is a `[table]` or `[[array]]` header.
fn is_table_header(text: &str, offset: usize) -> bool {
    let line_start = text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..].trim_start().starts_with('[')
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_string()
}

fn unknown_key<T: JsonSchema>(file: &Arc<SourceFile>, schema: &recovery::Schema, path: &str) -> Diagnostic {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
    let known = schema.fields_at(parent);
    let span = file.key_span(path);
    if !parent.is_empty() && schema::known_keys::<T>("").iter().any(|k| k == key) {
        let fields = schema.fields_at(key);
        let help = if fields.is_empty() {
            format!("`{key}` is a top-level field: move it above the first `[table]` header, or TOML reads it as part of `[{parent}]`")
        } else {
            format!(
                "`{key}` is a table of its own, not a field of `[{parent}]`: write a `[{key}]` header with its fields ({})",
                fields.join(", ")
            )
        };
        return Diagnostic::error(format!("unknown field `{key}`")).at(file, span, "not a known field").help(help);
    }
    // The right name in the wrong table: most often a key written above its `[table]` header.
    let elsewhere: Vec<String> = schema.tables_with(key).into_iter().map(|table| format!("`[{table}]`")).collect();
    if !elsewhere.is_empty() {
        let here = if parent.is_empty() { "not a top-level field".to_string() } else { format!("not a field of `[{parent}]`") };
        return Diagnostic::error(format!("`{key}` belongs in {}", elsewhere.join(" or ")))
            .at(file, span, here)
            .help(format!("move it below the {} header", elsewhere.join(" or ")));
    }
    let diagnostic = Diagnostic::error(format!("unknown field `{key}`")).at(file, span, "not a known field");
    if let Some(suggestion) = closest(key, &known) {
        diagnostic.help(format!("did you mean `{suggestion}`?"))
    } else if !known.is_empty() {
        diagnostic.help(format!("known fields here: {}", known.join(", ")))
    } else {
        diagnostic
    }
}

/// The known name closest to `input`, when it is close enough to be a typo: at most a third
/// of its letters wrong (`memroy` → `memory`, `nvidia-tesla-t5` → `nvidia-tesla-t4`).
pub(crate) fn closest<'a>(input: &str, candidates: &'a [String]) -> Option<&'a str> {
    let allowed = (input.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(input, c), c))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.as_str())
}
