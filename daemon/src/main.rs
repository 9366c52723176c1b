//! The `log-capturer` binary: everything is in the `capture_daemon` library
//! (`src/lib.rs`); this is only the process entry point.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(capture_daemon::main(std::env::args().skip(1)))
}
