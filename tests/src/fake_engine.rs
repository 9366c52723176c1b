//! A fake Docker engine on loopback TCP whose versions the test sets and changes, for
//! driving the running daemon against engines the machine does not have (one too old
//! for the adapter, then a good one) through `docker.host = "tcp://127.0.0.1:PORT"`.
//!
//! What it answers, as Docker does:
//! - `GET /version` (with or without a `/vX.Y` prefix): `Version`, `ApiVersion` and
//!   `MinAPIVersion` as last set; every such request is counted
//!   ([`FakeEngine::version_requests`]).
//! - A request prefixed with a version outside `MinAPIVersion..=ApiVersion`: `400` with
//!   Docker's exact message (`client version X is too old. Minimum supported API version
//!   is Y, …` or `… is too new. Maximum supported API version is Y`).
//! - `/_ping`: `OK`; `/containers/json`: no container (`[]`); `/events`: a stream that
//!   stays open and carries nothing; anything else: `404`.
//!
//! It runs on its own thread with its own single-threaded tokio runtime (like
//! `loki_receiver`); dropping it stops it, closes every connection and joins the thread.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

use crate::server_thread::{serve_http, ServerThread};

/// What `/version` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineVersions {
    /// Docker's release, e.g. `"1.12.6"`.
    pub version: String,
    /// The highest API version it speaks, e.g. `"1.24"`.
    pub api_version: String,
    /// The lowest API version it accepts, e.g. `"1.12"`.
    pub min_api_version: String,
}

impl EngineVersions {
    pub fn new(version: &str, api_version: &str, min_api_version: &str) -> EngineVersions {
        EngineVersions {
            version: version.to_owned(),
            api_version: api_version.to_owned(),
            min_api_version: min_api_version.to_owned(),
        }
    }
}

struct State {
    versions: EngineVersions,
    version_requests: u64,
}

pub struct FakeEngine {
    port: u16,
    state: Arc<Mutex<State>>,
    _server: ServerThread,
}

impl FakeEngine {
    /// Listens on a free loopback port, answering as `versions` says.
    pub fn start(versions: EngineVersions) -> Result<FakeEngine> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the fake engine")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State { versions, version_requests: 0 }));
        let served = state.clone();
        let server = ServerThread::start("fake-engine", move |stop| {
            // The open events streams are connection tasks too: they end with the runtime.
            serve_http(listener, stop, move |request| std::future::ready(handle(&request, &served)))
        })?;
        Ok(FakeEngine { port, state, _server: server })
    }

    /// `tcp://127.0.0.1:PORT`, for `docker.host`.
    pub fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// From now on `/version` says `versions` and requests are checked against them.
    pub fn set_versions(&self, versions: EngineVersions) {
        self.lock().versions = versions;
    }

    /// `/version` requests answered so far.
    pub fn version_requests(&self) -> u64 {
        self.lock().version_requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn handle(request: &Request<Incoming>, state: &Mutex<State>) -> Response<Body> {
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (asked, route) = split_version(request.uri().path());
    let versions = state.versions.clone();
    if let Some(asked) = asked {
        if let Some(message) = refusal(asked, &versions) {
            return json(400, &serde_json::json!({ "message": message }).to_string());
        }
    }
    match route {
        "/_ping" => respond(200, "text/plain", Full::new(Bytes::from_static(b"OK")).boxed()),
        "/version" => {
            state.version_requests += 1;
            json(
                200,
                &serde_json::json!({
                    "Version": versions.version,
                    "ApiVersion": versions.api_version,
                    "MinAPIVersion": versions.min_api_version,
                    "Os": "linux",
                    "Arch": "amd64",
                })
                .to_string(),
            )
        }
        "/containers/json" => json(200, "[]"),
        "/events" => {
            let nothing = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            respond(200, "application/json", StreamBody::new(nothing).boxed())
        }
        _ => json(404, r#"{"message":"page not found"}"#),
    }
}

/// `/v1.41/version` → (`Some("1.41")`, `/version`); `/version` → (`None`, `/version`).
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(after_v) = path.strip_prefix("/v") {
        if let Some(slash) = after_v.find('/') {
            return (Some(&after_v[..slash]), &after_v[slash..]);
        }
    }
    (None, path)
}

/// Docker's refusal of a request made with API version `asked`, if it refuses it.
fn refusal(asked: &str, versions: &EngineVersions) -> Option<String> {
    let parse = |text: &str| {
        let (major, minor) = text.split_once('.')?;
        Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
    };
    let asked_parsed = parse(asked)?;
    if parse(&versions.min_api_version).is_some_and(|min| asked_parsed < min) {
        return Some(format!(
            "client version {asked} is too old. Minimum supported API version is {}, please upgrade your client to \
             a newer version",
            versions.min_api_version
        ));
    }
    if parse(&versions.api_version).is_some_and(|max| asked_parsed > max) {
        return Some(format!(
            "client version {asked} is too new. Maximum supported API version is {}",
            versions.api_version
        ));
    }
    None
}

fn json(status: u16, body: &str) -> Response<Body> {
    respond(status, "application/json", Full::new(Bytes::from(body.to_owned())).boxed())
}

fn respond(status: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_str(content_type).expect("a valid header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_off_the_path() {
        assert_eq!(split_version("/v1.41/containers/json"), (Some("1.41"), "/containers/json"));
        assert_eq!(split_version("/version"), (None, "/version"));
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
    }

    #[test]
    fn refuses_versions_outside_its_range_like_docker() {
        let docker29 = EngineVersions::new("29.0.0", "1.52", "1.44");
        assert_eq!(
            refusal("1.41", &docker29).unwrap(),
            "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a \
             newer version"
        );
        assert_eq!(refusal("1.44", &docker29), None);
        assert_eq!(refusal("1.52", &docker29), None);
        let docker112 = EngineVersions::new("1.12.6", "1.24", "1.12");
        assert_eq!(
            refusal("1.41", &docker112).unwrap(),
            "client version 1.41 is too new. Maximum supported API version is 1.24"
        );
    }
}
