//! Deliberately broken supervisor variants (feature `broken-variants`, tests only).
//!
//! Each reproduces one leak class of the Go predecessor (DESIGN §1) on top of the real
//! supervisor, so the simulator's tests can show that its oracle catches it, names the
//! invariant and blames the spawn site. Nothing here is compiled into the daemon.

use std::cell::Cell;
use std::time::Duration;

use futures::StreamExt;

use crate::container::supervisor::{StreamEnd, Supervisor};
use crate::container::SupervisorVariant;
use crate::model::Labels;
use crate::port::LogStream;
use crate::task::TaskKind;

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
pub(crate) fn on_start(supervisor: &Supervisor) {
    if supervisor.shared.config.variant == SupervisorVariant::OrphanTask {
        let rt = supervisor.shared.rt.clone();
        // Untracked spawn: nobody keeps the handle, nobody joins it.
        supervisor
            .shared
            .tasks
            .spawn(TaskKind::Heartbeat, async move {
                loop {
                    rt.sleep(Duration::from_secs(30)).await;
                }
            })
            .detach();
    }
}

/// Replaces the supervisor's own pump for the broken variants.
pub(crate) async fn pump(supervisor: &mut Supervisor, stream: LogStream, labels: &[Labels; 2]) -> StreamEnd {
    let shared = supervisor.shared.clone();
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
            supervisor.pump(relayed, labels).await
        }
        SupervisorVariant::WrongJoin => {
            let rt = shared.rt.clone();
            let heartbeat = shared.tasks.spawn(TaskKind::Heartbeat, async move {
                loop {
                    rt.sleep(Duration::from_secs(30)).await;
                }
            });
            let end = supervisor.pump(stream, labels).await;
            // "Wait for the reader": the group also holds the heartbeat, which never ends.
            let _ = heartbeat.join().await;
            end
        }
        // The variants outside the supervisor (sink, queue, shutdown) pump as the real one.
        SupervisorVariant::OrphanTask
        | SupervisorVariant::Correct
        | SupervisorVariant::AckBeforeDelivery
        | SupervisorVariant::BudgetBypass
        | SupervisorVariant::HangShutdown => supervisor.pump(stream, labels).await,
    }
}
