//! A temporary config repo and a way to run devbox-gen in it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// Real public keys (generated with ssh-keygen for these tests).
pub const KEY_ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 alice@laptop";
pub const KEY_ALICE_2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdloufJH9/lc9oxT6pQaIRDdlaIRhq+9JFt+ktuA2ZX alice@desktop";

pub const KEY_DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBANmxMj5hhpHHXwV5ZbOIqejdZzGFU0TR3Oi5yIJUaAUF3fNf+Yh35rhEi1EYMZE32Ct+FjBDtJHh7lAAuXXXbXzfH7bwQoODYxKbq5+o77rFOL3uqn0MsdEEMHT661PEoFnzBT5Hi6YM56iF+4jkbhS/6jSBYgS5rF86NXghJtVJAAAAFQD6ccvb9V7j10h38OfaHwOYTNEGSQAAAIEAwmeH2QIijNxOYXC6vLMFlI1mzNL7L9bL7zmulVomBbxS2MlMh9UytyHsilC9LCvyNmQhEeOk7t+WtPhons9Nk+Yu33mSCXN4jV4XiTOd+xXNod0pOeckDw5Yc+ks5RGlcZmZHGe71KtJjeo6hzww0CzYkRONxOAuUE7KG3NrI4UAAACBAJbgakvl9K1THPE+87s67NVwHRi2wdrdmNDVVmkSIxKE0H3EIJwocCezfq69dr8zYfq/T9W97QsaW0wVZLd7e0yTVp2T/kOS+M8msyIe1FTLDir9Iz5/K51cNNMG4Flwa//fqFTR3ONavtmR31xYKXRTJxzy07uDVXwTuWtssUYO old";
pub const KEY_RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCkYJZChQmStoMrVsQ30kWGMGMVj+bzfbSeD1plG2JmVo7FLOvbCsutjIXaT1EtghzB9iASNHddtU1gdsZRzx8LIvzaeFDPHbKBARpilOdbCEuoM/bPDtlK6xdFLX8GxWjMYlfKwduZ1v7TeON8aTpcLn7CuPzrtZfCRvlFLVfepw== weak";

pub const SETTINGS: &str = r#"
[defaults]
image = "registry.example.com/devbox:1.0"
"#;

pub struct Repo {
    dir: TempDir,
}

/// What `devbox-gen` did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Repo {
    /// A config repo with the given devbox.toml and no users.
    pub fn new(settings: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("devbox.toml"), settings).unwrap();
        fs::create_dir(dir.path().join("users")).unwrap();
        Self { dir }
    }

    /// A config repo already written to `dir`.
    pub fn at(dir: TempDir) -> Self {
        Self { dir }
    }

    /// The usual start: default settings and one user, alice.
    pub fn with_alice() -> Self {
        Self::new(SETTINGS).user("alice", &user_file("alice@example.com", KEY_ALICE))
    }

    pub fn user(self, name: &str, text: &str) -> Self {
        self.write(&format!("users/{name}.toml"), text);
        self
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output =
            Command::cargo_bin("devbox-gen").unwrap().arg("-C").arg(self.path()).args(args).env_remove("NO_COLOR").output().unwrap();
        Run {
            code: output.status.code().expect("exited normally"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Runs and asserts the exit code, showing the output when it is wrong.
    pub fn run_ok(&self, args: &[&str], code: i32) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, code, "devbox-gen {args:?} exited {}\nstdout:\n{}\nstderr:\n{}", run.code, run.stdout, run.stderr);
        run
    }

    /// Every file under out/ with its contents, inode and mtime: to prove nothing was touched.
    pub fn out_snapshot(&self) -> BTreeMap<PathBuf, (String, u64, i64, i64)> {
        let mut files = BTreeMap::new();
        let out = self.path().join("out");
        if out.exists() {
            walk(&out, &out, &mut files);
        }
        files
    }
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, (String, u64, i64, i64)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let meta = fs::metadata(&path).unwrap();
            let text = fs::read_to_string(&path).unwrap_or_default();
            files.insert(path.strip_prefix(root).unwrap().to_path_buf(), (text, meta.ino(), meta.mtime(), meta.mtime_nsec()));
        }
    }
}

/// A minimal valid user file.
pub fn user_file(email: &str, key: &str) -> String {
    format!("email = \"{email}\"\n\n[ssh]\nauthorized_keys = [\"{key}\"]\n")
}
