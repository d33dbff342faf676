//! Errors as values: every stage reports problems as [`Diagnostic`]s pointing into the files
//! people wrote, and [`render`] prints them once, rustc-style, at the edge of the program.
//! Collecting instead of failing fast is what lets one run report every mistake in every file.

use std::ops::Range;
use std::sync::Arc;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label, Severity as ReportSeverity};
use codespan_reporting::files::{Error as FilesError, Files};
use codespan_reporting::term::{self, termcolor::WriteColor};

use crate::source::SourceFile;
use crate::text::printable;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    Error,
    Warning,
}

/// The label of a diagnostic whose marker only shows the place.
pub(crate) const PLAIN_LABEL: &str = "here";

/// One problem, with where it is and how to fix it.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub(crate) severity: Severity,
    pub message: String,
    pub(crate) location: Option<Location>,
    /// Short text under the marker.
    pub(crate) label: String,
    /// `help:` lines: what to do about it.
    pub(crate) help: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum Location {
    /// A span in a file we parsed; the snippet is shown.
    Span { file: Arc<SourceFile>, span: Range<usize> },
    /// A whole file or directory (unreadable, not TOML, ...).
    Path(String),
}

impl Diagnostic {
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, message: message.into(), location: None, label: String::new(), help: Vec::new() }
    }

    pub(crate) fn warning(message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(message) }
    }

    pub(crate) fn at(self, file: &Arc<SourceFile>, span: Range<usize>, label: impl Into<String>) -> Self {
        Self { label: label.into(), ..self.at_span(file, span) }
    }

    /// Like [`Diagnostic::at`], keeping the label the diagnostic already has.
    pub(crate) fn at_span(mut self, file: &Arc<SourceFile>, span: Range<usize>) -> Self {
        self.location = Some(Location::Span { file: Arc::clone(file), span });
        self
    }

    pub(crate) fn in_path(mut self, path: impl Into<String>) -> Self {
        self.location = Some(Location::Path(path.into()));
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Sort key: by file, then position, so output reads top to bottom like the files do.
    fn sort_key(&self) -> (String, usize) {
        match &self.location {
            Some(Location::Span { file, span }) => (file.path.clone(), span.start),
            Some(Location::Path(path)) => (path.clone(), 0),
            None => (String::new(), 0),
        }
    }
}

/// Everything that went wrong in one run.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub(crate) fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub(crate) fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn sorted(mut self) -> Self {
        self.0.sort_by_key(Diagnostic::sort_key);
        self
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Self(vec![diagnostic])
    }
}

/// The same problem in many boxes, as one: `(user file, text)` pairs grouped by text, where
/// texts that differ only by the user's name (`boom alice`, `boom bob`) are the same, since a
/// template bug fails every box alike but names each. Each group is its first user file's text
/// and the user files, sorted; groups come in the order of their first user file.
pub(crate) fn group_by_user(items: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut items = items;
    items.sort();
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for (source, text) in items {
        let key = without_user(&text, &source);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, sources)) => {
                if !sources.contains(&source) {
                    sources.push(source);
                }
            }
            None => groups.push((key, text, vec![source])),
        }
    }
    groups.into_iter().map(|(_, text, sources)| (text, sources)).collect()
}

/// `text` with the name of the user of `source` (`users/NAME.toml`) blanked out wherever it
/// stands as a word or part of a name (`alice`, `alice-home`, but not `malice`).
fn without_user(text: &str, source: &str) -> String {
    let name = source.rsplit('/').next().unwrap_or(source).trim_end_matches(".toml");
    if name.is_empty() {
        return text.to_string();
    }
    let bounded = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        out.push_str(&rest[..i]);
        let after = &rest[i + name.len()..];
        out.push_str(if bounded(out.chars().next_back()) && bounded(after.chars().next()) { "\u{0}" } else { name });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// User files as a message names them: all of them when few, else the first few and a count.
pub(crate) fn user_files(sources: &[String]) -> String {
    const SHOWN: usize = 3;
    match sources {
        [] => "no user file".into(),
        [one] => one.clone(),
        [init @ .., last] if sources.len() <= SHOWN => format!("{} and {last}", init.join(", ")),
        _ => format!("{} user files ({} and {} more)", sources.len(), sources[..SHOWN].join(", "), sources.len() - SHOWN),
    }
}

/// Prints diagnostics rustc-style; the only place that formats them.
pub(crate) fn render(diagnostics: &Diagnostics, out: &mut dyn WriteColor) -> std::io::Result<()> {
    let mut files = ShownFiles::default();
    // Each file's text and lines once, however many diagnostics point into it.
    let mut whole: Vec<(*const SourceFile, usize)> = Vec::new();
    let config = term::Config::default();
    for diagnostic in &diagnostics.0 {
        let severity = match diagnostic.severity {
            Severity::Error => ReportSeverity::Error,
            Severity::Warning => ReportSeverity::Warning,
        };
        // Messages quote values from the files (an image, an email): shown, never interpreted.
        let mut report = Report::new(severity).with_message(printable(&diagnostic.message));
        let mut notes: Vec<String> = Vec::new();
        match &diagnostic.location {
            Some(Location::Span { file, span }) => {
                let key = Arc::as_ptr(file);
                let id = match whole.iter().find(|(k, _)| *k == key) {
                    Some((_, id)) => *id,
                    None => {
                        let id = files.add(Shown::whole(file.path.clone(), file.text.clone()));
                        whole.push((key, id));
                        id
                    }
                };
                let (id, span) = match clip_long_line(&files.0[id], span.clone()) {
                    Some((window, span)) => (files.add(window), span),
                    None => (id, span.clone()),
                };
                report = report.with_labels(vec![Label::primary(id, span).with_message(printable(&diagnostic.label))]);
            }
            Some(Location::Path(path)) => notes.push(format!("in {}", printable(path))),
            None => {}
        }
        notes.extend(diagnostic.help.iter().map(|h| format!("help: {}", printable(h))));
        report = report.with_notes(notes);
        term::emit_to_write_style(out, &config, &files, &report).map_err(std::io::Error::other)?;
    }
    out.flush()
}

/// The longest source line a snippet shows whole, in characters.
const SHOWN_LINE_CHARS: usize = 160;
/// How much of a clipped line's span is shown, in characters.
const SHOWN_SPAN_CHARS: usize = 60;
/// How much of a clipped line is shown before its span, in characters.
const SHOWN_BEFORE_CHARS: usize = 40;
const ELLIPSIS: &str = "…";

/// What a report shows of a file: all of it, or a window of one long line (see
/// [`clip_long_line`]) that still tells the file's own line and column numbers.
#[derive(Debug)]
struct Shown {
    name: String,
    text: String,
    /// Where each line of `text` starts.
    line_starts: Vec<usize>,
    /// Lines of the file before `text`.
    lines_before: usize,
    /// Characters of the file's line left out at the start of `text`'s first line, less the
    /// `…` that stands for them.
    columns_before: usize,
}

impl Shown {
    fn whole(name: String, text: String) -> Self {
        Self::window(name, text, 0, 0)
    }

    fn window(name: String, text: String, lines_before: usize, columns_before: usize) -> Self {
        let text = visible(text);
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self { name, text, line_starts, lines_before, columns_before }
    }

    fn line_range(&self, line_index: usize) -> Option<Range<usize>> {
        let start = *self.line_starts.get(line_index)?;
        Some(start..self.line_starts.get(line_index + 1).copied().unwrap_or(self.text.len()))
    }
}

/// The text with every character that would drive the terminal or reorder the line around it
/// (control characters but tab and line ends, bidirectional controls: see [`printable`])
/// replaced by a visible one of the same length in bytes and in characters, so the spans and
/// the columns of the file still point where they did: `?`, `¿` or `\u{fffd}` for one, two or
/// three bytes. The message names what was there.
fn visible(text: String) -> String {
    // A carriage return ends a line only before a newline; alone, it sends the terminal back to
    // the start of the line, and what follows overwrites what the reviewer should read.
    let hidden = |c: char, next: Option<char>| crate::text::drives_the_display(c) && c != '\n' && !(c == '\r' && next == Some('\n'));
    let mut chars = text.chars().peekable();
    let mut shown = String::with_capacity(text.len());
    let mut changed = false;
    while let Some(c) = chars.next() {
        if !hidden(c, chars.peek().copied()) {
            shown.push(c);
            continue;
        }
        changed = true;
        shown.push(match c.len_utf8() {
            1 => '?',
            2 => '¿',
            _ => '\u{fffd}',
        });
    }
    if changed { shown } else { text }
}

#[derive(Default)]
struct ShownFiles(Vec<Shown>);

impl ShownFiles {
    fn add(&mut self, shown: Shown) -> usize {
        self.0.push(shown);
        self.0.len() - 1
    }

    fn get(&self, id: usize) -> Result<&Shown, FilesError> {
        self.0.get(id).ok_or(FilesError::FileMissing)
    }
}

impl<'a> Files<'a> for ShownFiles {
    type FileId = usize;
    type Name = &'a str;
    type Source = &'a str;

    fn name(&'a self, id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.get(id)?.name)
    }

    fn source(&'a self, id: usize) -> Result<&'a str, FilesError> {
        Ok(&self.get(id)?.text)
    }

    fn line_index(&'a self, id: usize, byte_index: usize) -> Result<usize, FilesError> {
        Ok(self.get(id)?.line_starts.partition_point(|&start| start <= byte_index).saturating_sub(1))
    }

    fn line_number(&'a self, id: usize, line_index: usize) -> Result<usize, FilesError> {
        Ok(self.get(id)?.lines_before + line_index + 1)
    }

    fn column_number(&'a self, id: usize, line_index: usize, byte_index: usize) -> Result<usize, FilesError> {
        let shown = self.get(id)?;
        let column = codespan_reporting::files::column_index(&shown.text, self.line_range(id, line_index)?, byte_index) + 1;
        Ok(if line_index == 0 { column + shown.columns_before } else { column })
    }

    fn line_range(&'a self, id: usize, line_index: usize) -> Result<Range<usize>, FilesError> {
        let shown = self.get(id)?;
        shown.line_range(line_index).ok_or(FilesError::LineTooLarge { given: line_index, max: shown.line_starts.len() - 1 })
    }
}

/// The window to show for a span on a very long line (a 4096-bit RSA key, a long `[env]` value,
/// a list of thousands of items on one line): at most `SHOWN_BEFORE_CHARS` of the line before
/// the span and `SHOWN_SPAN_CHARS` into it, each cut marked `…`. A span that runs on past its
/// line keeps the lines it reaches when they are few and short (`SHOWN_LATER_LINES`); otherwise
/// it is shown on its first line alone, so a long line it reaches is not printed whole either.
/// A snippet stays a few terminal lines, and each of a thousand problems on one line costs its
/// window, not the line. The line and column printed above the snippet are the file's own.
/// `None`: the span's lines are short enough to show as they are.
fn clip_long_line(file: &Shown, span: Range<usize>) -> Option<(Shown, Range<usize>)> {
    const SHOWN_LATER_LINES: usize = 5;
    let text = &file.text;
    let index_of = |offset: usize| file.line_starts.partition_point(|&start| start <= offset).saturating_sub(1);
    let content = |line: Range<usize>| line.start..line.start + text[line].trim_end_matches(['\n', '\r']).len();
    let is_long = |line: &Range<usize>| text[line.clone()].chars().count() > SHOWN_LINE_CHARS;
    let line_index = index_of(span.start);
    // A span may start on the line's end itself (its `\r` or `\n`): the line runs to it at least.
    let line = content(file.line_range(line_index)?);
    let line = line.start..line.end.max(span.start);
    let later: Vec<Range<usize>> = (line_index + 1..=index_of(span.end)).filter_map(|i| file.line_range(i).map(content)).collect();
    let keeps_later = later.len() <= SHOWN_LATER_LINES && !later.iter().any(is_long);
    let line_is_long = is_long(&line);
    if !line_is_long && keeps_later {
        return None;
    }
    let (from, columns_before, cut) = if line_is_long {
        let before = text[line.start..span.start].chars().count();
        let (from, columns_before) = if before > SHOWN_BEFORE_CHARS {
            let from = text[line.start..span.start].char_indices().nth(before - SHOWN_BEFORE_CHARS).map(|(i, _)| line.start + i)?;
            (from, before - SHOWN_BEFORE_CHARS - 1)
        } else {
            (line.start, 0)
        };
        let cut = text[span.start..line.end].char_indices().nth(SHOWN_SPAN_CHARS).map_or(line.end, |(i, _)| span.start + i);
        (from, columns_before, cut)
    } else {
        (line.start, 0, line.end)
    };
    let mut window = String::new();
    if from > line.start {
        window.push_str(ELLIPSIS);
    }
    let shift = window.len();
    window.push_str(&text[from..cut]);
    if cut < line.end {
        window.push_str(ELLIPSIS);
    }
    let rest_starts_at = window.len();
    let start = shift + (span.start - from);
    let end = if span.end <= cut {
        shift + (span.end - from)
    } else if span.end <= line.end || !keeps_later {
        rest_starts_at
    } else {
        // The lines it reaches, with its end moved by what was cut.
        let last = later.last().map_or(line.end, |l| l.end);
        window.push_str(&text[line.end..last.max(line.end)]);
        rest_starts_at + (span.end - line.end).min(last.max(line.end) - line.end)
    };
    let shown = Shown::window(file.name.clone(), window, file.lines_before + line_index, columns_before);
    Some((shown, start..end))
}

/// The diagnostics as GitHub Actions workflow commands (`::error file=...,line=...::message`),
/// one line each: the runner turns them into annotations on the PR's files, at the line each
/// one points to. The runner reads commands from stderr as well as stdout
/// (actions/runner, `ScriptHandler.cs`: an `OutputManager` with the command manager on each),
/// so they go beside the human rendering without touching what a command prints on stdout.
/// Paths are relative to the config repo; `prefix` (its directory in the checkout, with a
/// trailing `/`, or empty) makes them relative to the repository GitHub annotates.
pub(crate) fn github_annotations(diagnostics: &Diagnostics, prefix: &str) -> String {
    let mut out = String::new();
    for diagnostic in &diagnostics.0 {
        let level = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = Vec::new();
        if let Some(path) = checkout_path(diagnostic, prefix) {
            properties.push(format!("file={path}"));
        }
        if let Some((start, end)) = diagnostic.positions() {
            properties.push(format!("line={}", start.line));
            properties.push(format!("col={}", start.column));
            properties.push(format!("endLine={}", end.line));
            properties.push(format!("endColumn={}", end.column));
        }
        properties.push("title=devbox-gen".into());
        let properties: Vec<String> = properties.iter().map(|p| escape_property(p)).collect();
        // Each part printable first: the only line breaks are the ones between them.
        let mut text = printable(&diagnostic.message_with_label()).into_owned();
        for help in &diagnostic.help {
            text.push_str(&format!("\nhelp: {}", printable(help)));
        }
        out.push_str(&format!("::{level} {}::{}\n", properties.join(","), escape_data(&text)));
    }
    out
}

/// The diagnostics as a GitLab Code Quality report (the JSON array a job declares as
/// `artifacts:reports:codequality`), which the merge request shows at each file and line.
/// GitLab drops an issue without `description`, `fingerprint`, `severity` or `location` (its
/// schema: gitlabhq, app/validators/json_schemas/codeclimate.json), its docs ask for
/// `check_name`, `location.path` and `location.lines.begin` too ("Code Quality report format"),
/// and it keeps only the last issue of a fingerprint. So identical problems in one file are
/// told apart by their count, not their line: an issue keeps its fingerprint when lines move
/// above it, and GitLab does not report it as fixed and new again. A problem in no file (a
/// `--root` that is not there, git failing) has no place in the merge request; it stays in the
/// job's log. `prefix` is as for [`github_annotations`].
pub(crate) fn code_quality_report(diagnostics: &Diagnostics, prefix: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut occurrences: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    let mut issues = Vec::new();
    for diagnostic in &diagnostics.0 {
        let Some(path) = checkout_path(diagnostic, prefix) else { continue };
        // The widget shows one line: help follows the message on it.
        let mut description = diagnostic.message_with_label();
        for help in &diagnostic.help {
            description.push_str(&format!("; help: {help}"));
        }
        let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        let occurrence = occurrences.entry((path.clone(), description.clone())).or_default();
        let fingerprint = Sha256::digest(format!("{CHECK_NAME}\0{path}\0{description}\0{occurrence}"));
        *occurrence += 1;
        let (begin, end) = diagnostic.positions().map_or((1, 1), |(start, end)| (start.line, end.line));
        issues.push(serde_json::json!({
            "description": description,
            "check_name": CHECK_NAME,
            "fingerprint": fingerprint.iter().take(16).map(|byte| format!("{byte:02x}")).collect::<String>(),
            // An error fails the pipeline, so the merge waits on it; a warning does not.
            "severity": match diagnostic.severity {
                Severity::Error => "blocker",
                Severity::Warning => "minor",
            },
            "location": { "path": path, "lines": { "begin": begin, "end": end } },
        }));
    }
    let mut report = serde_json::to_string_pretty(&issues).expect("JSON values serialise");
    report.push('\n');
    report
}

/// The `check_name` of every issue in a Code Quality report.
const CHECK_NAME: &str = "devbox-gen";

/// The file a diagnostic is in, as the checkout has it (`prefix` + the path in the config
/// repo); absolute paths stay as they are.
fn checkout_path(diagnostic: &Diagnostic, prefix: &str) -> Option<String> {
    let path = match &diagnostic.location {
        Some(Location::Span { file, .. }) => file.path.as_str(),
        Some(Location::Path(path)) => path.strip_prefix("./").unwrap_or(path),
        None => return None,
    };
    Some(if path.starts_with('/') { path.to_string() } else { format!("{prefix}{path}") })
}

/// A line and column, both from 1; columns count characters (codespan's line index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

impl Diagnostic {
    /// Where the span starts and ends, for diagnostics that have one.
    fn positions(&self) -> Option<(Position, Position)> {
        use codespan_reporting::files::Files;
        let Some(Location::Span { file, span }) = &self.location else { return None };
        let source = codespan_reporting::files::SimpleFile::new(&file.path, &file.text);
        let at = |offset: usize| {
            let location = source.location((), offset.min(file.text.len())).ok()?;
            Some(Position { line: location.line_number, column: location.column_number })
        };
        Some((at(span.start)?, at(span.end)?))
    }

    /// The message, and the label in brackets unless it only marks the place: an annotation
    /// sits at the place already.
    fn message_with_label(&self) -> String {
        if self.label.is_empty() || self.label == PLAIN_LABEL { self.message.clone() } else { format!("{} ({})", self.message, self.label) }
    }
}

/// A workflow command's message: `%`, CR and LF escaped (actions/toolkit's `escapeData`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property, `key=value`: the value escaped like data, and `:` and `,`
/// too (actions/toolkit's `escapeProperty`).
fn escape_property(property: &str) -> String {
    match property.split_once('=') {
        Some((key, value)) => format!("{key}={}", escape_data(value).replace(':', "%3A").replace(',', "%2C")),
        None => property.to_string(),
    }
}

/// Renders to a plain string (no colour): for tests and for embedding in other output.
pub fn render_plain(diagnostics: &Diagnostics) -> String {
    let mut buffer = codespan_reporting::term::termcolor::Buffer::no_color();
    render(diagnostics, &mut buffer).expect("rendering into memory cannot fail");
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| format!("users/{n}.toml")).collect()
    }

    #[test]
    fn the_same_problem_naming_each_user_is_one_group() {
        let items = vec![
            ("users/bob.toml".to_string(), "boom bob at bob-home".to_string()),
            ("users/alice.toml".to_string(), "boom alice at alice-home".to_string()),
            ("users/al.toml".to_string(), "boom al at al-home".to_string()),
            ("users/malice.toml".to_string(), "other problem".to_string()),
        ];
        let groups = group_by_user(items);
        assert_eq!(
            groups,
            vec![("boom al at al-home".to_string(), sources(&["al", "alice", "bob"])), ("other problem".to_string(), sources(&["malice"])),]
        );
        // `al` is not blanked inside `alice`: only whole names are.
        assert_eq!(without_user("alice and al-x", "users/al.toml"), "alice and \u{0}-x");
    }

    #[test]
    fn github_annotations_point_at_the_span_and_escape_what_the_runner_parses() {
        // Columns count characters, not bytes: `ü` is one.
        let text = "# Grüße\nemail = \"a@x.io\"\ndatasets = [\"ü\", \"imagenet\"]\n".to_string();
        let file = Arc::new(SourceFile::unparsed("users/alice.toml".into(), text.clone()));
        let start = text.find("\"imagenet\"").unwrap();
        let diagnostics = Diagnostics(vec![
            Diagnostic::error("no dataset named `imagenet`: 50% sure, really")
                .at(&file, start..start + 10, "unknown dataset")
                // A line break inside a part is shown, not made: the runner would read a
                // line of its own as another workflow command.
                .help("add `[datasets.imagenet]`\nthere"),
            Diagnostic::warning("unused [flux]").in_path("./devbox.toml"),
            Diagnostic::error("bad email").at(&file, 10..15, PLAIN_LABEL),
            Diagnostic::error("nowhere"),
        ]);
        let lines: Vec<String> = github_annotations(&diagnostics, "config/").lines().map(str::to_string).collect();
        assert_eq!(
            lines,
            [
                "::error file=config/users/alice.toml,line=3,col=18,endLine=3,endColumn=28,title=devbox-gen::no dataset named `imagenet`: 50%25 sure, really (unknown dataset)%0Ahelp: add `[datasets.imagenet]`\\nthere",
                "::warning file=config/devbox.toml,title=devbox-gen::unused [flux]",
                "::error file=config/users/alice.toml,line=2,col=1,endLine=2,endColumn=6,title=devbox-gen::bad email",
                "::error title=devbox-gen::nowhere",
            ]
        );
        assert_eq!(escape_property("file=a,b:c%"), "file=a%2Cb%3Ac%25");
    }

    #[test]
    fn code_quality_issues_keep_their_fingerprint_when_lines_move_and_never_share_one() {
        let report = |text: &str| {
            let file = Arc::new(SourceFile::unparsed("users/alice.toml".into(), text.to_string()));
            let at = |needle: &str| text.find(needle).map(|start| start..start + needle.len()).unwrap();
            let diagnostics = Diagnostics(vec![
                Diagnostic::error("`x` is not a key").at(&file, at("\"x\" #1"), "not a key").help("paste the .pub file"),
                Diagnostic::error("`x` is not a key").at(&file, at("\"x\" #2"), "not a key").help("paste the .pub file"),
                Diagnostic::warning("unused [flux]").in_path("./devbox.toml"),
                Diagnostic::error("outside").in_path("/etc/devbox.toml"),
                Diagnostic::error("nowhere"),
            ]);
            let issues: Vec<serde_json::Value> = serde_json::from_str(&code_quality_report(&diagnostics, "config/")).unwrap();
            issues
        };
        let issues = report("keys = [\n  \"x\" #1\n  \"x\" #2\n]\n");
        let summary: Vec<(&str, &str, &str, u64)> = issues
            .iter()
            .map(|issue| {
                let location = &issue["location"];
                (
                    issue["severity"].as_str().unwrap(),
                    issue["description"].as_str().unwrap(),
                    location["path"].as_str().unwrap(),
                    location["lines"]["begin"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("blocker", "`x` is not a key (not a key); help: paste the .pub file", "config/users/alice.toml", 2),
                ("blocker", "`x` is not a key (not a key); help: paste the .pub file", "config/users/alice.toml", 3),
                ("minor", "unused [flux]", "config/devbox.toml", 1),
                ("blocker", "outside", "/etc/devbox.toml", 1),
            ]
        );
        let fingerprints =
            |issues: &[serde_json::Value]| issues.iter().map(|i| i["fingerprint"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        let before = fingerprints(&issues);
        assert_eq!(before.iter().collect::<std::collections::BTreeSet<_>>().len(), before.len(), "GitLab keeps one issue per fingerprint");
        // Two lines added above: the same problems, the same fingerprints.
        let moved = report("# keys\n\nkeys = [\n  \"x\" #1\n  \"x\" #2\n]\n");
        assert_eq!(moved[0]["location"]["lines"]["begin"], 4);
        assert_eq!(fingerprints(&moved), before);
        assert_eq!(code_quality_report(&Diagnostics::default(), ""), "[]\n");
    }

    #[test]
    fn a_span_on_a_very_long_line_is_shown_clipped_where_the_file_has_it() {
        let key = format!("ssh-rsa {} me@laptop", "A".repeat(700));
        let text = format!("email = \"me@example.com\"\n[ssh]\nauthorized_keys = [\"{key}\"]\nshm = \"1Gi\"\n");
        let start = text.find("ssh-rsa").unwrap() - 1;
        let file = Arc::new(SourceFile::unparsed("users/me.toml".into(), text.clone()));
        let diagnostics: Diagnostics = Diagnostic::error("weak key").at(&file, start..start + key.len() + 2, "1024 bits").into();
        let shown = render_plain(&diagnostics);
        let snippet = format!("authorized_keys = [\"ssh-rsa {}…", "A".repeat(51));
        assert!(
            shown.contains(&format!("┌─ users/me.toml:3:20\n  │\n3 │ {snippet}\n  │                    {} 1024 bits\n", "^".repeat(61))),
            "{shown}"
        );
        assert!(shown.lines().all(|l| l.chars().count() < 100), "every line fits a terminal: {shown}");
        // A span that runs on past its line's end keeps its end, moved by what was cut.
        let whole = Shown::whole("users/me.toml".into(), text.clone());
        let (clipped, span) = clip_long_line(&whole, start..text.len() - 1).unwrap();
        assert_eq!(&clipped.text[span.clone()], &format!("\"ssh-rsa {}…\nshm = \"1Gi\"", "A".repeat(51)));
        assert!(clip_long_line(&whole, 0..5).is_none(), "a short line is shown as it is");
    }

    /// A thousand problems on one line (a list of bad items) cost a window each, not the line:
    /// what is before the span is cut too, and the place printed is still the file's own.
    #[test]
    fn a_span_far_into_a_long_line_is_shown_with_what_is_just_before_it() {
        let items: Vec<String> = (0..1000).map(|i| format!("\"bad{i}\"")).collect();
        let text = format!("# one list\ndays = [{}]\nnext = 1\n", items.join(", "));
        let file = Arc::new(SourceFile::unparsed("users/me.toml".into(), text.clone()));
        let start = text.find("\"bad900\"").unwrap();
        let column = text[..start].rsplit('\n').next().unwrap().chars().count() + 1;
        let diagnostics: Diagnostics = Diagnostic::error("not a day").at(&file, start..start + 8, "here").into();
        let shown = render_plain(&diagnostics);
        assert!(shown.contains(&format!("┌─ users/me.toml:2:{column}\n")), "{shown}");
        let snippet = shown.lines().find(|l| l.starts_with("2 │")).unwrap();
        assert!(snippet.starts_with("2 │ …"), "{shown}");
        assert!(snippet.contains("\"bad899\", \"bad900\", \"bad901\""), "{shown}");
        assert!(snippet.ends_with('…'), "{shown}");
        let caret = shown.lines().find(|l| l.contains('^')).unwrap();
        let chars_to = |line: &str, what: &str| line[..line.find(what).unwrap()].chars().count();
        assert_eq!(chars_to(caret, "^"), chars_to(snippet, "\"bad900"), "the marker is under the span:\n{shown}");
        assert!(shown.lines().all(|l| l.chars().count() < 120), "every line fits a terminal: {shown}");

        // Many on one line render in time proportional to their number.
        let many: Diagnostics = Diagnostics(
            (0..1000)
                .map(|i| {
                    let at = text.find(&format!("\"bad{i}\"")).unwrap();
                    Diagnostic::error("not a day").at(&file, at..at + 5, "here")
                })
                .collect(),
        );
        assert!(render_plain(&many).len() < 1000 * 400, "each report is a few short lines");
    }

    proptest::proptest! {
        /// Any span of any text renders, and the place printed above the snippet is the
        /// file's own line and column, however the long line around it was cut.
        #[test]
        fn every_span_renders_at_the_files_own_place(
            lines in proptest::collection::vec("[a-zé漢\u{0}\u{202e}\t\r \",=\\[\\]]{0,300}", 1..6),
            start in 0usize..2000,
            length in 0usize..400,
        ) {
            let text = lines.join("\n");
            let boundary = |offset: usize| (0..=offset.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let (start, end) = (boundary(start), boundary(start + length));
            let file = Arc::new(SourceFile::unparsed("users/p.toml".into(), text.clone()));
            let diagnostics: Diagnostics = Diagnostic::error("problem").at(&file, start..end, "here").into();
            let shown = render_plain(&diagnostics);
            let (line, column) = file.line_column(start);
            proptest::prop_assert!(shown.contains(&format!("users/p.toml:{line}:{column}\n")), "{}", shown);
            proptest::prop_assert!(shown.lines().all(|l| l.chars().count() < 260), "{}", shown);
        }
    }

    #[test]
    fn hidden_characters_are_shown_by_stand_ins_of_their_length() {
        let text = "a\u{0}b\u{85}c\u{202e}d\te\rf\r\n".to_string();
        let shown = visible(text.clone());
        assert_eq!(shown, "a?b¿c\u{fffd}d\te?f\r\n", "a lone carriage return is hidden, a line end is not");
        assert_eq!((shown.len(), shown.chars().count()), (text.len(), text.chars().count()), "spans and columns stay valid");
        // A reordered line in a snippet: the reviewer sees where the control is.
        let file = Arc::new(SourceFile::unparsed("users/me.toml".into(), "email = \"evil\u{202e}moc.elpmaxe@\"\n".into()));
        let diagnostics: Diagnostics = Diagnostic::error("bad email").at(&file, 8..9, "here").into();
        let rendered = render_plain(&diagnostics);
        assert!(rendered.contains("email = \"evil\u{fffd}moc.elpmaxe@\""), "{rendered}");
        assert!(!rendered.contains('\u{202e}'), "{rendered}");
    }

    #[test]
    fn few_user_files_are_listed_many_are_counted() {
        assert_eq!(user_files(&sources(&["a"])), "users/a.toml");
        assert_eq!(user_files(&sources(&["a", "b", "c"])), "users/a.toml, users/b.toml and users/c.toml");
        assert_eq!(user_files(&sources(&["a", "b", "c", "d", "e"])), "5 user files (users/a.toml, users/b.toml, users/c.toml and 2 more)");
    }
}
