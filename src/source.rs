//! A file people wrote, kept with its text and the location of every key, so any stage can
//! point a diagnostic at `resources.memory` without re-parsing or carrying spans in the model.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A TOML file read from the config repo.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// Path relative to the config repo root, with `/` separators (`users/alice.toml`).
    pub path: String,
    pub text: String,
    spans: HashMap<String, KeySpans>,
}

#[derive(Clone, Debug)]
struct KeySpans {
    key: Range<usize>,
    value: Range<usize>,
}

impl SourceFile {
    /// A file whose text could not be parsed as TOML (or was never parsed): diagnostics can
    /// still point into it, but no key can be located.
    pub(crate) fn unparsed(path: String, text: String) -> Self {
        Self { path, text, spans: HashMap::new() }
    }

    /// Indexes every key of a parsed document by its dotted path (`ssh.authorized_keys[1]`).
    pub(crate) fn indexed(path: String, text: String, root: &DeTable<'_>) -> Self {
        let mut spans = HashMap::new();
        index_table(&mut spans, "", root);
        Self { path, text, spans }
    }

    /// The span of the value at `path`, falling back to its nearest ancestor that exists, then
    /// to the first line: a diagnostic always has somewhere to point.
    pub(crate) fn value_span(&self, path: &str) -> Range<usize> {
        self.lookup(path).map_or_else(|| self.first_line(), |s| s.value.clone())
    }

    /// The span of the key at `path` (for unknown or misplaced keys).
    pub(crate) fn key_span(&self, path: &str) -> Range<usize> {
        self.lookup(path).map_or_else(|| self.first_line(), |s| s.key.clone())
    }

    fn lookup(&self, path: &str) -> Option<&KeySpans> {
        let mut current = path;
        loop {
            if let Some(found) = self.spans.get(current) {
                return Some(found);
            }
            current = &current[..current.rfind(['.', '['])?];
        }
    }

    fn first_line(&self) -> Range<usize> {
        // Skip a leading `#:schema` comment: point at the first real line.
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                return offset..offset + line.trim_end().len();
            }
            offset += line.len();
        }
        0..0
    }

    /// 1-based line and column of a byte offset, for messages that must not show the source.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

/// The dotted path [`SourceFile`] indexes by: `ssh.authorized_keys[0]`, `resources.memroy`.
pub(crate) fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => match ignored_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn index_table(spans: &mut HashMap<String, KeySpans>, prefix: &str, table: &DeTable<'_>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        spans.insert(path.clone(), KeySpans { key: key.span(), value: value.span() });
        index_value(spans, &path, value);
    }
}

fn index_value(spans: &mut HashMap<String, KeySpans>, path: &str, value: &Spanned<DeValue<'_>>) {
    match value.get_ref() {
        DeValue::Table(table) => index_table(spans, path, table),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                spans.insert(item_path.clone(), KeySpans { key: item.span(), value: item.span() });
                index_value(spans, &item_path, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        let doc = DeTable::parse(text).unwrap();
        SourceFile::indexed("users/a.toml".into(), text.into(), doc.get_ref())
    }

    #[test]
    fn locates_nested_keys_and_array_items() {
        let text = "email = \"a@b.c\"\n[ssh]\nauthorized_keys = [\"k1\", \"k2\"]\n";
        let f = file(text);
        assert_eq!(&text[f.value_span("email")], "\"a@b.c\"");
        assert_eq!(&text[f.value_span("ssh.authorized_keys[1]")], "\"k2\"");
        assert_eq!(&text[f.key_span("ssh.authorized_keys")], "authorized_keys");
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let text = "[resources]\ncpu = \"1\"\n";
        let f = file(text);
        assert_eq!(&text[f.value_span("resources.memory")], &text[f.value_span("resources")]);
        let (line, col) = f.line_column(text.find("cpu").unwrap());
        assert_eq!((line, col), (2, 1));
    }

    #[test]
    fn unparsed_files_point_at_the_first_non_comment_line() {
        let f = SourceFile::unparsed("x".into(), "#:schema x\n\nemail = 1\n".into());
        assert_eq!(&f.text[f.value_span("email")], "email = 1");
    }
}
