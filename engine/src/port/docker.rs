//! `ContainerEngine`: what the engine needs from Docker.
//!
//! Semantics follow the Docker Engine API with the json-file log driver:
//! - [`ContainerEngine::logs`] yields the raw multiplexed byte stream of
//!   `GET /containers/{id}/logs?stdout=1&stderr=1&timestamps=1` (8-byte frame headers,
//!   each payload `RFC3339Nano-timestamp SP content`), in arbitrary chunking: a chunk may
//!   end in the middle of a header or payload. With `follow` the stream stays open until
//!   the container stops or the stream is dropped; dropping it must release the
//!   connection and everything the adapter allocated for it.
//! - `since_secs` keeps entries whose timestamp is at or after that whole second.
//! - A line longer than 16 KiB arrives as several entries; only the last ends in `\n`.
//! - For a container with a TTY ([`ContainerInfo::tty`]) the stream has no frame
//!   headers: entries (`timestamp SP content`) follow each other raw, all of them stdout.
//! - [`ContainerEngine::events`] ends when the daemon restarts; the caller reconnects and
//!   reconciles with [`ContainerEngine::list`].

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

use crate::model::ContainerId;
use crate::rt::BoxFuture;

/// What `list` and `inspect` tell about a container.
///
/// The text parts are shared (`Arc`): discovery, the supervisors' state channel and the
/// simulator's `list` copy the info on every reconcile and state change, and a copy is
/// a few reference counts instead of a string per field and the label map's nodes
/// (callgrind: seed 2, 105 k copies, their clones and drops were 3.7 % of the run;
/// 374.3 M -> 361.2 M, seed 3 413.2 M -> 411.7 M, seed 19 861.2 M -> 858.1 M). An `Arc`
/// of an `Eq` type compares by pointer first, so an unchanged copy is recognised
/// without comparing its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    /// Without Docker's leading `/`.
    pub name: Arc<str>,
    pub image: Arc<str>,
    pub labels: Arc<BTreeMap<String, String>>,
    pub running: bool,
    /// `Config.Tty`: the container has a terminal, so its log stream is raw bytes (lines
    /// ending in `\r\n` or `\n`, each after its timestamp), not frames; all of it is
    /// stdout. Fixed for a container's life.
    pub tty: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerEventKind {
    Create,
    Start,
    Die,
    Stop,
    Restart,
    Destroy,
    Rename,
}

/// One container event from the events stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    pub kind: ContainerEventKind,
    pub id: ContainerId,
    /// Event attributes (`name`, `image`, labels, ...).
    pub attributes: BTreeMap<String, String>,
    /// When it happened, by the host clock (Docker's `timeNano`), if said.
    pub time: Option<crate::rt::UnixNanos>,
}

/// Options of one log request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open for new entries.
    pub follow: bool,
    /// Only entries at or after this Unix second (0: from the beginning).
    pub since_secs: i64,
    /// Only the last N entries (applied after `since`); `None`: all.
    pub tail: Option<u64>,
}

/// Why a Docker call failed, sorted by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The container does not exist (any more). Permanent for that container.
    #[error("no such container: {0}")]
    NotFound(String),
    /// The engine could not be reached or answered 5xx. Retry with backoff.
    #[error("docker engine unavailable: {0}")]
    Unavailable(String),
    /// The engine sent something we could not understand. Retry with backoff.
    #[error("docker protocol error: {0}")]
    Protocol(String),
}

pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, EngineError>> + Send + 'static>>;
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEvent, EngineError>> + Send + 'static>>;

pub trait ContainerEngine: Send + Sync + 'static {
    /// Every container, running or not (`all=true`).
    fn list(&self) -> BoxFuture<Result<Vec<ContainerInfo>, EngineError>>;
    fn inspect(&self, id: &ContainerId) -> BoxFuture<Result<ContainerInfo, EngineError>>;
    /// Container events from now on. Ends (or errors) when the engine goes away.
    fn events(&self) -> BoxFuture<Result<EventStream, EngineError>>;
    /// Open a log stream; see the module docs for its byte format.
    fn logs(&self, id: &ContainerId, options: LogOptions) -> BoxFuture<Result<LogStream, EngineError>>;
}
