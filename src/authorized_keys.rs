//! One line of an `authorized_keys` file, read as OpenSSH reads it: by validation, which
//! refuses what sshd would not take, and by `diff`, which names the keys a change lets in.

use ssh_key::authorized_keys::Entry;

/// Parses one line (options, key type, key, comment) with ssh-key's parser.
pub(crate) fn parse(line: &str) -> Result<Entry, ssh_key::Error> {
    single_spaced(line.trim()).parse()
}

/// The line with each run of spaces and tabs outside double quotes made one space. OpenSSH
/// separates an authorized_keys line's fields by any such run (`sshkey_read` skips `" \t"`;
/// `ssh-keygen -l` reads a tab-separated line), ssh-key's parser by one space; the line in the
/// bundle stays as written.
fn single_spaced(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in line.chars() {
        let blank = c == ' ' || c == '\t';
        if blank && !quoted {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            continue;
        }
        if c == '"' && !escaped {
            quoted = !quoted;
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blanks_outside_quotes_are_made_one_space() {
        assert_eq!(single_spaced("ssh-ed25519\tAAAA  me"), "ssh-ed25519 AAAA me");
        // Inside quotes nothing is touched: the command keeps its two spaces.
        assert_eq!(single_spaced("command=\"a  \\\"b  c\\\"\"  ssh-ed25519"), "command=\"a  \\\"b  c\\\"\" ssh-ed25519");
    }
}
