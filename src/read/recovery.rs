//! Deserialising a file so that one run reports every wrong value in it, in words a person
//! understands.
//!
//! serde stops at the first value it cannot read. So each failure is described, the key that
//! holds the value is taken out of the document, and the rest is deserialised again, until it
//! reads or nothing more can be done. What a key must be comes from the JSON Schema of the model
//! (the one the editors validate with), what was written from the TOML document: serde's own
//! words (`invalid type`, `expected u32`) never reach the person.
//!
//! A required key cannot simply be taken out: serde would then report it missing, which is
//! only a consequence. It is replaced by a stand-in of the right type instead, so the rest of the
//! file is still read for more problems. The value of such a file is passed on with the paths of
//! its stand-ins, so that validation reports the file's other problems in the same run and says
//! nothing about the stand-ins.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use toml::Spanned;
use toml::de::{DeArray, DeInteger, DeString, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, PLAIN_LABEL};
use crate::schema;
use crate::source::SourceFile;

/// Deserialisations of one file. Each one but the last takes a key out (or puts a stand-in in),
/// so this is also the most problems one file reports; a file with more is not a few typos.
const MAX_ATTEMPTS: usize = 50;

/// What reading one file found.
pub(super) struct Recovered<T> {
    /// `None` when the file could not be read at all, even with stand-ins.
    pub value: Option<T>,
    /// The dotted paths (`email`, `ssh.authorized_keys`) of the values invented for required
    /// keys that were missing or wrong.
    pub stand_ins: Vec<String>,
    pub problems: Vec<Diagnostic>,
    /// Keys the model does not have, as dotted paths (`resources.memroy`), in the order found.
    pub ignored: Vec<String>,
}

/// One step of a path into the document: a table's key or an array's index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

type Path = Vec<Step>;

/// The path as [`SourceFile`] indexes it: `ssh.authorized_keys[0]`, `clusters[1].name`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The table header that holds `path`, without indexes: `resources`, `defaults.resources`.
fn header(path: &[Step]) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|step| match step {
            Step::Key(key) => Some(key.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    keys.join(".")
}

fn last_key(path: &[Step]) -> &str {
    path.iter()
        .rev()
        .find_map(|step| match step {
            Step::Key(key) => Some(key.as_str()),
            Step::Index(_) => None,
        })
        .unwrap_or("")
}

pub(super) fn deserialize<T: DeserializeOwned + JsonSchema>(file: &Arc<SourceFile>, document: Spanned<DeTable<'_>>) -> Recovered<T> {
    let mut recovery = Recovery { file, document, stand_ins: Vec::new(), removed: Vec::new(), seen: Vec::new() };
    // Built on the first failure only: files without problems never pay for it.
    let mut schema = None;
    let mut problems = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let attempt = toml::Deserializer::from(recovery.document.clone());
        let result: Result<T, _> = serde_ignored::deserialize(attempt, |path| {
            let path = crate::source::ignored_path(&path);
            if !ignored.contains(&path) {
                ignored.push(path);
            }
        });
        let error = match result {
            Ok(value) => return Recovered { value: Some(value), stand_ins: recovery.stand_ins, problems, ignored },
            Err(error) => error,
        };
        let schema = schema.get_or_insert_with(Schema::of::<T>);
        let span = error.span().unwrap_or(0..0);
        // The same failure twice means the last step did not help: stop rather than loop.
        let key = (error.message().to_string(), span.clone());
        if recovery.seen.contains(&key) {
            return Recovered { value: None, stand_ins: Vec::new(), problems, ignored };
        }
        recovery.seen.push(key);
        let step = match error.message().strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
            Some(field) => recovery.missing(schema, field, &span),
            None => recovery.wrong_value(schema, &span),
        };
        match step {
            Next::Continue(problem) => problems.extend(problem),
            Next::Stop(problem) => {
                problems.extend(problem);
                return Recovered { value: None, stand_ins: Vec::new(), problems, ignored };
            }
        }
    }
    if let Some(last) = problems.pop() {
        problems.push(last.help(format!("devbox-gen stops reading a file after {MAX_ATTEMPTS} problems; there may be more")));
    }
    Recovered { value: None, stand_ins: Vec::new(), problems, ignored }
}

/// What to do after one failure: go on (having described it, unless it was a consequence of
/// an earlier step), or stop.
enum Next {
    Continue(Vec<Diagnostic>),
    Stop(Vec<Diagnostic>),
}

struct Recovery<'f, 'i> {
    file: &'f Arc<SourceFile>,
    document: Spanned<DeTable<'i>>,
    /// Where stand-ins went, as dotted paths.
    stand_ins: Vec<String>,
    /// Keys taken out, with their key, so a required one can be put back as a stand-in.
    removed: Vec<(Path, Spanned<DeString<'i>>, Range<usize>)>,
    seen: Vec<(String, Range<usize>)>,
}

impl Recovery<'_, '_> {
    /// serde found a value it cannot read at `span`: describe it, then take its key out.
    fn wrong_value(&mut self, schema: &Schema, span: &Range<usize>) -> Next {
        let Some(located) = locate(self.document.get_ref(), span) else {
            return Next::Stop(vec![self.unlocated(span)]);
        };
        let blamed = &located[..schema.known_prefix(&located)];
        if blamed.is_empty() {
            return Next::Stop(vec![self.unlocated(span)]);
        }
        let Some(written) = get(self.document.get_ref(), blamed) else {
            return Next::Stop(vec![self.unlocated(span)]);
        };
        let mut problems = vec![Describe { file: self.file, schema, path: blamed, written }.wrong_value()];
        problems.extend(self.later_wrong_choices(schema, blamed));
        // A wrong item is dropped with its whole list: removing the item would shift the
        // indexes of the next ones, and point their problems at the wrong line.
        let key_len = blamed.iter().rposition(|step| matches!(step, Step::Key(_))).map_or(0, |i| i + 1);
        let key_path = blamed[..key_len].to_vec();
        match remove(self.document.get_mut(), &key_path) {
            Some((key, value)) => {
                self.removed.push((key_path, key, value.span()));
                Next::Continue(problems)
            }
            None => Next::Stop(problems),
        }
    }

    /// The items after `blamed`, an item of a list of choices (`days = ["mon", "xyz", "abc"]`),
    /// that are not one of them either: serde stops at the first, and the whole list is taken
    /// out after it, so each would otherwise take another run to hear about.
    fn later_wrong_choices(&self, schema: &Schema, blamed: &[Step]) -> Vec<Diagnostic> {
        let Some((Step::Index(first), list_path)) = blamed.split_last() else { return Vec::new() };
        let Some(DeValue::Array(items)) = get(self.document.get_ref(), list_path).map(Spanned::get_ref) else { return Vec::new() };
        let mut problems = Vec::new();
        for (index, item) in items.iter().enumerate().skip(first + 1) {
            let mut path = list_path.to_vec();
            path.push(Step::Index(index));
            let Some(Kind::Choice(values)) = schema.at(&path).map(|node| schema.kind(node)) else { return problems };
            let valid = matches!(item.get_ref(), DeValue::String(given) if values.iter().any(|v| v == given.as_ref()));
            if !valid {
                problems.push(Describe { file: self.file, schema, path: &path, written: item }.wrong_value());
            }
        }
        problems
    }

    /// serde found a required key missing: a stand-in for one taken out, or a real problem
    /// (which gets a stand-in too, so the rest of the file is still read).
    fn missing(&mut self, schema: &Schema, field: &str, span: &Range<usize>) -> Next {
        let taken = self.removed.iter().position(|(path, _, _)| last_key(path) == field);
        let (path, key, value_span, problem) = match taken {
            Some(index) => {
                let (path, key, value_span) = self.removed.remove(index);
                (path, key, value_span, None)
            }
            None => {
                let parent = table_at(self.document.get_ref(), span).unwrap_or_default();
                let mut path = parent.clone();
                path.push(Step::Key(field.to_string()));
                let problem = missing_field(self.file, schema, &parent, field, span);
                let key = Spanned::new(span.clone(), Cow::Owned(field.to_string()));
                (path, key, span.clone(), Some(problem))
            }
        };
        let Some(stand_in) = schema.at(&path).and_then(|node| stand_in(schema, node, &value_span, 0)) else {
            return Next::Stop(problem.into_iter().collect());
        };
        let inserted = match &path[..path.len() - 1] {
            [] => Some(self.document.get_mut()),
            parent => get_mut(self.document.get_mut(), parent).and_then(|value| match value.get_mut() {
                DeValue::Table(table) => Some(table),
                _ => None,
            }),
        }
        .map(|table| table.insert(key, stand_in));
        if inserted.is_none() {
            return Next::Stop(problem.into_iter().collect());
        }
        self.stand_ins.push(dotted(&path));
        Next::Continue(problem.into_iter().collect())
    }

    /// A failure that points nowhere this module understands: said in general terms.
    fn unlocated(&self, span: &Range<usize>) -> Diagnostic {
        Diagnostic::error("this value cannot be read")
            .at(self.file, span.clone(), PLAIN_LABEL)
            .help("compare with the examples in the devbox-gen README, or the `#:schema` your editor checks against")
    }
}

/// The path of the innermost value whose span holds `span`. Every table is searched, not only
/// those whose span holds it: a `[table]`'s span is its header alone.
fn locate(table: &DeTable<'_>, span: &Range<usize>) -> Option<Path> {
    fn visit(value: &Spanned<DeValue<'_>>, path: &mut Path, span: &Range<usize>, best: &mut Option<(Path, usize)>) {
        let own = value.span();
        if own.start <= span.start && span.end <= own.end && !own.is_empty() {
            let better = best.as_ref().is_none_or(|(p, len)| own.len() < *len || own.len() == *len && path.len() > p.len());
            if better {
                *best = Some((path.clone(), own.len()));
            }
        }
        match value.get_ref() {
            DeValue::Table(table) => visit_table(table, path, span, best),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    visit(item, path, span, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn visit_table(table: &DeTable<'_>, path: &mut Path, span: &Range<usize>, best: &mut Option<(Path, usize)>) {
        for (key, value) in table {
            path.push(Step::Key(key.get_ref().to_string()));
            visit(value, path, span, best);
            path.pop();
        }
    }
    let mut best = None;
    visit_table(table, &mut Vec::new(), span, &mut best);
    best.map(|(path, _)| path)
}

/// The path of the deepest table whose span is exactly `span` (where serde reports a missing
/// field); `None` for the top level.
fn table_at(table: &DeTable<'_>, span: &Range<usize>) -> Option<Path> {
    fn visit(value: &Spanned<DeValue<'_>>, path: &mut Path, span: &Range<usize>, best: &mut Option<Path>) {
        match value.get_ref() {
            DeValue::Table(table) => {
                if value.span() == *span && best.as_ref().is_none_or(|b| path.len() >= b.len()) {
                    *best = Some(path.clone());
                }
                for (key, child) in table {
                    path.push(Step::Key(key.get_ref().to_string()));
                    visit(child, path, span, best);
                    path.pop();
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    visit(item, path, span, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    for (key, value) in table {
        let mut path = vec![Step::Key(key.get_ref().to_string())];
        visit(value, &mut path, span, &mut best);
    }
    best
}

fn get<'d, 'i>(table: &'d DeTable<'i>, path: &[Step]) -> Option<&'d Spanned<DeValue<'i>>> {
    let (first, rest) = path.split_first()?;
    let Step::Key(key) = first else { return None };
    let mut value = table.get(key.as_str())?;
    for step in rest {
        value = match (step, value.get_ref()) {
            (Step::Key(key), DeValue::Table(table)) => table.get(key.as_str())?,
            (Step::Index(i), DeValue::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

fn get_mut<'d, 'i>(table: &'d mut DeTable<'i>, path: &[Step]) -> Option<&'d mut Spanned<DeValue<'i>>> {
    let (first, rest) = path.split_first()?;
    let Step::Key(key) = first else { return None };
    let mut value = table.get_mut(key.as_str())?;
    for step in rest {
        value = match (step, value.get_mut()) {
            (Step::Key(key), DeValue::Table(table)) => table.get_mut(key.as_str())?,
            (Step::Index(i), DeValue::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Takes the key at `path` (which ends with a key) out of the document.
fn remove<'i>(table: &mut DeTable<'i>, path: &[Step]) -> Option<(Spanned<DeString<'i>>, Spanned<DeValue<'i>>)> {
    let (Step::Key(key), parent) = path.split_last()? else { return None };
    let parent = if parent.is_empty() {
        table
    } else {
        match get_mut(table, parent)?.get_mut() {
            DeValue::Table(table) => table,
            _ => return None,
        }
    };
    parent.remove_entry(key.as_str())
}

/// A value of the type the schema asks for, standing in for a required one that is missing
/// or was taken out: empty, with stand-ins for its own required fields.
fn stand_in(schema: &Schema, node: &Value, span: &Range<usize>, depth: usize) -> Option<Spanned<DeValue<'static>>> {
    const MAX_DEPTH: usize = 8; // the model nests three deep; a cycle in the schema must not recurse forever
    let value = match schema.kind(node) {
        Kind::Choice(values) => DeValue::String(Cow::Owned(values.first()?.clone())),
        Kind::Text => DeValue::String(Cow::Borrowed("")),
        Kind::Integer { .. } => DeValue::Integer(DeInteger::default()),
        Kind::Bool => DeValue::Boolean(false),
        Kind::Number => DeValue::Integer(DeInteger::default()),
        Kind::List(_) => DeValue::Array(DeArray::new()),
        Kind::Map => DeValue::Table(DeTable::new()),
        Kind::Table { required, .. } if depth < MAX_DEPTH => {
            let mut table = DeTable::new();
            for field in required {
                let child = schema.child(node, &Step::Key(field.clone()))?;
                table.insert(Spanned::new(span.clone(), Cow::Owned(field)), stand_in(schema, child, span, depth + 1)?);
            }
            DeValue::Table(table)
        }
        Kind::Table { .. } | Kind::Other => return None,
    };
    Some(Spanned::new(span.clone(), value))
}

/// The JSON Schema of a file's model, walked by document path.
pub(super) struct Schema {
    root: Value,
}

/// What the schema says a value must be.
#[derive(Debug)]
enum Kind {
    Text,
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Bool,
    /// A decimal number (prices); an integer is one too.
    Number,
    List(Value),
    Table {
        fields: Vec<String>,
        required: Vec<String>,
    },
    /// Any keys, like `env`.
    Map,
    Choice(Vec<String>),
    Other,
}

impl Schema {
    pub(super) fn of<T: JsonSchema>() -> Self {
        Self { root: schema::schema_for::<T>().to_value() }
    }

    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        schema::resolve(&self.root, node)
    }

    fn child<'a>(&'a self, node: &'a Value, step: &Step) -> Option<&'a Value> {
        let node = self.resolve(node);
        match step {
            Step::Key(key) => node
                .get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| node.get("additionalProperties").filter(|extra| extra.is_object())),
            Step::Index(_) => node.get("items"),
        }
    }

    /// The schema of the value at `path` (unresolved, so its description is still there).
    fn at(&self, path: &[Step]) -> Option<&Value> {
        path.iter().try_fold(&self.root, |node, step| self.child(node, step))
    }

    /// How many steps of `path` the model knows: a failure deeper down (inside a value that
    /// should have been a string) is the fault of that last known key.
    fn known_prefix(&self, path: &[Step]) -> usize {
        let mut node = &self.root;
        for (i, step) in path.iter().enumerate() {
            match self.child(node, step) {
                Some(child) => node = child,
                None => return i,
            }
        }
        path.len()
    }

    fn kind(&self, node: &Value) -> Kind {
        let node = self.resolve(node);
        let strings = |values: &Vec<Value>| values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>();
        // An enum of numbers (`[gpu] count`) is a number, whose values validation tells.
        if let Some(values) = node.get("enum").and_then(Value::as_array)
            && values.iter().all(Value::is_string)
        {
            return Kind::Choice(strings(values));
        }
        if let Some(variants) = node.get("oneOf").and_then(Value::as_array) {
            let values: Vec<Value> = variants.iter().filter_map(|v| v.get("const").cloned()).collect();
            if values.len() == variants.len() {
                return Kind::Choice(strings(&values));
            }
        }
        let ty = match node.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or(""),
            _ => "",
        };
        match ty {
            "string" => Kind::Text,
            "integer" => {
                let (format_min, format_max) = match node.get("format").and_then(Value::as_str) {
                    Some("uint8") => (Some(0), Some(i64::from(u8::MAX))),
                    Some("uint16") => (Some(0), Some(i64::from(u16::MAX))),
                    Some("uint32") => (Some(0), Some(i64::from(u32::MAX))),
                    Some("uint64" | "uint") => (Some(0), None),
                    _ => (None, None),
                };
                Kind::Integer {
                    min: node.get("minimum").and_then(Value::as_i64).or(format_min),
                    max: node.get("maximum").and_then(Value::as_i64).or(format_max),
                }
            }
            "boolean" => Kind::Bool,
            "number" => Kind::Number,
            "array" => Kind::List(node.get("items").cloned().unwrap_or(Value::Null)),
            "object" => match node.get("properties").and_then(Value::as_object) {
                Some(properties) => Kind::Table {
                    fields: properties.keys().cloned().collect(),
                    required: node.get("required").and_then(Value::as_array).map(strings).unwrap_or_default(),
                },
                None => Kind::Map,
            },
            _ => Kind::Other,
        }
    }

    /// The first sentence of a field's documentation, lowercased to follow a colon.
    fn purpose(&self, node: &Value) -> Option<String> {
        let text = node.get("description").or_else(|| self.resolve(node).get("description"))?.as_str()?;
        let sentence = text.split(". ").next().unwrap_or(text).trim_end_matches('.').replace('\n', " ");
        // An acronym keeps its capitals: `API server URL`, not `aPI server URL`.
        if sentence.chars().nth(1).is_some_and(char::is_uppercase) {
            return Some(sentence);
        }
        let mut chars = sentence.chars();
        let first = chars.next()?;
        Some(first.to_lowercase().chain(chars).collect())
    }

    /// Every table of the model that has a field `key`, as headers (`resources`,
    /// `[clusters]` for an array of tables), for a key written in the wrong table.
    pub(super) fn tables_with(&self, key: &str) -> Vec<String> {
        fn visit(schema: &Schema, node: &Value, path: &str, key: &str, depth: usize, found: &mut Vec<String>) {
            if depth > 6 {
                return;
            }
            match schema.kind(node) {
                Kind::Table { fields, .. } => {
                    if fields.iter().any(|f| f == key) && !path.is_empty() {
                        found.push(path.to_string());
                    }
                    for field in fields {
                        if let Some(child) = schema.child(node, &Step::Key(field.clone())) {
                            let child_path = if path.is_empty() { field } else { format!("{path}.{field}") };
                            visit(schema, child, &child_path, key, depth + 1, found);
                        }
                    }
                }
                Kind::List(items) => {
                    if matches!(schema.kind(&items), Kind::Table { .. }) {
                        visit(schema, &items, &format!("[{path}]"), key, depth + 1, found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        visit(self, &self.root, "", key, 0, &mut found);
        found
    }

    /// The fields of the table at dotted `path`, entries of arrays of tables too
    /// (`clusters[0]`); empty when it is not a table of the model.
    pub(super) fn fields_at(&self, path: &str) -> Vec<String> {
        match self.at(&parse_dotted(path)).map(|node| self.kind(node)) {
            Some(Kind::Table { fields, .. }) => fields,
            _ => Vec::new(),
        }
    }
}

/// The inverse of [`dotted`], for the paths serde_ignored reports.
fn parse_dotted(path: &str) -> Path {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            steps.push(Step::Key(key.to_string()));
        }
        steps.extend(pieces.filter_map(|index| index.trim_end_matches(']').parse().ok()).map(Step::Index));
    }
    steps
}

/// What an unquoted value of field `name` means as the string the field takes: a bare number
/// of a size is gibibytes (`size = 50` is `"50Gi"`, where `"50"` would be 50 bytes), of a
/// duration minutes (`after = 120` is `"120m"`), and a TOML time of a clock field is its hours
/// and minutes (`start = 08:00:00` is `"08:00"`). Anything else is quoted as written.
fn as_written_text(name: &str, raw: &str) -> String {
    let number = !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit() || c == '.');
    match name {
        "memory" | "size" | "shm" | "storage" if number => format!("{raw}Gi"),
        "after" if number => format!("{raw}m"),
        "start" | "stop" if raw.len() == 8 && raw.ends_with(":00") && raw.as_bytes()[2] == b':' => raw[..5].to_string(),
        _ => raw.to_string(),
    }
}

/// `[idle] after = 3600`: minutes or seconds? Both readings, each as `after` takes it, rather than
/// one guess that would make a box wait 60 times longer than meant.
fn after_with_units(key: &str, name: &str, raw: &str) -> Option<String> {
    if name != "after" {
        return None;
    }
    let number: u64 = raw.parse().ok()?;
    let as_minutes = format!("`{key}\"{number}m\"` is {number} minutes");
    if number < 60 || !number.is_multiple_of(60) {
        return Some(format!("give it a unit: {as_minutes}"));
    }
    let minutes = number / 60;
    let as_seconds = match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    };
    Some(format!("give it a unit: `{key}\"{as_seconds}\"` is {number} seconds, {as_minutes}"))
}

/// A wrong value, described from what the schema asks for and what the file says.
struct Describe<'a, 'i> {
    file: &'a Arc<SourceFile>,
    schema: &'a Schema,
    path: &'a [Step],
    written: &'a Spanned<DeValue<'i>>,
}

impl Describe<'_, '_> {
    /// The text of the file at `span`, when it is short enough to quote in a help line.
    fn quote(&self, span: Range<usize>) -> Option<&str> {
        let text = self.file.text.get(span)?;
        (text.len() <= 80 && !text.contains(['\n', '`'])).then_some(text)
    }

    fn wrong_value(&self) -> Diagnostic {
        let name = last_key(self.path);
        let in_list = matches!(self.path.last(), Some(Step::Index(_)));
        let subject = if in_list { format!("every item of `{name}`") } else { format!("`{name}`") };
        // What the person wrote before ` = `, so the fix reads like their own line.
        let key = if in_list {
            String::new()
        } else {
            let span = self.file.key_span(&dotted(self.path));
            format!("{} = ", self.quote(span).unwrap_or(name))
        };
        let raw = self.quote(self.written.span());
        let found = found_phrase(self.written.get_ref());
        let span = self.written.span();
        let kind = self.schema.at(self.path).map_or(Kind::Other, |node| self.schema.kind(node));
        let header = header(self.path);
        let at = |message: String, label: &str| Diagnostic::error(message).at(self.file, span.clone(), label);
        let written = self.written.get_ref();
        match (kind, written) {
            (Kind::Choice(values), DeValue::String(given)) => {
                let message = format!("`{given}` is not a valid `{name}`");
                match suggest(given, &values) {
                    Some(near) => at(message, &format!("not one of {}", list(&values))).help(format!("did you mean `{near}`?")),
                    None => at(message, "unknown value").help(format!("use one of {}", list(&values))),
                }
            }
            (Kind::Choice(values), _) => {
                let diagnostic = at(format!("{subject} must be one of {}", list(&values)), &format!("this is {found}"));
                match (single_string(written), values.first()) {
                    (Some(item), _) if values.iter().any(|v| v == item) => {
                        diagnostic.help(format!("remove the brackets: `{key}\"{item}\"`"))
                    }
                    (_, Some(first)) => diagnostic.help(format!("write it in quotes, like `{key}\"{first}\"`")),
                    (_, None) => diagnostic,
                }
            }
            (Kind::Text, DeValue::Array(_)) => {
                let diagnostic = at(format!("{subject} must be a single string, not a list"), &format!("this is {found}"));
                match single_string(written).and_then(|_| self.only_item()) {
                    Some(item) => diagnostic.help(format!("remove the brackets: `{key}{item}`")),
                    None => diagnostic.help(format!("write one value in quotes, like `{key}{}`", self.example())),
                }
            }
            (Kind::Text, DeValue::Table(_)) => at(format!("{subject} must be a string, not a table"), &format!("this is {found}"))
                .help(format!("write one value in quotes, like `{key}{}`", self.example())),
            (Kind::Text, _) => {
                let diagnostic = at(format!("{subject} must be a string"), &format!("this is {found}"));
                match raw {
                    // Quoted, a negative amount would only be refused next (an env value may be one).
                    Some(raw) if raw.starts_with('-') && matches!(name, "cpu" | "memory" | "size" | "shm" | "storage") => {
                        diagnostic.help(format!("it cannot be negative: write one in quotes, like `{key}{}`", self.example()))
                    }
                    Some(raw) => match after_with_units(&key, name, raw) {
                        Some(help) => diagnostic.help(help),
                        None => diagnostic.help(format!("quote it: `{key}\"{}\"`", as_written_text(name, raw))),
                    },
                    None => diagnostic.help("put the value in quotes"),
                }
            }
            (Kind::Integer { min, max }, DeValue::Integer(number)) => {
                let (message, label) = if number.as_str().starts_with('-') {
                    (format!("{subject} cannot be negative"), "negative".to_string())
                } else {
                    (format!("{subject} is too large"), max.map_or_else(|| "too large".into(), |max| format!("more than {max}")))
                };
                let diagnostic = at(message, &label);
                match (min, max) {
                    (Some(min), Some(max)) => diagnostic.help(format!("write a whole number from {min} to {max}")),
                    _ => diagnostic,
                }
            }
            (Kind::Integer { min, .. }, _) => {
                let diagnostic = at(format!("{subject} must be a whole number"), &format!("this is {found}"));
                let whole = match written {
                    DeValue::String(text) => text.trim().parse::<i64>().ok().map(|n| (n, "remove the quotes")),
                    DeValue::Float(number) => {
                        let value: Option<f64> = number.as_str().replace('_', "").parse().ok();
                        #[allow(clippy::cast_possible_truncation)] // checked whole and small just before
                        value.filter(|v| v.fract() == 0.0 && v.abs() < 1e15).map(|v| (v as i64, "write it without a decimal point"))
                    }
                    _ => None,
                };
                match whole {
                    Some((n, how)) => diagnostic.help(format!("{how}: `{key}{n}`")),
                    None => diagnostic.help(format!("write a number without quotes, like `{key}{}`", min.unwrap_or(1).max(1))),
                }
            }
            (Kind::Number, _) => {
                let diagnostic = at(format!("{subject} must be a number"), &format!("this is {found}"));
                match written {
                    DeValue::String(text) if text.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                        diagnostic.help(format!("remove the quotes: `{key}{}`", text.trim()))
                    }
                    _ => diagnostic.help(format!("write a number without quotes, like `{key}0.5`")),
                }
            }
            (Kind::Bool, _) => {
                let diagnostic = at(format!("{subject} must be `true` or `false`"), &format!("this is {found}"));
                match written {
                    DeValue::String(text) if ["true", "false"].contains(&text.to_lowercase().as_str()) => {
                        diagnostic.help(format!("remove the quotes: `{key}{}`", text.to_lowercase()))
                    }
                    _ => diagnostic.help(format!("write `{key}true` or `{key}false`, without quotes")),
                }
            }
            (Kind::List(items), DeValue::Table(_)) if matches!(self.schema.kind(&items), Kind::Table { .. }) => {
                at(format!("{subject} must be a list of tables"), "a single table")
                    .help(format!("write `[[{header}]]`, with two brackets, above each entry"))
            }
            (Kind::List(_), _) => {
                let diagnostic = at(format!("{subject} must be a list"), &format!("this is {found}"));
                match (raw, written) {
                    (Some(raw), DeValue::String(_)) => diagnostic.help(format!("make it a list: `{key}[{raw}]`")),
                    _ => diagnostic.help(format!("write its items in brackets, like `{key}[{}]`", self.example())),
                }
            }
            (Kind::Table { fields, .. }, _) => {
                let diagnostic = at(format!("{subject} must be a table"), &format!("this is {found}"));
                let diagnostic = if matches!(written, DeValue::Array(items) if items.iter().all(|i| matches!(i.get_ref(), DeValue::Table(_))))
                {
                    diagnostic.help(format!("write `[{header}]` with one pair of brackets: there is only one `{name}`"))
                } else {
                    diagnostic.help(format!("write `[{header}]` on a line of its own, with its fields below it"))
                };
                if fields.is_empty() { diagnostic } else { diagnostic.help(format!("its fields: {}", fields.join(", "))) }
            }
            (Kind::Map, _) => at(format!("{subject} must be a table"), &format!("this is {found}"))
                .help(format!("write `[{header}]` on a line of its own, then one `NAME = \"value\"` per line")),
            (Kind::Other, _) => at(format!("{subject} cannot be {found}"), &format!("this is {found}"))
                .help("compare with the examples in the devbox-gen README, or the `#:schema` your editor checks against"),
        }
    }

    /// A list's only item, as written (`["8"]` → `"8"`).
    fn only_item(&self) -> Option<&str> {
        match self.written.get_ref() {
            DeValue::Array(items) if items.len() == 1 => self.quote(items[0].span()),
            _ => None,
        }
    }

    /// A value to show in a help line: the schema's example, or an ellipsis in quotes.
    fn example(&self) -> String {
        let node = self.schema.at(self.path);
        let example = node.and_then(|n| n.get("examples").or_else(|| self.schema.resolve(n).get("examples")));
        match example.and_then(|e| e.get(0)).and_then(Value::as_str) {
            Some(text) => format!("\"{text}\""),
            None => "\"…\"".into(),
        }
    }
}

/// The one string in a list of one string (`["running"]`).
fn single_string<'v>(value: &'v DeValue<'_>) -> Option<&'v str> {
    match value {
        DeValue::Array(items) if items.len() == 1 => match items[0].get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

fn found_phrase(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) | DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn list(values: &[String]) -> String {
    values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
}

/// Names people write for a value the model spells its own way; checked before spelling.
const ALIASES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("x86-64", "amd64"),
    ("x64", "amd64"),
    ("x86", "amd64"),
    ("amd", "amd64"),
    ("intel", "amd64"),
    ("aarch64", "arm64"),
    ("arm", "arm64"),
    ("armv8", "arm64"),
    ("arm64v8", "arm64"),
    ("argo", "argocd"),
    ("argo-cd", "argocd"),
    ("fluxcd", "flux"),
    ("run", "running"),
    ("started", "running"),
    ("on", "running"),
    ("up", "running"),
    ("stop", "stopped"),
    ("off", "stopped"),
    ("down", "stopped"),
    ("deny", "block"),
    ("blocked", "block"),
    ("allowed", "allow"),
];

/// The valid value meant by `given`: the same in other case, a known alias, or a near spelling.
pub(super) fn suggest<'v>(given: &str, values: &'v [String]) -> Option<&'v str> {
    let lower = given.trim().to_lowercase();
    if let Some(same) = values.iter().find(|v| v.to_lowercase() == lower) {
        return Some(same);
    }
    let aliased = ALIASES.iter().find(|(alias, _)| *alias == lower).and_then(|(_, meant)| values.iter().find(|v| v == meant));
    aliased.map(String::as_str).or_else(|| super::closest(&lower, values))
}

/// A required field that is not in the file at all.
fn missing_field(file: &Arc<SourceFile>, schema: &Schema, parent: &[Step], field: &str, span: &Range<usize>) -> Diagnostic {
    let mut path = parent.to_vec();
    path.push(Step::Key(field.to_string()));
    let table = header(parent);
    let (message, label) = match parent.last() {
        None => (format!("`{field}` is missing"), format!("the file needs `{field}`")),
        Some(Step::Index(_)) => (format!("an entry of `[[{table}]]` has no `{field}`"), format!("needs `{field}`")),
        Some(Step::Key(_)) => (format!("`[{table}]` has no `{field}`"), format!("needs `{field}`")),
    };
    let node = schema.at(&path);
    let example = match node.map(|n| schema.kind(n)) {
        Some(Kind::List(_)) => format!("`{field} = [\"…\"]`"),
        Some(Kind::Table { .. } | Kind::Map) => format!("a `[{}]` table", header(&path)),
        Some(Kind::Integer { min, .. }) => format!("`{field} = {}`", min.unwrap_or(1).max(1)),
        Some(Kind::Bool) => format!("`{field} = true`"),
        Some(Kind::Number) => format!("`{field} = 0.5`"),
        _ => format!("`{field} = \"…\"`"),
    };
    let help = match node.and_then(|n| schema.purpose(n)) {
        Some(purpose) => format!("add {example}: {purpose}"),
        None => format!("add {example}"),
    };
    Diagnostic::error(message).at(file, span.clone(), label).help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_suggestion_is_a_value_the_field_takes() {
        assert_eq!(as_written_text("memory", "16"), "16Gi");
        assert_eq!(as_written_text("size", "50"), "50Gi");
        assert_eq!(as_written_text("after", "120"), "120m");
        assert_eq!(
            after_with_units("after = ", "after", "3600").unwrap(),
            "give it a unit: `after = \"1h\"` is 3600 seconds, `after = \"3600m\"` is 3600 minutes"
        );
        assert_eq!(
            after_with_units("after = ", "after", "5400").unwrap(),
            "give it a unit: `after = \"1h30m\"` is 5400 seconds, `after = \"5400m\"` is 5400 minutes"
        );
        assert_eq!(after_with_units("after = ", "after", "45").unwrap(), "give it a unit: `after = \"45m\"` is 45 minutes");
        assert_eq!(after_with_units("cpu = ", "cpu", "3600"), None);
        assert_eq!(as_written_text("start", "08:00:00"), "08:00");
        assert_eq!(as_written_text("start", "08:00:30"), "08:00:30", "not a whole minute: as written");
        assert_eq!(as_written_text("cpu", "8"), "8", "CPUs are counted bare");
        assert_eq!(as_written_text("A", "1"), "1");
    }
    use crate::model::{DevboxConfig, UserFile};

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 zed";

    fn read<T: DeserializeOwned + JsonSchema>(text: &str) -> Recovered<T> {
        let document = DeTable::parse(text).unwrap();
        let file = Arc::new(SourceFile::indexed("users/zed.toml".into(), text.into(), document.get_ref()));
        deserialize(&file, document)
    }

    fn user(extra_top: &str, extra_tables: &str) -> String {
        format!("email = \"zed@example.com\"\n{extra_top}[ssh]\nauthorized_keys = [\"{KEY}\"]\n{extra_tables}")
    }

    /// Each problem as `message | label | help...`, in file order (as they are shown).
    fn lines<T>(recovered: &Recovered<T>) -> Vec<String> {
        let mut problems: Vec<&Diagnostic> = recovered.problems.iter().collect();
        problems.sort_by_key(|d| match &d.location {
            Some(crate::diagnostic::Location::Span { span, .. }) => span.start,
            _ => 0,
        });
        problems.iter().map(|d| format!("{} | {} | {}", d.message, d.label, d.help.join(" / "))).collect()
    }

    fn assert_human<T>(recovered: &Recovered<T>) {
        for line in lines(recovered) {
            for serde in ["invalid type", "invalid value", "expected", "sequence", "u32", "struct ", "wanted", "missing field"] {
                assert!(!line.contains(serde), "serde's words `{serde}` in: {line}");
            }
        }
    }

    #[test]
    fn every_wrong_value_is_reported_and_the_rest_is_read() {
        let text = user("state = \"Stopped\"\narch = \"x86_64\"\n", "[resources]\ncpu = 8\nmemory = \"32GB\"\n");
        let recovered = read::<UserFile>(&text);
        assert_eq!(
            lines(&recovered),
            [
                "`Stopped` is not a valid `state` | not one of `running`, `stopped`, `archived` | did you mean `stopped`?",
                "`x86_64` is not a valid `arch` | not one of `amd64`, `arm64` | did you mean `amd64`?",
                "`cpu` must be a string | this is a number | quote it: `cpu = \"8\"`",
            ]
        );
        let value = recovered.value.expect("the rest of the file is read");
        assert_eq!((value.state, value.arch), (None, None));
        let resources = value.resources.unwrap();
        assert_eq!((resources.cpu, resources.memory.as_deref()), (None, Some("32GB")));
    }

    #[test]
    fn a_wrong_required_value_is_reported_once_and_reading_goes_on() {
        let text = "email = 42\n[ssh]\nauthorized_keys = \"ssh-ed25519 AAAA zed\"\n[gpu]\ncount = \"2\"\n";
        let recovered = read::<UserFile>(text);
        assert_eq!(
            lines(&recovered),
            [
                "`email` must be a string | this is a number | quote it: `email = \"42\"`",
                "`authorized_keys` must be a list | this is a string | make it a list: `authorized_keys = [\"ssh-ed25519 AAAA zed\"]`",
                "`count` must be a whole number | this is a string | remove the quotes: `count = 2`",
            ]
        );
        // Passed on, so validation reports the file's other problems, with where it stood in.
        assert!(recovered.value.is_some());
        assert_eq!(recovered.stand_ins, ["ssh.authorized_keys", "email"]);
    }

    #[test]
    fn a_missing_required_field_is_one_problem_among_the_others() {
        let recovered = read::<UserFile>("state = 1\n[ssh]\n");
        assert_eq!(
            lines(&recovered),
            [
                "`email` is missing | the file needs `email` | add `email = \"…\"`: owner of the box, recorded in every object's annotations",
                "`state` must be one of `running`, `stopped`, `archived` | this is a number | write it in quotes, like `state = \"running\"`",
                "`[ssh]` has no `authorized_keys` | needs `authorized_keys` | add `authorized_keys = [\"…\"]`: public keys allowed to log in as `jupyter` (at least one)",
            ]
        );
        assert_eq!(recovered.stand_ins, ["ssh.authorized_keys", "email"]);
    }

    #[test]
    fn a_required_table_of_the_wrong_type_stops_nothing() {
        let recovered = read::<UserFile>("email = \"a@b.c\"\nssh = 1\nimage = true\n");
        assert_eq!(recovered.problems.len(), 2, "{:?}", lines(&recovered));
        assert_eq!(recovered.stand_ins, ["ssh"]);
        assert_human(&recovered);
    }

    #[test]
    fn recovery_is_bounded() {
        let mut text = user("", "[env]\n");
        for i in 0..500 {
            text.push_str(&format!("V{i} = {i}\n"));
        }
        let recovered = read::<UserFile>(&text);
        assert_eq!(recovered.problems.len(), MAX_ATTEMPTS);
        assert!(recovered.value.is_none(), "a file not read to its end is not passed on");
        assert!(recovered.problems[MAX_ATTEMPTS - 1].help.last().unwrap().contains("there may be more"));
    }

    #[test]
    fn every_shape_of_wrong_value_gets_a_sentence() {
        let cases = [
            ("image = 1979-05-27T07:32:00Z\n", "", "quote it: `image = \"1979-05-27T07:32:00Z\"`"),
            ("image = [\"a:1\"]\n", "", "remove the brackets: `image = \"a:1\"`"),
            ("image = {a = 1}\n", "", "`image` must be a string, not a table"),
            ("resources = \"8\"\n", "", "write `[resources]` on a line of its own"),
            ("", "[[resources]]\ncpu = \"1\"\n", "with one pair of brackets: there is only one `resources`"),
            ("env = [1]\n", "", "one `NAME = \"value\"` per line"),
            ("", "[env]\nA = 1\n", "quote it: `A = \"1\"`"),
            ("", "[gpu]\ncount = -1\n", "`count` cannot be negative"),
            ("", "[gpu]\ncount = 5000000000\n", "write a whole number from 1 to 16"),
            ("", "[gpu]\ncount = 2.0\n", "write it without a decimal point: `count = 2`"),
            ("", "[gpu]\ncount = true\n", "write a number without quotes, like `count = 1`"),
            ("", "[tailscale]\ntags = \"tag:devbox\"\n", "make it a list: `tags = [\"tag:devbox\"]`"),
            ("", "[tailscale]\ntags = [1, \"tag:x\"]\n", "every item of `tags` must be a string"),
            ("", "[tailscale]\ntags = [[\"a\"]]\n", "every item of `tags` must be a single string, not a list"),
            ("state = {running = 1}\n", "", "`state` must be one of"),
            ("state = [\"running\"]\n", "", "remove the brackets: `state = \"running\"`"),
            ("arch = \"AArch64\"\n", "", "did you mean `arm64`?"),
            ("arch = \"riscv\"\n", "", "use one of `amd64`, `arm64`"),
        ];
        for (top, tables, expected) in cases {
            let recovered = read::<UserFile>(&user(top, tables));
            assert_eq!(recovered.problems.len(), 1, "{top}{tables}: {:?}", lines(&recovered));
            assert!(lines(&recovered)[0].contains(expected), "{top}{tables}: {:?}", lines(&recovered));
            assert_human(&recovered);
        }
    }

    #[test]
    fn devbox_toml_and_its_defaults_get_the_same_treatment() {
        let text = "gitops = \"argocd\"\n[defaults]\nstate = \"Running\"\n[defaults.resources]\ncpu = 8\n[[clusters]]\nname = 1\nserver = \"https://a\"\n[runtime]\nuid = \"1000\"\n";
        let recovered = read::<DevboxConfig>(text);
        assert_eq!(
            lines(&recovered),
            [
                "`gitops` must be a list | this is a string | make it a list: `gitops = [\"argocd\"]`",
                "`Running` is not a valid `state` | not one of `running`, `stopped`, `archived` | did you mean `running`?",
                "`cpu` must be a string | this is a number | quote it: `cpu = \"8\"`",
                "`name` must be a string | this is a number | quote it: `name = \"1\"`",
                "`uid` must be a whole number | this is a string | remove the quotes: `uid = 1000`",
            ]
        );
        assert_eq!(recovered.stand_ins, ["clusters[0].name"], "a cluster's required name was stood in for");
    }

    #[test]
    fn tables_with_a_key_are_found_for_misplaced_keys() {
        let user = Schema::of::<UserFile>();
        assert_eq!(user.tables_with("cpu"), ["resources"]);
        assert_eq!(user.tables_with("hostname"), ["tailscale"]);
        let settings = Schema::of::<DevboxConfig>();
        assert_eq!(settings.tables_with("cpu"), ["defaults.resources", "quota"]);
        assert_eq!(settings.tables_with("server"), ["[clusters]"]);
        assert_eq!(settings.fields_at("clusters[1]"), ["name", "server"]);
        assert_eq!(settings.fields_at("defaults.home"), ["size", "storage_class"]);
    }
}
