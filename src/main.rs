/// mimalloc: rendering is allocation-bound (jsonnet values, JSON, YAML strings), and glibc's
/// per-thread arenas spent a third of the time in page faults and mprotect.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    devbox_gen::run(std::env::args_os())
}
