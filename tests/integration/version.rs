//! The version: what `--version` says, and that every place that names a release (CI
//! templates, pre-commit hooks, README's Install, release/) and every way of fetching one
//! (cargo binstall's metadata, the release scripts) agree with Cargo.toml.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{assert_contains, files_under};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn devbox_gen(args: &[&str]) -> String {
    let output = assert_cmd::Command::cargo_bin("devbox-gen").unwrap().args(args).output().unwrap();
    assert!(output.status.success(), "devbox-gen {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// git's answer in this checkout, or None (no git, or not a clone, as in Nix's sandbox).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").current_dir(ROOT).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// `bash SCRIPT ARGS...` from the repository root.
fn bash(args: &[&str]) -> Output {
    Command::new("bash").current_dir(ROOT).args(args).output().unwrap()
}

fn stdout_of(output: Output, what: &str) -> String {
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `HASH DATE`, `HASH` (7 to 40 hex digits, `-dirty` allowed: the flake's dirtyShortRev) or
/// `unknown`.
fn is_commit(text: &str) -> bool {
    let (hash, date) = text.split_once(' ').map_or((text, None), |(hash, date)| (hash, Some(date)));
    let hex = hash.strip_suffix("-dirty").unwrap_or(hash);
    let hash_ok = (7..=40).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let date_ok = date.is_none_or(|date| {
        let parts: Vec<_> = date.split('-').collect();
        parts.len() == 3 && [4, 2, 2].iter().zip(&parts).all(|(&len, part)| part.len() == len && part.bytes().all(|b| b.is_ascii_digit()))
    });
    text == "unknown" || (hash_ok && date_ok)
}

#[test]
fn version_names_the_version_and_the_commit_it_was_built_from() {
    let stdout = devbox_gen(&["--version"]);
    let commit = stdout
        .strip_prefix(&format!("devbox-gen {VERSION} ("))
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("not `devbox-gen {VERSION} (COMMIT)`: {stdout:?}"));
    assert!(is_commit(commit), "not `HASH DATE` or `unknown`: {commit:?}");

    // What build.rs should have found, asked the same way round: git in a clone, else the
    // variables the flake and the release builds set, else nothing.
    let from_git = Path::new(ROOT).join(".git").exists().then(|| git(&["rev-parse", "--short=12", "HEAD"])).flatten();
    let expected = if let Some(hash) = from_git {
        format!("{hash} {}", git(&["-c", "log.showSignature=false", "show", "-s", "--format=%cs", "HEAD"]).expect("the commit's date"))
    } else if let Some(hash) = std::env::var("DEVBOX_GEN_COMMIT").ok().filter(|v| !v.trim().is_empty()) {
        match std::env::var("DEVBOX_GEN_COMMIT_DATE").ok().filter(|v| !v.trim().is_empty()) {
            Some(date) => format!("{} {}", hash.trim(), date.trim()),
            None => hash.trim().to_owned(),
        }
    } else {
        "unknown".to_owned()
    };
    assert_eq!(commit, expected);

    assert_eq!(devbox_gen(&["-V"]), stdout);
    // propagate_version: every subcommand answers --version too, under its own name.
    assert_eq!(devbox_gen(&["build", "--version"]), stdout.replacen("devbox-gen", "devbox-gen-build", 1));
}

#[test]
fn a_commit_is_a_hash_and_a_date_or_unknown() {
    for good in ["4bb1f4128dca 2026-11-27", "4bb1f41", "4bb1f41-dirty 2026-01-02", "unknown"] {
        assert!(is_commit(good), "{good}");
    }
    for bad in ["", "4bb1f4", "4BB1F4128DCA", "4bb1f4128dca 2026-1-27", "4bb1f4128dca 27.11.2026", "unknown 2026-11-27", "g4bb1f41"] {
        assert!(!is_commit(bad), "{bad}");
    }
}

/// Each `X.Y.Z` in `text`, as (line number, `X.Y.Z`, the rest of the line), also inside a
/// longer word (`v0.2.0`, `devbox-gen:0.2.0`), but not inside a longer dotted number (an IPv4
/// address).
fn versions_in(text: &str) -> Vec<(usize, &str, &str)> {
    let dotted = |b: u8| b.is_ascii_digit() || b == b'.';
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            if !bytes[start].is_ascii_digit() || (start > 0 && dotted(bytes[start - 1])) {
                start += 1;
                continue;
            }
            let end = (start..bytes.len()).find(|&i| !dotted(bytes[i])).unwrap_or(bytes.len());
            let run = line[start..end].trim_end_matches('.'); // a full stop ends a sentence
            if run.split('.').count() == 3 && run.split('.').all(|part| !part.is_empty()) {
                found.push((number + 1, run, &line[start + run.len()..]));
            }
            start = end;
        }
    }
    found
}

#[test]
fn versions_in_finds_pins_only() {
    let text = "VERSION=0.2.0\nrev: v0.2.0-rc.1 and ghcr.io/acme/devbox-gen:0.3.0.\nrust 1.95, 169.254.169.254, x86_64, 1.2.3.4\n";
    let pins: Vec<_> = versions_in(text).into_iter().map(|(line, pin, _)| (line, pin)).collect();
    assert_eq!(pins, [(1, "0.2.0"), (2, "0.2.0"), (2, "0.3.0")]);
    assert_eq!(versions_in(text)[1].2, "-rc.1 and ghcr.io/acme/devbox-gen:0.3.0.");
}

#[test]
fn every_version_pin_equals_cargo_toml() {
    let root = Path::new(ROOT);
    let (core, pre) = VERSION.split_once('-').map_or((VERSION, ""), |(core, pre)| (core, pre));
    let read = |path: &Path| fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));

    let readme = read(Path::new("README.md"));
    let start = readme.find("\n## Install\n").expect("README.md has an `## Install` section") + 1;
    let install = &readme[start..];
    let install = install.split_once("\n## ").map_or(install, |(section, _)| section);
    // Blank lines before the section keep the line numbers of the report README.md's own.
    let install = format!("{}{install}", "\n".repeat(readme[..start].lines().count()));

    // (where, text, how many pins it must have at least; None: exactly one)
    let mut places = vec![
        ("README.md (## Install)".to_owned(), install, Some(1)),
        (".pre-commit-hooks.yaml".to_owned(), read(Path::new(".pre-commit-hooks.yaml")), Some(1)),
    ];
    for dir in ["ci-templates", "release"] {
        for file in files_under(&root.join(dir)) {
            let path = Path::new(dir).join(file);
            // A CI template names its version once, at its top, so that an upgrade is one edit.
            let count = if dir == "ci-templates" { None } else { Some(0) };
            places.push((path.display().to_string(), read(&path), count));
        }
    }

    let mut problems = Vec::new();
    for (place, text, count) in &places {
        let pins = versions_in(text);
        for &(line, pin, after) in &pins {
            if pin != core || (!pre.is_empty() && !after.starts_with(&format!("-{pre}"))) {
                problems.push(format!("{place}:{line}: `{pin}`, but Cargo.toml's version is {VERSION}"));
            }
        }
        match count {
            None if pins.len() != 1 => problems.push(format!("{place}: the version is written {} times, not once", pins.len())),
            Some(least) if pins.len() < *least => problems.push(format!("{place}: names no version")),
            _ => {}
        }
    }
    assert!(places.iter().filter(|(place, ..)| place.starts_with("ci-templates")).count() >= 2, "the CI templates were not found");
    assert!(problems.is_empty(), "bump these with Cargo.toml's version:\n{}", problems.join("\n"));
}

#[test]
fn the_release_archive_is_where_cargo_binstall_looks() {
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap()).unwrap();
    let package = manifest["package"].as_table().unwrap();
    let binstall = package["metadata"]["binstall"].as_table().expect("Cargo.toml has [package.metadata.binstall]");
    let repository = package["repository"].as_str().unwrap();
    let target = "aarch64-unknown-linux-musl";
    let render = |key: &str| {
        let template = binstall[key].as_str().unwrap();
        let rendered = [("{ repo }", repository), ("{ name }", "devbox-gen"), ("{ version }", VERSION), ("{ target }", target)]
            .into_iter()
            .chain([("{ bin }", "devbox-gen"), ("{ binary-ext }", "")])
            .fold(template.to_owned(), |text, (key, value)| text.replace(key, value));
        assert!(!rendered.contains('{'), "a placeholder this test does not know in {key} = {template:?}");
        rendered
    };
    assert_eq!(binstall["pkg-fmt"].as_str(), Some("tgz"));

    // package.sh packs whatever file it is given: a script that says it ran will do.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("built");
    fs::write(&binary, "#!/bin/sh\necho packed\n").unwrap();
    let out = dir.path().join("dist");
    let args = ["release/package.sh", VERSION, target, binary.to_str().unwrap(), out.to_str().unwrap()];
    stdout_of(bash(&args), "release/package.sh");

    let archive = format!("devbox-gen-{VERSION}-{target}.tar.gz");
    let names: Vec<_> = files_under(&out).iter().map(|p| p.display().to_string()).collect();
    assert_eq!(names, [archive.clone(), format!("{archive}.sha256")]);
    // The URL the CI templates and README's Install download from, too.
    assert_eq!(render("pkg-url"), format!("{repository}/releases/download/v{VERSION}/{archive}"));

    let tar = |args: &[&str]| stdout_of(Command::new("tar").current_dir(&out).args(args).output().unwrap(), "tar");
    assert_eq!(tar(&["-tzf", &archive]), format!("{}\n", render("bin-dir")));
    let check =
        format!("if command -v sha256sum > /dev/null; then sha256sum -c {archive}.sha256; else shasum -a 256 -c {archive}.sha256; fi");
    let checked = Command::new("bash").current_dir(&out).args(["-c", &check]).output().unwrap();
    assert_contains!(stdout_of(checked, "sha256sum -c"), format!("{archive}: OK"));
    // Unpacked, it runs: the archive keeps the executable bit.
    tar(&["-xzf", &archive]);
    assert_eq!(stdout_of(Command::new(out.join(render("bin-dir"))).output().unwrap(), "the unpacked binary"), "packed\n");
}

#[test]
fn release_notes_are_the_changelog_section_of_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let changelog = dir.path().join("CHANGELOG.md");
    fs::write(
        &changelog,
        "# Changelog\n\n## 1.1.0 — unreleased\n\nNext.\n\n## 1.0.0 — 2026-01-02\n\n\nFirst line.\n\n### Fixed\n\n- a fix\n\n## 0.9.0\n\nOld.\n",
    )
    .unwrap();
    let changelog = changelog.to_str().unwrap();
    let notes = |args: &[&str]| bash(&[&["release/notes.sh"][..], args, &[changelog][..]].concat());

    assert_eq!(stdout_of(notes(&["1.0.0"]), "notes 1.0.0"), "First line.\n\n### Fixed\n\n- a fix\n");
    assert_eq!(stdout_of(notes(&["--release", "1.0.0"]), "notes --release 1.0.0"), "First line.\n\n### Fixed\n\n- a fix\n");
    assert_eq!(stdout_of(notes(&["1.1.0"]), "notes 1.1.0"), "Next.\n");
    assert_eq!(stdout_of(notes(&["0.9.0"]), "notes 0.9.0"), "Old.\n");
    // The release workflow refuses a tag whose section has no date yet, or no section.
    let unreleased = notes(&["--release", "1.1.0"]);
    assert!(!unreleased.status.success());
    assert_contains!(String::from_utf8_lossy(&unreleased.stderr), "still says unreleased");
    for missing in ["2.0.0", "1.0"] {
        let run = notes(&[missing]);
        assert!(!run.status.success(), "{missing}");
        assert_contains!(String::from_utf8_lossy(&run.stderr), format!("no `## {missing}` section"));
    }

    // This version has its section in the real CHANGELOG.md, as the release will need.
    let ours = stdout_of(bash(&["release/notes.sh", VERSION]), "notes for Cargo.toml's version");
    assert!(!ours.trim().is_empty() && !ours.starts_with('#'), "{ours}");
}
