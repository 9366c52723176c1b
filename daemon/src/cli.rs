//! The command line: `run [--config FILE]`, `check-config FILE`, `version`, `help`.
//!
//! Hand-rolled (no argument-parsing crate): three subcommands and one flag do not pay
//! for a dependency on a 2-core CI. Parsing is pure ([`parse`]) so it is unit-tested;
//! `main` prints [`USAGE`] and exits 2 on a usage error.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage:
  log-capturer run [--config FILE]     capture container logs (default: built-in config)
  log-capturer check-config FILE       validate FILE; prints OK or the error (exit 1)
  log-capturer version                 print the version
  log-capturer help                    print this help
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run { config: Option<PathBuf> },
    CheckConfig { config: PathBuf },
    Version,
    Help,
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return Err("missing command".to_string());
    };
    let rest: Vec<String> = args.collect();
    match subcommand.as_str() {
        "run" => {
            let mut config = None;
            let mut rest = rest.into_iter();
            while let Some(arg) = rest.next() {
                let value = if arg == "--config" || arg == "-c" {
                    rest.next().ok_or_else(|| format!("{arg} needs a file"))?
                } else if let Some(value) = arg.strip_prefix("--config=") {
                    value.to_string()
                } else {
                    return Err(format!("unexpected argument {arg:?} for run"));
                };
                if config.replace(PathBuf::from(value)).is_some() {
                    return Err("--config given twice".to_string());
                }
            }
            Ok(Command::Run { config })
        }
        "check-config" => match rest.as_slice() {
            [file] if !file.starts_with('-') => Ok(Command::CheckConfig { config: PathBuf::from(file) }),
            [] => Err("check-config needs a FILE".to_string()),
            _ => Err("check-config takes exactly one FILE".to_string()),
        },
        "version" | "--version" | "-V" if rest.is_empty() => Ok(Command::Version),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Command, String> {
        parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn commands() {
        assert_eq!(parse_line("run"), Ok(Command::Run { config: None }));
        assert_eq!(parse_line("run --config a.toml"), Ok(Command::Run { config: Some("a.toml".into()) }));
        assert_eq!(parse_line("run --config=a.toml"), Ok(Command::Run { config: Some("a.toml".into()) }));
        assert_eq!(parse_line("check-config a.toml"), Ok(Command::CheckConfig { config: "a.toml".into() }));
        assert_eq!(parse_line("version"), Ok(Command::Version));
        assert_eq!(parse_line("--version"), Ok(Command::Version));
        assert_eq!(parse_line("help"), Ok(Command::Help));
    }

    #[test]
    fn usage_errors() {
        assert!(parse_line("").is_err());
        assert!(parse_line("run --config").is_err());
        assert!(parse_line("run --config a --config b").is_err());
        assert!(parse_line("run extra").is_err());
        assert!(parse_line("check-config").is_err());
        assert!(parse_line("check-config a b").is_err());
        assert!(parse_line("start").is_err());
    }
}
