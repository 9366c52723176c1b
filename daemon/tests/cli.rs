//! The `log-capturer` binary as a person runs it: `version`, `check-config`, and `run`
//! until SIGTERM (exit 0), with `/ready`, `/health` and `/metrics` answering on loopback.
//! Docker is pointed at a socket that does not exist, so this needs no Docker engine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_log-capturer");

fn run(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().unwrap()
}

#[test]
fn version_and_usage() {
    let output = run(&["version"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("log-capturer {}\n", env!("CARGO_PKG_VERSION")));
    let output = run(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage:"));
}

#[test]
fn check_config_prints_ok_or_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[sinks.stdout]\n").unwrap();
    let output = run(&["check-config", good.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "OK (stdout sink)\n");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[docker]\nrotate_every = \"5 mins\"\n").unwrap();
    let output = run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("docker.rotate_every: invalid duration \"5 mins\": expected a number followed by ms, s, m or h"),
        "{stderr}"
    );

    let output = run(&["check-config", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A bare HTTP/1.0 GET on loopback: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Some((status, body))
}

fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, deadline: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("log-capturer did not exit within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(dir: &Path, port: u16) -> Child {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "shutdown_timeout = \"3s\"\n[docker]\nsocket = {socket:?}\n[sinks.file]\ndir = {out:?}\n\
             [positions]\npath = {positions:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            socket = dir.join("no-docker.sock").display().to_string(),
            out = dir.join("out").display().to_string(),
            positions = dir.join("out/positions.json").display().to_string(),
        ),
    )
    .unwrap();
    Command::new(BINARY)
        .args(["run", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn run_serves_endpoints_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port);
    wait_until("/ready", Duration::from_secs(20), || matches!(get(port, "/ready"), Some((200, _))));

    let (status, body) = get(port, "/health").unwrap();
    assert_eq!(status, 503, "docker is unreachable, so not healthy: {body}");
    let (status, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("log_capturer_tasks_alive{kind=\"discovery\"} 1"), "{metrics}");
    assert!(metrics.contains("log_capturer_component_health{component=\"sink\"} 1"), "{metrics}");
    let (status, tasks) = get(port, "/debug/tasks").unwrap();
    assert_eq!(status, 200);
    assert!(tasks.contains("engine/src/agent.rs"), "{tasks}");

    signal(&child, "TERM");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(!stderr.contains("tasks still alive at exit"), "{stderr}");
    assert!(dir.path().join("out/positions.json").exists(), "final commit wrote positions: {stderr}");
}

#[test]
fn a_second_signal_exits_at_once_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(dir.path(), port);
    wait_until("/ready", Duration::from_secs(20), || matches!(get(port, "/ready"), Some((200, _))));
    // A request whose headers never finish keeps the HTTP server's graceful close busy
    // for its grace period (2 s): long enough for a second signal to land mid-shutdown.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stalled, "GET /metrics HTTP/1.1\r\nHost: local").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");
    drop(stalled);
}
