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

#[cfg(test)]
mod tests {
    use super::*;

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
