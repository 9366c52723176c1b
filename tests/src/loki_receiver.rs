//! An in-test Loki push endpoint: `POST /loki/api/v1/push` on 127.0.0.1, decoding what
//! a real Loki would (DESIGN §7) and recording every accepted entry.
//!
//! - Bodies: `Content-Type: application/x-protobuf` is a snappy-compressed (block
//!   format) `logproto.PushRequest` (`engine::loki::protobuf::decode_snappy_request`);
//!   `application/json` is Loki's JSON push (`engine::loki::json::decode_request_json`).
//!   Bodies are capped at [`BODY_BYTES_MAX`] (413 beyond it).
//! - Answers: 204 when the body decodes (the entries are recorded, in arrival order,
//!   as [`Delivered`]); 400 when it does not (recorded in [`LokiReceiver::errors`]); 404
//!   for another path. [`LokiReceiver::respond_next`] scripts the answers to the next
//!   pushes (e.g. `[500, 429]`): such a push is answered with that status and nothing of
//!   it is recorded, as Loki does when it rejects a push.
//! - [`LokiReceiver::max_line_size`] switches on Loki's per-entry validation of line
//!   length, as its distributor does it: the entries within the limit are stored, the
//!   others refused, and the push is answered `400` with the distributor's message for
//!   the last refused entry (`Max entry size 'L' bytes exceeded for stream '…' while
//!   adding an entry with length 'N' bytes`), which names no count.
//! - It runs on its own thread with its own single-threaded tokio runtime, so it works
//!   from plain `#[test]` functions; dropping the receiver stops the server and joins
//!   the thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::delivery::Delivered;
use crate::server_thread::{serve_http, ServerThread};

/// Largest push body accepted.
pub const BODY_BYTES_MAX: usize = 16 << 20;

/// What the receiver answered to one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub status: u16,
    pub content_type: String,
    pub entries: usize,
}

#[derive(Default)]
struct State {
    delivered: Vec<Delivered>,
    pushes: Vec<Push>,
    errors: Vec<String>,
    scripted: VecDeque<u16>,
    max_line_size: Option<usize>,
    refused: Vec<Delivered>,
}

pub struct LokiReceiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: ServerThread,
}

impl LokiReceiver {
    /// Binds a free loopback port and starts serving.
    pub fn start() -> Result<LokiReceiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the Loki receiver")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let server = ServerThread::start("loki-receiver", move |stop| {
            serve_http(listener, stop, move |request| {
                let served = served.clone();
                async move { handle(request, &served).await }
            })
        })?;
        Ok(LokiReceiver { addr, state, _server: server })
    }

    /// `http://127.0.0.1:<port>` (the daemon appends `/loki/api/v1/push`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next pushes are answered with these statuses, in order, and not recorded.
    pub fn respond_next(&self, statuses: &[u16]) {
        self.lock().scripted.extend(statuses.iter().copied());
    }

    /// Refuse entries longer than `limit` bytes from now on (`None`: accept any).
    pub fn max_line_size(&self, limit: Option<usize>) {
        self.lock().max_line_size = limit;
    }

    /// Every entry refused as too long, in arrival order.
    pub fn refused(&self) -> Vec<Delivered> {
        self.lock().refused.clone()
    }

    /// How many scripted answers are still to be given.
    pub fn scripted_left(&self) -> usize {
        self.lock().scripted.len()
    }

    /// Every accepted entry, in arrival order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.lock().delivered.clone()
    }

    /// Every push and its answer, in order.
    pub fn pushes(&self) -> Vec<Push> {
        self.lock().pushes.clone()
    }

    /// Bodies that did not decode (each answered 400).
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn respond(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}

async fn handle(request: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::POST || request.uri().path() != "/loki/api/v1/push" {
        return respond(404, "not found\n");
    }
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match Limited::new(request.into_body(), BODY_BYTES_MAX).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.pushes.push(Push { status: 413, content_type, entries: 0 });
            state.errors.push(format!("body: {error}"));
            return respond(413, "body too large\n");
        }
    };
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(status) = state.scripted.pop_front() {
        state.pushes.push(Push { status, content_type, entries: 0 });
        return respond(status, "scripted failure\n");
    }
    match decode(&content_type, &body) {
        Ok(entries) => {
            let limit = state.max_line_size.unwrap_or(usize::MAX);
            let (stored, refused): (Vec<Delivered>, Vec<Delivered>) =
                entries.into_iter().partition(|entry| entry.line.len() <= limit);
            let answer = match refused.last() {
                None => respond(204, ""),
                Some(last) => respond(
                    400,
                    &format!(
                        "Max entry size '{limit}' bytes exceeded for stream '{}' while adding an entry with \
                         length '{}' bytes\n",
                        engine::loki::protobuf::render_labels(&last.labels),
                        last.line.len()
                    ),
                ),
            };
            let status = if refused.is_empty() { 204 } else { 400 };
            state.pushes.push(Push { status, content_type, entries: stored.len() });
            state.delivered.extend(stored);
            state.refused.extend(refused);
            answer
        }
        Err(error) => {
            state.pushes.push(Push { status: 400, content_type: content_type.clone(), entries: 0 });
            state.errors.push(format!("{content_type}: {error:#}"));
            respond(400, &format!("{error:#}\n"))
        }
    }
}

fn decode(content_type: &str, body: &[u8]) -> Result<Vec<Delivered>> {
    use engine::loki::protobuf::{decode_snappy_request, parse_labels, CONTENT_TYPE};
    let mut delivered = Vec::new();
    if content_type == CONTENT_TYPE {
        let request = decode_snappy_request(body).map_err(|error| anyhow::anyhow!("protobuf: {error}"))?;
        for stream in request.streams {
            let labels =
                parse_labels(&stream.labels).map_err(|error| anyhow::anyhow!("labels {:?}: {error}", stream.labels))?;
            for entry in stream.entries {
                let line = String::from_utf8(entry.line).context("line is not UTF-8")?;
                delivered.push(Delivered { ts: entry.ts, labels: labels.clone(), line });
            }
        }
    } else if content_type.starts_with("application/json") {
        let (labels, request) =
            engine::loki::json::decode_request_json(body).map_err(|error| anyhow::anyhow!("json: {error}"))?;
        for (labels, stream) in labels.into_iter().zip(request.streams) {
            for entry in stream.entries {
                let line = String::from_utf8(entry.line).context("line is not UTF-8")?;
                delivered.push(Delivered { ts: entry.ts, labels: labels.clone(), line });
            }
        }
    } else {
        anyhow::bail!("unexpected Content-Type {content_type:?}");
    }
    Ok(delivered)
}
