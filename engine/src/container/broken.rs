//! Deliberately broken supervisor variants (feature `broken-variants`, tests only).
//!
//! Each reproduces one leak class of the Go predecessor (DESIGN §1) on top of the real
//! supervisor, so the simulator's tests can show that its oracle catches it, names the
//! invariant and blames the spawn site. Nothing here is compiled into the daemon.
//!
//! The supervisor calls in through three hooks and this module knows nothing of the
//! supervisor (no import circle): [`on_start`] once per supervisor, [`wrap_stream`]
//! around every log stream it opens, whose [`StreamHook::after_stream`] it awaits once
//! the stream was dropped, and [`hidden_unit`] on its random draws. The pieces that have
//! no `MonitorConfig` at hand (sink, queue, shutdown, reader, machine) ask
//! [`is_active`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;

use crate::container::{MonitorShared, SupervisorVariant};
use crate::port::LogStream;
use crate::task::{TaskHandle, TaskKind};

thread_local! {
    /// The variant of the run on this thread, for the hooks outside the supervisor (sink,
    /// queue, agent) that have no `MonitorConfig` at hand. Thread-local: the simulator
    /// runs one seed per thread, single-threaded, so parallel tests do not see each other's.
    static ACTIVE: Cell<SupervisorVariant> = const { Cell::new(SupervisorVariant::Correct) };
}

/// Set the variant the hooks on this thread play (the simulator, once per seed).
pub fn set_active(variant: SupervisorVariant) {
    ACTIVE.with(|active| active.set(variant));
}

/// Whether the hooks on this thread play `variant`.
pub fn is_active(variant: SupervisorVariant) -> bool {
    ACTIVE.with(|active| active.get() == variant)
}

/// Called once when a supervisor starts.
pub(crate) fn on_start(shared: &MonitorShared) {
    if shared.config.variant == SupervisorVariant::OrphanTask {
        let rt = shared.rt.clone();
        // Untracked spawn: nobody keeps the handle, nobody joins it.
        shared
            .tasks
            .spawn(TaskKind::Heartbeat, async move {
                loop {
                    rt.sleep(Duration::from_secs(30)).await;
                }
            })
            .detach();
    }
}

/// Calls of [`hidden_unit`] in this process, over every run: state that outlives a run.
static HIDDEN_CALLS: AtomicU64 = AtomicU64::new(0);

/// The supervisor's random `unit` (rotation and backoff jitter) as `HiddenRandomness`
/// sees it: shifted by a process-wide counter, so a seed run twice in one process is
/// not run alike. The shipped variant gets `unit` unchanged.
pub(crate) fn hidden_unit(shared: &MonitorShared, unit: f64) -> f64 {
    if shared.config.variant != SupervisorVariant::HiddenRandomness {
        return unit;
    }
    let calls = HIDDEN_CALLS.fetch_add(1, Ordering::Relaxed);
    (unit + (calls % 997) as f64 / 997.0).fract()
}

/// What a broken variant does once its stream was dropped.
pub(crate) struct StreamHook {
    heartbeat: Option<TaskHandle<()>>,
}

impl StreamHook {
    pub(crate) async fn after_stream(self) {
        if let Some(heartbeat) = self.heartbeat {
            // "Wait for the reader": the group also holds the heartbeat, which never ends.
            let _ = heartbeat.join().await;
        }
    }
}

/// Wraps a freshly opened stream for the broken variants (the shipped one passes it on).
pub(crate) fn wrap_stream(shared: &MonitorShared, stream: LogStream) -> (LogStream, StreamHook) {
    match shared.config.variant {
        SupervisorVariant::ReaderPileUp => {
            // A reader task per stream, forwarding through a channel; on rotation the
            // supervisor drops its end and moves on without awaiting the reader, which
            // keeps draining (and holding) the old stream.
            let (forward, receive) = tokio::sync::mpsc::channel(16);
            let mut stream = stream;
            shared
                .tasks
                .spawn(TaskKind::Stream, async move {
                    while let Some(item) = stream.next().await {
                        let _ = forward.send(item).await;
                    }
                })
                .detach();
            let relayed: LogStream = Box::pin(futures::stream::unfold(receive, |mut receive| async move {
                receive.recv().await.map(|item| (item, receive))
            }));
            (relayed, StreamHook { heartbeat: None })
        }
        SupervisorVariant::OverlapAtRotation => {
            // Only streams dropped at a rotation (jittered instants), not the yields of a
            // pool started all at once (their instants line up with whole minutes).
            let linger_after = shared.rt.now() + shared.config.rotate_every / 2;
            let lingering =
                Lingering { stream: Some(stream), linger_after, shared: (shared.tasks.clone(), shared.rt.clone()) };
            (Box::pin(lingering), StreamHook { heartbeat: None })
        }
        SupervisorVariant::WrongJoin => {
            let rt = shared.rt.clone();
            let heartbeat = shared.tasks.spawn(TaskKind::Heartbeat, async move {
                loop {
                    rt.sleep(Duration::from_secs(30)).await;
                }
            });
            (stream, StreamHook { heartbeat: Some(heartbeat) })
        }
        SupervisorVariant::SpinOnEnd => {
            // "Try again" on an ended stream: it wakes itself and is polled again at
            // once, forever, and virtual time never moves on.
            let mut stream = stream;
            let mut ended = false;
            let spinning: LogStream = Box::pin(futures::stream::poll_fn(move |cx| {
                if !ended {
                    match stream.poll_next_unpin(cx) {
                        Poll::Ready(None) => ended = true,
                        other => return other,
                    }
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }));
            (spinning, StreamHook { heartbeat: None })
        }
        // The variants elsewhere (sink, queue, shutdown, reader, machine, jitter, gap
        // count) pump as the real one.
        SupervisorVariant::OrphanTask
        | SupervisorVariant::Correct
        | SupervisorVariant::AckBeforeDelivery
        | SupervisorVariant::BudgetBypass
        | SupervisorVariant::HangShutdown
        | SupervisorVariant::LineOverheadUncharged
        | SupervisorVariant::DuplicateReplay
        | SupervisorVariant::TailDropped
        | SupervisorVariant::ProbeTrustsSilence
        | SupervisorVariant::HiddenRandomness
        | SupervisorVariant::GapUncounted
        | SupervisorVariant::TailOvercounted
        | SupervisorVariant::DedupeLiveLines
        | SupervisorVariant::StripCarriageReturn
        | SupervisorVariant::DropEmptyLines
        | SupervisorVariant::DuplicateEmptyLines
        | SupervisorVariant::TailUncounted
        | SupervisorVariant::FirstSightForgotten
        | SupervisorVariant::FirstSightForAll => (stream, StreamHook { heartbeat: None }),
    }
}

/// [`SupervisorVariant::OverlapAtRotation`]'s stream: dropped after `linger_after` (a
/// rotation), it hands the real stream to a task that closes it a millisecond later.
struct Lingering {
    stream: Option<LogStream>,
    linger_after: crate::rt::Instant,
    shared: (crate::task::Tasks, std::sync::Arc<dyn crate::rt::Rt>),
}

impl futures::Stream for Lingering {
    type Item = <LogStream as futures::Stream>::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.stream.as_mut() {
            Some(stream) => stream.as_mut().poll_next(cx),
            None => std::task::Poll::Ready(None),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else { return };
        let (tasks, rt) = &self.shared;
        if rt.now() < self.linger_after {
            return;
        }
        let rt = rt.clone();
        tasks
            .spawn(TaskKind::Stream, async move {
                rt.sleep(Duration::from_millis(1)).await;
                drop(stream);
            })
            .detach();
    }
}

/// [`SupervisorVariant::StripCarriageReturn`]: the line without its trailing `\r`.
pub(crate) fn strip_carriage_return(mut line: crate::parse::assemble::Assembled) -> crate::parse::assemble::Assembled {
    if is_active(SupervisorVariant::StripCarriageReturn) && line.bytes.last() == Some(&b'\r') {
        line.bytes.truncate(line.bytes.len() - 1);
    }
    line
}

/// [`SupervisorVariant::DropEmptyLines`]: whether the reader drops this line (it is empty).
pub(crate) fn drops_empty_line(line: &crate::parse::assemble::Assembled) -> bool {
    is_active(SupervisorVariant::DropEmptyLines) && line.bytes.is_empty()
}

/// [`SupervisorVariant::DuplicateEmptyLines`]: whether the reader queues this line
/// twice (it is empty).
pub(crate) fn duplicates_empty_line(line: &crate::model::Line) -> bool {
    is_active(SupervisorVariant::DuplicateEmptyLines) && line.bytes.is_empty()
}
