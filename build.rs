//! Puts the commit devbox-gen was built from into `--version`, as
//! `devbox-gen 0.2.0 (4bb1f4128dca 2026-11-27)`, so a bug report names the exact source.
//!
//! Sources, first that answers: git, when this package is the top of a clone (not a crate
//! unpacked inside some other repository, whose commit would be a lie); the environment
//! variables DEVBOX_GEN_COMMIT and DEVBOX_GEN_COMMIT_DATE, for builds without `.git` (the
//! flake, release/Dockerfile, cross's containers); else "unknown" (a crates.io tarball).

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    // Emitting any rerun-if line turns off "rerun when any file of the package changes".
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DEVBOX_GEN_COMMIT");
    println!("cargo::rerun-if-env-changed=DEVBOX_GEN_COMMIT_DATE");
    let commit = from_git(dir).or_else(from_env).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=DEVBOX_GEN_COMMIT_INFO={commit}");
}

fn from_git(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    // log.showSignature would print the signature check on stdout, before the format.
    let commit = git(dir, &["-c", "log.showSignature=false", "log", "-1", "--abbrev=12", "--format=%h %cs"])?;
    // The commit changes when HEAD moves to another branch or commit (checkout) or when the
    // branch it names moves (commit, reset): watch those files only, not all of .git, which
    // changes on every `git status`. A ref lives in its own file until `git pack-refs` moves
    // it into packed-refs; the reftable backend keeps every ref in reftable/.
    let head_ref = git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"])?;
    let args =
        ["rev-parse", "--git-path", "HEAD", "--git-path", &head_ref, "--git-path", "packed-refs", "--git-path", "reftable/tables.list"];
    let paths: Vec<_> = git(dir, &args)?.lines().map(|p| dir.join(p)).collect();
    let [head, loose, packed, reftable] = <[_; 4]>::try_from(paths).ok()?;
    // A watched file that does not exist would rerun this script on every build.
    let watched = [Some(head), [loose, packed].into_iter().find(|p| p.exists()), Some(reftable).filter(|p| p.exists())];
    for path in watched.into_iter().flatten() {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    Some(commit)
}

fn from_env() -> Option<String> {
    let var = |name| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let commit = var("DEVBOX_GEN_COMMIT")?;
    Some(match var("DEVBOX_GEN_COMMIT_DATE") {
        Some(date) => format!("{commit} {date}"),
        None => commit,
    })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let stdout = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !stdout.trim().is_empty()).then(|| stdout.trim().to_owned())
}
