//! Unit tests of the Docker adapter against a fake engine on a unix socket: request
//! paths, JSON mapping, error classes, chunking of the events stream, and that every
//! connection task and socket is gone once a call returns or a stream is dropped.
//! Tests against the real engine live in `tests/tests/e2e.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::model::ContainerId;
use engine::port::docker::{ContainerEngine, ContainerEventKind, EngineError, LogOptions};
use engine::task::{TaskHandle, TaskKind, Tasks};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::{api, DockerConfig, DockerEngine};
use crate::rt::TokioRt;

fn test_tasks() -> Tasks {
    Tasks::new(Arc::new(TokioRt::new()))
}

/// What the fake engine answers to one request target.
enum Reply {
    Full {
        status: u16,
        body: Vec<u8>,
    },
    /// A chunked 200 response; with `hold`, the body never ends.
    Chunks {
        chunks: Vec<Vec<u8>>,
        hold: bool,
    },
    /// Accept, read the request, answer nothing.
    Silent,
}

type Responder = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A fake Docker engine: records request targets and counts connections the client
/// closed.
struct FakeDocker {
    dir: PathBuf,
    socket_path: PathBuf,
    targets: Arc<Mutex<Vec<String>>>,
    closed_by_client: Arc<AtomicUsize>,
    /// The accept loop; it owns one task per connection. Dropping it cancels them all.
    /// Spawned on a registry of its own so the adapter's counts stay the adapter's.
    _server: TaskHandle<()>,
}

impl FakeDocker {
    fn start(responder: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeDocker {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "log-capturer-fake-docker-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket_path = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket_path).unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let responder: Responder = Arc::new(responder);
        let server_tasks = test_tasks();
        let server = server_tasks.clone().spawn(TaskKind::Control, {
            let targets = targets.clone();
            let closed_by_client = closed_by_client.clone();
            async move {
                let mut connections = Vec::new();
                loop {
                    let Ok((socket, _)) = listener.accept().await else { return };
                    let targets = targets.clone();
                    let closed_by_client = closed_by_client.clone();
                    let responder = responder.clone();
                    connections.push(server_tasks.spawn(TaskKind::Connection, async move {
                        serve(socket, responder, targets).await;
                        closed_by_client.fetch_add(1, Ordering::SeqCst);
                    }));
                }
            }
        });
        FakeDocker { dir, socket_path, targets, closed_by_client, _server: server }
    }

    fn config(&self) -> DockerConfig {
        DockerConfig { socket_path: self.socket_path.clone(), ..DockerConfig::default() }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves one request, then waits until the client closes the socket.
async fn serve(mut socket: tokio::net::UnixStream, responder: Responder, targets: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
    targets.lock().unwrap().push(target.clone());
    match responder(&target) {
        Reply::Full { status, body } => {
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
        }
        Reply::Chunks { chunks, hold } => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            for chunk in chunks {
                let _ = socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await;
                let _ = socket.write_all(&chunk).await;
                let _ = socket.write_all(b"\r\n").await;
                let _ = socket.flush().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if !hold {
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
        }
        Reply::Silent => {}
    }
    let mut sink = [0u8; 1024];
    while let Ok(read) = socket.read(&mut sink).await {
        if read == 0 {
            break;
        }
    }
}

fn json(status: u16, body: &str) -> Reply {
    Reply::Full { status, body: body.as_bytes().to_vec() }
}

/// Polls `condition` every 5 ms for at most 5 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not within 5 s: {what}");
}

#[test]
fn paths_are_versioned_and_encoded() {
    let id = ContainerId::new("abc123");
    assert_eq!(api::list_path(), "/v1.41/containers/json?all=1");
    assert_eq!(api::inspect_path(&id), "/v1.41/containers/abc123/json");
    assert_eq!(api::inspect_path(&ContainerId::new("a b/c")), "/v1.41/containers/a%20b%2Fc/json");
    assert_eq!(api::events_path(), "/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
    assert_eq!(
        api::logs_path(&id, LogOptions { follow: true, since_secs: 1_700_000_000, tail: None }),
        "/v1.41/containers/abc123/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=1700000000"
    );
    assert_eq!(
        api::logs_path(&id, LogOptions { follow: false, since_secs: 0, tail: Some(3) }),
        "/v1.41/containers/abc123/logs?follow=0&stdout=1&stderr=1&timestamps=1&since=0&tail=3"
    );
}

#[test]
fn events_map_known_actions_and_skip_the_rest() {
    let start = br#"{"status":"start","id":"c1","from":"img","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"img","name":"web"}},"scope":"local","time":1,"timeNano":1}"#;
    let event = api::parse_event(start).unwrap().unwrap();
    assert_eq!(event.kind, ContainerEventKind::Start);
    assert_eq!(event.id.as_str(), "c1");
    assert_eq!(event.attributes.get("name").map(String::as_str), Some("web"));

    let exec = br#"{"status":"exec_start: sh -c true","id":"c1","Type":"container","Action":"exec_start: sh -c true","Actor":{"ID":"c1","Attributes":{}}}"#;
    assert_eq!(api::parse_event(exec).unwrap(), None);
    let network = br#"{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"c1"}}}"#;
    assert_eq!(api::parse_event(network).unwrap(), None);
    // Old engines: no Actor, only status and id.
    let old = br#"{"status":"die","id":"c2"}"#;
    let event = api::parse_event(old).unwrap().unwrap();
    assert_eq!((event.kind, event.id.as_str()), (ContainerEventKind::Die, "c2"));

    assert!(matches!(api::parse_event(b"{nope"), Err(EngineError::Protocol(_))));
    assert!(matches!(api::parse_event(br#"{"Type":"container","Action":"start"}"#), Err(EngineError::Protocol(_))));
}

#[tokio::test]
async fn list_maps_containers_and_joins_its_connection() {
    let fake = FakeDocker::start(|_| {
        json(
            200,
            r#"[{"Id":"aaa","Names":["/web"],"Image":"nginx:1","Labels":{"a":"1"},"State":"running","Status":"Up"},
                {"Id":"bbb","Names":null,"Image":"x","Labels":null,"State":"exited","Extra":{"k":[1,2]}}]"#,
        )
    });
    let tasks = test_tasks();
    let docker = DockerEngine::new(tasks.clone(), fake.config());
    let containers = docker.list().await.unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].id.as_str(), "aaa");
    assert_eq!(containers[0].name, "web");
    assert_eq!(containers[0].image, "nginx:1");
    assert_eq!(containers[0].labels.get("a").map(String::as_str), Some("1"));
    assert!(containers[0].running);
    assert_eq!(containers[1].name, "");
    assert!(containers[1].labels.is_empty());
    assert!(!containers[1].running);
    assert_eq!(fake.targets(), ["/v1.41/containers/json?all=1"]);
    // Joined before `list` returned: not "eventually", right now.
    assert_eq!(tasks.registry().spawned(TaskKind::Connection), 1);
    assert_eq!(tasks.registry().alive(TaskKind::Connection), 0);
    eventually("server saw the socket closed", || fake.closed_by_client.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn inspect_statuses_map_to_error_classes() {
    let fake = FakeDocker::start(|target| match target {
        "/v1.41/containers/abc/json" => json(
            200,
            r#"{"Id":"abc","Name":"/db","Image":"sha256:1","Config":{"Image":"postgres:16","Labels":{"tier":"db"}},"State":{"Status":"running","Running":true}}"#,
        ),
        "/v1.41/containers/gone/json" => json(404, r#"{"message":"No such container: gone"}"#),
        "/v1.41/containers/broken/json" => json(500, r#"{"message":"boom"}"#),
        "/v1.41/containers/garbled/json" => json(200, "{not json"),
        _ => json(400, r#"{"message":"bad request"}"#),
    });
    let tasks = test_tasks();
    let docker = DockerEngine::new(tasks.clone(), fake.config());
    let info = docker.inspect(&ContainerId::new("abc")).await.unwrap();
    assert_eq!(
        (info.id.as_str(), info.name.as_str(), info.image.as_str(), info.running),
        ("abc", "db", "postgres:16", true)
    );
    assert_eq!(info.labels.get("tier").map(String::as_str), Some("db"));
    assert_eq!(docker.inspect(&ContainerId::new("gone")).await, Err(EngineError::NotFound("gone".into())));
    assert!(matches!(
        docker.inspect(&ContainerId::new("broken")).await,
        Err(EngineError::Unavailable(message)) if message.contains("boom")
    ));
    assert!(matches!(docker.inspect(&ContainerId::new("garbled")).await, Err(EngineError::Protocol(_))));
    assert!(matches!(
        docker.inspect(&ContainerId::new("other")).await,
        Err(EngineError::Protocol(message)) if message.contains("bad request")
    ));
    assert_eq!(tasks.registry().spawned(TaskKind::Connection), 5);
    assert_eq!(tasks.registry().alive(TaskKind::Connection), 0);
    // A 404 on a request that is not about one container is not "no such container".
    let fake_404 = FakeDocker::start(|_| json(404, r#"{"message":"page not found"}"#));
    let docker = DockerEngine::new(tasks.clone(), fake_404.config());
    assert!(matches!(docker.list().await, Err(EngineError::Protocol(_))));
}

#[tokio::test]
async fn unreachable_or_silent_engine_is_unavailable() {
    let tasks = test_tasks();
    let missing = DockerConfig {
        socket_path: std::env::temp_dir().join("log-capturer-no-such-socket.sock"),
        ..DockerConfig::default()
    };
    let docker = DockerEngine::new(tasks.clone(), missing);
    assert!(matches!(docker.list().await, Err(EngineError::Unavailable(_))));
    assert!(matches!(docker.ping().await, Err(EngineError::Unavailable(_))));
    assert_eq!(tasks.registry().spawned(TaskKind::Connection), 0);

    let fake = FakeDocker::start(|_| Reply::Silent);
    let config = DockerConfig { header_timeout: Duration::from_millis(200), ..fake.config() };
    let docker = DockerEngine::new(tasks.clone(), config);
    let opened = docker.logs(&ContainerId::new("c"), LogOptions { follow: true, since_secs: 0, tail: None });
    assert!(matches!(opened.await, Err(EngineError::Unavailable(message)) if message.contains("no response headers")));
    assert_eq!(tasks.registry().alive(TaskKind::Connection), 0);
    eventually("server saw the socket closed", || fake.closed_by_client.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn oversized_answer_is_a_protocol_error() {
    let fake = FakeDocker::start(|_| json(200, &format!("[{}]", " ".repeat(4096))));
    let tasks = test_tasks();
    let config = DockerConfig { response_bytes_max: 1024, ..fake.config() };
    let docker = DockerEngine::new(tasks.clone(), config);
    assert!(matches!(docker.list().await, Err(EngineError::Protocol(message)) if message.contains("larger")));
    assert_eq!(tasks.registry().alive(TaskKind::Connection), 0);
}

#[tokio::test]
async fn events_survive_any_chunking() {
    let lines = [
        r#"{"status":"create","id":"c1","Type":"container","Action":"create","Actor":{"ID":"c1","Attributes":{"name":"web","log-capturer":"yes"}}}"#,
        r#"{"status":"exec_start: sh -c date","id":"c1","Type":"container","Action":"exec_start: sh -c date","Actor":{"ID":"c1","Attributes":{}}}"#,
        r#"{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}}}"#,
        r#"{"status":"kill","id":"c1","Type":"container","Action":"kill","Actor":{"ID":"c1","Attributes":{"signal":"15"}}}"#,
        r#"{"status":"die","id":"c1","Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"0"}}}"#,
        r#"{"Type":"container","Action":"rename","Actor":{"ID":"c1","Attributes":{"name":"web2","oldName":"/web"}}}"#,
        r#"{"status":"destroy","id":"c1","Type":"container","Action":"destroy","Actor":{"ID":"c1","Attributes":{}}}"#,
    ];
    let all: Vec<u8> = lines.iter().flat_map(|line| format!("{line}\n").into_bytes()).collect();
    // Cut at awkward places: inside a line, right after a newline, one byte at a time.
    let mut chunks = vec![all[..7].to_vec(), all[7..8].to_vec()];
    let mut rest = &all[8..];
    let mut size = 1;
    while !rest.is_empty() {
        let take = size.min(rest.len());
        chunks.push(rest[..take].to_vec());
        rest = &rest[take..];
        size = size * 3 + 1;
    }
    let fake = FakeDocker::start(move |_| Reply::Chunks { chunks: chunks.clone(), hold: false });
    let tasks = test_tasks();
    let docker = DockerEngine::new(tasks.clone(), fake.config());
    let events: Vec<_> = docker.events().await.unwrap().collect().await;
    let kinds: Vec<_> = events.iter().map(|event| event.as_ref().unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            ContainerEventKind::Create,
            ContainerEventKind::Start,
            ContainerEventKind::Die,
            ContainerEventKind::Rename,
            ContainerEventKind::Destroy
        ]
    );
    let create = events[0].as_ref().unwrap();
    assert_eq!(create.attributes.get("log-capturer").map(String::as_str), Some("yes"));
    let rename = events[3].as_ref().unwrap();
    assert_eq!(rename.attributes.get("oldName").map(String::as_str), Some("/web"));
    assert_eq!(fake.targets(), ["/v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D"]);
    eventually("connection task ended", || tasks.registry().alive(TaskKind::Connection) == 0).await;
}

#[tokio::test]
async fn an_overlong_event_line_ends_the_stream_with_a_protocol_error() {
    let fake = FakeDocker::start(|_| Reply::Chunks { chunks: vec![vec![b'{'; 300]], hold: true });
    let tasks = test_tasks();
    let config = DockerConfig { event_line_bytes_max: 100, ..fake.config() };
    let docker = DockerEngine::new(tasks.clone(), config);
    let mut events = docker.events().await.unwrap();
    assert!(matches!(events.next().await, Some(Err(EngineError::Protocol(_)))));
    assert!(events.next().await.is_none());
    drop(events);
    eventually("connection task ended", || tasks.registry().alive(TaskKind::Connection) == 0).await;
}

#[tokio::test]
async fn dropping_a_log_stream_releases_its_connection() {
    let frame = |stream: u8, payload: &[u8]| {
        let mut bytes = vec![stream, 0, 0, 0];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    };
    let first = frame(1, b"2026-11-22T19:35:40.123456789Z hello\n");
    let second = frame(2, b"2026-11-22T19:35:40.223456789Z oops\n");
    let chunks = vec![first.clone(), second.clone()];
    let fake = FakeDocker::start(move |_| Reply::Chunks { chunks: chunks.clone(), hold: true });
    let tasks = test_tasks();
    let docker = DockerEngine::new(tasks.clone(), fake.config());
    let options = LogOptions { follow: true, since_secs: 1_700_000_000, tail: Some(10) };
    let mut stream = docker.logs(&ContainerId::new("c1"), options).await.unwrap();
    let mut received = Vec::new();
    while received.len() < first.len() + second.len() {
        received.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    assert_eq!(received, [first, second].concat());
    assert_eq!(
        fake.targets(),
        ["/v1.41/containers/c1/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=1700000000&tail=10"]
    );
    assert_eq!(tasks.registry().alive(TaskKind::Connection), 1);
    assert_eq!(fake.closed_by_client.load(Ordering::SeqCst), 0);
    drop(stream);
    eventually("connection task ended", || tasks.registry().alive(TaskKind::Connection) == 0).await;
    eventually("server saw the socket closed", || fake.closed_by_client.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_log_stream_ends_when_the_body_ends_and_404_is_not_found() {
    let fake = FakeDocker::start(|target| {
        if target.contains("/gone/") {
            json(404, r#"{"message":"No such container: gone"}"#)
        } else {
            Reply::Chunks { chunks: vec![b"abc".to_vec()], hold: false }
        }
    });
    let tasks = test_tasks();
    let docker = DockerEngine::new(tasks.clone(), fake.config());
    let options = LogOptions { follow: false, since_secs: 0, tail: None };
    let chunks: Vec<_> = docker.logs(&ContainerId::new("c1"), options).await.unwrap().collect().await;
    assert_eq!(chunks, [Ok(bytes::Bytes::from_static(b"abc"))]);
    assert_eq!(docker.logs(&ContainerId::new("gone"), options).await.err(), Some(EngineError::NotFound("gone".into())));
    eventually("connection tasks ended", || tasks.registry().alive(TaskKind::Connection) == 0).await;
}
