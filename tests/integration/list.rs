//! `devbox-gen list`: every box on one line, from the user files and `[defaults]` alone.

use crate::common::{KEY_ALICE, KEY_ALICE_2, Repo, SETTINGS, assert_contains, user_file};

fn fleet() -> Repo {
    let with = |email: &str, key: &str, extra: &str| user_file(email, key).replacen('\n', &format!("\n{extra}"), 1);
    Repo::new(SETTINGS)
        .user(
            "alice",
            &format!(
                "{}\n[gpu]\ntype = \"nvidia-l4\"\nsharing = \"time-sharing\"\n",
                with("alice@example.com", KEY_ALICE, "spot = true\n")
            ),
        )
        .user(
            "bob",
            &format!(
                "{}\n[idle]\nafter = \"90m\"\n\n[schedule]\ntimezone = \"Europe/Berlin\"\nstart = \"08:00\"\nstop = \"19:00\"\n",
                user_file("bob@example.com", KEY_ALICE_2)
            ),
        )
        .user("carol", &with("carol@example.com", KEY_ALICE, "state = \"stopped\"\n[resources]\ncpu = \"500m\"\nmemory = \"1Gi\"\n"))
}

#[test]
fn one_line_a_box_and_the_states_counted() {
    let run = fleet().run_ok(&["list"], 0);
    assert_eq!(
        run.stdout,
        "NAME   STATE            CPU   MEMORY  GPU                           HOME  STOPS BY ITSELF                                             OWNER\n\
         alice  running on Spot  2     8Gi     1 × nvidia-l4 (time-sharing)  50Gi  -                                                           alice@example.com\n\
         bob    running          2     8Gi     -                             50Gi  after 1h30m idle outside mon-fri 08:00-19:00 Europe/Berlin  bob@example.com\n\
         carol  stopped          500m  1Gi     -                             50Gi  -                                                           carol@example.com\n\
         \n\
         3 boxes: 2 running, 1 stopped\n\
         devboxes: running boxes request 4.52 CPUs, 16928Mi (about 16.5Gi) memory, 1 GPU (sidecars included); home volumes take 150Gi\n"
    );
    assert_eq!(run.stderr, "");
}

/// The totals are what the ResourceQuota counts: 2 + 2 CPUs asked for, plus each pod's
/// tailscale sidecar (250m, 256Mi) and bob's idle container (20m, 32Mi); the stopped box's home
/// only. Beside `[quota]` when it is set.
#[test]
fn totals_count_every_container_beside_the_quota() {
    let repo = fleet();
    let settings = repo.read("devbox.toml");
    repo.write("devbox.toml", &format!("{settings}\n[quota]\ncpu = \"8\"\nmemory = \"64Gi\"\ngpu = 2\nstorage = \"1Ti\"\n"));
    let text = repo.run_ok(&["list"], 0).stdout;
    assert!(
        text.ends_with(
            "devboxes: running boxes request 4.52 of 8 CPUs, 16928Mi (about 16.5Gi) of 64Gi memory, 1 of 2 GPUs (sidecars included); home volumes take 150Gi of 1Ti\n"
        ),
        "{text}"
    );
    // A template that does not render leaves the sidecars out, and says so (use_template
    // writes a devbox.toml of its own, without [quota]).
    repo.use_template("function(box) error 'broken'\n");
    let text = repo.run_ok(&["list"], 0).stdout;
    assert_contains!(
        text,
        "devboxes: running boxes request 4 CPUs, 16Gi memory, 1 GPU (sidecars not counted: the template does not render)"
    );
}

#[test]
fn markdown_is_a_table_and_json_is_what_the_template_gets() {
    let repo = fleet();
    let markdown = repo.run_ok(&["list", "--format", "markdown"], 0).stdout;
    assert_contains!(
        markdown,
        "| NAME | STATE | CPU | MEMORY | GPU | HOME | STOPS BY ITSELF | OWNER |\n|---|---|---|---|---|---|---|---|\n"
    );
    assert_contains!(markdown, "| carol | stopped | 500m | 1Gi | - | 50Gi | - | carol@example.com |\n");
    let json = repo.run_ok(&["list", "--format", "json"], 0).stdout;
    assert_eq!(json, repo.run_ok(&["show", "--input"], 0).stdout);
}

#[test]
fn an_empty_repo_and_a_broken_file() {
    let repo = Repo::new(SETTINGS);
    assert_eq!(repo.run_ok(&["list"], 0).stdout, "0 boxes\n");
    let repo = repo.user("dave", "email = \"dave\"\n");
    let run = repo.run_ok(&["list"], 2);
    assert_eq!(run.stdout, "", "nothing listed when a file is wrong");
    assert_contains!(run.stderr, "users/dave.toml");
}
