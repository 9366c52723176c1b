//! The endpoints over real HTTP on 127.0.0.1, the metric names (insta snapshot of the
//! `# TYPE` lines), and Debian's `promtool check metrics` on real `/metrics` output.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use engine::task::TaskKind;
use engine::telemetry::{events, Component, DropReason, SinkStatus};

use super::server::HttpServer;
use super::*;

async fn start() -> (Arc<HttpState>, HttpServer) {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    let telemetry = Arc::new(Telemetry::default());
    let state = HttpState::new(telemetry, tasks.clone());
    let server = HttpServer::bind(&tasks, SocketAddr::from(([127, 0, 0, 1], 0)), handler(state.clone())).await.unwrap();
    (state, server)
}

async fn get(server: &HttpServer, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", server.local_addr());
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn busy_telemetry(telemetry: &Telemetry) {
    events::LinesRead { lines: 10, bytes: 1000, ..Default::default() }.emit(telemetry);
    events::LinesDelivered { lines: 8, bytes: 800 }.emit(telemetry);
    events::SinkResponded { status: SinkStatus::Ok, elapsed: Duration::from_millis(30) }.emit(telemetry);
    events::SinkResponded { status: SinkStatus::Retry, elapsed: Duration::from_secs(60) }.emit(telemetry);
    let dropped = events::LinesDropped { reason: DropReason::SinkRejected, lines: 2, detail: "test" };
    dropped.emit(telemetry, engine::rt::Instant::ZERO);
    events::ComponentStarted { component: Component::Sink }.emit(telemetry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_and_types() {
    let (state, server) = start().await;
    busy_telemetry(&state.telemetry);
    let (status, body) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    let types: Vec<&str> = body.lines().filter(|line| line.starts_with("# TYPE ")).collect();
    insta::assert_snapshot!("metric_types", types.join("\n"));
    assert!(body.contains("log_capturer_tasks_alive{kind=\"http\"} "), "{body}");
    assert!(body.contains("log_capturer_lines_dropped_total{reason=\"sink_rejected\"} 2"), "{body}");
    assert!(body.contains("log_capturer_batch_send_seconds_bucket{le=\"+Inf\"} 2"), "{body}");
    assert!(body.contains("log_capturer_component_health{component=\"sink\"} 1"), "{body}");
    // The compatibility gauge for the predecessor's dashboards, and the process collector.
    assert!(body.contains("\nlog_capturer_goroutines "), "{body}");
    for name in
        ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"]
    {
        assert!(body.contains(&format!("\n{name} ")), "{name} missing:\n{body}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics() {
    let (state, server) = start().await;
    busy_telemetry(&state.telemetry);
    let (_, body) = get(&server, "/metrics").await;
    server.shutdown().await;

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(error) => {
            let ci = std::env::var("CI").is_ok_and(|value| value == "true");
            assert!(!ci, "promtool is required in CI (apt-get install -y prometheus): {error}");
            eprintln!("SKIP promtool_accepts_metrics: promtool not found ({error}); apt-get install -y prometheus");
            return;
        }
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}\n---\n{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_debug_and_not_found() {
    let (state, server) = start().await;
    let (status, body) = get(&server, "/health").await;
    assert_eq!(status, 503, "{body}");
    for component in Component::ALL {
        state.telemetry.health(component).set_up();
    }
    assert_eq!(get(&server, "/health").await.0, 200);

    assert_eq!(get(&server, "/ready").await.0, 503);
    state.set_ready(true);
    assert_eq!(get(&server, "/ready").await, (200, "ready\n".to_string()));

    let (status, text) = get(&server, "/debug/tasks").await;
    assert_eq!(status, 200);
    assert!(text.contains("http") && text.contains("daemon/src/http/server.rs"), "{text}");
    let (status, json) = get(&server, "/debug/tasks?format=json").await;
    assert_eq!(status, 200);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(parsed["by_kind"]["http"]["alive"].as_u64().unwrap() >= 1, "{json}");

    assert_eq!(get(&server, "/nope").await.0, 404);
    let registry = state.tasks.registry().clone();
    server.shutdown().await;
    assert_eq!(registry.alive(TaskKind::Http), 0, "accept loop and connections joined");
}
