//! Criterion benchmarks of the hot stages, on the example config repo, so a regression in
//! one stage shows up even when the whole build stays within noise. `bench/bench.py` measures
//! whole commands at 100 to 10,000 users.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use devbox_gen::{ConfigRepo, Template, compile_repo, from_texts, read, render_box, resolve};

fn example_repo() -> ConfigRepo {
    read(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("the example repo reads").0
}

fn stages(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = example_repo();
    let mut users: Vec<(String, String)> = std::fs::read_dir(root.join("users"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| (path.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap()))
        .collect();
    users.sort();
    let settings = std::fs::read_to_string(root.join("devbox.toml")).ok();
    let texts: Vec<(&str, &str)> = users.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();

    c.bench_function("read+validate 5 users (from text)", |b| {
        b.iter(|| {
            let (repo, found) = from_texts(settings.as_deref(), black_box(&texts));
            black_box(devbox_gen::validate(&repo));
            black_box(found)
        })
    });
    let boxes = resolve(&repo).expect("the example repo resolves");
    let alice = boxes[0].clone();
    c.bench_function("render 1 box (warm jsonnet state)", |b| {
        b.iter(|| black_box(render_box(alice.clone(), &Template::Embedded, root).unwrap()))
    });
    let rendered = render_box(alice.clone(), &Template::Embedded, root).unwrap();
    c.bench_function("check 1 box", |b| b.iter(|| assert!(devbox_gen::check_box(black_box(&rendered)).is_empty())));
    c.bench_function("emit 1 box to YAML", |b| b.iter(|| black_box(devbox_gen::emit_box(black_box(&rendered)))));
    c.bench_function("compile 5 users end to end", |b| {
        b.iter(|| {
            let (repo, found) = from_texts(settings.as_deref(), &texts);
            black_box(compile_repo(&repo, found).unwrap())
        })
    });
    c.bench_function("fingerprint 1 box", |b| b.iter(|| black_box(devbox_gen::fingerprint(black_box(&alice)))));

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
            let against = devbox_gen::compile_against_out(built.path()).unwrap();
            assert!(against.compiled.tree.files.keys().all(|path| path.starts_with("_gitops/")), "every bundle is reused");
            black_box(against)
        })
    });

    // A whole cold build, as a fresh clone runs it (no out/, no cache): less "compile 5 users
    // end to end", it is the write path, staging every bundle's files beside out/, stamping
    // them for the cache, swapping the directory in and saving the cache.
    let cold = ["devbox-gen", "-q", "-C", built.path().to_str().unwrap(), "build"].map(std::ffi::OsString::from);
    c.bench_function("build 5 users into an empty out/ (files written)", |b| {
        b.iter_batched(
            || {
                std::fs::remove_dir_all(built.path().join("out")).unwrap();
                std::fs::remove_dir_all(built.path().join(".devbox-gen")).unwrap();
            },
            |()| assert_eq!(devbox_gen::run(cold.clone()), std::process::ExitCode::SUCCESS),
            criterion::BatchSize::PerIteration,
        )
    });
}

criterion_group!(benches, stages);
criterion_main!(benches);
