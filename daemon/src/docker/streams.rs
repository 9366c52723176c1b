//! The streams handed to the engine: a log stream's raw bytes and the events stream's
//! events, each wrapping the stream bollard returns.
//!
//! [`LogBytes`] turns bollard's decoded log entries back into the bytes Docker sent,
//! which is what the port promises and the engine parses (`engine::parse`): a framed
//! entry (`StdOut`, `StdErr`) gets its 8-byte header back, a TTY entry (`Console`: bollard
//! cuts an unframed stream at each `\n`) is passed as it is. Because every entry of a
//! `timestamps=1` stream starts with a timestamp digit and every frame header with 0, 1
//! or 2, bollard's framed-or-not test on the first byte is exact here. Entries ready at
//! once are coalesced into one chunk of at most [`CHUNK_BYTES_TARGET`] (plus one entry),
//! so a busy stream costs one allocation per read, not one per line.
//!
//! Dropping a stream drops bollard's stream, its response body and so the connection
//! (the adapter's client keeps no idle connection: bollard builds it with
//! `pool_max_idle_per_host(0)`). An `Err` item is always the last one. A `404` on a log
//! stream (the container is gone) ends the stream without an error: the supervisor then
//! inspects, learns the container is gone, and stops, as it does when a stream ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::EventMessage;
use bytes::{BufMut, Bytes, BytesMut};
use engine::model::ContainerId;
use engine::port::docker::{ContainerEvent, EngineError};
use futures::Stream;

use super::{api, Inner};

/// A chunk is handed on once it holds this many bytes, or when nothing more is ready.
pub(super) const CHUNK_BYTES_TARGET: usize = 64 * 1024;

pub(super) type BollardLogs = Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>>;
pub(super) type BollardEvents = Pin<Box<dyn Stream<Item = Result<EventMessage, BollardError>> + Send>>;

/// Tells the adapter about a failed stream, so that the next call renegotiates.
pub(super) struct FailureNote {
    pub(super) inner: Arc<Inner>,
    pub(super) generation: u64,
}

impl FailureNote {
    fn note(&self, error: &BollardError) -> bool {
        self.inner.note_failure(self.generation, error)
    }
}

/// One container's log as raw bytes. See the module docs.
pub(super) struct LogBytes {
    entries: BollardLogs,
    id: ContainerId,
    failures: FailureNote,
    /// Bytes of entries taken from `entries` and not handed on yet.
    pending: BytesMut,
    /// The error to hand on once `pending` is out.
    error: Option<EngineError>,
    finished: bool,
}

impl LogBytes {
    pub(super) fn new(entries: BollardLogs, id: ContainerId, failures: FailureNote) -> LogBytes {
        LogBytes { entries, id, failures, pending: BytesMut::new(), error: None, finished: false }
    }

    fn append(&mut self, entry: LogOutput) {
        let (stream_type, message) = match entry {
            LogOutput::StdIn { message } => (0u8, message),
            LogOutput::StdOut { message } => (1, message),
            LogOutput::StdErr { message } => (2, message),
            LogOutput::Console { message } => {
                self.pending.extend_from_slice(&message);
                return;
            }
        };
        self.pending.reserve(8 + message.len());
        self.pending.put_slice(&[stream_type, 0, 0, 0]);
        self.pending.put_u32(message.len() as u32);
        self.pending.put_slice(&message);
    }

    fn take_pending(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

impl Stream for LogBytes {
    type Item = Result<Bytes, EngineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.finished && this.error.is_none() && this.pending.len() < CHUNK_BYTES_TARGET {
            match this.entries.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(entry))) => this.append(entry),
                Poll::Ready(Some(Err(error))) => {
                    this.finished = true;
                    this.failures.note(&error);
                    match api::engine_error(error, "container logs", Some(&this.id)) {
                        // The container is gone: end the stream like a stopped one.
                        EngineError::NotFound(_) => {}
                        error => this.error = Some(error),
                    }
                }
                Poll::Ready(None) => this.finished = true,
            }
        }
        if let Some(chunk) = this.take_pending() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if this.finished {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// The events stream mapped to the port's [`ContainerEvent`]s; actions the port does not
/// carry are skipped. Its end also means the engine may have changed (a daemon restart):
/// the next call renegotiates the API version.
pub(super) struct EventItems {
    events: BollardEvents,
    failures: FailureNote,
    finished: bool,
}

impl EventItems {
    pub(super) fn new(events: BollardEvents, failures: FailureNote) -> EventItems {
        EventItems { events, failures, finished: false }
    }
}

impl Stream for EventItems {
    type Item = Result<ContainerEvent, EngineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.finished {
            match std::task::ready!(this.events.as_mut().poll_next(cx)) {
                Some(Ok(event)) => match api::from_event(event) {
                    Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                    Ok(None) => continue,
                    Err(error) => {
                        this.finished = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                Some(Err(error)) => {
                    this.finished = true;
                    this.failures.note(&error);
                    return Poll::Ready(Some(Err(api::engine_error(error, "events", None))));
                }
                None => {
                    this.finished = true;
                    this.failures.inner.forget_session(this.failures.generation);
                }
            }
        }
        Poll::Ready(None)
    }
}
