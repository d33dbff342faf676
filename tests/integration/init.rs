//! `devbox-gen init`: the starting files of a new config repo, and the README's quick start
//! run exactly as written, from an empty directory to a built and checked out/.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

use crate::common::{KEY_ALICE, Repo, Run, assert_contains, files_under};

const IMAGE: &str = "us-docker.pkg.dev/acme/devbox/jupyter:2024.06";

/// A config repo that does not exist yet: an empty directory.
fn empty() -> Repo {
    Repo::at(tempfile::tempdir().unwrap())
}

fn files(repo: &Repo) -> Vec<String> {
    files_under(repo.path()).into_iter().map(|p| p.display().to_string()).collect()
}

/// Runs devbox-gen in `dir` as a person would, with `home` as HOME (so `~` is a known place).
fn run_in(dir: &Path, home: &Path, args: &[&str]) -> Run {
    let output = Command::cargo_bin("devbox-gen").unwrap().current_dir(dir).env("HOME", home).args(args).output().unwrap();
    let run = Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert_eq!(run.code, 0, "devbox-gen {args:?}:\n{}{}", run.stdout, run.stderr);
    run
}

#[test]
fn the_readme_quick_start_builds_a_checked_repo_from_nothing() {
    let home = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join(".ssh")).unwrap();
    fs::write(home.path().join(".ssh/id_ed25519.pub"), format!("{KEY_ALICE}\n")).unwrap();
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();

    // The README, "Quick start for a new team", word for word.
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let quick_start = format!(
        "devbox-gen init --image {IMAGE}\ndevbox-gen new alice --email alice@example.com --ssh-key-file ~/.ssh/id_ed25519.pub\ndevbox-gen build\n"
    );
    assert_contains!(readme, &quick_start);

    let init = run_in(dir, home.path(), &["init", "--image", IMAGE]);
    assert_eq!(
        init.stderr,
        "wrote devbox.toml\nwrote schema/devbox.schema.json\nwrote schema/user.schema.json\nwrote .github/workflows/devboxes.yml\n\
         wrote users/.gitkeep\nwrote .gitignore\n\
         next: `devbox-gen new NAME --email EMAIL --ssh-key-file ~/.ssh/id_ed25519.pub`, then `devbox-gen build`\n"
    );
    // `~` unexpanded, as a script or a Makefile without a shell in between would pass it.
    let new = run_in(dir, home.path(), &["new", "alice", "--email", "alice@example.com", "--ssh-key-file", "~/.ssh/id_ed25519.pub"]);
    assert_eq!(
        new.stderr,
        "wrote users/alice.toml\nnext: create its Secrets (`devbox-gen secrets alice`), run `devbox-gen build`, and open a pull request\n"
    );
    let build = run_in(dir, home.path(), &["build"]);
    assert_eq!(build.stderr, "built 1 user into out/: 11 created, 0 updated, 0 removed\n");

    assert_eq!(run_in(dir, home.path(), &["build", "--check"]).stderr, "out/ is up to date (1 user)\n");
    assert_eq!(run_in(dir, home.path(), &["validate"]).stderr, "1 user file is valid\n");
    assert_eq!(run_in(dir, home.path(), &["schema", "--check"]).stderr, "schema/ is up to date\n");
    assert_contains!(fs::read_to_string(dir.join("out/alice/statefulset-alice.yaml")).unwrap(), &format!("image: {IMAGE}\n"));
    assert_eq!(
        fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "# devbox-gen's build cache (`devbox-gen build`): local, safe to delete\n/.devbox-gen/\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join(".github/workflows/devboxes.yml")).unwrap(),
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ci-templates/github/devboxes.yml")).unwrap()
    );
}

#[test]
fn devbox_toml_explains_every_section_and_validates() {
    let repo = empty();
    let run = repo.run_ok(&["init", "--ci", "none"], 0);
    assert_contains!(run.stderr, "note: devbox.toml names no image yet: set `[defaults] image`, or give each box one (`devbox-gen -C ");
    assert_eq!(files(&repo), [".gitignore", "devbox.toml", "schema/devbox.schema.json", "schema/user.schema.json", "users/.gitkeep"]);
    let text = repo.read("devbox.toml");
    assert!(text.starts_with("#:schema ./schema/devbox.schema.json\n"), "{text}");
    // Every field of devbox.toml's schema is there, set or commented, under a comment.
    let schema: serde_json::Value = serde_json::from_str(&repo.read("schema/devbox.schema.json")).unwrap();
    for field in schema["properties"].as_object().unwrap().keys() {
        let mentioned = [format!("\n[{field}]\n"), format!("\n# [{field}]\n"), format!("\n# [[{field}]]\n"), format!("\n# {field} = ")];
        assert!(mentioned.iter().any(|m| text.contains(m.as_str())), "devbox.toml does not mention `{field}`:\n{text}");
    }
    for line in text.lines().filter(|l| l.starts_with('[')) {
        let before = &text[..text.find(&format!("\n{line}\n")).unwrap()];
        assert!(before.trim_end().lines().last().unwrap().starts_with('#'), "`{line}` has no comment above it");
    }
    repo.run_ok(&["validate"], 0);
    repo.run_ok(&["build"], 0);
}

#[test]
fn the_delivery_flags_fill_in_gitops_and_repo() {
    let repo = empty();
    let url = "ssh://git@github.com/acme/devboxes.git";
    repo.run_ok(&["init", "--image", IMAGE, "--namespace", "boxes", "--gitops", "flux,argocd", "--repo-url", url], 0);
    let text = repo.read("devbox.toml");
    for expected in [
        "\nnamespace = \"boxes\"\n",
        "\ngitops = [\"argocd\", \"flux\"]",
        "\n[repo]\nurl = \"ssh://git@github.com/acme/devboxes.git\"",
        // Flux cannot clone over SSH without a Secret: init names the one `secrets` creates.
        "\nsecret = \"devboxes-repo\"",
    ] {
        assert_contains!(text, expected);
    }
    repo.run_ok(&["validate"], 0);
    repo.run_ok(&["build"], 0);
    assert!(repo.path().join("out/_gitops").is_dir());
    assert_contains!(repo.run_ok(&["init", "--gitops", "argocd"], 2).stderr, "--repo-url <URL>");
}

#[test]
fn flag_values_are_checked_by_the_rules_of_devbox_toml_and_blamed_on_the_flag() {
    let repo = empty();
    let run = repo.run_ok(&["init", "--image", "ubuntu", "--namespace", "Dev Boxes"], 2);
    assert_eq!(
        run.stderr,
        "error: --namespace 'Dev Boxes': `Dev Boxes` is not a valid namespace\n \
         = help: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit\n\n\
         error: --image ubuntu: `ubuntu` has no tag or digest, so it means `latest` and is not pinned\n \
         = help: pin a version, e.g. `ubuntu:2024.06`, or a digest `ubuntu@sha256:…`\n\n\
         error: 2 problems\n"
    );
    let run = repo.run_ok(&["init", "--gitops", "flux", "--repo-url", "git@github.com:acme/devboxes.git"], 2);
    assert_eq!(
        run.stderr,
        "error: --repo-url git@github.com:acme/devboxes.git: Flux cannot clone an scp-like `git@host:path` URL\n \
         = help: write it as `ssh://git@github.com/acme/devboxes.git`\n\n"
    );
    assert!(files(&repo).is_empty(), "{:?}", files(&repo));
}

#[test]
fn refuses_to_overwrite_unless_forced_and_keeps_gitignore() {
    let repo = empty();
    repo.write("devbox.toml", "namespace = \"mine\"\n");
    repo.write(".gitlab-ci.yml", "stages: [mine]\n");
    repo.write(".gitignore", "/target");
    let run = repo.run_ok(&["init", "--ci", "gitlab"], 2);
    assert_eq!(
        run.stderr,
        "error: `devbox-gen init` would overwrite what exists: devbox.toml, .gitlab-ci.yml\n \
         = help: nothing was written: move them away, or pass --force to replace them\n\n"
    );
    assert_eq!(files(&repo), [".gitignore", ".gitlab-ci.yml", "devbox.toml"]);
    assert_eq!(repo.read("devbox.toml"), "namespace = \"mine\"\n");

    repo.run_ok(&["init", "--ci", "gitlab", "--force", "--image", IMAGE], 0);
    assert_contains!(repo.read("devbox.toml"), &format!("\nimage = \"{IMAGE}\""));
    assert_eq!(
        repo.read(".gitlab-ci.yml"),
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ci-templates/gitlab/.gitlab-ci.yml")).unwrap()
    );
    // .gitignore is people's file: the cache is added to it, nothing is replaced.
    assert_eq!(repo.read(".gitignore"), "/target\n# devbox-gen's build cache (`devbox-gen build`): local, safe to delete\n/.devbox-gen/\n");

    // The same files again are no conflict, and nothing is rewritten.
    let run = repo.run_ok(&["init", "--ci", "gitlab", "--image", IMAGE, "-q"], 0);
    assert_eq!(run.stderr, "");
    assert_eq!(repo.read(".gitignore").matches("/.devbox-gen/").count(), 1);
}

#[test]
fn users_that_exist_need_no_gitkeep() {
    let repo = Repo::with_alice();
    fs::remove_file(repo.path().join("devbox.toml")).unwrap();
    repo.run_ok(&["init", "--image", IMAGE, "--ci", "none"], 0);
    assert!(!repo.path().join("users/.gitkeep").exists());
    repo.run_ok(&["build", "--check"], 1);
    repo.run_ok(&["build"], 0);
}

/// A config repo in a directory of a larger Git repository: `init` names that directory as
/// `[repo] path` (without it Argo CD and Flux would look for out/ at the root and deploy
/// nothing) and says where GitHub looks for workflows; `validate` warns about a path that is
/// not where devbox.toml is.
#[test]
fn a_config_repo_inside_a_git_repository_gets_its_path() {
    let top = tempfile::tempdir().unwrap();
    crate::common::git(top.path(), &["init", "-q"]);
    fs::create_dir(top.path().join("deploy")).unwrap();
    let dir = tempfile::Builder::new().prefix("devboxes").tempdir_in(top.path().join("deploy")).unwrap();
    let prefix = format!("deploy/{}", dir.path().file_name().unwrap().to_str().unwrap());
    let repo = Repo::at(dir);
    let run = repo.run_ok(&["init", "--image", IMAGE, "--gitops", "argocd", "--repo-url", "https://github.com/acme/mono.git"], 0);
    assert_contains!(repo.read("devbox.toml"), &format!("\npath = \"{prefix}\" "));
    assert_contains!(
        run.stderr,
        &format!(
            "note: this config repo is the directory `{prefix}` of its Git repository, and GitHub runs workflows only from the repository's root"
        )
    );
    let run = repo.run_ok(&["validate"], 0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    let settings = repo.read("devbox.toml");
    repo.write("devbox.toml", &settings.replace(&format!("\npath = \"{prefix}\""), "\n# path = \"x\""));
    let run = repo.run_ok(&["validate"], 0);
    assert_contains!(
        run.stderr,
        &format!(
            "warning: devbox.toml is in `{prefix}` of its Git repository, but `[repo] path` is not set: Argo CD and Flux would look for out/ where it is not, and deploy nothing"
        )
    );
    assert_contains!(run.stderr, &format!("help: set `path = \"{prefix}\"` under `[repo]`"));
    let run = repo.run_ok(&["build"], 0);
    assert_contains!(run.stderr, "`[repo] path` is not set");
}
