//! The toml crate reads TOML 1.1, which the tools around a config repo do not yet: taplo (what
//! Even Better TOML and other editors check the `#:schema` line with, and the pre-commit hook),
//! Python's tomllib, go-toml. A file that uses what 1.1 added is valid to devbox-gen and
//! invalid to them: editors show it red and stop checking it against the schema. So it is
//! refused here, with the TOML 1.0 way to write it. TOML 1.1 added (toml-lang/toml's
//! CHANGELOG): line breaks and a trailing comma in inline tables, the `\e` and `\xHH` escapes,
//! and times without seconds. (A byte order mark, which they refuse too, is read past with a
//! warning, where the file is read.)
//!
//! Found with the toml crate's own lexer, so that strings and comments are told apart exactly
//! as the parser does. Times without seconds are left to the model, where no time is a TOML
//! time.

use std::ops::Range;

use toml_parser::Source;
use toml_parser::lexer::TokenKind;

/// What a file uses that TOML 1.0 does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Newer {
    /// A line break (or a comment) inside `{ ... }`; told at the `{`.
    LineBreakInInlineTable,
    TrailingCommaInInlineTable,
    /// `\e` or `\x` in a basic string.
    Escape(char),
}

impl Newer {
    pub(crate) fn message(self) -> String {
        match self {
            Newer::LineBreakInInlineTable => "a line break inside an inline table is TOML 1.1".into(),
            Newer::TrailingCommaInInlineTable => "a comma before `}` is TOML 1.1".into(),
            Newer::Escape(c) => format!("the escape `\\{c}` is TOML 1.1"),
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Newer::LineBreakInInlineTable => "this inline table spans lines",
            _ => "not TOML 1.0",
        }
    }

    pub(crate) fn help(self) -> &'static str {
        match self {
            Newer::LineBreakInInlineTable => "write the inline table on one line, or as a `[table]` section with a key a line",
            Newer::TrailingCommaInInlineTable => "remove the comma after the last key of the inline table",
            Newer::Escape('e') => "write `\\u001b` for the escape character",
            Newer::Escape(_) => "write `\\u00HH` for the character `\\xHH`",
        }
    }
}

/// Where `text` uses what TOML 1.0 does not have, in file order. For a text the toml crate has
/// parsed: it does not check the syntax.
pub(crate) fn newer_than_1_0(text: &str) -> Vec<(Range<usize>, Newer)> {
    let mut found = Vec::new();
    // What each open bracket is: an inline table's `{`, or `None` for a `[`.
    let mut open: Vec<Option<Range<usize>>> = Vec::new();
    // Whether the inline table innermost has been told to break lines already: once each.
    let mut told_break = false;
    let mut last_significant = None;
    let source = Source::new(text);
    for token in source.lex() {
        let span = token.span();
        let range = span.start()..span.end();
        match token.kind() {
            TokenKind::LeftCurlyBracket => {
                open.push(Some(range.clone()));
                told_break = false;
            }
            TokenKind::LeftSquareBracket => open.push(None),
            TokenKind::RightSquareBracket => {
                open.pop();
            }
            TokenKind::RightCurlyBracket => {
                if let Some((comma, TokenKind::Comma)) = last_significant.clone() {
                    found.push((comma, Newer::TrailingCommaInInlineTable));
                }
                open.pop();
            }
            TokenKind::Newline | TokenKind::Comment if !told_break && let Some(Some(brace)) = open.last() => {
                found.push((brace.clone(), Newer::LineBreakInInlineTable));
                told_break = true;
            }
            TokenKind::BasicString | TokenKind::MlBasicString => {
                found.extend(newer_escapes(&text[range.clone()]).map(|(at, c)| (range.start + at..range.start + at + 2, Newer::Escape(c))));
            }
            _ => {}
        }
        if !matches!(token.kind(), TokenKind::Whitespace | TokenKind::Comment | TokenKind::Newline) {
            last_significant = Some((range, token.kind()));
        }
    }
    found
}

/// The `\e` and `\x` escapes of a basic string's text, by offset.
fn newer_escapes(raw: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut chars = raw.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some((at, c)) = chars.next() {
            if c != '\\' {
                continue;
            }
            match chars.next() {
                Some((_, escaped @ ('e' | 'x'))) => return Some((at, escaped)),
                _ => continue, // `\\` and every other escape: the character after is consumed
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Newer> {
        newer_than_1_0(text).into_iter().map(|(_, newer)| newer).collect()
    }

    #[test]
    fn what_toml_1_1_added_is_found() {
        assert_eq!(
            kinds("resources = {\n  cpu = \"4\",\n  memory = \"16Gi\",\n}\n"),
            [Newer::LineBreakInInlineTable, Newer::TrailingCommaInInlineTable]
        );
        assert_eq!(kinds("resources = { cpu = \"4\", }\n"), [Newer::TrailingCommaInInlineTable]);
        assert_eq!(kinds("env.PS1 = \"\\e[1m$ \"\nenv.G = \"caf\\xe9\"\n"), [Newer::Escape('e'), Newer::Escape('x')]);
        assert_eq!(kinds("r = { a = 1 # why\n}\n"), [Newer::LineBreakInInlineTable]);
    }

    #[test]
    fn toml_1_0_is_left_alone() {
        let text = "# a { comment, }\nkeys = [\n  \"a\",\n  \"b\",\n]\nr = { cpu = \"4\", memory = \"16Gi\" }\nx = 'C:\\e\\x'\ny = \"\\\\e \\\\x \\u001b\"\nz = \"\"\"\n\\\n  a { b, }\n\"\"\"\n[table]\nt = [{ a = 1 }, { b = 2 }]\n";
        assert_eq!(kinds(text), []);
    }

    #[test]
    fn where_it_is_points_at_it() {
        let text = "env.A = \"x\\ey\"\n";
        assert_eq!(newer_than_1_0(text)[0].0, 10..12);
    }
}
