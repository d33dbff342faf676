//! Property tests over read → validate → resolve → render → check → emit, in place of a
//! coverage-guided fuzzer (cargo fuzz needs a nightly toolchain). Two properties:
//!
//! 1. No input panics: arbitrary text, and TOML documents assembled from the real field names
//!    with hostile values, only ever produce diagnostics, and those render. A refused file gets
//!    at least one error, and every error names users/alice.toml, at a line and column that
//!    are in it when it gives one: a person can always find what to fix.
//! 2. Whatever validates, builds: if a generated user file passes validation, the whole
//!    pipeline succeeds, and every emitted YAML file reads back to a value that emits the
//!    same bytes.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test properties` runs it for longer; failures
//! are kept in `tests/properties.proptest-regressions` and replayed on every run.

use devbox_gen::{Diagnostics, compile_repo, from_texts, render_plain};
use proptest::prelude::*;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKPSxzFbksRyC/BwJC5Gxs+0pI4hmhuw/5wabDKZ8WF3 alice@laptop";

fn settings() -> &'static str {
    "[defaults]\nimage = \"registry.example.com/devbox:1.0\"\n[datasets.imagenet]\nclaim = \"imagenet-ro\"\n"
}

/// Values people (and attackers) write: valid ones, near misses, and garbage.
fn value() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("\"8\"".to_string()),
        Just("\"32Gi\"".to_string()),
        Just("\"32GB\"".to_string()),
        Just("\"500m\"".to_string()),
        Just("\"running\"".to_string()),
        Just("\"stopped\"".to_string()),
        Just("\"archived\"".to_string()),
        Just("\"arm64\"".to_string()),
        Just("\"nvidia-l4\"".to_string()),
        Just("\"time-sharing\"".to_string()),
        Just("[\"imagenet\", \"imagenet\"]".to_string()),
        Just("\"tag:devbox\"".to_string()),
        Just("\"on\"".to_string()),
        Just("\"0755\"".to_string()),
        Just("\"ubuntu:24.04\"".to_string()),
        Just(format!("[\"{KEY}\"]")),
        Just("[]".to_string()),
        Just("99999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1".to_string()),
        Just("true".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("{ }".to_string()),
        "\"[^\"\\\\\\n]{0,40}\"".prop_map(|s| s),
        "[a-z0-9:@./-]{0,30}".prop_map(|s| format!("\"{s}\"")),
    ];
    atoms
}

const TOP: &[&str] = &["email", "state", "image", "arch", "cluster", "shm", "spot", "datasets", "bogus"];
const TABLES: &[(&str, &[&str])] = &[
    ("resources", &["cpu", "memory"]),
    ("gpu", &["type", "count", "sharing", "clients"]),
    ("home", &["size", "storage_class"]),
    ("ssh", &["authorized_keys", "key_secret"]),
    ("tailscale", &["hostname", "tags"]),
    ("env", &["EDITOR", "HOME", "OMP_NUM_THREADS", "bad-name"]),
];

/// A user file from the real field names, each present or not, with any value.
fn user_file() -> impl Strategy<Value = String> {
    let top = proptest::collection::vec((0..TOP.len(), value()), 0..5);
    let tables = proptest::collection::vec((0..TABLES.len(), proptest::collection::vec((0..4usize, value()), 0..3)), 0..5);
    (value(), top, tables).prop_map(|(email, top, tables)| {
        let mut text = format!("email = {email}\n");
        for (i, v) in top {
            text.push_str(&format!("{} = {v}\n", TOP[i]));
        }
        for (t, fields) in tables {
            let (table, keys) = TABLES[t];
            text.push_str(&format!("[{table}]\n"));
            for (k, v) in fields {
                text.push_str(&format!("{} = {v}\n", keys[k % keys.len()]));
            }
        }
        text
    })
}

/// A user file that is valid except where the generator chooses otherwise.
fn mostly_valid_user() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("state = \"stopped\"\n"), Just("state = \"archived\"\n")],
        prop_oneof![Just(""), Just("arch = \"arm64\"\n")],
        prop_oneof![Just(""), Just("shm = \"2Gi\"\n"), Just("spot = true\n"), Just("datasets = [\"imagenet\"]\n")],
        prop_oneof![
            Just(String::new()),
            (1u32..20, prop_oneof![Just("Gi"), Just("Mi"), Just("G")])
                .prop_map(|(n, u)| format!("[resources]\nmemory = \"{n}{u}\"\ncpu = \"{n}\"\n"))
        ],
        prop_oneof![
            Just(""),
            Just("[gpu]\ntype = \"nvidia-tesla-t4\"\ncount = 2\n"),
            Just("[gpu]\ntype = \"nvidia-l4\"\nsharing = \"time-sharing\"\nclients = 4\n")
        ],
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[^\"\\\\\\n\\x00-\\x1f\\x7f]{0,12}", 0..4),
    )
        .prop_map(|(state, arch, ml, resources, gpu, env)| {
            let mut text =
                format!("email = \"a@example.com\"\n{state}{arch}{ml}{resources}{gpu}[ssh]\nauthorized_keys = [\"{KEY}\"]\n[env]\n");
            for (k, v) in env {
                text.push_str(&format!("{k} = \"{v}\"\n"));
            }
            text
        })
}

/// The diagnostics that refuse `text` as users/alice.toml, or None when it compiles.
fn diagnostics_of(text: &str) -> Option<Diagnostics> {
    let (repo, found) = from_texts(Some(settings()), &[("alice", text)]);
    compile_repo(&repo, found).err()
}

/// A refusal a person can act on: at least one error, and each error, rendered, says what is
/// wrong and names users/alice.toml, at a line and column of `text` when it gives one.
fn assert_points_into_the_file(errors: &Diagnostics, text: &str) -> Result<(), TestCaseError> {
    let rendered = render_plain(errors);
    prop_assert!(errors.has_errors(), "refused without an error:\n{}", rendered);
    let lines: Vec<&str> = text.split('\n').collect();
    for error in errors.0.iter().filter(|d| d.is_error()) {
        let alone = render_plain(&Diagnostics::from(error.clone()));
        // As the terminal shows it: controls and bidirectional controls escaped (src/text.rs).
        let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
        let headline: String = error
            .message
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .map(|c| if (c.is_control() && c != '\t') || bidi(c) { c.escape_default().to_string() } else { c.to_string() })
            .collect();
        prop_assert!(!headline.trim().is_empty(), "an error without a message:\n{}", alone);
        prop_assert!(alone.starts_with(&format!("error: {headline}")), "{}", alone);
        let place = alone.split("users/alice.toml").nth(1);
        prop_assert!(place.is_some(), "the error does not name users/alice.toml:\n{}", alone);
        // `users/alice.toml:LINE:COLUMN`, when it points into the file (not only at it).
        let numbers: Vec<usize> =
            place.unwrap().strip_prefix(':').unwrap_or("").split([':', ' ', '\n']).take(2).map_while(|n| n.parse().ok()).collect();
        if let [line, column] = numbers[..] {
            prop_assert!(line >= 1 && line <= lines.len(), "line {} of {}:\n{}", line, lines.len(), alone);
            let width = lines[line - 1].chars().count();
            prop_assert!(column >= 1 && column <= width + 1, "column {} of {}:\n{}", column, width, alone);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        if let Some(errors) = diagnostics_of(&text) {
            assert_points_into_the_file(&errors, &text)?;
        }
    }

    #[test]
    fn hostile_user_files_get_diagnostics_not_panics(text in user_file()) {
        if let Some(errors) = diagnostics_of(&text) {
            assert_points_into_the_file(&errors, &text)?;
        }
    }

    #[test]
    fn whatever_validates_builds_and_reads_back(text in mostly_valid_user()) {
        let (repo, found) = from_texts(Some(settings()), &[("alice", &text)]);
        let compiled = match compile_repo(&repo, found) {
            Ok(compiled) => compiled,
            // Only a validation rule may refuse it (too little memory, a reserved env name),
            // pointing into the user file: never the template or the check stage.
            Err(errors) => {
                assert_points_into_the_file(&errors, &text)?;
                let rendered = render_plain(&errors);
                prop_assert!(rendered.contains("┌─ users/alice.toml:"), "{rendered}");
                prop_assert!(!rendered.contains("invalid bundle") && !rendered.contains("template failed"), "{rendered}");
                return Ok(());
            }
        };
        for (path, text) in &compiled.tree.files {
            let body = text.split_once('\n').map_or("", |(_, body)| body);
            let back: serde_json::Map<String, serde_json::Value> = serde_saphyr::from_str(body).expect("emitted YAML parses");
            prop_assert_eq!(devbox_gen::to_yaml(&back), body, "{} does not read back to itself", path);
        }
    }
}
