//! Criterion benchmarks of the hot stages, on the example config repo, so a regression in
//! one stage shows up even when the whole build stays within noise. `bench/bench.py` measures
//! whole commands at 100 to 10,000 users.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use devbox_gen::pipeline::compile_repo;
use devbox_gen::read::{ConfigRepo, from_texts, read};
use devbox_gen::render::{Template, render_box};
use devbox_gen::resolve::resolve;

fn example_repo() -> ConfigRepo {
    read(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("the example repo reads").0
}

fn stages(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = example_repo();
    let users: Vec<(String, String)> = repo.users.iter().map(|(name, parsed)| (name.clone(), parsed.source.text.clone())).collect();
    let settings = repo.settings.as_ref().map(|s| s.source.text.clone());
    let texts: Vec<(&str, &str)> = users.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();

    c.bench_function("read+validate 5 users (from text)", |b| {
        b.iter(|| {
            let (repo, found) = from_texts(settings.as_deref(), black_box(&texts));
            black_box(devbox_gen::validate::validate(&repo));
            black_box(found)
        })
    });
    let boxes = resolve(&repo).expect("the example repo resolves");
    let alice = boxes[0].clone();
    c.bench_function("render 1 box (warm jsonnet state)", |b| {
        b.iter(|| black_box(render_box(alice.clone(), &Template::Embedded, root).unwrap()))
    });
    let rendered = render_box(alice.clone(), &Template::Embedded, root).unwrap();
    c.bench_function("check 1 box", |b| b.iter(|| assert!(devbox_gen::check::check_box(black_box(&rendered)).is_empty())));
    c.bench_function("emit 1 box to YAML", |b| b.iter(|| black_box(devbox_gen::emit::emit_box(black_box(&rendered)))));
    c.bench_function("compile 5 users end to end", |b| {
        b.iter(|| {
            let (repo, found) = from_texts(settings.as_deref(), &texts);
            black_box(compile_repo(&repo, found, None, None).unwrap())
        })
    });
    c.bench_function("fingerprint 1 box", |b| b.iter(|| black_box(devbox_gen::cache::fingerprint(black_box(&alice)))));

    // The no-op rebuild's path: read, resolve, look every box up in the build cache, stat out/.
    let built = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("devbox.toml"), built.path().join("devbox.toml")).unwrap();
    std::fs::create_dir(built.path().join("users")).unwrap();
    for (name, text) in &users {
        std::fs::write(built.path().join("users").join(format!("{name}.toml")), text).unwrap();
    }
    let args = ["devbox-gen", "-q", "-C", built.path().to_str().unwrap(), "build"];
    assert_eq!(devbox_gen::run(args.map(std::ffi::OsString::from)), std::process::ExitCode::SUCCESS);
    c.bench_function("compile 5 users against out/ (all reused)", |b| {
        b.iter(|| {
            let against = devbox_gen::pipeline::compile_against_out(built.path(), false).unwrap();
            assert!(against.compiled.tree.files.keys().all(|path| path.starts_with("_gitops/")), "every bundle is reused");
            black_box(against)
        })
    });
}

criterion_group!(benches, stages);
criterion_main!(benches);
