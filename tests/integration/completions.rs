use crate::common::{Repo, assert_contains};

#[test]
fn completions_and_man_page_come_from_the_real_flags() {
    let repo = Repo::with_alice();
    for shell in ["bash", "zsh", "fish"] {
        let run = repo.run_ok(&["completions", shell], 0);
        assert_contains!(run.stdout, "build", "{shell}");
        assert_contains!(run.stdout, "root", "{shell}");
    }
    let man = repo.run_ok(&["man"], 0);
    assert!(man.stdout.starts_with(".ie \\n(.g .ds Aq"), "{}", &man.stdout[..80]);
    assert_contains!(man.stdout, ".TH devbox-gen 1");
    let run = repo.run_ok(&["completions", "tcsh"], 2);
    assert_contains!(run.stderr, "invalid value 'tcsh'");
}

#[test]
fn verbose_prints_stage_timings_and_quiet_prints_nothing() {
    let repo = Repo::with_alice();
    let run = repo.run_ok(&["-v", "build"], 0);
    for stage in ["read", "validate", "resolve", "render+check+emit", "write"] {
        assert_contains!(run.stderr, &format!("timing: {stage} "), "{stage}");
    }
    let run = repo.run_ok(&["--quiet", "build"], 0);
    assert_eq!(run.stderr, "");
}
