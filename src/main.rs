/// jemalloc: rendering is allocation-bound (jsonnet values, JSON, YAML strings) and glibc's
/// per-thread arenas spent a third of the time in page faults and mprotect. (mimalloc 2 and 3
/// were tried first: both hung at process exit after some custom templates.)
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    devbox_gen::run(std::env::args_os())
}
