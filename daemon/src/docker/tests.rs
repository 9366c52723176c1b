//! Unit tests of the Docker adapter against a fake engine on a unix socket that checks
//! API versions like Docker does: version negotiation (Docker 29: 1.44..=1.52; Docker
//! 20.10: up to 1.41; too old for us; replaced by a newer engine mid-run), request
//! targets, model mapping, error classes, the bytes of framed and TTY log streams, and
//! that a dropped stream's connection is closed and its tokio tasks are gone. Tests
//! against the real engine live in `tests/tests/e2e.rs`.

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

use super::endpoint::{parse_host, Endpoint, EndpointSettings, EndpointSource, TlsFiles};
use super::version::{self, ApiVersion};
use super::{DockerConfig, DockerEngine};
use crate::rt::TokioRt;

fn test_tasks() -> Tasks {
    Tasks::new(Arc::new(TokioRt::new()))
}

/// What the fake engine answers to one (unversioned) request target.
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

/// The API versions a fake engine speaks: (maximum, minimum), changeable mid-test.
type Versions = Arc<Mutex<(ApiVersion, ApiVersion)>>;

const DOCKER_29: (ApiVersion, ApiVersion) = (ApiVersion::new(1, 52), ApiVersion::new(1, 44));
const DOCKER_20_10: (ApiVersion, ApiVersion) = (ApiVersion::new(1, 41), ApiVersion::new(1, 12));

/// A fake Docker engine: checks versions as Docker's middleware does, answers
/// `/version` and `/_ping` itself, records request targets and counts connections
/// the client closed.
struct FakeDocker {
    dir: PathBuf,
    socket_path: PathBuf,
    versions: Versions,
    targets: Arc<Mutex<Vec<String>>>,
    closed_by_client: Arc<AtomicUsize>,
    /// The accept loop; it owns one task per connection. Dropping it cancels them all.
    /// Spawned on a registry of its own so the adapter's counts stay the adapter's.
    _server: TaskHandle<()>,
}

impl FakeDocker {
    fn start(
        versions: (ApiVersion, ApiVersion),
        responder: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> FakeDocker {
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
        let versions: Versions = Arc::new(Mutex::new(versions));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let responder: Responder = Arc::new(responder);
        let server_tasks = test_tasks();
        let server = server_tasks.clone().spawn(TaskKind::Control, {
            let (targets, closed_by_client, versions) = (targets.clone(), closed_by_client.clone(), versions.clone());
            async move {
                let mut connections = Vec::new();
                loop {
                    let Ok((socket, _)) = listener.accept().await else { return };
                    let (targets, closed_by_client) = (targets.clone(), closed_by_client.clone());
                    let (responder, versions) = (responder.clone(), versions.clone());
                    connections.push(server_tasks.spawn(TaskKind::Connection, async move {
                        serve(socket, &versions, responder, targets).await;
                        closed_by_client.fetch_add(1, Ordering::SeqCst);
                    }));
                }
            }
        });
        FakeDocker { dir, socket_path, versions, targets, closed_by_client, _server: server }
    }

    fn config(&self) -> DockerConfig {
        DockerConfig::for_endpoint(Endpoint::Unix(self.socket_path.clone()))
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }

    fn clear_targets(&self) {
        self.targets.lock().unwrap().clear();
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What Docker's version middleware says to `target`, if it refuses it; the target
/// without its version prefix otherwise.
fn check_version(target: &str, versions: &Versions) -> Result<String, Reply> {
    let (max, min) = *versions.lock().unwrap();
    let Some(rest) = target.strip_prefix("/v") else { return Ok(target.to_owned()) };
    let end = rest.find('/').unwrap_or(rest.len());
    let Some(asked) = ApiVersion::parse(&rest[..end]) else { return Ok(target.to_owned()) };
    let message = if asked < min {
        format!(
            "client version {asked} is too old. Minimum supported API version is {min}, please upgrade your client to a newer version"
        )
    } else if asked > max {
        format!("client version {asked} is too new. Maximum supported API version is {max}")
    } else {
        return Ok(rest[end..].to_owned());
    };
    Err(json(400, &serde_json::json!({ "message": message }).to_string()))
}

/// Serves one request, then waits until the client closes the socket.
async fn serve(
    mut socket: tokio::net::UnixStream,
    versions: &Versions,
    responder: Responder,
    targets: Arc<Mutex<Vec<String>>>,
) {
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
    let reply = match check_version(&target, versions) {
        Err(refusal) => refusal,
        Ok(path) if path == "/version" => {
            let (max, min) = *versions.lock().unwrap();
            let version = if max >= ApiVersion::new(1, 44) { "29.0.0" } else { "20.10.24" };
            json(
                200,
                &format!(r#"{{"Version":"{version}","ApiVersion":"{max}","MinAPIVersion":"{min}","Os":"linux"}}"#),
            )
        }
        Ok(path) if path == "/_ping" => Reply::Full { status: 200, body: b"OK".to_vec() },
        Ok(path) => responder(&path),
    };
    match reply {
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

fn alive_tokio_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![stream, 0, 0, 0];
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

const LIST: &str = r#"[{"Id":"aaa","Names":["/web"],"Image":"nginx:1","Labels":{"a":"1"},"State":"running","Status":"Up"},
    {"Id":"bbb","Names":null,"Image":"x","Labels":null,"State":"exited","Extra":{"k":[1,2]}}]"#;

fn inspect_body(id: &str, tty: bool) -> Reply {
    json(
        200,
        &format!(
            r#"{{"Id":"{id}","Name":"/n-{id}","Image":"sha256:1","Config":{{"Image":"img:{id}","Labels":{{"tier":"db"}},"Tty":{tty}}},"State":{{"Status":"running","Running":true}}}}"#
        ),
    )
}

/// Lists `aaa` (running, no TTY) and `bbb` (exited, TTY); inspects both.
fn two_containers(path: &str) -> Reply {
    match path {
        "/containers/json?all=true&size=false" => json(200, LIST),
        "/containers/aaa/json" => inspect_body("aaa", false),
        "/containers/bbb/json" => inspect_body("bbb", true),
        other => json(404, &format!(r#"{{"message":"page not found: {other}"}}"#)),
    }
}

// ---- pure parts ---------------------------------------------------------------------------

#[test]
fn versions_are_chosen_like_the_docker_cli() {
    let v = |text| ApiVersion::parse(text).unwrap();
    assert_eq!(version::CLIENT_MAX, v("1.53"), "bollard's models; update the docs when this moves");
    assert_eq!(version::choose(Some("1.52"), Some("1.44")), Ok(v("1.52")));
    assert_eq!(version::choose(Some("1.41"), Some("1.12")), Ok(v("1.41")));
    assert_eq!(version::choose(Some("1.60"), Some("1.44")), Ok(version::CLIENT_MAX));
    assert_eq!(version::choose(Some("1.24"), None), Ok(v("1.24")));
    let too_old = version::choose(Some("1.23"), Some("1.12")).unwrap_err();
    assert_eq!(too_old.to_string().matches("1.23").count() + too_old.to_string().matches("1.24").count(), 2);
    assert!(matches!(version::choose(Some("1.70"), Some("1.60")), Err(version::VersionError::EngineTooNew { .. })));
    assert!(matches!(version::choose(Some("x"), None), Err(version::VersionError::Unreadable(_))));
    assert!(v("1.9") < v("1.10"), "numeric, not lexical");
}

#[test]
fn the_version_prefix_is_set_or_removed() {
    let v41 = Some(ApiVersion::new(1, 41));
    assert_eq!(version::with_version("/v1.53/containers/json?all=true", v41), "/v1.41/containers/json?all=true");
    assert_eq!(version::with_version("/containers/json", v41), "/v1.41/containers/json");
    assert_eq!(version::with_version("/v1.53/version", None), "/version");
    assert_eq!(version::with_version("/version", None), "/version");
    assert_eq!(version::with_version("/volumes/v1.2/x", None), "/volumes/v1.2/x");
}

#[test]
fn endpoints_resolve_like_the_docker_cli_with_the_config_first() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    };
    let none = EndpointSettings::default();
    assert_eq!(
        Endpoint::resolve(none, &env(&[])).unwrap(),
        (Endpoint::Unix("/var/run/docker.sock".into()), EndpointSource::Default)
    );
    assert_eq!(
        Endpoint::resolve(none, &env(&[("DOCKER_HOST", "tcp://10.0.0.5")])).unwrap(),
        (Endpoint::Tcp { address: "10.0.0.5:2375".into(), tls: None }, EndpointSource::DockerHostEnv)
    );
    let tls_env =
        env(&[("DOCKER_HOST", "tcp://docker:2376"), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", "/certs")]);
    assert_eq!(
        Endpoint::resolve(none, &tls_env).unwrap().0,
        Endpoint::Tcp { address: "docker:2376".into(), tls: Some(TlsFiles::in_dir("/certs".as_ref())) }
    );
    let home = env(&[("DOCKER_HOST", "tcp://docker"), ("DOCKER_TLS_VERIFY", "1"), ("HOME", "/home/u")]);
    assert_eq!(
        Endpoint::resolve(none, &home).unwrap().0,
        Endpoint::Tcp { address: "docker:2376".into(), tls: Some(TlsFiles::in_dir("/home/u/.docker".as_ref())) }
    );
    // The config wins over the environment, and its TLS comes from the config only.
    let config = EndpointSettings { host: Some("unix:///run/podman/podman.sock"), ..none };
    assert_eq!(
        Endpoint::resolve(config, &tls_env).unwrap(),
        (Endpoint::Unix("/run/podman/podman.sock".into()), EndpointSource::ConfigHost)
    );
    let socket = EndpointSettings { socket: Some("/x.sock".as_ref()), ..none };
    assert_eq!(
        Endpoint::resolve(socket, &tls_env).unwrap(),
        (Endpoint::Unix("/x.sock".into()), EndpointSource::ConfigSocket)
    );
    assert!(Endpoint::resolve(none, &env(&[("DOCKER_HOST", "ssh://me@box")]))
        .unwrap_err()
        .starts_with("DOCKER_HOST: "));
    assert_eq!(parse_host("tcp://[::1]:2376", None), Ok(Endpoint::Tcp { address: "[::1]:2376".into(), tls: None }));
    assert_eq!(parse_host("tcp://[::1]", None), Ok(Endpoint::Tcp { address: "[::1]:2375".into(), tls: None }));
    assert!(parse_host("unix://relative.sock", None).is_err());
    assert!(parse_host("tcp://host:99999", None).is_err());
}

#[test]
fn a_paused_container_runs_for_the_list_as_for_inspect() {
    let state = |state: &str| {
        let json = format!(r#"{{"Id":"ppp","Names":["/p"],"Image":"x","State":"{state}"}}"#);
        super::api::from_summary(serde_json::from_str(&json).unwrap()).unwrap().running
    };
    assert!(state("running") && state("paused"));
    assert!(!state("exited") && !state("created"));
}

// ---- against the fake engine ----------------------------------------------------------

#[tokio::test]
async fn negotiates_with_docker_29_and_collects() {
    let fake = FakeDocker::start(DOCKER_29, |path| match path {
        "/containers/aaa/logs?follow=false&stdout=true&stderr=true&since=0&until=0&timestamps=true&tail=all" => {
            Reply::Chunks { chunks: vec![frame(1, b"2026-11-22T19:35:40.123456789Z hello\n")], hold: false }
        }
        other => two_containers(other),
    });
    let docker = DockerEngine::new(test_tasks(), fake.config());
    let containers = docker.list().await.unwrap();
    assert_eq!(docker.negotiated_version(), Some(ApiVersion::new(1, 52)));
    assert_eq!(
        fake.targets(),
        [
            "/version",
            "/v1.52/containers/json?all=true&size=false",
            "/v1.52/containers/aaa/json",
            "/v1.52/containers/bbb/json"
        ]
    );
    assert_eq!(containers.len(), 2);
    let (web, other) = (&containers[0], &containers[1]);
    assert_eq!(
        (web.id.as_str(), &*web.name, &*web.image, web.running, web.tty),
        ("aaa", "web", "nginx:1", true, false)
    );
    assert_eq!(web.labels.get("a").map(String::as_str), Some("1"));
    assert_eq!((&*other.name, other.labels.is_empty(), other.running, other.tty), ("", true, false, true));

    // The TTY flag is remembered: a second list inspects nothing.
    fake.clear_targets();
    assert_eq!(docker.list().await.unwrap(), containers);
    assert_eq!(fake.targets(), ["/v1.52/containers/json?all=true&size=false"]);

    let options = LogOptions { follow: false, since_secs: 0, tail: None };
    let chunks: Vec<_> = docker.logs(&ContainerId::new("aaa"), options).await.unwrap().collect().await;
    assert_eq!(chunks, [Ok(bytes::Bytes::from(frame(1, b"2026-11-22T19:35:40.123456789Z hello\n")))]);
    let version = docker.version().await.unwrap();
    assert_eq!(
        (version.version.as_str(), version.api_version.as_str(), version.min_api_version.as_str()),
        ("29.0.0", "1.52", "1.44")
    );
}

#[tokio::test]
async fn an_engine_at_1_41_is_spoken_to_at_1_41() {
    let fake = FakeDocker::start(DOCKER_20_10, two_containers);
    let docker = DockerEngine::new(test_tasks(), fake.config());
    assert_eq!(docker.list().await.unwrap().len(), 2);
    assert_eq!(docker.negotiated_version(), Some(ApiVersion::new(1, 41)));
    assert!(fake.targets().iter().skip(1).all(|target| target.starts_with("/v1.41/")), "{:?}", fake.targets());
}

#[tokio::test]
async fn an_engine_too_old_is_unavailable_naming_both_versions_and_asked_again() {
    let fake = FakeDocker::start((ApiVersion::new(1, 23), ApiVersion::new(1, 12)), two_containers);
    let docker = DockerEngine::new(test_tasks(), fake.config());
    for _ in 0..2 {
        match docker.list().await {
            Err(EngineError::Unavailable(message)) => {
                assert!(message.contains("1.23") && message.contains("1.24"), "{message}")
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    assert_eq!(docker.negotiated_version(), None);
    assert_eq!(fake.targets(), ["/version", "/version"], "retried, never spoken to at a version it lacks");
}

#[tokio::test]
async fn an_engine_replaced_by_docker_29_is_renegotiated() {
    let fake = FakeDocker::start(DOCKER_20_10, two_containers);
    let docker = DockerEngine::new(test_tasks(), fake.config());
    assert!(docker.list().await.is_ok());
    assert_eq!(docker.negotiated_version(), Some(ApiVersion::new(1, 41)));
    *fake.versions.lock().unwrap() = DOCKER_29;
    fake.clear_targets();
    // Docker's exact refusal, a protocol error; the session is forgotten ...
    match docker.list().await {
        Err(EngineError::Protocol(message)) => assert!(
            message.contains(
                "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version"
            ),
            "{message}"
        ),
        other => panic!("expected Docker's refusal, got {other:?}"),
    }
    assert_eq!(docker.negotiated_version(), None);
    // ... and the next call negotiates again.
    assert!(docker.list().await.is_ok());
    assert_eq!(docker.negotiated_version(), Some(ApiVersion::new(1, 52)));
    assert_eq!(
        fake.targets(),
        ["/v1.41/containers/json?all=true&size=false", "/version", "/v1.52/containers/json?all=true&size=false"]
    );
}

#[tokio::test]
async fn inspect_statuses_map_to_error_classes() {
    let fake = FakeDocker::start(DOCKER_29, |path| match path {
        "/containers/abc/json" => inspect_body("abc", false),
        "/containers/gone/json" => json(404, r#"{"message":"No such container: gone"}"#),
        "/containers/broken/json" => json(500, r#"{"message":"boom"}"#),
        "/containers/garbled/json" => json(200, "{not json"),
        _ => json(400, r#"{"message":"bad request"}"#),
    });
    let docker = DockerEngine::new(test_tasks(), fake.config());
    let info = docker.inspect(&ContainerId::new("abc")).await.unwrap();
    assert_eq!(
        (info.id.as_str(), &*info.name, &*info.image, info.running, info.tty),
        ("abc", "n-abc", "img:abc", true, false)
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
    // A 404 on a request that is not about one container is not "no such container".
    let fake_404 = FakeDocker::start(DOCKER_29, |_| json(404, r#"{"message":"page not found"}"#));
    let docker = DockerEngine::new(test_tasks(), fake_404.config());
    assert!(matches!(docker.list().await, Err(EngineError::Protocol(_))));
}

#[tokio::test]
async fn unreachable_or_silent_engine_is_unavailable() {
    let missing =
        DockerConfig::for_endpoint(Endpoint::Unix(std::env::temp_dir().join("log-capturer-no-such-socket.sock")));
    let docker = DockerEngine::new(test_tasks(), missing);
    assert!(matches!(docker.list().await, Err(EngineError::Unavailable(_))));
    assert!(matches!(docker.ping().await, Err(EngineError::Unavailable(_))));
    let tcp = DockerConfig::for_endpoint(Endpoint::Tcp { address: "127.0.0.1:9".into(), tls: None });
    assert!(matches!(DockerEngine::new(test_tasks(), tcp).list().await, Err(EngineError::Unavailable(_))));

    let fake = FakeDocker::start(DOCKER_29, |_| Reply::Silent);
    let docker = DockerEngine::new(test_tasks(), fake.config());
    // Negotiated; then the engine stops answering.
    assert!(docker.ping().await.is_ok());
    let config = DockerConfig { header_timeout: Duration::from_secs(1), ..fake.config() };
    let docker = DockerEngine::new(test_tasks(), config);
    docker.ping().await.unwrap();
    let mut stream =
        docker.logs(&ContainerId::new("c"), LogOptions { follow: true, since_secs: 0, tail: None }).await.unwrap();
    assert!(matches!(stream.next().await, Some(Err(EngineError::Unavailable(_)))));
    assert!(stream.next().await.is_none());
    assert_eq!(docker.negotiated_version(), None, "an unanswered request forgets the session");
}

#[tokio::test]
async fn events_survive_any_chunking_and_their_end_renegotiates() {
    let lines = [
        r#"{"status":"create","id":"c1","Type":"container","Action":"create","Actor":{"ID":"c1","Attributes":{"name":"web","log-capturer":"yes"}}}"#,
        r#"{"status":"exec_start: sh -c date","id":"c1","Type":"container","Action":"exec_start: sh -c date","Actor":{"ID":"c1","Attributes":{}}}"#,
        r#"{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}}}"#,
        r#"{"Type":"network","Action":"connect","Actor":{"ID":"n1","Attributes":{"container":"c1"}}}"#,
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
    let fake = FakeDocker::start(DOCKER_29, move |_| Reply::Chunks { chunks: chunks.clone(), hold: false });
    let docker = DockerEngine::new(test_tasks(), fake.config());
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
    let targets = fake.targets();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0], "/version");
    let (since, filters) = targets[1]
        .strip_prefix("/v1.52/events?since=")
        .and_then(|rest| rest.split_once('&'))
        .unwrap_or_else(|| panic!("{targets:?}"));
    assert_eq!(filters, "filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
    let since: f64 = since.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 60.0..now).contains(&since), "events since {since}, now {now}");
    assert_eq!(docker.negotiated_version(), None, "the events stream ended: the engine may have restarted");
}

#[tokio::test]
async fn log_streams_are_dockers_bytes_framed_or_tty_in_any_chunking() {
    let framed = [
        frame(1, b"2026-11-22T19:35:40.123456789Z hello\n"),
        frame(2, b"2026-11-22T19:35:40.223456789Z oops\n"),
        frame(1, &[b'x'; 20_000]),
    ]
    .concat();
    let tty = b"2026-11-22T19:35:40.123456789Z one\r\n2026-11-22T19:35:40.223456789Z \x01two\r\n2026-11-22T19:35:41.000000000Z three\n"
        .to_vec();
    // Cut anywhere (headers and lines split), in few enough pieces that the fake's 5 ms
    // per chunk stays short.
    let cut = |bytes: &[u8], size: usize| -> Vec<Vec<u8>> { bytes.chunks(size).map(<[u8]>::to_vec).collect() };
    let (framed_chunks, tty_chunks) = (cut(&framed, 997), cut(&tty, 7));
    let fake = FakeDocker::start(DOCKER_29, move |path| {
        if path.starts_with("/containers/framed/logs") {
            Reply::Chunks { chunks: framed_chunks.clone(), hold: false }
        } else {
            Reply::Chunks { chunks: tty_chunks.clone(), hold: false }
        }
    });
    let docker = DockerEngine::new(test_tasks(), fake.config());
    let options = LogOptions { follow: true, since_secs: 1_700_000_000, tail: Some(10) };
    for (id, expected) in [("framed", &framed), ("tty", &tty)] {
        let chunks: Vec<_> = docker.logs(&ContainerId::new(id), options).await.unwrap().collect().await;
        let received: Vec<u8> = chunks.into_iter().flat_map(|chunk| chunk.unwrap()).collect();
        assert_eq!(&received, expected, "{id}");
    }
    assert_eq!(
        fake.targets()[1],
        "/v1.52/containers/framed/logs?follow=true&stdout=true&stderr=true&since=1700000000&until=0&timestamps=true&tail=10"
    );
}

#[tokio::test]
async fn dropping_a_log_stream_closes_its_connection_and_ends_its_tasks() {
    let first = frame(1, b"2026-11-22T19:35:40.123456789Z hello\n");
    let chunks = vec![first.clone()];
    let fake = FakeDocker::start(DOCKER_29, move |_| Reply::Chunks { chunks: chunks.clone(), hold: true });
    let docker = DockerEngine::new(test_tasks(), fake.config());
    docker.ping().await.unwrap();
    eventually("negotiation connections closed", || fake.closed_by_client.load(Ordering::SeqCst) == 2).await;
    let baseline = alive_tokio_tasks();
    for cycle in 1..=20 {
        let mut stream =
            docker.logs(&ContainerId::new("c1"), LogOptions { follow: true, since_secs: 0, tail: None }).await.unwrap();
        if cycle % 2 == 0 {
            assert_eq!(stream.next().await.unwrap().unwrap(), first);
            assert!(alive_tokio_tasks() > baseline, "a connection task and the fake's serving task");
        }
        drop(stream);
    }
    // A stream dropped before its first poll never connected (bollard sends on the first
    // poll); each of the ten read ones had its own connection, closed on drop.
    eventually("every connection closed by the client", || fake.closed_by_client.load(Ordering::SeqCst) == 2 + 10)
        .await;
    assert_eq!(fake.targets().len(), 2 + 10);
    eventually("tokio tasks back at the baseline", || alive_tokio_tasks() == baseline).await;
}

#[tokio::test]
async fn a_log_stream_of_a_removed_container_just_ends() {
    let fake = FakeDocker::start(DOCKER_29, |_| json(404, r#"{"message":"No such container: gone"}"#));
    let docker = DockerEngine::new(test_tasks(), fake.config());
    let options = LogOptions { follow: false, since_secs: 0, tail: None };
    let chunks: Vec<_> = docker.logs(&ContainerId::new("gone"), options).await.unwrap().collect().await;
    assert!(chunks.is_empty(), "{chunks:?}");
    assert_eq!(docker.negotiated_version(), Some(ApiVersion::new(1, 52)), "a 404 keeps the session");
}
