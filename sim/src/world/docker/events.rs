//! The events stream `SimDocker::events` returns.
//!
//! Owns: one subscriber's queue of container events, filled by the model's lifecycle
//! commands from the moment the stream was opened.
//!
//! Promises: events arrive in the order the commands happened; the stream ends (after an
//! `Err(Unavailable)` when the connection broke) when the daemon goes down or the world
//! drops event streams, and never yields again after that. Dropping it unsubscribes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use engine::port::{ContainerEvent, ContainerEventKind, EngineError};
use futures::Stream;

use super::state::StreamEnd;
use super::DockerShared;

pub(crate) struct SimEventStream {
    pub(crate) docker: Arc<DockerShared>,
    pub(crate) stream_id: u64,
    pub(crate) done: bool,
}

impl Stream for SimEventStream {
    type Item = Result<ContainerEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let mut state = this.docker.state.lock();
        let subscriber = state.event_streams.get_mut(&this.stream_id).expect("open stream has a record");
        if let Some(event) = subscriber.queue.pop_front() {
            state.counters.events_delivered += 1;
            // A `destroy` alone teaches the agent nothing it could act on: the log is
            // gone with the container (its loss is the removal's, owed by nobody).
            if let Some(serial) =
                state.serials.get(&event.id).copied().filter(|_| event.kind != ContainerEventKind::Destroy)
            {
                state.seen(serial, false);
            }
            return Poll::Ready(Some(Ok(event)));
        }
        match subscriber.end.clone() {
            Some(StreamEnd::Eof) => {
                this.done = true;
                Poll::Ready(None)
            }
            Some(StreamEnd::Error(error)) => {
                this.done = true;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                subscriber.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for SimEventStream {
    fn drop(&mut self) {
        let mut state = self.docker.state.lock();
        state.event_streams.remove(&self.stream_id);
        state.counters.event_streams_open = state.event_streams.len();
        if state.event_streams.is_empty() {
            // Events a delay held back die with the last connection.
            state.held_events.clear();
        }
    }
}
