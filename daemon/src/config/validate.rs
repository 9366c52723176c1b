//! Config validation: turns serde's errors into `key.path: problem` and checks what
//! serde cannot (exactly one sink, one secret source, bounds that depend on each other,
//! label names).
//!
//! Every check names the key a person has to change. Checks run in file order (docker,
//! sinks, labels, limits, positions, http, log) and the first failure is reported.

use std::time::Duration;

use super::{AuthConfig, Config, ConfigError, LokiSink};
use crate::labels::{sanitize_label_name, RESERVED_LABELS};

/// Serde's message at `path`, rephrased for a person.
pub(super) fn from_serde(text: &str, path: String, error: toml::de::Error) -> ConfigError {
    let path = if path == "." { String::new() } else { path };
    let message = error.message().trim().to_string();
    if let Some(field) = between(&message, "missing field `", "`") {
        return ConfigError::new(join(&path, field), "missing");
    }
    if let Some(field) = between(&message, "unknown field `", "`") {
        let expected = message.split_once(", expected ").map(|(_, rest)| rest.replace('`', ""));
        // serde_path_to_error already appended the unknown key to the path.
        let path = if path.ends_with(field) { path } else { join(&path, field) };
        let problem = match expected {
            Some(expected) => format!("unknown key (expected {expected})"),
            None => "unknown key".to_string(),
        };
        return ConfigError::new(path, problem);
    }
    if let Some(variant) = between(&message, "unknown variant `", "`") {
        let expected = message.split_once(", expected ").map(|(_, rest)| rest.replace('`', "\""));
        let problem = match expected {
            Some(expected) => format!("invalid value {variant:?}: expected {expected}"),
            None => format!("invalid value {variant:?}"),
        };
        return ConfigError::new(path, problem);
    }
    if message == "invalid socket address syntax" {
        return ConfigError::new(path, "invalid address: expected ip:port, e.g. \"127.0.0.1:8001\"");
    }
    let problem = match error.span() {
        Some(span) if path.is_empty() => {
            let (line, column) = line_column(text, span.start);
            format!("{message} (line {line}, column {column})")
        }
        _ => message,
    };
    ConfigError::new(path, problem)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(start)?;
    rest.find(end).map(|stop| &rest[..stop])
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|index| index + 1).unwrap_or(0) + 1;
    (line, column)
}

pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    at_least(config.shutdown_timeout.0, Duration::from_millis(1), "shutdown_timeout")?;
    validate_docker(config)?;
    validate_sinks(config)?;
    validate_labels(config)?;
    validate_limits(config)?;
    validate_log(config)?;
    Ok(())
}

fn at_least(value: Duration, minimum: Duration, path: &str) -> Result<(), ConfigError> {
    if value < minimum {
        return Err(ConfigError::new(path, format!("must be at least {minimum:?}, got {value:?}")));
    }
    Ok(())
}

fn validate_docker(config: &Config) -> Result<(), ConfigError> {
    let docker = &config.docker;
    if docker.socket.as_ref().is_some_and(|socket| socket.as_os_str().is_empty()) {
        return Err(ConfigError::new("docker.socket", "must not be empty"));
    }
    if docker.host.is_some() && docker.socket.is_some() {
        return Err(ConfigError::new("docker.socket", "not together with docker.host (use host = \"unix:///path\")"));
    }
    if docker.tls.as_ref().is_some_and(|tls| tls.cert_path.as_os_str().is_empty()) {
        return Err(ConfigError::new("docker.tls.cert_path", "must not be empty"));
    }
    if let Some(host) = &docker.host {
        let tls = docker.tls.as_ref().map(|tls| crate::docker::TlsFiles::in_dir(&tls.cert_path));
        crate::docker::endpoint::parse_host(host, tls).map_err(|problem| ConfigError::new("docker.host", problem))?;
    } else if docker.tls.is_some() {
        return Err(ConfigError::new("docker.tls", "needs docker.host = \"tcp://host:port\""));
    }
    at_least(docker.rotate_every.0, Duration::from_secs(1), "docker.rotate_every")?;
    at_least(docker.stall_timeout.0, Duration::from_secs(1), "docker.stall_timeout")?;
    at_least(docker.slot_wait_max.0, Duration::from_secs(1), "docker.slot_wait_max")?;
    at_least(docker.reconcile_every.0, Duration::from_secs(1), "docker.reconcile_every")?;
    if docker.streams_max == 0 {
        return Err(ConfigError::new("docker.streams_max", "must be at least 1"));
    }
    Ok(())
}

fn validate_sinks(config: &Config) -> Result<(), ConfigError> {
    let sinks = &config.sinks;
    let configured: Vec<&str> = [
        sinks.loki.as_ref().map(|_| "loki"),
        sinks.file.as_ref().map(|_| "file"),
        sinks.stdout.as_ref().map(|_| "stdout"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if configured.len() > 1 {
        return Err(ConfigError::new(
            "sinks",
            format!("exactly one sink may be configured, found {}", configured.join(" and ")),
        ));
    }
    if let Some(file) = &sinks.file {
        if file.dir.as_os_str().is_empty() {
            return Err(ConfigError::new("sinks.file.dir", "must not be empty"));
        }
    }
    if let Some(loki) = &sinks.loki {
        validate_loki(loki, config)?;
    }
    Ok(())
}

fn validate_loki(loki: &LokiSink, config: &Config) -> Result<(), ConfigError> {
    // Before parsing: the other URL errors echo the URL, and a password must never be.
    if url_has_credentials(&loki.url) {
        return Err(ConfigError::new(
            "sinks.loki.url",
            "must not hold credentials (user:password@): remove them from the URL and use \
             [sinks.loki.auth.basic] with username and password_file or password_env",
        ));
    }
    match reqwest::Url::parse(&loki.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        Ok(_) => {
            return Err(ConfigError::new(
                "sinks.loki.url",
                format!("invalid URL {:?}: expected http:// or https:// and a host", loki.url),
            ))
        }
        Err(error) => return Err(ConfigError::new("sinks.loki.url", format!("invalid URL {:?}: {error}", loki.url))),
    }
    if let Some(tenant) = &loki.tenant {
        if tenant.is_empty() || tenant.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new("sinks.loki.tenant", "must be a non-empty header value"));
        }
    }
    match &loki.auth {
        None => {}
        Some(AuthConfig::Basic(basic)) => {
            if basic.username.is_empty() {
                return Err(ConfigError::new("sinks.loki.auth.basic.username", "must not be empty"));
            }
            exactly_one(
                basic.password_file.is_some(),
                basic.password_env.is_some(),
                "sinks.loki.auth.basic",
                "password_file or password_env",
            )?;
        }
        Some(AuthConfig::Bearer(bearer)) => exactly_one(
            bearer.token_file.is_some(),
            bearer.token_env.is_some(),
            "sinks.loki.auth.bearer",
            "token_file or token_env",
        )?,
    }
    if loki.batch_bytes.0 == 0 {
        return Err(ConfigError::new("sinks.loki.batch_bytes", "must be at least 1"));
    }
    if loki.batch_bytes.0 > config.limits.queue_bytes_max.0 {
        return Err(ConfigError::new(
            "sinks.loki.batch_bytes",
            format!(
                "must not exceed limits.queue_bytes_max ({} > {})",
                loki.batch_bytes.0, config.limits.queue_bytes_max.0
            ),
        ));
    }
    if loki.batch_lines == 0 {
        return Err(ConfigError::new("sinks.loki.batch_lines", "must be at least 1"));
    }
    at_least(loki.batch_wait.0, Duration::from_millis(1), "sinks.loki.batch_wait")?;
    at_least(loki.timeout.0, Duration::from_millis(1), "sinks.loki.timeout")?;
    at_least(loki.retry.min.0, Duration::from_millis(1), "sinks.loki.retry.min")?;
    if loki.retry.max < loki.retry.min {
        return Err(ConfigError::new(
            "sinks.loki.retry.max",
            format!("must be at least sinks.loki.retry.min ({} < {})", loki.retry.max, loki.retry.min),
        ));
    }
    Ok(())
}

fn exactly_one(first: bool, second: bool, path: &str, what: &str) -> Result<(), ConfigError> {
    if first == second {
        return Err(ConfigError::new(path, format!("set exactly one of {what}")));
    }
    Ok(())
}

fn validate_labels(config: &Config) -> Result<(), ConfigError> {
    let labels = &config.labels;
    for (name, value) in &labels.static_labels {
        let path = format!("labels.static.{}", quote_key(name));
        if sanitize_label_name(name) != *name || name.starts_with("__") {
            return Err(ConfigError::new(
                path,
                "invalid label name: expected [a-zA-Z_][a-zA-Z0-9_]* not starting with __",
            ));
        }
        if RESERVED_LABELS.contains(&name.as_str()) {
            return Err(ConfigError::new(path, "reserved: log-capturer sets this label itself"));
        }
        if value.is_empty() {
            return Err(ConfigError::new(path, "must not be empty (Loki drops empty labels)"));
        }
    }
    for (index, key) in labels.container_labels.iter().enumerate() {
        let path = format!("labels.container_labels[{index}]");
        if key.is_empty() {
            return Err(ConfigError::new(path, "must not be empty"));
        }
        let sanitized = sanitize_label_name(key);
        if RESERVED_LABELS.contains(&sanitized.as_str()) || labels.static_labels.contains_key(&sanitized) {
            return Err(ConfigError::new(
                path,
                format!("{key:?} would become label {sanitized:?}, which is already set elsewhere"),
            ));
        }
    }
    Ok(())
}

/// Whether the URL's authority (between `scheme://` and the path) has a `user@` or
/// `user:password@` part. Textual, so it also catches URLs that do not parse.
pub(super) fn url_has_credentials(url: &str) -> bool {
    let after_scheme = match url.find("://") {
        Some(at) => &url[at + 3..],
        None => url,
    };
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

pub(super) fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    let marker = engine::parse::assemble::TRUNCATION_MARKER.len() as u64;
    let truncated_line = config.limits.line_bytes_max.0 + marker;
    if config.sinks.loki.is_some() && truncated_line > super::LOKI_MAX_LINE_SIZE_DEFAULT {
        warnings.push(ConfigError::new(
            "limits.line_bytes_max",
            format!(
                "a truncated line is {} + {marker}-byte marker = {truncated_line} bytes, over Loki's default \
                 max_line_size ({}): unless Loki's limits_config.max_line_size is raised to match, Loki refuses \
                 such lines and they are counted as dropped (sink_line_too_long)",
                config.limits.line_bytes_max.0,
                super::LOKI_MAX_LINE_SIZE_DEFAULT
            ),
        ));
    }
    warnings
}

fn validate_limits(config: &Config) -> Result<(), ConfigError> {
    let limits = &config.limits;
    if limits.line_bytes_max.0 == 0 {
        return Err(ConfigError::new("limits.line_bytes_max", "must be at least 1"));
    }
    // A truncated line is line_bytes_max plus the marker, and one line (with the per-line
    // overhead the budget charges) must always fit in the pipeline (else its source
    // would wait forever).
    let marker = engine::parse::assemble::TRUNCATION_MARKER.len() as u64;
    let overhead = engine::pipeline::queue::LINE_OVERHEAD_BYTES as u64;
    if limits.line_bytes_max.0 + marker + overhead > limits.queue_bytes_max.0 {
        return Err(ConfigError::new(
            "limits.line_bytes_max",
            format!(
                "must leave room in limits.queue_bytes_max for one truncated line \
                 ({} + {marker}-byte marker + {overhead}-byte line overhead > {})",
                limits.line_bytes_max.0, limits.queue_bytes_max.0
            ),
        ));
    }
    if config.positions.path.as_os_str().is_empty() {
        return Err(ConfigError::new("positions.path", "must not be empty"));
    }
    Ok(())
}

fn validate_log(config: &Config) -> Result<(), ConfigError> {
    crate::logging::parse_filter(&config.log.level)
        .map(|_| ())
        .map_err(|problem| ConfigError::new("log.level", problem))
}

/// A TOML key as it would be written in a path: bare if it can be, quoted otherwise.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
