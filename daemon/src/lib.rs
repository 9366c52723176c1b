//! log-capturer: captures Docker container logs and ships them to Loki (or a file, or
//! stdout), with every task owned and joined, every buffer bounded, and the engine's
//! telemetry exported on `/metrics`.
//!
//! This crate is the engine's I/O shell (see `../shared/DESIGN.md`): the tokio runtime
//! ([`rt`]), the config file ([`config`]), the real ports — Docker over its unix socket
//! ([`docker`]), sinks over HTTP or files ([`sink`]), positions in a file
//! ([`checkpoint_file`]) — labels ([`labels`]), the HTTP endpoints ([`http`]), logging
//! ([`logging`]) and process lifecycle ([`run`], [`signals`], [`cli`]). All behaviour
//! worth simulating lives in `capture-engine`; nothing here decides what to read, when
//! to retry or what to acknowledge.
//!
//! The `log-capturer` binary (`src/main.rs`) is [`main`] and nothing else. The library
//! target exists so that the end-to-end tests (`capture-tests`) can use the real Docker
//! adapter and runtime boundary directly, and find the binary's config types.

pub mod checkpoint_file;
pub mod cli;
pub mod config;
pub mod docker;
pub mod http;
pub mod labels;
pub mod logging;
pub mod rt;
pub mod run;
pub mod signals;
pub mod sink;

/// The whole `log-capturer` command: parse `args` (after the program name), run the
/// command, and return the process exit status.
pub fn main(args: impl IntoIterator<Item = String>) -> u8 {
    let command = match cli::parse(args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("log-capturer: {problem}\n\n{}", cli::USAGE);
            return 2;
        }
    };
    let status = match command {
        cli::Command::Run { config } => run::run(config.as_deref()),
        cli::Command::CheckConfig { config } => match config::Config::load(&config) {
            Ok(parsed) => {
                println!("OK ({} sink)", parsed.sink().name());
                0
            }
            Err(error) => {
                eprintln!("{}: {error}", config.display());
                1
            }
        },
        cli::Command::Version => {
            println!("log-capturer {}", env!("CARGO_PKG_VERSION"));
            0
        }
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            0
        }
    };
    status as u8
}
