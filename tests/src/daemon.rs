//! The real `log-capturer` binary under test: built once per test process, run with a
//! config written for the test, and driven from outside like an operator would —
//! `/ready`, `/health`, `/metrics` over HTTP, SIGTERM, SIGKILL, start again.
//!
//! **Binary.** `cargo test -p capture-tests` does not build another package's binaries
//! (only its library), and `CARGO_BIN_EXE_*` exists only for a package's own
//! integration tests. So [`binary`] runs `cargo build -p capture-daemon --bin
//! log-capturer` (with this package selected too, so features resolve as in the test
//! build) once per test process, into the target directory and profile of the
//! running test executable (`target/<profile>/deps/e2e-…` → `target/<profile>/`).
//! When everything is up to date this is a no-op of well under a second; when the
//! daemon's sources changed it rebuilds, so a test never runs a stale binary. A failed
//! build is a test failure with cargo's output.
//!
//! **Isolation.** Every [`Daemon`] gets its own temporary directory (config, file sink
//! output, positions, the daemon's own log) and a free loopback port for `http.listen`,
//! and collects only containers carrying the label `log-capturer-test.run=<run id>`
//! ([`RUN_LABEL`]) of its [`DaemonSpec`], so a test sees its own containers only, even
//! with other containers (other tests, other processes) on the same engine.
//!
//! **Bounds.** Every wait is condition-based with a deadline ([`wait_until`]), every
//! HTTP call has a socket timeout, and a daemon still running when its [`Daemon`] is
//! dropped (a failing test) is killed and reaped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::host::run_bounded;

/// The container label a daemon under test includes: `log-capturer-test.run=<run id>`.
pub const RUN_LABEL: &str = "log-capturer-test.run";

/// Set (to anything) to print every daemon's whole log when its test ends; a failing
/// test always prints the last 80 lines.
pub const SHOW_LOG_ENV: &str = "LOG_CAPTURER_E2E_SHOW_LOG";

/// Bound on building the binary (a cold debug build on 2 cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Bound on one HTTP request to the daemon.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `log-capturer` binary, built (or found up to date) once per test process.
/// `$LOG_CAPTURER_E2E_BINARY`, when set, is used as is instead (e.g. a release build).
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let built = match std::env::var_os(BINARY_ENV) {
                Some(path) if Path::new(&path).is_file() => Ok(PathBuf::from(path)),
                Some(path) => Err(anyhow!("{BINARY_ENV}={}: no such file", Path::new(&path).display())),
                None => build_binary(),
            };
            built.map_err(|error| format!("{error:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Names a `log-capturer` binary to test instead of building one.
pub const BINARY_ENV: &str = "LOG_CAPTURER_E2E_BINARY";

fn build_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("where is the test executable?")?;
    // target/<profile dir>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("test executable {} is not in target/<profile>/deps/", exe.display()))?;
    let target_dir =
        profile_dir.parent().ok_or_else(|| anyhow!("no target directory above {}", profile_dir.display()))?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => bail!("cannot read the profile directory name of {}", profile_dir.display()),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/Cargo.toml");
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_owned))
        .unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let mut command = Command::new(&cargo);
    command.args([
        "build",
        "--quiet",
        "--manifest-path",
        &manifest.to_string_lossy(),
        "-p",
        "capture-daemon",
        // Selecting this package too makes cargo resolve features exactly as for
        // `cargo test -p capture-tests`: otherwise the two builds would unify features
        // differently and rebuild shared dependencies (reqwest, hyper…) back and forth.
        "-p",
        env!("CARGO_PKG_NAME"),
        "--bin",
        "log-capturer",
        "--profile",
        &profile,
        "--target-dir",
        &target_dir.to_string_lossy(),
    ]);
    // What cargo set for this test process is not the environment of a build: some
    // build scripts watch e.g. CARGO_MANIFEST_DIR (ring), and seeing it set here would
    // make cargo rebuild them and everything above them on every run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name == "OUT_DIR"
            || ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    let output = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = output.with_context(|| format!("starting `{cargo} build` for the log-capturer binary"))?;
    // Drain stderr on a thread so a chatty build never blocks on a full pipe.
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("building the log-capturer binary took more than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!("building the log-capturer binary failed ({status}):\n{stderr}");
    }
    let binary = profile_dir.join("log-capturer");
    if !binary.is_file() {
        bail!("cargo built capture-daemon but {} does not exist", binary.display());
    }
    eprintln!("log-capturer binary: {} (build check took {:?})", binary.display(), started.elapsed());
    Ok(binary)
}

/// A fresh run id: unique across tests and test processes on one engine.
pub fn new_run_id(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{test}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where the daemon sends what it captured.
#[derive(Clone, Debug)]
pub enum SinkSpec {
    /// `[sinks.file]` in the daemon's directory: `out/logs.jsonl`.
    File,
    /// `[sinks.loki]` at `url` (e.g. [`crate::loki_receiver::LokiReceiver::url`]).
    Loki { url: String, encoding: &'static str },
}

/// What the test wants of the daemon; rendered to TOML by [`DaemonSpec::config_toml`].
#[derive(Clone, Debug)]
pub struct DaemonSpec {
    /// Only containers labelled `RUN_LABEL=<run_id>` are collected.
    pub run_id: String,
    pub docker_socket: PathBuf,
    /// `docker.host` instead of `docker.socket` (e.g. `tcp://127.0.0.1:PORT`).
    pub docker_host: Option<String>,
    /// `[docker.tls] cert_path` (with a `tcp://` `docker_host`).
    pub docker_tls_dir: Option<PathBuf>,
    pub sink: SinkSpec,
    pub rotate_every: String,
    pub commit_every: String,
    /// Loki only: `batch_wait` (the file sink uses the engine's default, 1 s).
    pub batch_wait: String,
    pub shutdown_timeout: String,
    pub streams_max: usize,
    pub log_level: String,
    /// `docker.stall_timeout`, when set (the daemon's default otherwise).
    pub stall_timeout: Option<String>,
}

impl DaemonSpec {
    pub fn new(run_id: &str, sink: SinkSpec) -> DaemonSpec {
        DaemonSpec {
            run_id: run_id.to_owned(),
            docker_socket: crate::host::docker_socket_path(),
            docker_host: None,
            docker_tls_dir: None,
            sink,
            rotate_every: "5m".into(),
            commit_every: "1s".into(),
            batch_wait: "200ms".into(),
            shutdown_timeout: "10s".into(),
            streams_max: 50,
            log_level: "info".into(),
            stall_timeout: None,
        }
    }

    /// The `docker run` arguments that put a container in this run.
    pub fn container_args(&self) -> Vec<String> {
        vec!["--label".into(), format!("{RUN_LABEL}={}", self.run_id)]
    }

    /// The config file for a daemon in `dir` listening on `port`.
    pub fn config_toml(&self, dir: &Path, port: u16) -> String {
        let quoted = |path: &Path| toml_string(&path.to_string_lossy());
        let endpoint = match &self.docker_host {
            Some(host) => format!("host = {}", toml_string(host)),
            None => format!("socket = {}", quoted(&self.docker_socket)),
        };
        let mut text = format!(
            "shutdown_timeout = {shutdown}\n\
             \n[docker]\n{endpoint}\nrotate_every = {rotate}\nstreams_max = {streams_max}\n\
             first_sight = \"beginning\"\n{stall}\
             \n[docker.include]\nlabels = [{include}]\n",
            shutdown = toml_string(&self.shutdown_timeout),
            rotate = toml_string(&self.rotate_every),
            streams_max = self.streams_max,
            include = toml_string(&format!("{RUN_LABEL}={}", self.run_id)),
            stall = match &self.stall_timeout {
                Some(timeout) => format!("stall_timeout = {}\n", toml_string(timeout)),
                None => String::new(),
            },
        );
        if let Some(dir) = &self.docker_tls_dir {
            text.push_str(&format!("\n[docker.tls]\ncert_path = {}\n", quoted(dir)));
        }
        match &self.sink {
            SinkSpec::File => text.push_str(&format!("\n[sinks.file]\ndir = {}\n", quoted(&dir.join("out")))),
            SinkSpec::Loki { url, encoding } => text.push_str(&format!(
                "\n[sinks.loki]\nurl = {url}\nencoding = {encoding}\nbatch_wait = {wait}\n\
                 retry = {{ min = \"100ms\", max = \"1s\" }}\n",
                url = toml_string(url),
                encoding = toml_string(encoding),
                wait = toml_string(&self.batch_wait),
            )),
        }
        text.push_str(&format!(
            "\n[positions]\npath = {positions}\ncommit_every = {commit}\n\
             \n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             \n[log]\nlevel = {level}\n",
            positions = quoted(&dir.join("positions.json")),
            commit = toml_string(&self.commit_every),
            level = toml_string(&self.log_level),
        ));
        text
    }
}

fn toml_string(text: &str) -> String {
    // TOML basic strings use JSON's escapes for everything we can meet here.
    serde_json::to_string(text).expect("a string serialises")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One `log-capturer run` process (and its successors after [`Daemon::restart`]).
pub struct Daemon {
    spec: DaemonSpec,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// Writes the config and starts the binary. Does not wait for `/ready`.
    pub fn start(spec: DaemonSpec) -> Result<Daemon> {
        let dir = tempfile::Builder::new().prefix("log-capturer-e2e-").tempdir()?;
        let mut daemon = Daemon { spec, dir, port: 0, child: None, starts: 0 };
        daemon.spawn()?;
        Ok(daemon)
    }

    fn spawn(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "the previous daemon process is still running");
        let binary = binary()?;
        self.port = free_port()?;
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, self.spec.config_toml(self.dir.path(), self.port))?;
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        writeln!(log, "==== start #{} (port {}) ====", self.starts, self.port)?;
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting log-capturer")?;
        self.child = Some(child);
        Ok(())
    }

    pub fn spec(&self) -> &DaemonSpec {
        &self.spec
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file sink's output (`SinkSpec::File`).
    pub fn sink_path(&self) -> PathBuf {
        self.dir.path().join("out/logs.jsonl")
    }

    pub fn positions_path(&self) -> PathBuf {
        self.dir.path().join("positions.json")
    }

    /// The daemon's own log (its stderr, every start appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the daemon's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|child| child.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) | None => false,
        }
    }

    /// `GET path`: (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.port, path)
    }

    /// Waits for `/ready` to answer 200. Fails at once if the process exited.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = self.get("/ready") {
                return Ok(());
            }
            if !self.is_running() {
                bail!("log-capturer exited before it was ready:\n{}", self.log_tail(40));
            }
            if started.elapsed() > timeout {
                bail!("log-capturer not ready within {timeout:?}:\n{}", self.log_tail(40));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/metrics`, parsed.
    pub fn metrics(&self) -> Result<Metrics> {
        let (status, body) = self.get("/metrics")?;
        if status != 200 {
            bail!("/metrics answered {status}: {body}");
        }
        Metrics::parse(&body)
    }

    /// `/health`: (status, parsed JSON).
    pub fn health(&self) -> Result<(u16, serde_json::Value)> {
        let (status, body) = self.get("/health")?;
        let json = serde_json::from_str(&body).with_context(|| format!("/health answered {status} with {body:?}"))?;
        Ok((status, json))
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let pid = self.pid().ok_or_else(|| anyhow!("no daemon process"))?;
        run_bounded("kill", &["-TERM", &pid.to_string()], None, Duration::from_secs(10))?;
        self.wait_exit(timeout)
    }

    /// SIGKILL (`kill -9`) and reap: nothing of the process runs after this returns.
    pub fn kill9(&mut self) -> Result<()> {
        let child = self.child.as_mut().ok_or_else(|| anyhow!("no daemon process"))?;
        child.kill()?;
        child.wait()?;
        self.child = None;
        Ok(())
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self.child.as_mut().ok_or_else(|| anyhow!("no daemon process"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                bail!("log-capturer did not exit within {timeout:?} of SIGTERM:\n{}", self.log_tail(40));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the binary again, same directory (positions, sink output) and config
    /// except for a fresh `http.listen` port. The previous process must have exited.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("restart: the daemon is still running");
        }
        self.child = None;
        self.spawn()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log-capturer log ({}) ----\n{}\n----", self.log_path().display(), self.log_tail(80));
        } else if std::env::var_os(SHOW_LOG_ENV).is_some() {
            eprintln!("---- log-capturer log ({}) ----\n{}\n----", self.log_path().display(), self.log());
        }
    }
}

/// A bare `GET path HTTP/1.0` on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| anyhow!("GET {path}: not an HTTP response: {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Polls `condition` every 50 ms until it is `Ok(true)`, for at most `timeout`.
/// An `Err` from `condition` is remembered and shown if the deadline passes.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    let mut last_error = None;
    loop {
        match condition() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        if started.elapsed() > timeout {
            return match last_error {
                Some(error) => Err(error.context(format!("timed out after {timeout:?} waiting for {what}"))),
                None => Err(anyhow!("timed out after {timeout:?} waiting for {what}")),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `/metrics` scrape: every sample by its full name with labels, as written
/// (`log_capturer_tasks_alive{kind="container"}`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Result<Metrics> {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').ok_or_else(|| anyhow!("bad metrics line {line:?}"))?;
            let value: f64 = value.parse().with_context(|| format!("bad metrics value in {line:?}"))?;
            samples.insert(name.to_owned(), value);
        }
        Ok(Metrics { samples })
    }

    /// The sample `name` (with its labels, e.g. `tasks_alive{kind="sink"}`, without
    /// the `log_capturer_` prefix). Panics if missing: a renamed metric is a failure.
    pub fn get(&self, name: &str) -> f64 {
        let full = format!("log_capturer_{name}");
        *self.samples.get(&full).unwrap_or_else(|| panic!("/metrics has no {full}"))
    }

    /// [`get`](Self::get) as an integer (counters and gauges of counts).
    pub fn count(&self, name: &str) -> u64 {
        self.get(name) as u64
    }

    /// Every `log_capturer_tasks_alive{kind=…}` by kind.
    pub fn tasks_alive(&self) -> BTreeMap<String, u64> {
        self.samples
            .iter()
            .filter_map(|(name, value)| {
                let kind = name.strip_prefix("log_capturer_tasks_alive{kind=\"")?.strip_suffix("\"}")?;
                Some((kind.to_owned(), *value as u64))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_configs_are_valid_daemon_configs() {
        let mut spec = DaemonSpec::new("unit-1", SinkSpec::File);
        spec.rotate_every = "2s".into();
        let dir = Path::new("/tmp/dir with \"quotes\"");
        let config = capture_daemon::config::Config::parse(&spec.config_toml(dir, 8123)).unwrap();
        assert_eq!(config.sink().name(), "file");
        assert_eq!(config.http.listen.port(), 8123);
        assert_eq!(config.positions.path, dir.join("positions.json"));
        assert_eq!(config.docker.rotate_every.0, Duration::from_secs(2));
        let labels: std::collections::BTreeMap<String, String> = [(RUN_LABEL.to_string(), "unit-1".to_string())].into();
        assert!(config.docker.include.matches("any", &labels));
        let other: std::collections::BTreeMap<String, String> = [(RUN_LABEL.to_string(), "unit-2".to_string())].into();
        assert!(!config.docker.include.matches("any", &other));

        let spec = DaemonSpec::new("unit-1", SinkSpec::Loki { url: "http://127.0.0.1:1".into(), encoding: "protobuf" });
        let config = capture_daemon::config::Config::parse(&spec.config_toml(dir, 8123)).unwrap();
        assert_eq!(config.sink().name(), "loki");
    }

    #[test]
    fn metrics_parse_by_full_name() {
        let metrics = Metrics::parse(
            "# HELP log_capturer_tasks_alive x\n# TYPE log_capturer_tasks_alive gauge\n\
             log_capturer_tasks_alive{kind=\"sink\"} 1\nlog_capturer_tasks_alive{kind=\"http\"} 2\n\
             log_capturer_runtime_tasks_alive 7\n",
        )
        .unwrap();
        assert_eq!(metrics.count("runtime_tasks_alive"), 7);
        assert_eq!(metrics.get("tasks_alive{kind=\"http\"}"), 2.0);
        assert_eq!(metrics.tasks_alive(), [("http".to_string(), 2), ("sink".to_string(), 1)].into());
        assert!(Metrics::parse("log_capturer_x one\n").is_err());
    }
}
