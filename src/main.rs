fn main() -> std::process::ExitCode {
    devbox_gen::run(std::env::args_os())
}
