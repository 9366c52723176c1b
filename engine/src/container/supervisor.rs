//! One container's supervisor: the task that owns its log stream.
//!
//! Loop: wait until the container runs → take a slot from the pool → open the log since
//! the last queued position → pump the stream until it must end → drop the stream, then
//! the slot → go round. The stream is polled here, by the owner, so "rotate" is simply
//! dropping it and opening a new one: no reader task can be left behind.
//!
//! A stream ends for one of these reasons ([`StreamEnd`]):
//! - rotation: `rotate_every` (jittered) has passed since it was opened;
//! - the container stopped: the stream ended by itself, or it is still open
//!   `drain_after_stop` after the stop (a stream that outlives its container);
//! - a stall: nothing arrived for `stall_timeout`; the container is inspected and the
//!   stream dropped if it no longer runs (a silent running container keeps its stream);
//! - an error (decoding or transport): reopened after a backoff that grows per
//!   consecutive failure up to `backoff_max`;
//! - the container was removed, or the agent is shutting down: the task ends.
//!
//! Heartbeat and stall watchdog are one timer in the same loop as the stream, not tasks
//! of their own (the predecessor's heartbeat goroutine shared a WaitGroup with the
//! reader, and "wait for the reader" waited for it forever): while the stream is silent
//! the loop wakes every `stall_timeout` and asks Docker whether the container still runs.
//! One timer is armed at a time, at the earliest of the rotation, stall and drain
//! deadlines.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::container::discovery::{ContainerState, MonitorShared};
use crate::container::reader::{LogReader, ReadStats, Run};
use crate::container::FirstSight;
use crate::model::{ContainerId, Labels, SourceId, StdStream};
use crate::pipeline::queue::Chunk;
use crate::pipeline::retry::{exponential_backoff, unit_from_bits};
use crate::port::{ContainerCheckpoint, ContainerInfo, EngineError, LogOptions, LogStream};
use crate::rt::Instant;
use crate::telemetry::DropReason;

/// Why a stream was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    Rotate,
    Reopen { after: Duration },
    ContainerStopped,
    Removed,
}

pub struct Supervisor {
    pub(crate) shared: Arc<MonitorShared>,
    id: ContainerId,
    state: watch::Receiver<ContainerState>,
    reader: LogReader,
    sources: [SourceId; 2],
    first_sight: FirstSight,
    /// The `since` of the first successful open, reused while nothing was read yet.
    first_since: Option<i64>,
    failures: u32,
}

impl Supervisor {
    pub fn new(
        shared: Arc<MonitorShared>,
        id: ContainerId,
        state: watch::Receiver<ContainerState>,
        resume: ContainerCheckpoint,
        first_sight: FirstSight,
    ) -> Supervisor {
        let config = &shared.config;
        let queue_bytes_max = shared.queue.chunk_bytes_max();
        let run_bytes_max = (queue_bytes_max / 4).max(config.line_bytes_max + 1024).min(queue_bytes_max);
        let reader = LogReader::new(config.line_bytes_max, config.frame_bytes_max, run_bytes_max, resume);
        let sources = [
            SourceId::Container { id: id.clone(), stream: StdStream::Stdout },
            SourceId::Container { id: id.clone(), stream: StdStream::Stderr },
        ];
        Supervisor { shared, id, state, reader, sources, first_sight, first_since: None, failures: 0 }
    }

    /// The task body.
    pub async fn run(mut self) {
        #[cfg(feature = "broken-variants")]
        crate::container::broken::on_start(&self);
        loop {
            let Some(info) = self.wait_until_running().await else { return };
            let labeler = &self.shared.labeler;
            let labels = match (labeler.labels(&info, StdStream::Stdout), labeler.labels(&info, StdStream::Stderr)) {
                (Some(stdout), Some(stderr)) => [stdout, stderr],
                _ => {
                    // Excluded (for now: a rename may change that).
                    if self.state.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let slot = tokio::select! {
                biased;
                changed = self.state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                slot = self.shared.pool.acquire() => slot,
            };
            let end = match self.open().await {
                #[cfg(feature = "broken-variants")]
                Ok(stream) if self.shared.config.variant != crate::container::SupervisorVariant::Correct => {
                    crate::container::broken::pump(&mut self, stream, &labels).await
                }
                Ok(stream) => self.pump(stream, &labels).await,
                Err(EngineError::NotFound(_)) => StreamEnd::ContainerStopped,
                Err(error) => {
                    self.shared.telemetry.container_stream_errors_total.fetch_add(1, Ordering::Relaxed);
                    self.note_docker_error(&error);
                    StreamEnd::Reopen { after: self.next_backoff() }
                }
            };
            drop(slot);
            match end {
                StreamEnd::Rotate => {}
                StreamEnd::ContainerStopped => {
                    // Docker says stopped; if our view still says running, the event is
                    // on its way (or lost: then look again after a while).
                    if self.state.borrow().info.running && !self.wait_for_news(self.shared.config.stall_timeout).await {
                        return;
                    }
                }
                StreamEnd::Removed => return,
                StreamEnd::Reopen { after } => {
                    if !self.sleep_unless_removed(after).await {
                        return;
                    }
                }
            }
        }
    }

    /// Wait until the container runs; `None` once it is removed.
    async fn wait_until_running(&mut self) -> Option<ContainerInfo> {
        loop {
            {
                let state = self.state.borrow_and_update();
                if state.removed {
                    return None;
                }
                if state.info.running {
                    return Some(state.info.clone());
                }
            }
            self.state.changed().await.ok()?;
        }
    }

    /// Sleep for `duration`; false if the container was removed meanwhile.
    async fn sleep_unless_removed(&mut self, duration: Duration) -> bool {
        let mut sleep = self.shared.rt.sleep(duration);
        loop {
            tokio::select! {
                biased;
                changed = self.state.changed() => {
                    if changed.is_err() || self.state.borrow().removed {
                        return false;
                    }
                }
                _ = &mut sleep => return true,
            }
        }
    }

    /// Wait for a state change or `timeout`; false if the container was removed.
    async fn wait_for_news(&mut self, timeout: Duration) -> bool {
        let sleep = self.shared.rt.sleep(timeout);
        tokio::select! {
            biased;
            changed = self.state.changed() => changed.is_ok() && !self.state.borrow().removed,
            _ = sleep => true,
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let config = &self.shared.config;
        self.failures = self.failures.saturating_add(1);
        self.shared.rt.jitter(exponential_backoff(config.backoff_min, config.backoff_max, self.failures), 0.2)
    }

    fn note_docker_error(&self, error: &EngineError) {
        let now = self.shared.rt.now();
        if let Some(suppressed) = self.shared.telemetry.docker_log.should_log(now) {
            tracing::warn!(container = self.id.short(), %error, suppressed, "container log stream failed; reopening");
        }
    }

    async fn open(&mut self) -> Result<LogStream, EngineError> {
        let (since_secs, tail) = match (self.reader.since_secs(self.shared.config.since_skew), self.first_since) {
            (Some(since), _) | (None, Some(since)) => (since, None),
            (None, None) => match self.first_sight {
                FirstSight::Beginning => (0, None),
                FirstSight::Now => (self.shared.rt.wall().div_euclid(1_000_000_000), None),
                FirstSight::Tail(lines) => (0, Some(lines)),
            },
        };
        self.shared.telemetry.container_stream_opens_total.fetch_add(1, Ordering::Relaxed);
        let options = LogOptions { follow: true, since_secs, tail };
        let stream = self.shared.docker.logs(&self.id, options).await?;
        if self.first_since.is_none() {
            // Later opens with nothing read yet start where this one did; a tail
            // request becomes "since now" (the tail was already read or empty).
            self.first_since =
                Some(if tail.is_some() { self.shared.rt.wall().div_euclid(1_000_000_000) } else { since_secs });
        }
        self.reader.set_tty(self.state.borrow().info.tty);
        self.reader.reopen();
        Ok(stream)
    }

    pub(crate) async fn pump(&mut self, mut stream: LogStream, labels: &[Labels; 2]) -> StreamEnd {
        let shared = self.shared.clone();
        let (rt, config, telemetry) = (&shared.rt, &shared.config, &shared.telemetry);
        let opened_at = rt.now();
        let rotate_at =
            opened_at + config.rotate_every.mul_f64(1.0 - config.rotate_jitter * unit_from_bits(rt.rand_u64()));
        let mut stall_at = opened_at + config.stall_timeout;
        let mut drain_until = (!self.state.borrow().info.running).then(|| opened_at + config.drain_after_stop);
        let earliest = |stall_at: Instant, drain_until: Option<Instant>| {
            rotate_at.min(stall_at).min(drain_until.unwrap_or(rotate_at))
        };
        let mut timer_at = earliest(stall_at, drain_until);
        let mut timer = rt.sleep_until(timer_at);
        let mut runs: Vec<Run> = Vec::new();
        // One wait for a state change lives across the iterations (a new one only after
        // it fired), on a clone of the receiver; `self.state` marks what was seen. Once
        // its waiter is registered it is polled only when there is news, which decides
        // every iteration exactly as polling `self.state.changed()` first would.
        let mut state_changed = pin!(next_change(self.state.clone()));
        let mut state_armed = false;
        loop {
            let state_news = std::future::poll_fn(|cx| {
                if state_armed && !self.state.has_changed().unwrap_or(true) {
                    return Poll::Pending;
                }
                state_armed = true;
                state_changed.as_mut().poll(cx)
            });
            tokio::select! {
                biased;
                changed = state_news => {
                    let now = rt.now();
                    let state = self.state.borrow_and_update();
                    if changed.is_err() || state.removed {
                        return StreamEnd::Removed;
                    }
                    if state.info.running {
                        drain_until = None;
                    } else if drain_until.is_none() {
                        drain_until = Some(now + config.drain_after_stop);
                        if drain_until.unwrap() < timer_at {
                            timer_at = drain_until.unwrap();
                            timer = rt.sleep_until(timer_at);
                        }
                    }
                    drop(state);
                    state_changed.set(next_change(self.state.clone()));
                    state_armed = false;
                }
                _ = &mut timer => {
                    let now = rt.now();
                    if now >= rotate_at {
                        telemetry.container_stream_rotations_total.fetch_add(1, Ordering::Relaxed);
                        return StreamEnd::Rotate;
                    }
                    if drain_until.is_some_and(|until| now >= until) {
                        return StreamEnd::ContainerStopped;
                    }
                    if now >= stall_at {
                        // Quiet for stall_timeout: fine for a running container (the
                        // rotation reopens anyway); a stream that outlives its stopped
                        // container (bollard #251) is dropped.
                        match self.after_stall_or_end().await {
                            StreamEnd::Reopen { after } if after.is_zero() => stall_at = rt.now() + config.stall_timeout,
                            end => return end,
                        }
                    }
                    timer_at = earliest(stall_at, drain_until);
                    timer = rt.sleep_until(timer_at);
                }
                item = stream.next() => {
                    let now = rt.now();
                    match item {
                        Some(Ok(bytes)) => {
                            stall_at = now + config.stall_timeout;
                            let mut stats = ReadStats::default();
                            let result = self.reader.handle_chunk(bytes, &mut runs, &mut stats);
                            telemetry.record_lines_in(stats.lines, stats.bytes);
                            telemetry.lines_truncated_total.fetch_add(stats.truncated, Ordering::Relaxed);
                            telemetry.lines_duplicate_skipped_total.fetch_add(stats.duplicates, Ordering::Relaxed);
                            for run in runs.drain(..) {
                                let chunk = Chunk {
                                    source: self.sources[run.stream.index()].clone(),
                                    labels: labels[run.stream.index()].clone(),
                                    lines: run.lines,
                                    bytes: run.bytes,
                                };
                                if shared.queue.send(chunk).await.is_err() {
                                    return StreamEnd::Removed;
                                }
                            }
                            if let Err(error) = result {
                                telemetry.record_drop(now, DropReason::MalformedFrame, 1, &error.to_string());
                                return StreamEnd::Reopen { after: self.next_backoff() };
                            }
                            self.failures = 0;
                        }
                        Some(Err(error)) => {
                            telemetry.container_stream_errors_total.fetch_add(1, Ordering::Relaxed);
                            self.note_docker_error(&error);
                            return StreamEnd::Reopen { after: self.next_backoff() };
                        }
                        None => return self.after_stall_or_end().await,
                    }
                }
            }
        }
    }

    /// The stream ended or went quiet: does the container still run?
    async fn after_stall_or_end(&mut self) -> StreamEnd {
        match self.shared.docker.inspect(&self.id).await {
            Ok(info) if info.running => StreamEnd::Reopen { after: Duration::ZERO },
            Ok(_) | Err(EngineError::NotFound(_)) => StreamEnd::ContainerStopped,
            Err(error) => {
                self.note_docker_error(&error);
                StreamEnd::Reopen { after: self.next_backoff() }
            }
        }
    }
}

/// Completes when `state` changes, or with an error once its sender is gone.
async fn next_change(mut state: watch::Receiver<ContainerState>) -> Result<(), watch::error::RecvError> {
    state.changed().await
}
