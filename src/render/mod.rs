//! Stage 4, render: the jsonnet template, evaluated in-process by jrsonnet, once per box.
//!
//! The template is a function of one argument, `box` (a [`ResolvedBox`]), returning
//! Kubernetes objects in any nesting of objects and arrays, as Tanka accepts them. Objects
//! annotated `devbox-gen.dev/scope: namespace` are shared by every box of the namespace (the
//! scripts ConfigMap): they are kept apart from the box's bundle and written once. The default
//! template is compiled into the binary and importable as `devbox-gen/devbox.libsonnet`, so a
//! custom template extends it instead of forking it.
//!
//! jrsonnet's `State` is not `Send`: each rayon worker keeps its own warm state with the
//! template already evaluated to a function, so the per-box cost is one call.

pub(crate) mod contract;
mod resolver;
mod watchdog;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jrsonnet_evaluator::error::ErrorKind;
use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{IStr, SourceVirtual, Span, State, Val, apply_tla};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Diagnostics, group_by_user, user_files};
use crate::resolve::ResolvedBox;
use crate::source::SourceFile;
pub(crate) use resolver::{EMBEDDED_PREFIX, imported, passed_over};

/// Which template renders the boxes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    /// `devbox-gen/default.jsonnet`, compiled into the binary.
    Embedded,
    /// A file of the config repo (`template = ...` in devbox.toml), absolute path.
    File(PathBuf),
}

impl Template {
    /// Where the template is, as shown in messages.
    pub(crate) fn describe(&self, root: &Path) -> String {
        match self {
            Template::Embedded => "the embedded default template".into(),
            Template::File(path) => path.strip_prefix(root).unwrap_or(path).display().to_string(),
        }
    }
}

/// One rendered Kubernetes object, as JSON.
pub(crate) type Object = Map<String, Value>;

/// The annotation that makes an object the namespace's rather than the box's: every box of the
/// namespace renders it, and it is written once (the embedded template's shared scripts).
pub(crate) const SCOPE_ANNOTATION: &str = "devbox-gen.dev/scope";
/// The one value [`SCOPE_ANNOTATION`] takes.
pub(crate) const NAMESPACE_SCOPE: &str = "namespace";

/// The objects of one box.
#[derive(Debug, Clone)]
pub struct RenderedBox {
    pub(crate) resolved: ResolvedBox,
    /// The box's own objects: its bundle.
    pub(crate) objects: Vec<Object>,
    /// Objects the box needs but shares with every box of its namespace (`devbox-gen.dev/scope:
    /// namespace`), in the order rendered.
    pub(crate) shared: Vec<Object>,
}

/// Why the template failed for one box.
#[derive(Debug, Clone)]
pub struct TemplateFailure {
    /// jrsonnet's message with its stack trace, paths relative to the config repo.
    message: String,
    /// Where in the template it went wrong, when jrsonnet knows (boxed: a failure travels in
    /// every box's result, and most boxes succeed).
    spot: Option<Box<Spot>>,
    /// The template does not load at all (a syntax error, an import that is not there, not a
    /// function): it fails before any box is involved.
    loading: bool,
}

impl fmt::Display for TemplateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl TemplateFailure {
    fn plain(message: String) -> Self {
        Self { message, spot: None, loading: false }
    }

    fn from_jsonnet(error: &jrsonnet_evaluator::Error, root: &Path) -> Self {
        Self { message: format_error(error, root), spot: Spot::of(error).map(Box::new), loading: false }
    }
}

/// A place in a template file: the innermost frame of a jsonnet error that has one. Only the
/// file's name travels with each failure; its text is read once a report is made.
#[derive(Debug, Clone)]
struct Spot {
    file: SpotFile,
    /// Byte offsets, as jrsonnet counts them.
    span: Range<usize>,
    /// jrsonnet's word for what happens there (`error statement`, `assertion failure`).
    what: String,
}

#[derive(Debug, Clone)]
enum SpotFile {
    /// A file of the library compiled into the binary (`devbox-gen/devbox.libsonnet`).
    Embedded(String),
    Disk(PathBuf),
}

impl Spot {
    fn of(error: &jrsonnet_evaluator::Error) -> Option<Self> {
        if let ErrorKind::ImportSyntaxError { error, .. } = error.error() {
            return Self::at(&error.location, error.message.clone());
        }
        let located = error.trace().0.iter().find_map(|frame| Self::at(frame.location.as_ref()?, frame.desc.clone()));
        match error.error() {
            ErrorKind::NoSuchField(field, _) => located.or_else(|| Self::only_access_to(field)),
            // jrsonnet evaluates an import when its value is needed, and reports a missing file
            // with no place: the place is the import of that name in the importing file.
            ErrorKind::ImportFileNotFound(from, wanted) => located.or_else(|| {
                let wanted = wanted.to_string();
                Self::only_import_of(from.path()?, &wanted, format!("`{wanted}` is not there"))
            }),
            ErrorKind::RuntimeError(message) => located.or_else(|| {
                let (wanted, why) = message.strip_prefix(resolver::REFUSED_IMPORT)?.split_once(':')?;
                let what = if why.contains(resolver::OUTSIDE) { resolver::OUTSIDE } else { "an absolute path" };
                let mut found = resolver::imported().into_iter().filter_map(|file| Self::only_import_of(&file, wanted, what.into()));
                found.next().filter(|_| found.next().is_none())
            }),
            _ => located,
        }
    }

    /// jrsonnet 0.5.0-pre98 reports a missing field (`box.nmae`) with no place at all. The place
    /// is certain when the config repo's template files ask for that field in one place only
    /// (`.nmae` or `['nmae']`); anywhere else, none is guessed. The embedded library is not
    /// searched: a field it misses is devbox-gen's bug, not a typo in the repo.
    fn only_access_to(field: &str) -> Option<Self> {
        let mut found = None;
        for path in resolver::imported() {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for span in field_accesses(&text, field) {
                if found.is_some() {
                    return None;
                }
                found = Some(Self { file: SpotFile::Disk(path.clone()), span, what: format!("the only `.{field}` in the template") });
            }
        }
        found
    }

    /// The one place `file` imports `wanted` (`import`, `importstr` or `importbin` of that
    /// string, in either quotes); none if it does so in more places or none.
    fn only_import_of(file: &Path, wanted: &str, what: String) -> Option<Self> {
        let text = std::fs::read_to_string(file).ok()?;
        let mut spans = ['\'', '"'].into_iter().flat_map(|quote| {
            let literal = format!("{quote}{wanted}{quote}");
            let len = literal.len();
            text.match_indices(&literal).map(|(at, _)| at..at + len).collect::<Vec<_>>()
        });
        let span = spans.next()?;
        if spans.next().is_some() {
            return None;
        }
        Some(Self { file: SpotFile::Disk(file.to_path_buf()), span, what })
    }

    fn at(span: &Span, what: String) -> Option<Self> {
        let path = span.0.source_path();
        let file = match path.downcast_ref::<SourceVirtual>() {
            Some(embedded) => SpotFile::Embedded(embedded.0.to_string()),
            None => SpotFile::Disk(path.path()?.to_path_buf()),
        };
        let (start, end) = (span.1 as usize, span.2 as usize);
        Some(Self { file, span: start..end.max(start), what })
    }

    /// The template file as a diagnostic shows it, and the span within its text; `None` when
    /// the file cannot be read again.
    fn source(&self, root: &Path) -> Option<(Arc<SourceFile>, Range<usize>)> {
        let (shown, text) = match &self.file {
            SpotFile::Embedded(name) => (name.clone(), resolver::embedded(name)?.to_string()),
            SpotFile::Disk(path) => {
                let shown = path.strip_prefix(root).unwrap_or(path).display().to_string();
                (shown, std::fs::read_to_string(path).ok()?)
            }
        };
        let clamp = |offset: usize| (0..=offset.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let span = clamp(self.span.start)..clamp(self.span.end);
        Some((Arc::new(SourceFile::unparsed(shown, text)), span))
    }
}

/// Where `text` indexes an object by `field`: `.field` not followed by more of a name, and
/// `['field']` or `["field"]`.
fn field_accesses(text: &str, field: &str) -> Vec<Range<usize>> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let dotted = format!(".{field}");
    let mut spans: Vec<Range<usize>> = text
        .match_indices(&dotted)
        .filter(|(at, _)| !text[at + dotted.len()..].starts_with(is_name))
        .map(|(at, _)| at + 1..at + dotted.len())
        .collect();
    for quote in ['\'', '"'] {
        let indexed = format!("[{quote}{field}{quote}]");
        spans.extend(text.match_indices(&indexed).map(|(at, _)| at + 2..at + 2 + field.len()));
    }
    spans
}

/// Renders one box on this thread's warm engine; `failures_to_diagnostics` turns the failures
/// of many boxes into a report.
pub fn render_box(resolved: ResolvedBox, template: &Template, root: &Path) -> Result<RenderedBox, TemplateFailure> {
    let (shared, objects) = render_one(&resolved, template, root)?.into_iter().partition(is_shared);
    Ok(RenderedBox { resolved, objects, shared })
}

/// Whether the template marked an object as the namespace's (any value but `namespace` is
/// the box's, and refused by the check stage).
pub(crate) fn is_shared(object: &Object) -> bool {
    scope(object) == Some(NAMESPACE_SCOPE)
}

/// The object's `devbox-gen.dev/scope` annotation, if any.
pub(crate) fn scope(object: &Object) -> Option<&str> {
    object.get("metadata")?.get("annotations")?.get(SCOPE_ANNOTATION)?.as_str()
}

/// A template bug usually fails every box the same way: each distinct failure is reported
/// once, at its place in the template, naming the user files it failed for, with the message
/// of the first of them (the others differ at most by the user's name). A template that does
/// not load is one error about the template alone.
pub(crate) fn failures_to_diagnostics(failures: Vec<(String, TemplateFailure)>, template: &Template, root: &Path) -> Diagnostics {
    let described = template.describe(root);
    let mut diagnostics = Diagnostics::default();
    if let Some((_, failure)) = failures.iter().find(|(_, failure)| failure.loading) {
        // The snippet shows where; jrsonnet's trace of a file that does not parse adds nothing.
        let headline = Diagnostic::error(format!("{described} cannot be loaded"));
        let diagnostic = match failure.spot.as_deref().and_then(|spot| spot.source(root)) {
            Some((file, span)) => headline.at(&file, span, failure.message.lines().next().unwrap_or_default()),
            None => jsonnet_help(&failure.message).into_iter().fold(headline.in_path(described.clone()), Diagnostic::help),
        };
        diagnostics.push(diagnostic.help("no box was rendered: fix the template and build again"));
        return diagnostics;
    }
    let spots: HashMap<&str, &Spot> =
        failures.iter().filter_map(|(source, failure)| Some((source.as_str(), failure.spot.as_deref()?))).collect();
    let messages = failures.iter().map(|(source, failure)| (source.clone(), failure.message.clone())).collect();
    for (message, sources) in group_by_user(messages) {
        let Some(first) = sources.first() else { continue };
        let headline = format!("{described} failed for {}", user_files(&sources));
        let located = spots.get(first.as_str()).and_then(|spot| Some((spot.what.clone(), spot.source(root)?)));
        let diagnostic = match located {
            Some((what, (file, span))) => Diagnostic::error(headline).at(&file, span, what),
            None => Diagnostic::error(headline).in_path(first.clone()),
        };
        let mut diagnostic = jsonnet_help(&message).into_iter().fold(diagnostic, Diagnostic::help);
        if sources.len() > 1 {
            diagnostic = diagnostic.help(format!("the message above is {first}'s; the other user files fail the same way"));
        }
        diagnostics.push(diagnostic);
    }
    diagnostics
}

/// How many frames of a jsonnet trace a report shows.
const SHOWN_FRAMES: usize = 8;

/// jrsonnet's message as help lines: each line of the message itself, then its stack trace
/// (the indented lines) on one line, innermost first, a frame repeated in a row told once with
/// its count. A help line is one line: newlines are shown escaped, so text from a user file
/// can never start a line of its own in a CI log (a `::warning::` workflow command).
fn jsonnet_help(message: &str) -> Vec<String> {
    let (frames, text): (Vec<&str>, Vec<&str>) =
        message.lines().filter(|line| !line.trim().is_empty()).partition(|line| line.starts_with(char::is_whitespace));
    let mut help: Vec<String> = text
        .into_iter()
        .map(|line| match line.strip_suffix(", or set --max-stack to bigger value") {
            // jrsonnet's command-line advice; devbox-gen has no such flag.
            Some(stack) => format!("{stack}: the template calls itself without end, or deeper than jrsonnet allows"),
            None => line.to_string(),
        })
        .collect();
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for frame in frames.iter().map(|frame| frame.trim()) {
        match runs.last_mut() {
            Some((last, count)) if *last == frame => *count += 1,
            _ => runs.push((frame, 1)),
        }
    }
    if !runs.is_empty() {
        let shown: Vec<String> = runs
            .iter()
            .take(SHOWN_FRAMES)
            .map(|(frame, count)| if *count > 1 { format!("{frame} (×{count})") } else { (*frame).to_string() })
            .collect();
        let more = match runs.len().saturating_sub(SHOWN_FRAMES) {
            0 => String::new(),
            hidden => format!(" ← {hidden} more"),
        };
        help.push(format!("jsonnet trace, innermost first: {}{more}", shown.join(" ← ")));
    }
    help
}

/// A warm jrsonnet state and the template's function, for one thread.
struct Engine {
    template: Template,
    state: State,
    function: Val,
    /// Boxes this engine rendered, to collect cycles every `BOXES_PER_COLLECTION`.
    rendered: Cell<u32>,
}

/// How many boxes' garbage a thread keeps before collecting it: a few megabytes.
const BOXES_PER_COLLECTION: u32 = 32;

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn render_one(resolved: &ResolvedBox, template: &Template, root: &Path) -> Result<Vec<Object>, TemplateFailure> {
    let _watched = watchdog::watch(&resolved.source);
    ENGINE.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|e| e.template != *template) {
            *slot = Some(Engine::new(template, root)?);
        }
        let engine = slot.as_ref().expect("engine was just created");
        engine.call(resolved, root)
    })
}

impl Engine {
    fn new(template: &Template, root: &Path) -> Result<Self, TemplateFailure> {
        Self::load(template, root).map_err(|failure| TemplateFailure { loading: true, ..failure })
    }

    fn load(template: &Template, root: &Path) -> Result<Self, TemplateFailure> {
        let mut builder = State::builder();
        builder
            .import_resolver(resolver::Resolver::new(root))
            .context_initializer(jrsonnet_stdlib::ContextInitializer::new(PathResolver::Relative(root.to_path_buf())));
        let state = builder.build();
        let function = {
            let _entered = state.try_enter();
            let imported = match template {
                Template::Embedded => state.import(format!("{EMBEDDED_PREFIX}default.jsonnet").as_str()),
                Template::File(path) => state.import(path.as_path()),
            };
            imported.map_err(|e| TemplateFailure::from_jsonnet(&e, root))?
        };
        let Val::Func(called) = &function else {
            return Err(TemplateFailure::plain(format!(
                "the template must evaluate to a function of the box, like `function(box) {{ ... }}`; it evaluated to {}",
                function.value_type()
            )));
        };
        // devbox-gen passes each box by name, as Tanka passes top-level arguments: without a
        // `box` parameter every box would fail with jrsonnet's "parameter box is not defined".
        let params = called.params();
        let takes_box = params.iter().any(|param| param.name().as_str() == Some("box"));
        let needs_more = params.iter().any(|param| !param.has_default() && param.name().as_str() != Some("box"));
        if !takes_box || needs_more {
            let names: Vec<String> = params.iter().map(|param| param.name().to_string()).collect();
            return Err(TemplateFailure::plain(format!(
                "the template's function must take one parameter, named `box` (devbox-gen passes each box by that name), like `function(box) {{ ... }}`; it takes ({})",
                names.join(", ")
            )));
        }
        Ok(Self { template: template.clone(), state, function, rendered: Cell::new(0) })
    }

    fn call(&self, resolved: &ResolvedBox, root: &Path) -> Result<Vec<Object>, TemplateFailure> {
        let _entered = self.state.try_enter();
        let input = serde_json::to_value(resolved).expect("a resolved box is plain data");
        let input = Val::deserialize(input).map_err(|e| TemplateFailure::plain(format!("cannot pass the box to jsonnet: {e}")))?;
        // jrsonnet's own API takes this map; IStr's interior mutability is its interner's.
        #[allow(clippy::mutable_key_type)]
        let mut args: HashMap<IStr, TlaArg> = HashMap::new();
        args.insert("box".into(), TlaArg::Val(input));
        let output = apply_tla(&args, self.function.clone()).map_err(|e| TemplateFailure::from_jsonnet(&e, root))?;
        // Straight to JSON values, without printing and parsing JSON. When that fails (a lazy
        // field's error), manifesting gives the same error with jrsonnet's field frames.
        let value = match to_json(&output) {
            Ok(value) => value,
            Err(plain) => {
                let manifested = output.manifest(JsonFormat::minify()).err().unwrap_or(plain);
                return Err(TemplateFailure::from_jsonnet(&manifested, root));
            }
        };
        // jsonnet objects reference themselves (`self`), so reference counting alone never
        // frees them: collect this thread's cycles, or memory grows per user. Not after every
        // box: a collection traverses every object the thread tracks, the template's and the
        // standard library's included, which cost about 4% of a build done box by box.
        drop(output);
        let rendered = self.rendered.get() + 1;
        self.rendered.set(rendered);
        if rendered.is_multiple_of(BOXES_PER_COLLECTION) {
            jrsonnet_gcmodule::collect_thread_cycles();
        }
        let mut objects = Vec::new();
        extract(value, "", &mut objects).map_err(TemplateFailure::plain)?;
        Ok(objects)
    }
}

/// A jsonnet value as JSON, with the semantics of jsonnet's manifestation: object assertions
/// run (even on objects without visible fields), hidden fields are left out, fields come
/// sorted, and whole numbers are integers.
fn to_json(value: &Val) -> jrsonnet_evaluator::Result<Value> {
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Str(s) => {
            // Copied once, chunk by chunk: `into_flat` would first intern a concatenated string
            // (jsonnet's `+` builds ropes), hashing it into the interner for nothing.
            let mut text = String::with_capacity(s.len());
            s.chunks(&mut |chunk| text.push_str(chunk));
            Value::String(text)
        }
        Val::Num(n) => number(n.get()),
        Val::Arr(items) => Value::Array(items.iter().map(|item| to_json(&item?)).collect::<jrsonnet_evaluator::Result<_>>()?),
        Val::Obj(object) => {
            object.run_assertions()?;
            // The visible fields, enumerated once and sorted (`len()` would work out their
            // visibility a second time).
            let fields = object.fields();
            let mut map = Map::with_capacity(fields.len());
            for key in fields {
                let Some(field) = object.get(key.clone())? else { continue };
                map.insert(key.as_str().to_owned(), to_json(&field)?);
            }
            Value::Object(map)
        }
        Val::Func(_) => jrsonnet_evaluator::bail!("tried to manifest function"),
    })
}

/// Whole numbers in the range of i64 as integers (as jsonnet prints them), the rest as floats.
fn number(n: f64) -> Value {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if n.fract() == 0.0 && (-LIMIT..LIMIT).contains(&n) {
        #[allow(clippy::cast_possible_truncation)] // whole and in range: exact
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn format_error(error: &jrsonnet_evaluator::Error, root: &Path) -> String {
    let format = CompactFormat { resolver: PathResolver::Relative(root.to_path_buf()), max_trace: 20, padding: 4 };
    let message = format.format(error).unwrap_or_else(|_| error.to_string());
    // The trace's paths are relative to the config repo; the message's own (an import not
    // found "from /home/.../templates/x.jsonnet") are made so too.
    match root.canonicalize() {
        Ok(absolute) => message.replace(&format!("{}/", absolute.display()), ""),
        Err(_) => message,
    }
}

/// Tanka's rule: an object with `apiVersion` and `kind` is a manifest (a `List` is unwrapped);
/// any other object or array is searched; `null` is nothing.
fn extract(value: Value, path: &str, out: &mut Vec<Object>) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Object(object) if object.contains_key("apiVersion") && object.contains_key("kind") => {
            if object.get("kind").and_then(Value::as_str) == Some("List") {
                let items = object.get("items").cloned().unwrap_or(Value::Null);
                return extract(items, &format!("{path}.items"), out);
            }
            out.push(object);
            Ok(())
        }
        Value::Object(object) if object.contains_key("apiVersion") != object.contains_key("kind") => {
            let (has, lacks) = if object.contains_key("kind") { ("kind", "apiVersion") } else { ("apiVersion", "kind") };
            Err(format!(
                "the object at `{}` has `{has}` but no `{lacks}`: a Kubernetes object needs both (a misspelt field?)",
                if path.is_empty() { "." } else { path }
            ))
        }
        Value::Object(object) => {
            for (key, child) in object {
                extract(child, &format!("{path}.{key}"), out)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, child) in items.into_iter().enumerate() {
                extract(child, &format!("{path}[{i}]"), out)?;
            }
            Ok(())
        }
        other => Err(format!(
            "the template returned {other} at `{}`, where a Kubernetes object (with apiVersion and kind) was expected",
            if path.is_empty() { "." } else { path }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_accesses_are_dotted_or_indexed_names_not_longer_ones() {
        let text = "box.name + box.names + box['name'] + box[\"name\"] + box.name_x + box.name";
        let found: Vec<&str> = field_accesses(text, "name").into_iter().map(|span| &text[span]).collect();
        assert_eq!(found, ["name", "name", "name", "name"]);
        assert_eq!(field_accesses(text, "name").len(), 4, "`.names` and `.name_x` are other fields");
    }

    #[test]
    fn extracts_nested_objects_lists_and_skips_nulls() {
        let value = json!({
            "a": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            "nested": {"b": {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}}]}},
            "off": null,
        });
        let mut out = Vec::new();
        extract(value, "", &mut out).unwrap();
        let kinds: Vec<&str> = out.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["ConfigMap", "Service"]);
    }

    fn evaluate(code: &str) -> Result<Value, String> {
        let state = State::default();
        let _entered = state.try_enter();
        let value = state.evaluate_snippet("test.jsonnet", code).map_err(|e| e.to_string())?;
        to_json(&value).map_err(|e| e.to_string())
    }

    fn manifested(code: &str) -> Value {
        let state = State::default();
        let _entered = state.try_enter();
        let value = state.evaluate_snippet("test.jsonnet", code).unwrap();
        serde_json::from_str(&value.manifest(JsonFormat::minify()).unwrap()).unwrap()
    }

    #[test]
    fn converts_like_jsonnet_manifests() {
        let code = "{ b: [1, 2.5, -3, 1e300, 4294967296, 'x\\n\\u00e9', null, true], a:: 'hidden', c: { z: 1, y: 2 } }";
        let value = evaluate(code).unwrap();
        assert_eq!(value, json!({"b": [1, 2.5, -3, 1e300, 4294967296_i64, "x\n\u{e9}", null, true], "c": {"y": 2, "z": 1}}));
        assert_eq!(value, manifested(code));
    }

    #[test]
    fn object_assertions_run_even_without_visible_fields() {
        let error = evaluate("{ checks: { assert 1 == 2 : 'the box needs a key' } }").unwrap_err();
        assert!(error.contains("the box needs a key"), "{error}");
        assert!(evaluate("{ f: function(x) x }").unwrap_err().contains("function"));
    }

    #[test]
    fn a_spot_in_the_embedded_library_shows_its_text_and_stays_inside_it() {
        let root = Path::new("/nonexistent");
        let name = format!("{EMBEDDED_PREFIX}devbox.libsonnet");
        let spot = Spot { file: SpotFile::Embedded(name.clone()), span: 0..5, what: "here".into() };
        let (file, span) = spot.source(root).unwrap();
        assert_eq!(file.path, name);
        assert_eq!(&file.text[span], &resolver::embedded(&name).unwrap()[..5]);
        // An offset past the end (jrsonnet's end of a syntax error can be) is clamped to the text.
        let past = Spot { span: usize::MAX - 1..usize::MAX, ..spot };
        let (file, span) = past.source(root).unwrap();
        assert_eq!(span, file.text.len()..file.text.len());
        // A file that is gone is no snippet: the report falls back to naming the user file.
        let gone = Spot { file: SpotFile::Disk(root.join("t.jsonnet")), span: 0..1, what: String::new() };
        assert!(gone.source(root).is_none());
    }

    #[test]
    fn a_jsonnet_message_is_help_lines_with_its_trace_on_one() {
        let message = "runtime error: bad alice\n    templates/x.jsonnet:2:84-88: error statement\n    field <team> evaluation\n    field <labels> manifestification\n";
        assert_eq!(
            jsonnet_help(message),
            [
                "runtime error: bad alice",
                "jsonnet trace, innermost first: templates/x.jsonnet:2:84-88: error statement ← field <team> evaluation ← field <labels> manifestification",
            ]
        );
        let frame = "    templates/x.jsonnet:2:15-21: function <f> call\n";
        let recursion = format!(
            "stack overflow, try to reduce recursion, or set --max-stack to bigger value\n{}    field <team> evaluation\n",
            frame.repeat(200)
        );
        assert_eq!(
            jsonnet_help(&recursion),
            [
                "stack overflow, try to reduce recursion: the template calls itself without end, or deeper than jrsonnet allows",
                "jsonnet trace, innermost first: templates/x.jsonnet:2:15-21: function <f> call (×200) ← field <team> evaluation",
            ]
        );
        let deep: String = (0..20).map(|i| format!("    field <f{i}> evaluation\n")).collect();
        assert!(jsonnet_help(&format!("x\n{deep}"))[1].ends_with("field <f7> evaluation ← 12 more"));
    }

    #[test]
    fn an_object_with_half_of_its_identity_is_named_as_such() {
        let mut out = Vec::new();
        let error = extract(json!({"extra": {"apiVersion": "v1", "kin": "ConfigMap"}}), "", &mut out).unwrap_err();
        assert_eq!(error, "the object at `.extra` has `apiVersion` but no `kind`: a Kubernetes object needs both (a misspelt field?)");
    }

    #[test]
    fn says_where_a_non_object_was_returned() {
        let mut out = Vec::new();
        let error = extract(json!({"x": {"y": 3}}), "", &mut out).unwrap_err();
        assert!(error.contains("`.x.y`"), "{error}");
    }
}
