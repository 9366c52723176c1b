//! The real [`ContainerEngine`]: the Docker Engine API through bollard, over the unix
//! socket, plain TCP or TLS with a client certificate.
//!
//! Owns everything between the engine's `ContainerEngine` port and `dockerd`: where the
//! engine is ([`endpoint`]), which API version to speak ([`version`]), the mapping of
//! bollard's typed models and errors ([`api`]) and the streams handed to the engine
//! ([`streams`]).
//!
//! Why bollard, and what was measured. The predecessor's Go SDK left ~2.3 library-owned
//! goroutines behind per log-stream rotation, which is why this adapter was once a
//! hand-written HTTP client with one connection per request. bollard's client is
//! hyper-util's pooled client built with `pool_max_idle_per_host(0)`: a connection whose
//! response body is dropped (a rotated stream) or finished is closed, not kept idle, and
//! its driver task ends with it. That is measured, not assumed: the end-to-end tests open
//! and drop 200 log streams, and rotate 20 containers' streams every 2 s for 60 s, and
//! require tokio's alive tasks and the open file descriptors back at their baseline
//! (`tests/tests/e2e.rs`). The connection tasks are tokio tasks bollard spawns, not ours:
//! they show in `log_capturer_runtime_tasks_alive`, not in the engine's registry.
//!
//! Sessions and version negotiation. A *session* is a bollard client speaking one API
//! version with one engine. It is made on first use: `GET /version` without a version
//! prefix, then [`version::choose`] (the highest version both sides speak). It is
//! forgotten when the engine is unreachable, refuses the version, or the events stream
//! ends (the engine restarted), so every reconnect negotiates again: an engine upgraded
//! from Docker 20.10 (API 1.41) to Docker 29 (1.44..=1.52) is spoken to at 1.52. An engine
//! too old for the adapter is an [`EngineError::Unavailable`] naming both versions, so the
//! agent reports docker down on `/health` and keeps retrying.
//!
//! Promises:
//! - Every call is bounded by [`DockerConfig::request_timeout`]; opening a stream waits
//!   for nothing (bollard sends the request on the first poll), and the response headers
//!   of any request are bounded by [`DockerConfig::header_timeout`]. Because the request
//!   goes out late, the events stream asks for the events since [`EVENTS_REPLAY`] before
//!   [`ContainerEngine::events`] was called: none falls between it and the first poll.
//! - Errors are sorted for the caller: unreachable, timeout and 5xx are
//!   [`EngineError::Unavailable`]; 404 on a container is [`EngineError::NotFound`]
//!   (on a log stream: the stream ends); JSON we cannot read and other statuses are
//!   [`EngineError::Protocol`].
//! - `tty` of a [`ContainerInfo`] is `Config.Tty` from inspect. The list does not carry
//!   it, so the adapter remembers it per container (inspecting a listed container it has
//!   not seen once) and forgets containers no longer listed.
//! - Log streams are Docker's bytes (see [`streams`]); the engine decodes frames, or the
//!   raw lines of a TTY container, itself (`engine::parse`).
//!
//! What bollard does not bound: a non-streaming answer's size and one events line's
//! length (the hand-written client had `*_bytes_max` for both). Both come from the local
//! engine; the request timeout still bounds how long they can grow.

mod api;
pub mod endpoint;
mod streams;
pub mod version;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::{ClientVersion, Docker};
use engine::model::ContainerId;
use engine::port::docker::{ContainerEngine, ContainerInfo, EngineError, EventStream, LogOptions, LogStream};
use engine::rt::BoxFuture;
use engine::task::Tasks;

pub use api::EngineVersion;
pub use endpoint::{Endpoint, EndpointSettings, EndpointSource, TlsFiles};
use version::ApiVersion;

/// Where `dockerd` listens unless configured otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/docker.sock";

/// How far back an events stream starts (`since`): it is requested on its first poll,
/// not when [`ContainerEngine::events`] returns, so the events in between are replayed
/// (and those of this margin before, which the engine's discovery takes idempotently).
pub const EVENTS_REPLAY: Duration = Duration::from_secs(1);

/// How to reach the Docker engine and the bounds of every request.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    pub endpoint: Endpoint,
    /// Bound on connecting plus receiving the response headers (streams included);
    /// bollard counts it in whole seconds (at least 1).
    pub header_timeout: Duration,
    /// Bound on a whole non-streaming request (list, inspect, version, ping).
    pub request_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            endpoint: Endpoint::Unix(DEFAULT_SOCKET_PATH.into()),
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl DockerConfig {
    /// The default bounds for `endpoint`.
    pub fn for_endpoint(endpoint: Endpoint) -> DockerConfig {
        DockerConfig { endpoint, ..DockerConfig::default() }
    }
}

/// The Docker Engine API client. Cheap to clone; every clone shares the session.
#[derive(Clone)]
pub struct DockerEngine {
    inner: Arc<Inner>,
}

/// One negotiated client (see the module docs).
#[derive(Clone)]
struct Session {
    docker: Docker,
    version: ApiVersion,
    engine: EngineVersion,
    generation: u64,
}

pub(crate) struct Inner {
    config: DockerConfig,
    session: Mutex<Option<Session>>,
    /// One negotiation at a time; the others wait for its session.
    negotiating: tokio::sync::Mutex<()>,
    generations: AtomicU64,
    /// `Config.Tty` per container, from inspect (see the module docs).
    tty: Mutex<BTreeMap<ContainerId, bool>>,
}

impl DockerEngine {
    /// A client for `config.endpoint`. Connects lazily, on the first call. `tasks` is
    /// kept for the signature's sake: bollard's connections are its own tokio tasks.
    pub fn new(_tasks: Tasks, config: DockerConfig) -> DockerEngine {
        DockerEngine {
            inner: Arc::new(Inner {
                config,
                session: Mutex::new(None),
                negotiating: tokio::sync::Mutex::new(()),
                generations: AtomicU64::new(0),
                tty: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &DockerConfig {
        &self.inner.config
    }

    /// `GET /_ping`: whether the engine answers at all (negotiating first).
    pub fn ping(&self) -> BoxFuture<Result<(), EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.call("ping", None, |docker| async move { docker.ping().await }).await.map(drop) })
    }

    /// `GET /version`: the engine's version and API versions, as Docker reports them
    /// (negotiating first).
    pub fn version(&self) -> BoxFuture<Result<EngineVersion, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.session().await?.engine) })
    }

    /// The API version the current session speaks, if there is one.
    pub fn negotiated_version(&self) -> Option<ApiVersion> {
        self.inner.session.lock().unwrap().as_ref().map(|session| session.version)
    }
}

impl Inner {
    /// The current session, negotiating one if there is none.
    async fn session(&self) -> Result<Session, EngineError> {
        if let Some(session) = self.session.lock().unwrap().clone() {
            return Ok(session);
        }
        let _one_at_a_time = self.negotiating.lock().await;
        if let Some(session) = self.session.lock().unwrap().clone() {
            return Ok(session);
        }
        let session = match tokio::time::timeout(self.config.request_timeout, self.negotiate()).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(EngineError::Unavailable(format!(
                    "{}: no answer to /version within {:?}",
                    self.config.endpoint, self.config.request_timeout
                )))
            }
        };
        tracing::info!(
            endpoint = %self.config.endpoint,
            engine = %session.engine.version,
            engine_api = %session.engine.api_version,
            engine_min_api = %session.engine.min_api_version,
            speaking = %session.version,
            "docker engine: API version negotiated"
        );
        *self.session.lock().unwrap() = Some(session.clone());
        Ok(session)
    }

    async fn negotiate(&self) -> Result<Session, EngineError> {
        let endpoint = &self.config.endpoint;
        let unavailable = |error: BollardError| EngineError::Unavailable(format!("{endpoint}: {error}"));
        let probe = connect(&self.config, None).map_err(unavailable)?;
        let engine =
            api::from_version(probe.version().await.map_err(|error| api::engine_error(error, "version", None))?);
        let chosen =
            version::choose(Some(&engine.api_version), Some(engine.min_api_version.as_str()).filter(|v| !v.is_empty()))
                .map_err(|error| EngineError::Unavailable(format!("{endpoint}: Docker {}: {error}", engine.version)))?;
        let docker = connect(&self.config, Some(chosen)).map_err(unavailable)?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Session { docker, version: chosen, engine, generation })
    }

    /// Forget session `generation` (if it is still the current one): the next call
    /// negotiates again.
    pub(crate) fn forget_session(&self, generation: u64) {
        let mut session = self.session.lock().unwrap();
        if session.as_ref().is_some_and(|current| current.generation == generation) {
            *session = None;
        }
    }

    /// A request of session `generation` failed with `error`: forget the session if the
    /// engine is gone or refused the version. Returns whether it was forgotten.
    pub(crate) fn note_failure(&self, generation: u64, error: &BollardError) -> bool {
        let forget = api::is_version_refusal(error) || api::is_unavailable(error);
        if forget {
            self.forget_session(generation);
        }
        forget
    }

    /// One bounded request on the current session.
    async fn call<T, F, Fut>(&self, what: &str, container: Option<&ContainerId>, request: F) -> Result<T, EngineError>
    where
        F: FnOnce(Docker) -> Fut,
        Fut: Future<Output = Result<T, BollardError>>,
    {
        let session = self.session().await?;
        match tokio::time::timeout(self.config.request_timeout, request(session.docker.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.note_failure(session.generation, &error);
                Err(api::engine_error(error, what, container))
            }
            Err(_elapsed) => {
                self.forget_session(session.generation);
                Err(EngineError::Unavailable(format!(
                    "{what}: no complete answer within {:?}",
                    self.config.request_timeout
                )))
            }
        }
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo, EngineError> {
        let name = id.to_string();
        let response = self
            .call("container inspect", Some(id), |docker| async move {
                docker.inspect_container(&name, None::<bollard::query_parameters::InspectContainerOptions>).await
            })
            .await?;
        let info = api::from_inspect(response)?;
        self.tty.lock().unwrap().insert(info.id.clone(), info.tty);
        Ok(info)
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let summaries =
            self.call("container list", None, |docker| async move {
                docker.list_containers(Some(api::list_options())).await
            })
            .await?;
        let mut containers = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let mut info = api::from_summary(summary)?;
            let known = self.tty.lock().unwrap().get(&info.id).copied();
            match known {
                Some(tty) => info.tty = tty,
                None => match self.inspect(&info.id).await {
                    Ok(inspected) => info.tty = inspected.tty,
                    // Removed since the list: not a container any more.
                    Err(EngineError::NotFound(_)) => continue,
                    Err(error) => return Err(error),
                },
            }
            containers.push(info);
        }
        let mut tty = self.tty.lock().unwrap();
        tty.retain(|id, _| containers.iter().any(|info| &info.id == id));
        Ok(containers)
    }
}

/// A bollard client for the configured endpoint. `version`: the API version every
/// request is made with, or `None` for unversioned requests (negotiation). The path
/// prefix is set here rather than left to bollard, so what goes on the wire is exactly
/// the negotiated version.
fn connect(config: &DockerConfig, version: Option<ApiVersion>) -> Result<Docker, BollardError> {
    let timeout = config.header_timeout.as_secs().max(1);
    let client_version = ClientVersion {
        major_version: usize::from(version.unwrap_or(version::CLIENT_MAX).major),
        minor_version: usize::from(version.unwrap_or(version::CLIENT_MAX).minor),
    };
    let docker = match &config.endpoint {
        Endpoint::Unix(path) => Docker::connect_with_unix(&path.to_string_lossy(), timeout, &client_version)?,
        Endpoint::Tcp { address, tls: None } => {
            Docker::connect_with_http(&format!("tcp://{address}"), timeout, &client_version)?
        }
        Endpoint::Tcp { address, tls: Some(files) } => Docker::connect_with_ssl(
            &format!("tcp://{address}"),
            &files.key,
            &files.cert,
            &files.ca,
            timeout,
            &client_version,
        )?,
    };
    Ok(docker.with_request_modifier(move |request| set_version(request, version)))
}

fn set_version(request: bollard::BollardRequest, version: Option<ApiVersion>) -> bollard::BollardRequest {
    let (mut parts, body) = request.into_parts();
    let mut uri = parts.uri.clone().into_parts();
    let path_and_query = uri.path_and_query.as_ref().map_or("/", |path| path.as_str());
    if let Ok(rewritten) = version::with_version(path_and_query, version).parse() {
        uri.path_and_query = Some(rewritten);
        if let Ok(rewritten) = hyper::Uri::from_parts(uri) {
            parts.uri = rewritten;
        }
    }
    bollard::BollardRequest::from_parts(parts, body)
}

impl ContainerEngine for DockerEngine {
    fn list(&self) -> BoxFuture<Result<Vec<ContainerInfo>, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.list().await })
    }

    fn inspect(&self, id: &ContainerId) -> BoxFuture<Result<ContainerInfo, EngineError>> {
        let inner = self.inner.clone();
        let id = id.clone();
        Box::pin(async move { inner.inspect(&id).await })
    }

    fn events(&self) -> BoxFuture<Result<EventStream, EngineError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let session = inner.session().await?;
            // bollard sends the request on the first poll, which the caller makes later
            // (after its reconcile list): `since` replays what happened in between.
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(EVENTS_REPLAY);
            let events = Box::pin(session.docker.events(Some(api::events_options(since))));
            let failures = streams::FailureNote { inner, generation: session.generation };
            Ok(Box::pin(streams::EventItems::new(events, failures)) as EventStream)
        })
    }

    fn logs(&self, id: &ContainerId, options: LogOptions) -> BoxFuture<Result<LogStream, EngineError>> {
        let inner = self.inner.clone();
        let id = id.clone();
        Box::pin(async move {
            let session = inner.session().await?;
            let entries = Box::pin(session.docker.logs(id.as_str(), Some(api::logs_options(options))));
            let failures = streams::FailureNote { inner, generation: session.generation };
            Ok(Box::pin(streams::LogBytes::new(entries, id, failures)) as LogStream)
        })
    }
}
