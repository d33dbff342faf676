//! One line of an `authorized_keys` file, read as OpenSSH reads it: by validation, which
//! refuses what sshd would not take, and by `diff`, which names the keys a change lets in.

use base64ct::{Base64, Encoding};
use ssh_key::PublicKey;

/// Where `text` holds a private key, if it does: its PEM or PuTTY header, or, for a key pasted
/// without its `-----BEGIN` and `-----END` lines, the start of its base64 body. Checked before
/// anything else reads the text, so that a pasted key is never parsed, echoed in a snippet, or
/// written anywhere.
pub(crate) fn private_key_at(text: &str) -> Option<usize> {
    const HEADERS: [&str; 2] = ["PRIVATE KEY-----", "PuTTY-User-Key-File"];
    let header = HEADERS.iter().filter_map(|h| text.find(h)).min();
    let body = base64_words(text).find(|(_, word)| is_private_key_body(word)).map(|(at, _)| at);
    header.into_iter().chain(body).min()
}

/// The runs of base64 characters in `text`, with their offsets.
fn base64_words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    text.split(move |c: char| !is_base64(c))
        .filter(|word| !word.is_empty())
        .map(move |word| (word.as_ptr() as usize - text.as_ptr() as usize, word))
}

/// Whether a base64 word starts a private key: OpenSSH's own format (`openssh-key-v1`, what
/// `ssh-keygen` writes by default, encrypted or not), or DER whose outer SEQUENCE starts with
/// the INTEGER version 0 or 1, which PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) and
/// PKCS#8 (`PRIVATE KEY`) keys have and public keys and certificates never do (RFC 8017 A.1.2,
/// RFC 5915 3, RFC 5958 2). A public key in `authorized_keys` starts with `AAAA`.
fn is_private_key_body(word: &str) -> bool {
    const OPENSSH: &[u8] = b"openssh-key-v1\0";
    let mut bytes = [0u8; 12];
    let Some(start) = word.get(..16) else { return false };
    let Ok(decoded) = Base64::decode(start, &mut bytes) else { return false };
    if OPENSSH.starts_with(decoded) {
        return true;
    }
    // SEQUENCE, its length in short (one byte) or long (0x81/0x82 and one or two bytes) form.
    let rest = match decoded {
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, 0x82, _, _, rest @ ..] => rest,
        [0x30, length, rest @ ..] if *length < 0x80 => rest,
        _ => return false,
    };
    matches!(rest, [0x02, 0x01, 0x00 | 0x01, ..])
}

/// An `authorized_keys` line's key; its options, if any, are ones sshd takes.
#[derive(Debug)]
pub(crate) struct AuthorizedKey {
    pub key: PublicKey,
}

/// Why a line is not one sshd would take.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Not an OpenSSH public key (with or without options before it).
    Key,
    /// An option sshd does not know, or an unterminated quote: sshd ignores the whole line.
    Option(String),
}

/// The options sshd knows (`sshauthopt_parse` in OpenSSH's auth-options.c), which it matches
/// without regard to case; `=` ones take a double-quoted value.
const OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "command=",
    "environment=",
    "expiry-time=",
    "from=",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "permitlisten=",
    "permitopen=",
    "port-forwarding",
    "principals=",
    "pty",
    "restrict",
    "touch-required",
    "tunnel=",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];

/// Parses one line as sshd does: optional options, then the key type, the key and a comment.
/// The options end at the first space or tab outside double quotes, so a quoted value may hold
/// blanks (`command="echo hi"`, `from="10.0.0.0/8, 192.168.0.0/16"`).
pub(crate) fn parse(line: &str) -> Result<AuthorizedKey, Unreadable> {
    let line = single_spaced(line.trim());
    if let Ok(key) = PublicKey::from_openssh(&line) {
        return Ok(AuthorizedKey { key });
    }
    let end = unquoted_space(&line).ok_or(Unreadable::Key)?;
    let (options, key) = (&line[..end], &line[end + 1..]);
    let key = PublicKey::from_openssh(key).map_err(|_| Unreadable::Key)?;
    for option in split_options(options)? {
        let known = OPTIONS.iter().any(|known| {
            if known.ends_with('=') {
                let value = option.get(known.len()..).unwrap_or_default();
                option.get(..known.len()).is_some_and(|head| head.eq_ignore_ascii_case(known))
                    && value.len() >= 2
                    && value.starts_with('"')
                    && value.ends_with('"')
            } else {
                option.eq_ignore_ascii_case(known)
            }
        });
        if !known {
            return Err(Unreadable::Option(option.to_string()));
        }
    }
    Ok(AuthorizedKey { key })
}

/// Where the first space outside double quotes is.
fn unquoted_space(line: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (at, c) in line.char_indices() {
        match c {
            ' ' if !quoted => return Some(at),
            '"' if !escaped => quoted = !quoted,
            _ => {}
        }
        escaped = c == '\\' && !escaped;
    }
    None
}

/// The comma-separated options, each whole with its quoted value; an unterminated quote is an
/// error, as for sshd.
fn split_options(options: &str) -> Result<Vec<&str>, Unreadable> {
    let (mut parts, mut start) = (Vec::new(), 0);
    let (mut quoted, mut escaped) = (false, false);
    for (at, c) in options.char_indices() {
        match c {
            ',' if !quoted => {
                parts.push(&options[start..at]);
                start = at + 1;
            }
            '"' if !escaped => quoted = !quoted,
            _ => {}
        }
        escaped = c == '\\' && !escaped;
    }
    if quoted {
        return Err(Unreadable::Option(options[start..].to_string()));
    }
    parts.push(&options[start..]);
    Ok(parts)
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

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 alice@laptop";

    #[test]
    fn a_private_key_is_found_with_or_without_its_header() {
        // The first 40 characters of keys ssh-keygen and openssl wrote (no secret in them), as
        // they come after the `-----BEGIN ...` line: OpenSSH (plain and encrypted), PKCS#1 RSA
        // (2048 and 4096 bits), SEC1 EC, PKCS#8 RSA, EC and Ed25519.
        let bodies = [
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u",
            "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIA",
            "MIIEpQIBAAKCAQEAtSMDUlwbYiClKZnIQVf6f1JE",
            "MIIJKAIBAAKCAgEAuo6IA5hAvqJ6KRh0sB+erf+A",
            "MHcCAQEEIBd7dHESPb2e7cxBzHQZO/3ihrx/iJ8l",
            "MIIG/gIBADANBgkqhkiG9w0BAQEFAASCBugwggbk",
            "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGb",
            "MC4CAQAwBQYDK2VwBCIEIMiRQMTJ0++3Te/qy7he",
        ];
        for body in bodies {
            let pasted = format!("email = \"a@example.com\"\n[ssh]\nauthorized_keys = ['''\n{body}\nAAAA''']\n");
            assert_eq!(private_key_at(&pasted), pasted.find(body), "{body}");
            assert_eq!(private_key_at(&format!("\"{body}\"")), Some(1), "{body}");
        }
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9u\n";
        assert_eq!(private_key_at(pem), pem.find("PRIVATE KEY"), "the header, before the body");
        assert_eq!(private_key_at("PuTTY-User-Key-File-3: ssh-ed25519"), Some(0));
        // Public keys, in every form a person might paste, and certificates are not.
        for public in [
            KEY,
            "MIIBbjCCAROgAwIBAgIUcL9xpwz7p/rIZFVXo7bU",
            "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEg+I1hMAE",
            "MIIBCgKCAQEAtSMDUlwbYiClKZnIQVf6f1JE81H2",
            "email = \"Mississippi.Mississippi@example.com\"",
        ] {
            assert_eq!(private_key_at(public), None, "{public}");
        }
    }

    #[test]
    fn options_are_what_sshd_takes_quoted_values_with_blanks_included() {
        for options in [
            "command=\"echo hi\"",
            "from=\"10.0.0.0/8, 192.168.0.0/16\"",
            "no-pty,command=\"ls -l\"",
            "restrict,pty",
            "cert-authority",
            "NO-PTY",
            "environment=\"A=b c\"",
        ] {
            let parsed = parse(&format!("{options} {KEY}")).unwrap_or_else(|e| panic!("{options}: {e:?}"));
            assert_eq!(parsed.key.comment(), "alice@laptop");
        }
        assert_eq!(parse(KEY).unwrap().key.comment(), "alice@laptop");
        assert_eq!(parse(&format!("no-ptty {KEY}")).unwrap_err(), Unreadable::Option("no-ptty".into()));
        assert_eq!(parse(&format!("command=ls {KEY}")).unwrap_err(), Unreadable::Option("command=ls".into()));
        assert_eq!(parse(&format!("command=\"ls {KEY}")).unwrap_err(), Unreadable::Key, "the quote runs to the end: no key");
        assert_eq!(parse("ssh-ed25519 AAAA alice").unwrap_err(), Unreadable::Key);
    }

    #[test]
    fn only_blanks_outside_quotes_are_made_one_space() {
        assert_eq!(single_spaced("ssh-ed25519\tAAAA  me"), "ssh-ed25519 AAAA me");
        // Inside quotes nothing is touched: the command keeps its two spaces.
        assert_eq!(single_spaced("command=\"a  \\\"b  c\\\"\"  ssh-ed25519"), "command=\"a  \\\"b  c\\\"\" ssh-ed25519");
    }
}
