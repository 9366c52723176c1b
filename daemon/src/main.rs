//! log-capturer: captures Docker container logs and ships them to Loki (or a file, or
//! stdout), with every task owned and joined, every buffer bounded, and the engine's
//! telemetry exported on `/metrics`.
//!
//! This binary is the engine's I/O shell (see `../shared/DESIGN.md`): the tokio runtime
//! ([`rt`]), the config file ([`config`]), the real ports — Docker over its unix socket
//! (`docker`), sinks over HTTP or files ([`sink`]), positions in a file
//! ([`checkpoint_file`]) — labels ([`labels`]), the HTTP endpoints ([`http`]), logging
//! ([`logging`]) and process lifecycle ([`run`], [`signals`], [`cli`]). All behaviour
//! worth simulating lives in `capture-engine`; nothing here decides what to read, when
//! to retry or what to acknowledge.

mod checkpoint_file;
mod cli;
mod config;
mod docker;
mod http;
mod labels;
mod logging;
mod rt;
mod run;
mod signals;
mod sink;

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("log-capturer: {problem}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
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
    ExitCode::from(status as u8)
}
