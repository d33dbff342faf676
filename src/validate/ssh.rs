//! Public keys are parsed for real (ssh-key's authorized_keys parser, options included), so a
//! truncated paste or a weak key fails review instead of failing the person's first login.

use ssh_key::public::KeyData;

use super::Finding;
use crate::authorized_keys::Unreadable;

/// RSA keys shorter than this are refused (NIST and OpenSSH's own minimum for new keys).
pub(super) const MIN_RSA_BITS: usize = 2048;

/// Checks one `authorized_keys` line; returns its fingerprint so duplicates can be found.
pub(super) fn authorized_key(line: &str) -> Result<String, Finding> {
    let line = line.trim();
    if line.contains('\n') {
        return Err(
            Finding::error("one key per string: this one holds several lines").help("split it into separate strings of `authorized_keys`")
        );
    }
    // sshd reads the file with C strings: a NUL ends the line where it stands, and other
    // controls (a carriage return, an escape) end up in a reviewer's terminal.
    if line.chars().any(|c| crate::text::drives_the_display(c) && c != '\t') {
        return Err(Finding::error("this key holds a control character")
            .label("control character")
            .help("paste the line of your `~/.ssh/id_ed25519.pub` as it is: `ssh-ed25519 AAAA... you@laptop`"));
    }
    let parsed = crate::authorized_keys::parse(line).map_err(|unreadable| match unreadable {
        Unreadable::Key => Finding::error("this is not an OpenSSH public key")
            .label("cannot be parsed")
            .help("paste one line of your `~/.ssh/id_ed25519.pub`: `ssh-ed25519 AAAA... you@laptop`"),
        Unreadable::Option(option) => Finding::error(format!("sshd does not take the option `{option}`, and ignores a line that has it"))
            .label("bad option")
            .help("write options as sshd(8) lists them under AUTHORIZED_KEYS FILE FORMAT (`restrict`, `from=\"10.0.0.0/8\"`, `command=\"...\"`), apart by commas, a value in double quotes"),
    })?;
    let key = &parsed.key;
    match key.key_data() {
        KeyData::Dsa(_) => {
            return Err(Finding::error("DSA keys are refused: OpenSSH disabled them as insecure")
                .help("create an Ed25519 key with `ssh-keygen -t ed25519` and use its .pub"));
        }
        KeyData::Rsa(rsa) => {
            // The modulus's own bits: a 2047-bit key has 256 bytes, its top bit clear.
            let bits = rsa.n.as_positive_bytes().map_or(0, |b| {
                let top = b.first().map_or(8, |byte| byte.leading_zeros() as usize);
                b.len() * 8 - top
            });
            if bits < MIN_RSA_BITS {
                return Err(Finding::error(format!("this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"))
                    .help("create an Ed25519 key with `ssh-keygen -t ed25519` and use its .pub"));
            }
        }
        KeyData::Other(_) => {
            return Err(Finding::error(format!("`{}` keys are not supported", key.algorithm()))
                .help("use an ssh-ed25519, ecdsa-sha2-* or ssh-rsa (>= 2048 bits) key"));
        }
        _ => {}
    }
    Ok(key.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 alice@laptop";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCkYJZChQmStoMrVsQ30kWGMGMVj+bzfbSeD1plG2JmVo7FLOvbCsutjIXaT1EtghzB9iASNHddtU1gdsZRzx8LIvzaeFDPHbKBARpilOdbCEuoM/bPDtlK6xdFLX8GxWjMYlfKwduZ1v7TeON8aTpcLn7CuPzrtZfCRvlFLVfepw== weak";
    const RSA_2047: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAF3+qV6B6EN6hLWwtVW2NH+aR+HhhomZ85ZIUQvFqIpOFzSUdTRtpKZuRaCgtvLaQdMZJs3ixse9Bk13d45vOuOg7/cp+Wha+ivkKPJ2GepXSQiV1441OEw6XvxiPfcjQpNZhqObNWKmrdD6zrutcb44AGeEl8weCXZ6qlKnKtt0JA+fAfRaXZ9b+26/IGUlb7E3m+nvjvm21Xz9EHrXzwVzzmoyUY9vHnkkj7V5vngvGlpIUIIbzs4JwQSoWV8x9v4u+VKV71Gyi1BaxttAxOzvyaU8yGKwrHoKhI8dAm8WPQz5KOI9BG4rHNdiM1SM1QoozMV5+APOrDpkYiJZcRM= short";
    const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBANmxMj5hhpHHXwV5ZbOIqejdZzGFU0TR3Oi5yIJUaAUF3fNf+Yh35rhEi1EYMZE32Ct+FjBDtJHh7lAAuXXXbXzfH7bwQoODYxKbq5+o77rFOL3uqn0MsdEEMHT661PEoFnzBT5Hi6YM56iF+4jkbhS/6jSBYgS5rF86NXghJtVJAAAAFQD6ccvb9V7j10h38OfaHwOYTNEGSQAAAIEAwmeH2QIijNxOYXC6vLMFlI1mzNL7L9bL7zmulVomBbxS2MlMh9UytyHsilC9LCvyNmQhEeOk7t+WtPhons9Nk+Yu33mSCXN4jV4XiTOd+xXNod0pOeckDw5Yc+ks5RGlcZmZHGe71KtJjeo6hzww0CzYkRONxOAuUE7KG3NrI4UAAACBAJbgakvl9K1THPE+87s67NVwHRi2wdrdmNDVVmkSIxKE0H3EIJwocCezfq69dr8zYfq/T9W97QsaW0wVZLd7e0yTVp2T/kOS+M8msyIe1FTLDir9Iz5/K51cNNMG4Flwa//fqFTR3ONavtmR31xYKXRTJxzy07uDVXwTuWtssUYO old";

    #[test]
    fn accepts_a_real_key_with_options() {
        assert!(authorized_key(ED25519).is_ok());
        assert!(authorized_key(&format!("from=\"10.0.0.0/8\" {ED25519}")).is_ok());
    }

    #[test]
    fn fields_apart_by_tabs_or_several_spaces_are_one_key_as_for_openssh() {
        let fingerprint = authorized_key(ED25519).unwrap();
        for spaced in [ED25519.replace(' ', "\t"), ED25519.replace(' ', "   "), format!("restrict \t {ED25519}")] {
            assert_eq!(authorized_key(&spaced).unwrap(), fingerprint, "{spaced:?}");
        }
    }

    #[test]
    fn refuses_control_characters_anywhere_in_the_line() {
        for bad in [format!("{ED25519}\0x"), format!("{ED25519}\u{1b}[2J"), format!("{ED25519}\u{202e}pot")] {
            assert_eq!(authorized_key(&bad).unwrap_err().message, "this key holds a control character", "{bad:?}");
        }
    }

    #[test]
    fn refuses_weak_broken_and_multi_line_keys() {
        assert!(authorized_key(RSA_1024).unwrap_err().message.contains("1024 bits"));
        // `ssh-keygen -t rsa -b 2047`: 256 bytes of modulus, its top bit clear.
        assert!(authorized_key(RSA_2047).unwrap_err().message.contains("2047 bits"));
        assert!(authorized_key(DSA).unwrap_err().message.contains("DSA"));
        assert!(authorized_key(&ED25519[..60]).is_err());
        assert!(authorized_key(&format!("{ED25519}\n{ED25519}")).is_err());
        assert!(authorized_key("alice@laptop").is_err());
    }

    #[test]
    fn same_key_with_another_comment_has_the_same_fingerprint() {
        let other = ED25519.replace("alice@laptop", "alice@desktop");
        assert_eq!(authorized_key(ED25519).unwrap(), authorized_key(&other).unwrap());
    }
}
