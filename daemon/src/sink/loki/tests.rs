//! Loki transport against a scripted HTTP server on 127.0.0.1: the outcome of each
//! status, the headers sent, and the body decoded back with the engine's decoder.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use engine::task::Tasks;
use engine::telemetry::DropReason;
use http_body_util::BodyExt;

use super::*;
use crate::config::{Config, Secret, SinkChoice};
use crate::http::server::{respond, Handler, HttpServer};
use crate::rt::TokioRt;

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

/// One scripted answer: status, extra headers, body, delay before answering.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
    delay: Duration,
}

fn answer(status: u16) -> Answer {
    Answer { status, headers: Vec::new(), body: "", delay: Duration::ZERO }
}

struct Scripted {
    server: HttpServer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn scripted_loki(tasks: &Tasks, answers: Vec<Answer>) -> Scripted {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(answers)));
    let handler: Handler = {
        let seen = seen.clone();
        Arc::new(move |request: hyper::Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            let next = script.lock().unwrap().pop_front().unwrap_or_else(|| answer(500));
            Box::pin(async move {
                let path = request.uri().path().to_string();
                let headers = request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_string()))
                    .collect();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                seen.lock().unwrap().push(Seen { path, headers, body });
                tokio::time::sleep(next.delay).await;
                let mut response = respond(next.status, "text/plain", next.body);
                for (name, value) in next.headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            })
        })
    };
    let server = HttpServer::bind(tasks, SocketAddr::from(([127, 0, 0, 1], 0)), handler).await.unwrap();
    Scripted { server, seen }
}

fn batch() -> Arc<Batch> {
    crate::sink::test_batch()
}

fn loki_config(extra: &str, addr: SocketAddr) -> LokiSink {
    let text = format!("[sinks.loki]\nurl = \"http://{addr}\"\ntimeout = \"300ms\"\n{extra}");
    match Config::parse(&text).unwrap().sink() {
        SinkChoice::Loki(loki) => *loki,
        other => panic!("expected loki, got {other:?}"),
    }
}

fn transport(tasks: &Tasks, config: &LokiSink, auth: Option<Auth>) -> LokiTransport {
    LokiTransport::new(config, auth, tasks.rt().clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_to_outcomes() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    let mut with_retry_after = answer(429);
    with_retry_after.headers.push(("retry-after", "7".to_string()));
    let mut not_loki = answer(400);
    not_loki.body = "snappy: corrupt input";
    let mut forbidden = answer(403);
    forbidden.headers.push(("retry-after", "3".to_string()));
    let loki = scripted_loki(
        &tasks,
        vec![
            answer(204),
            answer(200),
            with_retry_after,
            answer(429),
            answer(500),
            answer(503),
            answer(413),
            not_loki,
            answer(401),
            forbidden,
            answer(404),
            answer(422),
        ],
    )
    .await;
    let sink = transport(&tasks, &loki_config("", loki.server.local_addr()), None);
    let mut outcomes = Vec::new();
    for _ in 0..12 {
        outcomes.push(sink.send(batch()).await);
    }
    let retry = |after: Option<u64>, reason: &str| SendOutcome::Retry {
        after: after.map(Duration::from_secs),
        reason: reason.to_string(),
    };
    let reject = |reason: &str| SendOutcome::Reject { reason: reason.to_string() };
    assert_eq!(
        outcomes,
        vec![
            SendOutcome::Ok,
            SendOutcome::Ok,
            retry(Some(7), "http_429"),
            retry(None, "http_429"),
            retry(None, "http_500"),
            retry(None, "http_503"),
            SendOutcome::TooLarge,
            reject("http_400: snappy: corrupt input"),
            retry(None, "http_401"),
            retry(Some(3), "http_403"),
            retry(None, "http_404"),
            reject("http_422"),
        ]
    );
    loki.server.shutdown().await;
    assert_eq!(tasks.registry().alive_total(), 0, "server tasks joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_400_is_partial_with_the_refused_lines_by_reason() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    // What Loki 3.x's distributor answers when one entry of the request is too long.
    let mut too_long = answer(400);
    too_long.body = "Max entry size '3' bytes exceeded for stream '{container=\"web\", stream=\"stdout\"}' \
                     while adding an entry with length '5' bytes\n";
    let mut ingester = answer(400);
    ingester.body = "entry with timestamp 2023-11-08 11:00:00 +0000 UTC ignored, reason: 'entry out of order',\n\
                     user 'fake', total ignored: 1 out of 2 for stream: {container=\"web\", stream=\"stdout\"}";
    let loki = scripted_loki(&tasks, vec![too_long, ingester]).await;
    let sink = transport(&tasks, &loki_config("", loki.server.local_addr()), None);
    match sink.send(batch()).await {
        SendOutcome::Partial { refused, detail } => {
            assert_eq!(refused, vec![(DropReason::SinkLineTooLong, 2)], "hello and world are 5 bytes each");
            assert!(detail.starts_with("http_400: Max entry size '3'"), "{detail}");
        }
        other => panic!("expected Partial, got {other:?}"),
    }
    match sink.send(batch()).await {
        SendOutcome::Partial { refused, .. } => assert_eq!(refused, vec![(DropReason::SinkTooOld, 1)]),
        other => panic!("expected Partial, got {other:?}"),
    }
    assert_eq!(loki.seen.lock().unwrap().len(), 2, "a 400 is answered once, never resent by the transport");
    loki.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_body_tenant_and_basic_auth() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    let loki = scripted_loki(&tasks, vec![answer(204)]).await;
    let config = loki_config("tenant = \"team-a\"\n", loki.server.local_addr());
    let auth = Auth::Basic { username: "bob".to_string(), password: Secret::new("s3cret") };
    let sink = transport(&tasks, &config, Some(auth));
    assert_eq!(sink.send(batch()).await, SendOutcome::Ok);

    let seen = loki.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/loki/api/v1/push");
    assert_eq!(request.headers["content-type"], "application/x-protobuf");
    assert_eq!(request.headers["x-scope-orgid"], "team-a");
    // base64("bob:s3cret")
    assert_eq!(request.headers["authorization"], "Basic Ym9iOnMzY3JldA==");
    let push = engine::loki::protobuf::decode_snappy_request(&request.body).unwrap();
    assert_eq!(push.streams.len(), 1);
    assert_eq!(push.streams[0].labels, r#"{container="web", stream="stdout"}"#);
    let lines: Vec<&[u8]> = push.streams[0].entries.iter().map(|entry| entry.line.as_slice()).collect();
    assert_eq!(lines, vec![b"hello".as_slice(), b"world".as_slice()]);
    assert_eq!(push.streams[0].entries[0].ts, 1_700_000_000_000_000_001);
    loki.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_bearer_auth_and_full_push_url() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    let loki = scripted_loki(&tasks, vec![answer(204)]).await;
    let addr = loki.server.local_addr();
    let text = format!("[sinks.loki]\nurl = \"http://{addr}/custom/push\"\nencoding = \"json\"\n");
    let SinkChoice::Loki(config) = Config::parse(&text).unwrap().sink() else { unreachable!() };
    let sink = transport(&tasks, &config, Some(Auth::Bearer { token: Secret::new("tok") }));
    assert_eq!(sink.send(batch()).await, SendOutcome::Ok);
    let request = loki.seen.lock().unwrap()[0].clone();
    assert_eq!(request.path, "/custom/push");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], "Bearer tok");
    assert!(!request.headers.contains_key("x-scope-orgid"));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["streams"][0]["values"][1][1], "world");
    loki.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_are_retried() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    let mut slow = answer(204);
    slow.delay = Duration::from_secs(1);
    let loki = scripted_loki(&tasks, vec![slow]).await;
    let addr = loki.server.local_addr();
    let sink = transport(&tasks, &loki_config("", addr), None);
    assert_eq!(sink.send(batch()).await, SendOutcome::Retry { after: None, reason: "timeout".to_string() });
    loki.server.shutdown().await;

    // Nothing listens there any more.
    let refused = sink.send(batch()).await;
    assert_eq!(refused, SendOutcome::Retry { after: None, reason: "connect".to_string() });
}

#[test]
fn retry_after_forms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("100000", now), Some(RETRY_AFTER_MAX));
    let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
    assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
    let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
    assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn push_urls() {
    assert_eq!(push_url("http://loki:3100").unwrap().as_str(), "http://loki:3100/loki/api/v1/push");
    assert_eq!(push_url("http://loki:3100/").unwrap().as_str(), "http://loki:3100/loki/api/v1/push");
    assert_eq!(push_url("https://gw/loki/api/v1/push").unwrap().as_str(), "https://gw/loki/api/v1/push");
    assert_eq!(push_url("http://gw/prefix").unwrap().as_str(), "http://gw/prefix/loki/api/v1/push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_client_builds_and_bad_ca_files_are_named() {
    let tasks = Tasks::new(Arc::new(TokioRt::new()));
    // Nothing listens on port 1: the TLS client is built (crypto provider present) and
    // the failure is a retryable connection error.
    let config = loki_config("", SocketAddr::from(([127, 0, 0, 1], 1)));
    let mut https = config.clone();
    https.url = "https://127.0.0.1:1".to_string();
    let sink = transport(&tasks, &https, None);
    assert_eq!(sink.send(batch()).await, SendOutcome::Retry { after: None, reason: "connect".to_string() });

    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    https.tls.ca_file = Some(not_pem);
    let error = LokiTransport::new(&https, None, tasks.rt().clone()).err().expect("no certificate in the file");
    assert!(error.to_string().starts_with("sinks.loki.tls.ca_file:"), "{error}");
    https.tls.ca_file = Some(dir.path().join("missing.pem"));
    let error = LokiTransport::new(&https, None, tasks.rt().clone()).err().unwrap();
    assert!(error.to_string().contains("cannot read"), "{error}");
}
