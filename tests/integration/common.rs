//! A temporary config repo, a way to run devbox-gen in it, and what the tests check with.

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
    /// Runs devbox-gen with `args` where no file may grow past `kib` KiB (a full disk, in
    /// effect): bash ignores SIGXFSZ for it, so a write past the limit fails with EFBIG
    /// instead of killing the process. Exit code and stderr.
    pub fn run_with_file_size_limit(&self, kib: u32, args: &[&str]) -> (Option<i32>, String) {
        let output = std::process::Command::new("bash")
            .args(["-c", &format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" -C \"$@\"")])
            .arg(assert_cmd::cargo::cargo_bin("devbox-gen"))
            .arg(self.path())
            .args(args)
            .env("HOME", self.path().join(".home"))
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    }

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

    /// Renders with `template` (a custom template at templates/devbox.jsonnet) instead of the
    /// embedded one, with the standard devbox.toml.
    pub fn use_template(&self, template: &str) {
        self.write("devbox.toml", &format!("template = \"templates/devbox.jsonnet\"\n{SETTINGS}"));
        self.write("templates/devbox.jsonnet", template);
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

    /// Runs devbox-gen on the repo, with `HOME` at its `.home` (absent unless a test makes it),
    /// so that nothing of the developer's own home (`~/.ssh`) reaches a test.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = Command::cargo_bin("devbox-gen")
            .unwrap()
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env_remove("NO_COLOR")
            .env("HOME", self.path().join(".home"))
            // A hang fails the test, with its output, instead of stalling the whole run.
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap();
        Run {
            code: output.status.code().expect("exited normally, within the timeout"),
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
        let out = self.path().join("out");
        if !out.exists() {
            return BTreeMap::new();
        }
        files_under(&out)
            .into_iter()
            .map(|path| {
                let full = out.join(&path);
                let meta = fs::metadata(&full).unwrap();
                let text = fs::read_to_string(&full).unwrap_or_default();
                (path, (text, meta.ino(), meta.mtime(), meta.mtime_nsec()))
            })
            .collect()
    }
}

/// Every path under `dir` (directories too), relative to it, sorted; links are not followed.
/// The one directory walker of these tests.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    fn visit(root: &Path, dir: &Path, all: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.unwrap();
            all.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                visit(root, &entry.path(), all);
            }
        }
    }
    let mut all = Vec::new();
    visit(dir, dir, &mut all);
    all.sort();
    all
}

/// Every file (not directory) under `dir`, relative to it, sorted.
/// A path or text with the content hash of the shared scripts ConfigMap's name replaced by
/// `HASH`, for assertions that must not change with every edit of a script.
pub fn without_scripts_hash(text: &str) -> String {
    const PREFIX: &str = "devbox-scripts-";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let (before, after) = rest.split_at(at + PREFIX.len());
        out.push_str(before);
        let hash_len = after.chars().take_while(char::is_ascii_hexdigit).count();
        assert_eq!(hash_len, 10, "a scripts ConfigMap is named by 10 hex digits: {text}");
        out.push_str("HASH");
        rest = &after[hash_len..];
    }
    out.push_str(rest);
    out
}

/// The text of the shared scripts ConfigMap of a built repo without clusters (there is one).
pub fn scripts_config_map(repo: &Repo) -> String {
    let dir = repo.path().join("out/_gitops/namespace/default");
    let found: Vec<PathBuf> =
        files_under(&dir).into_iter().filter(|p| p.to_string_lossy().starts_with("configmap-devbox-scripts-")).collect();
    assert_eq!(found.len(), 1, "one scripts ConfigMap in {}: {found:?}", dir.display());
    fs::read_to_string(dir.join(&found[0])).unwrap()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|path| !fs::symlink_metadata(dir.join(path)).unwrap().is_dir()).collect()
}

/// alice (running), bob (stopped) and carol (running, with her own tailnet hostname and tags).
pub fn alice_bob_carol() -> Repo {
    let stopped = format!("state = \"stopped\"\n{}", user_file("bob@example.com", KEY_ALICE_2));
    let tagged = format!(
        "{}\n[tailscale]\nhostname = \"carol-gpu\"\ntags = [\"tag:devbox\", \"tag:gpu\"]\n",
        user_file("carol@example.com", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2DHPT+6KPMKbEw5IrfG11A8Vz6y61TuSHbix+l2RTJ carol@laptop")
    );
    Repo::with_alice().user("bob", &stopped).user("carol", &tagged)
}

/// The risks `diff` reports, as JSON `[kind, user]` pairs, most dangerous first.
pub fn risks(repo: &Repo) -> Vec<(String, String)> {
    let run = repo.run(&["diff", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    report["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_string(), r["user"].as_str().unwrap().to_string()))
        .collect()
}

/// `[(kind, user)]` as [`risks`] returns them.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, u)| (k.to_string(), u.to_string())).collect()
}

/// A minimal valid user file.
pub fn user_file(email: &str, key: &str) -> String {
    format!("email = \"{email}\"\n\n[ssh]\nauthorized_keys = [\"{key}\"]\n")
}

/// Runs git in `dir` (author, no signing, no system or user config) and returns its stdout;
/// panics with its stderr if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Asserts that `haystack` contains `needle`, printing both when it does not (and the optional
/// format arguments after them).
macro_rules! assert_contains {
    ($haystack:expr, $needle:expr $(,)?) => {
        $crate::common::assert_contains!($haystack, $needle, "")
    };
    ($haystack:expr, $needle:expr, $($context:tt)+) => {{
        let (haystack, needle): (&str, &str) = (&$haystack, &$needle);
        assert!(
            haystack.contains(needle),
            "`{}` does not contain `{}` {}\n--- expected to find:\n{needle}\n--- in:\n{haystack}\n---",
            stringify!($haystack),
            stringify!($needle),
            format_args!($($context)+),
        );
    }};
}
pub(crate) use assert_contains;

/// Asserts that `haystack` does not contain `needle`, printing both when it does.
macro_rules! assert_not_contains {
    ($haystack:expr, $needle:expr $(,)?) => {
        $crate::common::assert_not_contains!($haystack, $needle, "")
    };
    ($haystack:expr, $needle:expr, $($context:tt)+) => {{
        let (haystack, needle): (&str, &str) = (&$haystack, &$needle);
        assert!(
            !haystack.contains(needle),
            "`{}` contains `{}` {}\n--- expected not to find:\n{needle}\n--- in:\n{haystack}\n---",
            stringify!($haystack),
            stringify!($needle),
            format_args!($($context)+),
        );
    }};
}
pub(crate) use assert_not_contains;
