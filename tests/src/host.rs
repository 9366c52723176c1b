//! The machine's Docker engine, seen from a test: running the `docker` CLI with a time
//! limit, and the policy for tests that need an engine.
//!
//! Policy ([`require_docker`]): when an engine answers, the test runs. When none answers,
//! the test fails loudly if the environment says `CI=true` (a CI run that silently skipped
//! its Docker tests would prove nothing), and otherwise prints why it skips and returns.
//!
//! Every CLI call is bounded ([`DOCKER_CLI_TIMEOUT`]): a hung `docker` becomes a test
//! failure naming the command, never a hung test run.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Bound on one `docker` CLI call.
pub const DOCKER_CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether this run is CI (`CI=true`), where skipping a Docker test is a failure.
pub fn is_ci() -> bool {
    std::env::var("CI").map(|value| value == "true").unwrap_or(false)
}

/// The engine's unix socket: `DOCKER_HOST=unix://...` if set, else the default path.
pub fn docker_socket_path() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// Runs `docker args...` and returns its trimmed stdout; fails with its stderr.
pub fn docker(args: &[&str]) -> Result<String> {
    docker_with_input(args, None)
}

/// Like [`docker`], feeding `input` to its stdin.
pub fn docker_with_input(args: &[&str], input: Option<Vec<u8>>) -> Result<String> {
    run_bounded("docker", args, input, DOCKER_CLI_TIMEOUT)
}

/// Runs a command with a time limit, collecting stdout and stderr.
pub fn run_bounded(program: &str, args: &[&str], input: Option<Vec<u8>>, timeout: Duration) -> Result<String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut out);
        out
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = stderr_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("`{shown}` failed ({status}): {}", String::from_utf8_lossy(&stderr).trim());
    }
    Ok(String::from_utf8_lossy(&stdout).trim().to_owned())
}

/// `Ok(api version)` if a Docker engine answers, else why not.
pub fn engine_answers() -> Result<String> {
    let version =
        run_bounded("docker", &["version", "--format", "{{.Server.APIVersion}}"], None, Duration::from_secs(20))?;
    if version.is_empty() {
        bail!("`docker version` printed no server API version");
    }
    Ok(version)
}

/// The policy of the module docs: `true` if the test should go on. Panics under CI when
/// no engine answers; otherwise prints why the test skips.
pub fn require_docker(test: &str) -> bool {
    match engine_answers() {
        Ok(_) => true,
        Err(why) if is_ci() => {
            panic!("{test}: CI=true but no Docker engine answers: {why:#}")
        }
        Err(why) => {
            eprintln!("skipping {test}: no Docker engine answers ({why:#}); set CI=true to make this fail");
            false
        }
    }
}

/// [`require_docker`] plus the test image: `Some(image)` if the test should go on.
/// The first call in a process also removes containers left by dead test processes.
/// Without the image (e.g. `busybox-static` not installed), CI fails and a local run
/// skips, saying how to fix it.
pub fn require_docker_and_image(test: &str) -> Option<String> {
    if !require_docker(test) {
        return None;
    }
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| match crate::containers::sweep_stale_test_containers() {
        Ok(0) => {}
        Ok(removed) => eprintln!("removed {removed} test containers left by dead test processes"),
        Err(error) => eprintln!("sweeping stale test containers: {error:#}"),
    });
    match crate::image::ensure_test_image() {
        Ok(image) => Some(image),
        Err(why) if is_ci() => panic!("{test}: CI=true but the test image cannot be built: {why:#}"),
        Err(why) => {
            eprintln!("skipping {test}: test image unavailable ({why:#})");
            None
        }
    }
}
