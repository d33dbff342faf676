//! Wording shared by every command's messages.

/// `1 user`, `2 users`, `0 users`: a count people read, with the noun (and whatever follows it)
/// agreeing with the number.
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `--flag value` as typed on a command line, the value quoted when a shell would need it: how
/// a message names a flag's value, in place of the file and line a value from a file gets.
pub(crate) fn flag(name: &str, value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-~".contains(c));
    if plain { format!("{name} {value}") } else { format!("{name} '{}'", value.replace('\'', r"'\''")) }
}

/// Whether a character reorders or hides the text around it when shown: Unicode's
/// bidirectional controls, with which a value in a pull request can make a reviewer read
/// something other than what it is ("Trojan Source", CVE-2021-42574).
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether a character, shown as it is, would drive the terminal (control characters but tab)
/// or reorder the text around it (bidirectional controls).
pub(crate) fn drives_the_display(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi_control(c)
}

/// Text as a terminal or a CI log shows it: control characters and bidirectional controls
/// escaped (`\n`, `\u{202e}`), tabs kept. A value from a user file can then neither drive the
/// terminal, nor start a line of its own (where GitHub Actions reads `::command::` lines), nor
/// reorder what is around it.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(drives_the_display) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars().map(|c| if drives_the_display(c) { c.escape_default().to_string() } else { c.to_string() }).collect::<String>().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_cannot_start_a_line_or_turn_around() {
        assert_eq!(printable("a/b:1\n::warning::x\r"), "a/b:1\\n::warning::x\\r");
        assert_eq!(printable("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert_eq!(printable("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(printable("tab\tkept, Zoë kept"), "tab\tkept, Zoë kept");
    }

    #[test]
    fn only_one_is_singular() {
        assert_eq!(plural(0, "user", "users"), "0 users");
        assert_eq!(plural(1, "user file is valid", "user files are valid"), "1 user file is valid");
        assert_eq!(plural(2, "user", "users"), "2 users");
    }

    #[test]
    fn flags_are_quoted_as_a_shell_needs() {
        assert_eq!(flag("--email", "grace@example.com"), "--email grace@example.com");
        assert_eq!(flag("--email", "grace at example"), "--email 'grace at example'");
        assert_eq!(flag("--tag", "it's"), r"--tag 'it'\''s'");
        assert_eq!(flag("--image", ""), "--image ''");
    }
}
