//! The daemon's own logs: `tracing` events to stderr, as text or one JSON object a line.
//!
//! The filter comes from `RUST_LOG` when it is set, else from `[log] level`. Filters are
//! `tracing_subscriber::filter::Targets` syntax: a level (`info`) or a level plus
//! per-target levels (`info,capture_engine=debug`). Nothing here logs secrets: they are
//! [`crate::config::Secret`]s, which print `***`.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSection};

/// Parse a filter; the error says what is wrong.
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("must not be empty (e.g. \"info\" or \"info,capture_engine=debug\")".to_string());
    }
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in trimmed.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "invalid filter {text:?}: {level:?} is not one of off, error, warn, info, debug, trace"
            ));
        }
    }
    trimmed.parse::<Targets>().map_err(|error| {
        format!("invalid filter {text:?}: {error} (expected e.g. \"info\" or \"info,capture_engine=debug\")")
    })
}

/// Install the global subscriber. Call once, before anything logs. Returns where the
/// filter came from, for the first log line.
pub fn init(section: &LogSection) -> Result<&'static str, String> {
    let (filter, source) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            (parse_filter(&value).map_err(|problem| format!("RUST_LOG: {problem}"))?, "RUST_LOG")
        }
        _ => (parse_filter(&section.level).map_err(|problem| format!("log.level: {problem}"))?, "log.level"),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match section.format {
        LogFormat::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false)).try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|error| format!("cannot install the logger: {error}"))?;
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(parse_filter("info").is_ok());
        assert!(parse_filter("warn,capture_engine=debug").is_ok());
        assert!(parse_filter("").is_err());
        assert!(parse_filter("loud").is_err());
    }
}
