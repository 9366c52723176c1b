//! The streams handed to the engine: a log stream's bytes and the events stream's events.
//!
//! Each stream owns its response body and the [`Connection`] that carries it, in that
//! field order, so dropping the stream first drops the body and then cancels the
//! connection's driver task (which drops the socket). An `Err` item is always the last
//! item of a stream: after it the stream yields `None`.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use engine::port::docker::{ContainerEvent, EngineError};
use futures::Stream;
use hyper::body::{Body, Incoming};

use super::api;
use super::connection::Connection;

/// A response body as a stream of non-empty byte chunks (a log stream, as the port
/// wants it: Docker's multiplexed bytes, untouched, in whatever chunking they came).
pub(super) struct BodyBytes {
    body: Incoming,
    /// Declared after `body`: dropped after it.
    _connection: Connection,
    finished: bool,
}

impl BodyBytes {
    pub(super) fn new(body: Incoming, connection: Connection) -> BodyBytes {
        BodyBytes { body, _connection: connection, finished: false }
    }
}

impl Stream for BodyBytes {
    type Item = Result<Bytes, EngineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Some(Err(error)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(EngineError::Unavailable(format!("response body: {error}")))));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                    // Empty chunks and trailers carry nothing for us.
                    _ => continue,
                },
            }
        }
    }
}

/// The events body split into newline-delimited JSON objects, each mapped to a
/// [`ContainerEvent`]; actions the port does not carry are skipped. A line longer than
/// `line_bytes_max` is a protocol error.
pub(super) struct EventLines {
    body: BodyBytes,
    buffer: BytesMut,
    /// Bytes at the front of `buffer` already known to contain no newline.
    scanned: usize,
    line_bytes_max: usize,
    finished: bool,
}

impl EventLines {
    pub(super) fn new(body: Incoming, connection: Connection, line_bytes_max: usize) -> EventLines {
        EventLines {
            body: BodyBytes::new(body, connection),
            buffer: BytesMut::new(),
            scanned: 0,
            line_bytes_max,
            finished: false,
        }
    }

    /// The next complete line's event, if the buffer holds one.
    fn next_buffered(&mut self) -> Option<Result<ContainerEvent, EngineError>> {
        while let Some(offset) = self.buffer[self.scanned..].iter().position(|byte| *byte == b'\n') {
            let line = self.buffer.split_to(self.scanned + offset + 1);
            self.scanned = 0;
            match parse_line(&line) {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(error) => return Some(Err(error)),
            }
        }
        self.scanned = self.buffer.len();
        None
    }
}

fn parse_line(line: &[u8]) -> Result<Option<ContainerEvent>, EngineError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    api::parse_event(line)
}

impl Stream for EventLines {
    type Item = Result<ContainerEvent, EngineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            if let Some(item) = this.next_buffered() {
                this.finished = item.is_err();
                return Poll::Ready(Some(item));
            }
            if this.buffer.len() > this.line_bytes_max {
                this.finished = true;
                return Poll::Ready(Some(Err(EngineError::Protocol(format!(
                    "event line longer than {} bytes",
                    this.line_bytes_max
                )))));
            }
            match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(chunk)) => this.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    this.finished = true;
                    let rest = this.buffer.split();
                    return Poll::Ready(match parse_line(&rest) {
                        Ok(Some(event)) => Some(Ok(event)),
                        Ok(None) => None,
                        Err(error) => Some(Err(error)),
                    });
                }
            }
        }
    }
}
