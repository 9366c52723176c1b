//! The assembled agent: container monitor + pipeline + checkpointing, started and shut
//! down as one. The daemon and the simulator both drive the engine through this API.
//!
//! Start: load the checkpoint, spawn the sink worker, the dispatcher, the checkpoint
//! task and discovery (which spawns a supervisor per container). Only a `Fresh` store
//! is a first run, where `first_sight` decides for the containers of the first
//! reconcile; a `Lost` one reads them from the beginning (see `CheckpointOrigin`).
//! Shutdown, within one deadline: stop intake (discovery and supervisors are cancelled
//! and joined, their streams dropped), close the queue so the dispatcher flushes, let
//! the sink worker drain, commit the acknowledged positions one last time. Past the
//! deadline what is still in flight is abandoned (it was never acknowledged, so the next
//! start reads it again) and the report says how much.

use std::sync::Arc;
use std::time::Duration;

use crate::container::MonitorConfig;
use crate::pipeline::PipelineConfig;
use crate::port::{CheckpointStore, ContainerEngine, Labeler, SinkTransport};

#[derive(Clone, Debug, PartialEq, Default)]
pub struct AgentConfig {
    pub monitor: MonitorConfig,
    pub pipeline: PipelineConfig,
    pub checkpoint: crate::checkpoint::CheckpointConfig,
}

/// The world as the agent sees it.
#[derive(Clone)]
pub struct AgentPorts {
    pub docker: Arc<dyn ContainerEngine>,
    pub sink: Arc<dyn SinkTransport>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    pub labeler: Arc<dyn Labeler>,
}

/// What a shutdown achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every queued line was acknowledged (or rejected and counted) before the deadline.
    pub drained: bool,
    /// Lines still queued or in flight when the deadline struck, and lines readers had
    /// read and not queued when intake stopped (they wait for the budget).
    pub lines_abandoned: u64,
    /// The final checkpoint commit succeeded.
    pub committed: bool,
    pub elapsed: Duration,
}

use tokio::sync::{mpsc, watch};

use crate::checkpoint::positions::Acks;
use crate::checkpoint::{commit, run_checkpointer};
use crate::container::discovery::Discovery;
use crate::container::pool::StreamPool;
use crate::container::MonitorShared;
use crate::pipeline::dispatcher::run_dispatcher;
use crate::pipeline::queue::{queue, Budget, QueueSender};
use crate::pipeline::sink::SinkWorker;
use crate::port::{CheckpointError, CheckpointOrigin, LoadedCheckpoint};
use crate::rt::{Instant, Rt};
use crate::task::{TaskHandle, TaskKind, Tasks};
use crate::telemetry::events::{CheckpointLoaded, ComponentStarted};
use crate::telemetry::{Component, Telemetry};

/// A running agent. Call [`Agent::shutdown`]; dropping it cancels every task at once
/// (which is what a crash looks like to the rest of the world).
pub struct Agent {
    tasks: Tasks,
    telemetry: Arc<Telemetry>,
    acks: Arc<Acks>,
    store: Arc<dyn CheckpointStore>,
    stop_discovery: watch::Sender<bool>,
    discovery: TaskHandle<()>,
    dispatcher: TaskHandle<()>,
    sink: TaskHandle<()>,
    checkpointer: TaskHandle<()>,
    queue: QueueSender,
}

impl Agent {
    /// Load the checkpoint and start every task.
    pub async fn start(
        tasks: Tasks,
        config: AgentConfig,
        ports: AgentPorts,
        telemetry: Arc<Telemetry>,
    ) -> Result<Agent, CheckpointError> {
        // One line, truncated or not, must fit in the pipeline's byte budget (with its
        // per-line overhead), or its source would wait forever (the daemon's config
        // validation says so first).
        assert!(
            Budget::cost(1, config.monitor.line_bytes_max + crate::parse::assemble::TRUNCATION_MARKER.len())
                <= config.pipeline.queue_bytes_max,
            "line_bytes_max {} (+ truncation marker) exceeds queue_bytes_max {}",
            config.monitor.line_bytes_max,
            config.pipeline.queue_bytes_max
        );
        let LoadedCheckpoint { checkpoint, origin } = ports.checkpoints.load_with_origin().await?;
        // Only a store that never had a checkpoint is a first run (`first_sight`); a lost
        // one reads every container from the beginning, since "now" would lose the lines
        // written while the agent was down.
        let first_run = origin == CheckpointOrigin::Fresh;
        CheckpointLoaded { origin, containers: checkpoint.containers.len() }.emit(&telemetry);
        let rt: Arc<dyn Rt> = tasks.rt().clone();
        let acks = Arc::new(Acks::from_checkpoint(checkpoint));
        let budget = Budget::new(config.pipeline.queue_bytes_max, telemetry.clone());
        let (queue_tx, queue_rx) = queue(budget.clone());
        // One batch being built, one waiting, one in flight: the channel holds one.
        let (batches_tx, batches_rx) = mpsc::channel(1);
        let sink_worker = SinkWorker {
            rt: rt.clone(),
            transport: ports.sink.clone(),
            policy: config.pipeline.retry.clone(),
            acks: acks.clone(),
            budget,
            telemetry: telemetry.clone(),
        };
        let sink = tasks.spawn(TaskKind::Sink, sink_worker.run(batches_rx));
        let dispatcher = tasks
            .spawn(TaskKind::Dispatcher, run_dispatcher(rt.clone(), config.pipeline.clone(), queue_rx, batches_tx));
        let checkpointer = tasks.spawn(
            TaskKind::Checkpoint,
            run_checkpointer(
                rt.clone(),
                config.checkpoint.clone(),
                acks.clone(),
                ports.checkpoints.clone(),
                telemetry.clone(),
            ),
        );
        ComponentStarted { component: Component::Sink }.emit(&telemetry);
        ComponentStarted { component: Component::Checkpoint }.emit(&telemetry);
        let shared = Arc::new(MonitorShared {
            rt: rt.clone(),
            tasks: tasks.clone(),
            pool: StreamPool::new(config.monitor.streams_max, telemetry.clone()),
            config: config.monitor,
            docker: ports.docker.clone(),
            queue: queue_tx.clone(),
            telemetry: telemetry.clone(),
            labeler: ports.labeler.clone(),
            acks: acks.clone(),
        });
        let (stop_discovery, stop_rx) = watch::channel(false);
        let discovery = tasks.spawn(TaskKind::Discovery, Discovery::new(shared, first_run, stop_rx).run());
        Ok(Agent {
            tasks,
            telemetry,
            acks,
            store: ports.checkpoints,
            stop_discovery,
            discovery,
            dispatcher,
            sink,
            checkpointer,
            queue: queue_tx,
        })
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Stop intake, drain, commit; see the module docs. Never takes (much) longer than
    /// `timeout`: intake and drain end by `timeout` minus [`commit_reserve`], which leaves
    /// the final commit the time the slowest commit so far took (at least a quarter of the
    /// deadline, at most half of it); only a commit slower than that runs past.
    pub async fn shutdown(self, timeout: Duration) -> ShutdownReport {
        let Agent { tasks, telemetry, acks, store, stop_discovery, discovery, dispatcher, sink, checkpointer, queue } =
            self;
        let rt = tasks.rt().clone();
        let started = rt.now();
        let deadline = started + (timeout - commit_reserve(timeout, acks.slowest_commit()));
        // 1. Intake: discovery cancels and joins every supervisor, then returns.
        let _ = stop_discovery.send(true);
        let _ = join_until(&*rt, discovery, deadline).await;
        // 2. Drain: with the last sender gone the dispatcher flushes and ends, then the sink.
        drop(queue);
        let dispatcher_done = join_until(&*rt, dispatcher, deadline).await;
        let sink_done = join_until(&*rt, sink, deadline).await;
        let drained = dispatcher_done && sink_done;
        // Queued lines the drain did not deliver, and lines the readers had read and
        // were waiting to queue when intake stopped (seed 1190).
        let lines_abandoned = Telemetry::get(&telemetry.queue_lines) + Telemetry::get(&telemetry.reader_lines_held);
        // 3. Commit what was acknowledged.
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::HangShutdown) {
            std::future::pending::<()>().await;
        }
        let _ = checkpointer.cancel_and_join().await;
        let committed = commit(&*rt, &*store, &acks, &telemetry, acks.snapshot()).await;
        ShutdownReport { drained, lines_abandoned, committed, elapsed: rt.now() - started }
    }
}

/// The part of a shutdown's `timeout` kept for its final commit: the slowest commit seen
/// so far (a store's latency does not change much), at least a quarter of the deadline
/// (for a store not yet timed, or slower at the end), at most half of it (the drain needs
/// time too). Seed 34: a 3 s commit after a drain that took the whole 10 s.
pub fn commit_reserve(timeout: Duration, slowest_commit: Duration) -> Duration {
    slowest_commit.max(timeout / 4).min(timeout / 2)
}

/// Join `task`, or cancel it and join once `deadline` passes. True if it finished by itself.
async fn join_until(rt: &dyn Rt, task: TaskHandle<()>, deadline: Instant) -> bool {
    let cancel = task.cancel_handle();
    let sleep = rt.sleep_until(deadline);
    let join = task.join();
    tokio::pin!(join);
    tokio::select! {
        biased;
        _ = &mut join => true,
        _ = sleep => {
            cancel.cancel();
            let _ = join.await;
            false
        }
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
