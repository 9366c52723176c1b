//! The config file: TOML, read once at start, validated as a whole before anything runs.
//!
//! Owns the file's schema (every section and key, its default, its unit), the mapping
//! from it to the engine's [`AgentConfig`], and the error a person sees when the file is
//! wrong. Promises:
//! - Unknown keys are errors, in every table (`deny_unknown_fields`).
//! - Every error names the key path and the problem, e.g.
//!   `docker.rotate_every: invalid duration "5 mins": expected a number followed by ms, s, m or h`
//!   or `sinks.loki.url: missing`. `tests.rs` pins these messages with insta snapshots.
//! - An empty file is a valid config: every key has a default, and with no sink
//!   configured the file sink writes to `./capture-out/` (the embedded default).
//! - No secret is ever in the file: passwords and tokens are named by file or
//!   environment variable and read at start into [`secret::Secret`], which prints `***`.
//!
//! The reference of every key with its default is `daemon/config.example.toml` (a test
//! checks that it parses to exactly the defaults).

pub mod secret;
pub mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::agent::AgentConfig;
use engine::checkpoint::CheckpointConfig;
use engine::container::{FirstSight, MonitorConfig};
use engine::pipeline::PipelineConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

pub use secret::{Secret, SecretSource};
pub use units::{ByteSize, HumanDuration};

/// A config error: the key path (`docker.rotate_every`; empty for a syntax error) and
/// what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How long a graceful shutdown (SIGTERM/SIGINT) may take before in-flight lines
    /// are abandoned (they are read again at the next start).
    pub shutdown_timeout: HumanDuration,
    pub docker: DockerSection,
    pub sinks: SinksSection,
    pub labels: LabelsSection,
    pub limits: LimitsSection,
    pub positions: PositionsSection,
    pub http: HttpSection,
    pub log: LogSection,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            shutdown_timeout: HumanDuration::secs(10),
            docker: DockerSection::default(),
            sinks: SinksSection::default(),
            labels: LabelsSection::default(),
            limits: LimitsSection::default(),
            positions: PositionsSection::default(),
            http: HttpSection::default(),
            log: LogSection::default(),
        }
    }
}

/// `[docker]`: which containers, and how their log streams are held.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSection {
    /// The engine: `unix:///path` or `tcp://host:port`. Unset: `socket`, else
    /// `DOCKER_HOST` (with `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), else
    /// `unix:///var/run/docker.sock` (see `docker::endpoint`).
    pub host: Option<String>,
    /// The engine's unix socket path (the key older configs have; same as
    /// `host = "unix://<path>"`, and not together with `host`).
    pub socket: Option<PathBuf>,
    /// TLS for a `tcp://` host: verify the engine against `ca.pem` and present
    /// `cert.pem`/`key.pem`, all in `cert_path`.
    pub tls: Option<DockerTlsSection>,
    /// Collect only containers matching one of these rules (all, if empty).
    pub include: FilterSection,
    /// Never collect containers matching one of these rules (wins over `include`).
    pub exclude: FilterSection,
    /// Drop and reopen each log stream 0.7–1.0 × this long after it opened (jittered so
    /// that streams opened together do not rotate together).
    pub rotate_every: HumanDuration,
    /// Log streams open at once; further containers wait their turn (FIFO).
    pub streams_max: usize,
    /// A running container's stream silent this long is reopened; a stopped container's
    /// stream (opened after the stop) silent this long is dropped.
    pub stall_timeout: HumanDuration,
    /// While containers wait for a stream slot, holders yield so that no container's
    /// output waits much longer than this (a waiter asks the oldest holder to yield
    /// after half of it).
    pub slot_wait_max: HumanDuration,
    /// Full container list reconcile period (heals missed events).
    pub reconcile_every: HumanDuration,
    /// Where to start in a container seen for the first time (no saved position).
    pub first_sight: FirstSightSetting,
}

impl Default for DockerSection {
    fn default() -> DockerSection {
        DockerSection {
            host: None,
            socket: None,
            tls: None,
            include: FilterSection::default(),
            exclude: FilterSection::default(),
            rotate_every: HumanDuration::secs(300),
            streams_max: 50,
            stall_timeout: HumanDuration::secs(120),
            slot_wait_max: HumanDuration::secs(30),
            reconcile_every: HumanDuration::secs(60),
            first_sight: FirstSightSetting(FirstSight::Now),
        }
    }
}

/// `[docker.tls]`: the docker CLI's three PEM files, by their names, in one directory
/// (what `DOCKER_CERT_PATH` names). Their contents are never logged.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerTlsSection {
    pub cert_path: PathBuf,
}

impl DockerSection {
    /// The endpoint settings for `docker::Endpoint::resolve`.
    pub fn endpoint_settings(&self) -> crate::docker::EndpointSettings<'_> {
        crate::docker::EndpointSettings {
            host: self.host.as_deref(),
            socket: self.socket.as_deref(),
            tls_cert_path: self.tls.as_ref().map(|tls| tls.cert_path.as_path()),
        }
    }
}

/// Container selection rules. A container matches when its name matches one of
/// `names` or its labels match one of `labels`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSection {
    /// Regexes over the container name (without Docker's leading `/`), matched against
    /// the whole name like Prometheus relabel regexes: `"app-.*"`, not `"app-"`.
    pub names: Vec<NamePattern>,
    /// `"key"` (label present) or `"key=regex"` (label present and its whole value
    /// matches).
    pub labels: Vec<LabelPattern>,
}

impl FilterSection {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.labels.is_empty()
    }

    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.iter().any(|pattern| pattern.regex.is_match(name))
            || self.labels.iter().any(|pattern| pattern.matches(labels))
    }
}

/// A whole-string regex, compiled when the config is read.
#[derive(Clone)]
pub struct NamePattern {
    pub source: String,
    regex: regex_lite::Regex,
}

impl NamePattern {
    pub fn new(source: &str) -> Result<NamePattern, String> {
        Ok(NamePattern { source: source.to_string(), regex: anchored(source)? })
    }
}

fn anchored(source: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(&format!("^(?:{source})$"))
        .map_err(|error| format!("invalid regex {source:?}: {}", first_line(&error.to_string())))
}

fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or(text)
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        NamePattern::new(&source).map_err(de::Error::custom)
    }
}

/// `key` or `key=value-regex` over container labels.
#[derive(Clone)]
pub struct LabelPattern {
    pub source: String,
    pub key: String,
    value: Option<regex_lite::Regex>,
}

impl LabelPattern {
    pub fn new(source: &str) -> Result<LabelPattern, String> {
        let (key, value) = match source.split_once('=') {
            Some((key, value)) => (key, Some(anchored(value)?)),
            None => (source, None),
        };
        if key.is_empty() {
            return Err(format!("invalid label rule {source:?}: expected \"key\" or \"key=regex\""));
        }
        Ok(LabelPattern { source: source.to_string(), key: key.to_string(), value })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(value), Some(regex)) => regex.is_match(value),
        }
    }
}

impl fmt::Debug for LabelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl<'de> Deserialize<'de> for LabelPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        LabelPattern::new(&source).map_err(de::Error::custom)
    }
}

/// `first_sight = "now" | "beginning" | { tail = N }`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FirstSightSetting(pub FirstSight);

impl<'de> Deserialize<'de> for FirstSightSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "expected \"now\", \"beginning\" or { tail = N }";
        struct FirstSightVisitor;
        impl<'de> Visitor<'de> for FirstSightVisitor {
            type Value = FirstSightSetting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FirstSightSetting, E> {
                match text {
                    "now" => Ok(FirstSightSetting(FirstSight::Now)),
                    "beginning" => Ok(FirstSightSetting(FirstSight::Beginning)),
                    other => Err(E::custom(format!("invalid value {other:?}: {EXPECTED}"))),
                }
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<FirstSightSetting, M::Error> {
                let mut tail = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "tail" if tail.is_none() => tail = Some(map.next_value::<u64>()?),
                        other => return Err(de::Error::custom(format!("unknown key `{other}`: {EXPECTED}"))),
                    }
                }
                match tail {
                    Some(lines) => Ok(FirstSightSetting(FirstSight::Tail(lines))),
                    None => Err(de::Error::custom(format!("missing `tail`: {EXPECTED}"))),
                }
            }
        }
        deserializer.deserialize_any(FirstSightVisitor)
    }
}

/// `[sinks.*]`: at most one may be present; none means the file sink with defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksSection {
    pub loki: Option<LokiSink>,
    pub file: Option<FileSink>,
    pub stdout: Option<StdoutSink>,
}

/// The one sink in use, after validation.
#[derive(Clone, Debug)]
pub enum SinkChoice {
    Loki(Box<LokiSink>),
    File(FileSink),
    Stdout(StdoutSink),
}

impl SinkChoice {
    pub fn name(&self) -> &'static str {
        match self {
            SinkChoice::Loki(_) => "loki",
            SinkChoice::File(_) => "file",
            SinkChoice::Stdout(_) => "stdout",
        }
    }
}

/// `[sinks.loki]`: push to Loki's `/loki/api/v1/push`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiSink {
    /// Base URL (`http://loki:3100`) or the full push URL (ending in `/push`).
    pub url: String,
    /// Sent as `X-Scope-OrgID` (multi-tenant Loki).
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub encoding: Encoding,
    /// Line bytes per push request (a single longer line travels alone).
    #[serde(default = "defaults::batch_bytes")]
    pub batch_bytes: ByteSize,
    #[serde(default = "defaults::batch_lines")]
    pub batch_lines: usize,
    /// How long an open batch waits for more lines.
    #[serde(default = "defaults::batch_wait")]
    pub batch_wait: HumanDuration,
    /// Whole-request timeout (connect, send, answer).
    #[serde(default = "defaults::timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Authentication: `[sinks.loki.auth.basic]` or `[sinks.loki.auth.bearer]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum AuthConfig {
    Basic(BasicAuth),
    Bearer(BearerAuth),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerAuth {
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
}

/// Authentication with its secret read (see [`AuthConfig::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: Secret },
    Bearer { token: Secret },
}

impl AuthConfig {
    /// Where the secret is. Validation guarantees exactly one source.
    pub fn secret_source(&self) -> SecretSource {
        let (file, env) = match self {
            AuthConfig::Basic(basic) => (&basic.password_file, &basic.password_env),
            AuthConfig::Bearer(bearer) => (&bearer.token_file, &bearer.token_env),
        };
        match (file, env) {
            (Some(path), _) => SecretSource::File(path.clone()),
            (None, Some(name)) => SecretSource::Env(name.clone()),
            (None, None) => unreachable!("validated: one of *_file or *_env is set"),
        }
    }

    /// Read the secret now (at start).
    pub fn resolve(&self) -> Result<Auth, ConfigError> {
        let secret = self.secret_source().read().map_err(|problem| {
            let path = match self {
                AuthConfig::Basic(_) => "sinks.loki.auth.basic",
                AuthConfig::Bearer(_) => "sinks.loki.auth.bearer",
            };
            ConfigError::new(path, problem)
        })?;
        Ok(match self {
            AuthConfig::Basic(basic) => Auth::Basic { username: basic.username.clone(), password: secret },
            AuthConfig::Bearer(_) => Auth::Bearer { token: secret },
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Extra PEM CA certificate(s) to trust, besides the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only.
    pub insecure_skip_verify: bool,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `logproto.PushRequest`, snappy block compressed (`application/x-protobuf`).
    #[default]
    Protobuf,
    /// Loki's JSON push body (`application/json`).
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff after a retryable failure; doubles up to `max` (±jitter).
    pub min: HumanDuration,
    pub max: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig { min: HumanDuration::millis(500), max: HumanDuration::secs(30) }
    }
}

/// `[sinks.file]`: JSON lines appended to `<dir>/logs.jsonl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSink {
    pub dir: PathBuf,
}

impl Default for FileSink {
    fn default() -> FileSink {
        FileSink { dir: PathBuf::from("./capture-out") }
    }
}

/// `[sinks.stdout]`: JSON lines on standard output.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSink {}

/// `[labels]`: the Loki stream labels of each container stream. Always present:
/// `container` (the name) and `stream` (`stdout`/`stderr`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsSection {
    /// Fixed labels on every stream (`static = { job = "docker", host = "web-1" }`).
    #[serde(rename = "static")]
    pub static_labels: BTreeMap<String, String>,
    /// Add `image` (the container's image reference).
    pub image: bool,
    /// Add `compose_service` from the `com.docker.compose.service` container label.
    pub compose_service: bool,
    /// Container labels copied as stream labels, their names sanitised to Loki's rules
    /// (`com.example.team` → `com_example_team`).
    pub container_labels: Vec<String>,
}

impl Default for LabelsSection {
    fn default() -> LabelsSection {
        LabelsSection {
            static_labels: BTreeMap::new(),
            image: true,
            compose_service: true,
            container_labels: Vec::new(),
        }
    }
}

/// Loki's default `limits_config.max_line_size`: longer lines are refused (`400`).
pub const LOKI_MAX_LINE_SIZE_DEFAULT: u64 = 256 << 10;

/// `limits.line_bytes_max` by default: a truncated line, marker included, is exactly
/// [`LOKI_MAX_LINE_SIZE_DEFAULT`].
pub const LINE_BYTES_MAX_DEFAULT: u64 =
    LOKI_MAX_LINE_SIZE_DEFAULT - engine::parse::assemble::TRUNCATION_MARKER.len() as u64;

/// `[limits]`: the bounds on memory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Longer lines are truncated (with a marker) and counted. The default, 262,130
    /// bytes, keeps a truncated line with its 14-byte `...[truncated]` marker within
    /// Loki's default `max_line_size` (256 KiB = 262,144 bytes).
    pub line_bytes_max: ByteSize,
    /// Memory of the lines queued, batched or in flight (content plus a 128-byte
    /// per-line overhead, `engine::pipeline::queue::LINE_OVERHEAD_BYTES`) and of the
    /// partial frames and lines readers keep between reads; sources wait beyond it.
    pub queue_bytes_max: ByteSize,
}

impl Default for LimitsSection {
    fn default() -> LimitsSection {
        LimitsSection { line_bytes_max: ByteSize(LINE_BYTES_MAX_DEFAULT), queue_bytes_max: ByteSize(64 << 20) }
    }
}

/// `[positions]`: where acknowledged positions are kept across restarts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionsSection {
    pub path: PathBuf,
    /// Commit acknowledged positions at most this often (and once at shutdown).
    pub commit_every: HumanDuration,
}

impl Default for PositionsSection {
    fn default() -> PositionsSection {
        PositionsSection { path: PathBuf::from("./capture-out/positions.json"), commit_every: HumanDuration::secs(5) }
    }
}

/// `[http]`: `/metrics`, `/health`, `/ready`, `/debug/tasks`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> HttpSection {
        HttpSection { listen: SocketAddr::from(([127, 0, 0, 1], 8001)) }
    }
}

/// `[log]`: the daemon's own logs (on stderr).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a filter like `info,capture_engine=debug`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection { level: "info".to_string(), format: LogFormat::Text }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

mod defaults {
    use super::{ByteSize, HumanDuration};

    pub fn batch_bytes() -> ByteSize {
        ByteSize(1 << 20)
    }
    pub fn batch_lines() -> usize {
        10_000
    }
    pub fn batch_wait() -> HumanDuration {
        HumanDuration::secs(1)
    }
    pub fn timeout() -> HumanDuration {
        HumanDuration::secs(10)
    }
}

impl Config {
    /// Parse and validate a config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|error| syntax_error(text, &error))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            validate::from_serde(text, path, error.into_inner())
        })?;
        validate::validate(&config)?;
        Ok(config)
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new("", format!("cannot read {}: {error}", path.display())))?;
        Config::parse(&text)
    }

    /// What is valid but probably not meant, as `key: problem`; the daemon logs each at
    /// start. (A limit of the server's, such as Loki's `max_line_size`, can be raised
    /// there, so it is a warning and not an error.)
    pub fn warnings(&self) -> Vec<ConfigError> {
        validate::warnings(self)
    }

    /// The sink in use (validation guarantees at most one is configured).
    pub fn sink(&self) -> SinkChoice {
        let sinks = &self.sinks;
        match (&sinks.loki, &sinks.file, &sinks.stdout) {
            (Some(loki), _, _) => SinkChoice::Loki(Box::new(loki.clone())),
            (None, _, Some(stdout)) => SinkChoice::Stdout(stdout.clone()),
            (None, Some(file), None) => SinkChoice::File(file.clone()),
            (None, None, None) => SinkChoice::File(FileSink::default()),
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout.0
    }

    /// What the engine is configured with.
    pub fn agent_config(&self) -> AgentConfig {
        let docker = &self.docker;
        let monitor = MonitorConfig {
            rotate_every: docker.rotate_every.0,
            streams_max: docker.streams_max,
            stall_timeout: docker.stall_timeout.0,
            slot_wait_max: docker.slot_wait_max.0,
            reconcile_every: docker.reconcile_every.0,
            line_bytes_max: self.limits.line_bytes_max.0 as usize,
            first_sight: docker.first_sight.0,
            ..MonitorConfig::default()
        };
        let mut pipeline =
            PipelineConfig { queue_bytes_max: self.limits.queue_bytes_max.0 as usize, ..PipelineConfig::default() };
        if let SinkChoice::Loki(loki) = self.sink() {
            pipeline.batch_bytes_max = loki.batch_bytes.0 as usize;
            pipeline.batch_lines_max = loki.batch_lines;
            pipeline.batch_wait = loki.batch_wait.0;
            pipeline.retry.backoff_min = loki.retry.min.0;
            pipeline.retry.backoff_max = loki.retry.max.0;
        }
        // A line longer than a batch travels alone; keep batches at least one line big.
        pipeline.batch_bytes_max = pipeline.batch_bytes_max.min(pipeline.queue_bytes_max);
        let checkpoint = CheckpointConfig { commit_every: self.positions.commit_every.0 };
        AgentConfig { monitor, pipeline, checkpoint }
    }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let problem = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let (line, column) = validate::line_column(text, span.start);
            ConfigError::new("", format!("TOML syntax error at line {line}, column {column}: {problem}"))
        }
        None => ConfigError::new("", format!("TOML syntax error: {problem}")),
    }
}
