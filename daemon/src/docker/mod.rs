//! The real [`ContainerEngine`]: the Docker Engine API over its unix socket.
//!
//! Owns every byte and every task between the engine's `ContainerEngine` port and
//! `dockerd`. It speaks HTTP/1.1 with hyper's low-level client
//! (`hyper::client::conn::http1`) on a `tokio::net::UnixStream`, **one connection per
//! request**, and drives each connection in a task spawned through the engine's
//! [`Tasks`] registry as [`TaskKind::Connection`]. There is deliberately no Docker SDK
//! (bollard) and no connection pool underneath: the predecessor's SDK left ~2.3
//! library-owned goroutines behind per log-stream rotation, plus pool health-checkers
//! that never stopped, and none of it was visible in the code under review. Here every
//! connection is a task we spawned, counted in `log_capturer_tasks_alive{kind="connection"}`.
//!
//! Promises:
//! - A call that returns a whole answer ([`ContainerEngine::list`],
//!   [`ContainerEngine::inspect`], [`DockerEngine::ping`]) has cancelled and joined its
//!   connection task before it returns, on success and on error alike. If the caller
//!   drops the call's future instead, the connection task is cancelled.
//! - A stream ([`ContainerEngine::logs`], [`ContainerEngine::events`]) owns its response
//!   body and its connection task; dropping the stream drops the body and cancels the
//!   task, which drops the socket. Nothing outlives the stream but the (already
//!   cancelled) task's last poll.
//! - Every wait is bounded: connecting and receiving response headers by
//!   [`DockerConfig::header_timeout`], a whole answer by
//!   [`DockerConfig::request_timeout`]; every buffer by a `*_bytes_max`.
//! - Errors are sorted for the caller: connect failure, timeout, 5xx and a broken
//!   connection are [`EngineError::Unavailable`]; 404 is [`EngineError::NotFound`];
//!   JSON we cannot read and other statuses are [`EngineError::Protocol`].
//!
//! The API version is pinned to [`API_VERSION`] (`v1.41`, Docker 20.10), which every
//! engine since 20.10 serves. Log streams are passed through as raw bytes: the engine
//! decodes Docker's 8-byte frame headers itself (`engine::parse::frame`). Containers
//! with a TTY produce unframed output, which this adapter does not handle yet.

mod api;
mod connection;
mod streams;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::model::ContainerId;
use engine::port::docker::{ContainerEngine, ContainerInfo, EngineError, EventStream, LogOptions, LogStream};
use engine::rt::BoxFuture;
use engine::task::Tasks;

use connection::Request;

/// Where `dockerd` listens unless configured otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/docker.sock";

/// The Engine API version every request is made with.
pub const API_VERSION: &str = "v1.41";

/// How to reach the Docker engine and the bounds of every request.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The engine's unix socket.
    pub socket_path: PathBuf,
    /// Bound on connecting plus receiving the response headers (streams included).
    pub header_timeout: Duration,
    /// Bound on a whole non-streaming request (list, inspect, ping).
    pub request_timeout: Duration,
    /// Bound on a non-streaming response body.
    pub response_bytes_max: usize,
    /// Bound on one line of the events stream.
    pub event_line_bytes_max: usize,
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            response_bytes_max: 64 * 1024 * 1024,
            event_line_bytes_max: 1024 * 1024,
        }
    }
}

/// The Docker Engine API client. Cheap to clone; every clone shares the config and the
/// task registry its connections are counted in.
#[derive(Clone)]
pub struct DockerEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: DockerConfig,
    tasks: Tasks,
}

impl DockerEngine {
    /// A client for the engine at `config.socket_path`. Connects lazily, per request.
    pub fn new(tasks: Tasks, config: DockerConfig) -> DockerEngine {
        assert!(config.response_bytes_max > 0);
        assert!(config.event_line_bytes_max > 0);
        DockerEngine { inner: Arc::new(Inner { config, tasks }) }
    }

    pub fn config(&self) -> &DockerConfig {
        &self.inner.config
    }

    /// `GET /_ping`: whether the engine answers at all (for health checks and for tests
    /// deciding whether Docker is there).
    pub fn ping(&self) -> BoxFuture<Result<(), EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            inner.whole(&api::ping_path(), None).await?;
            Ok(())
        })
    }

    /// `GET /version`: the engine's version and API version, as Docker reports them.
    pub fn version(&self) -> BoxFuture<Result<api::EngineVersion, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let body = inner.whole(&api::version_path(), None).await?;
            api::parse_version(&body)
        })
    }
}

#[allow(unused_imports)]
pub use api::EngineVersion;

impl Inner {
    fn request(&self, path_and_query: String, container: Option<&ContainerId>) -> Request<'_> {
        Request { tasks: &self.tasks, config: &self.config, path_and_query, container: container.cloned() }
    }

    /// One request whose whole (bounded) body is returned; its connection is joined.
    async fn whole(&self, path_and_query: &str, container: Option<&ContainerId>) -> Result<bytes::Bytes, EngineError> {
        let request = self.request(path_and_query.to_owned(), container);
        match tokio::time::timeout(self.config.request_timeout, request.whole()).await {
            Ok(result) => result,
            Err(_elapsed) => Err(EngineError::Unavailable(format!(
                "GET {path_and_query}: no complete answer within {:?}",
                self.config.request_timeout
            ))),
        }
    }
}

impl ContainerEngine for DockerEngine {
    fn list(&self) -> BoxFuture<Result<Vec<ContainerInfo>, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let body = inner.whole(&api::list_path(), None).await?;
            api::parse_list(&body)
        })
    }

    fn inspect(&self, id: &ContainerId) -> BoxFuture<Result<ContainerInfo, EngineError>> {
        let inner = self.inner.clone();
        let path = api::inspect_path(id);
        let id = id.clone();
        Box::pin(async move {
            let body = inner.whole(&path, Some(&id)).await?;
            api::parse_inspect(&body)
        })
    }

    fn events(&self) -> BoxFuture<Result<EventStream, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (body, connection) = inner.request(api::events_path(), None).streaming().await?;
            let stream = streams::EventLines::new(body, connection, inner.config.event_line_bytes_max);
            Ok(Box::pin(stream) as EventStream)
        })
    }

    fn logs(&self, id: &ContainerId, options: LogOptions) -> BoxFuture<Result<LogStream, EngineError>> {
        let inner = self.inner.clone();
        let path = api::logs_path(id, options);
        let id = id.clone();
        Box::pin(async move {
            let (body, connection) = inner.request(path, Some(&id)).streaming().await?;
            Ok(Box::pin(streams::BodyBytes::new(body, connection)) as LogStream)
        })
    }
}
