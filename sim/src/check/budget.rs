//! Task budget, bounds and starvation, at every change where a high-water mark or a
//! hook sees it, else once per simulated minute.
//!
//! - open log streams ≤ `streams_max` at every open (the Docker model's high-water mark);
//! - at every engine spawn ([`check_spawn`], the executor's spawn hook): stream-holding
//!   tasks ≤ open log streams, and container tasks ≤ containers the agent monitors or is
//!   retiring (counted before the task being spawned: its owner updates the gauges next);
//! - monitored ≤ containers that exist (per minute);
//! - queued bytes ≤ `queue_bytes_max`, at every change (the pipeline's high-water mark;
//!   the world's own count is checked at every chunk handed, `world::docker::unsettled`);
//! - no running container with unread output goes without a log stream for longer than
//!   the starvation bound while Docker is up and the pipeline flows (the FIFO pool,
//!   whose holders yield to waiters with lines to read, must give everyone a turn).

use std::time::Duration;

use engine::model::ContainerId;
use engine::rt::Instant;
use engine::task::{TaskKind, TaskRegistry};
use engine::telemetry::Telemetry;

use crate::check::Invariant;
use crate::world::docker::SimDocker;

pub struct BudgetChecker {
    pub streams_max: usize,
    pub queue_bytes_max: usize,
    pub starvation_max: Duration,
    /// Per running container without an open stream, in id order: since when it has had
    /// none (as far as the samples can tell), and its log requests at the last sample.
    /// Carried from sample to sample by a merge walk over two sorted lists: the map it
    /// replaces cost an insert and a remove per container per sample (~700 instructions
    /// each; 10.7M of seed 1's 2,216M).
    unstreamed_since: Vec<(ContainerId, Instant, u64)>,
    /// The previous sample's list (its buffer is reused).
    unstreamed_before: Vec<(ContainerId, Instant, u64)>,
    pub samples: u64,
    pub streams_open_max: usize,
    /// How long a container removed without its `destroy` event reaching the agent (the
    /// world lost it) may still be monitored: until the agent's next reconcile.
    pub unannounced_grace: Duration,
}

impl BudgetChecker {
    pub fn new(streams_max: usize, queue_bytes_max: usize, starvation_max: Duration) -> BudgetChecker {
        BudgetChecker {
            streams_max,
            queue_bytes_max,
            starvation_max,
            unstreamed_since: Vec::new(),
            unstreamed_before: Vec::new(),
            samples: 0,
            streams_open_max: 0,
            unannounced_grace: Duration::ZERO,
        }
    }

    /// Forget starvation clocks (Docker was down, or the agent was: nobody can stream).
    pub fn excuse_all(&mut self) {
        self.unstreamed_since.clear();
    }

    /// One sample. `agent`: the running incarnation's registry and telemetry, if any.
    pub fn sample(
        &mut self,
        now: Instant,
        docker: &SimDocker,
        agent: Option<(&TaskRegistry, &Telemetry)>,
        pipeline_blocked: bool,
    ) -> Result<(), (Invariant, String)> {
        self.samples += 1;
        let counters = docker.counters();
        let open = counters.log_streams_open;
        // The high-water mark the model keeps at every open: an overlap of a moment
        // between two samples is seen too.
        let open_max = counters.log_streams_open_max;
        self.streams_open_max = self.streams_open_max.max(open_max);
        if open_max > self.streams_max {
            return Err((
                Invariant::TaskBudget,
                format!("{open_max} log streams were open at once, streams_max is {}", self.streams_max),
            ));
        }
        let existing = docker.existing_count() as u64;
        if let Some((registry, telemetry)) = agent {
            let stream_tasks = registry.alive(TaskKind::Stream);
            if stream_tasks > open as u64 {
                return Err((
                    Invariant::TaskBudget,
                    format!("{stream_tasks} stream-holding tasks but {open} open log streams"),
                ));
            }
            // Supervisors of removed containers finish (and are joined) concurrently, so
            // they count against what the agent knows: monitored plus retiring, which in
            // turn can never exceed the containers that exist plus those being retired.
            let container_tasks = registry.alive(TaskKind::Container);
            let monitored = Telemetry::get(&telemetry.containers_monitored);
            let retiring = Telemetry::get(&telemetry.containers_retiring);
            if container_tasks > monitored + retiring {
                return Err((
                    Invariant::TaskBudget,
                    format!(
                        "{container_tasks} container tasks for {monitored} monitored + {retiring} retiring containers"
                    ),
                ));
            }
            // A removal whose `destroy` the world lost is learned at the next reconcile.
            let since = Instant::from_nanos(now.as_nanos().saturating_sub(self.unannounced_grace.as_nanos() as u64));
            let unannounced = docker.unannounced_removals_since(since) as u64;
            if monitored > existing + unannounced {
                return Err((Invariant::TaskBudget, format!("{monitored} containers monitored but {existing} exist")));
            }
            // The high-water mark, so a bound broken between samples is seen too.
            let queued = Telemetry::get(&telemetry.queue_bytes_max_seen);
            if queued > self.queue_bytes_max as u64 {
                return Err((
                    Invariant::Bounds,
                    format!("{queued} bytes were queued at once, queue_bytes_max is {}", self.queue_bytes_max),
                ));
            }
        }
        // Backpressure (Loki down, or the queue nearly full) holds every supervisor in
        // its send, slot and all: the pool promises turns only while lines can flow.
        if agent.is_none() || !docker.is_daemon_up() || pipeline_blocked {
            self.excuse_all();
            return Ok(());
        }
        // Clocks of containers that are streamed, read to the end, stopped or gone are
        // dropped.
        std::mem::swap(&mut self.unstreamed_since, &mut self.unstreamed_before);
        self.unstreamed_since.clear();
        let mut previous = self.unstreamed_before.drain(..).peekable();
        // Both lists are in id order: the model answers from its map of containers by id.
        for (id, opens) in docker.unread_unstreamed() {
            while previous.next_if(|(before, ..)| *before < id).is_some() {}
            // A container streamed between two samples (a log request since the last
            // one) starts a new clock: samples alone would take a slot held for less
            // than a sample period, as the pool's yields make them, for no stream at all.
            let mut since = match previous.next_if(|(before, ..)| *before == id) {
                Some((_, since, opens_then)) if opens_then == opens => since,
                _ => now,
            };
            // Its start (or a stale die after it) never reached the agent as it happened:
            // the clock starts when its reconcile is due.
            if let Some(at) = docker.events_disturbed_at(&id) {
                since = since.max(at + self.unannounced_grace);
            }
            let waited = now.saturating_duration_since(since);
            if waited > self.starvation_max {
                let name = docker.container(&id).map(|report| report.name).unwrap_or_default();
                return Err((
                    Invariant::Liveness,
                    format!(
                        "running container {} ({name}) has had no log stream for {}s",
                        id.short(),
                        waited.as_secs()
                    ),
                ));
            }
            self.unstreamed_since.push((id, since, opens));
        }
        Ok(())
    }
}

/// The task budget at an engine spawn of a `kind` task, counted before it: stream-holding
/// tasks ≤ `streams_open`, container tasks ≤ monitored + retiring.
pub fn check_spawn(
    kind: TaskKind,
    registry: &TaskRegistry,
    telemetry: &Telemetry,
    streams_open: usize,
) -> Result<(), String> {
    let before = |of: TaskKind| registry.alive(of).saturating_sub(u64::from(kind == of));
    let stream_tasks = before(TaskKind::Stream);
    if stream_tasks > streams_open as u64 {
        return Err(format!(
            "at a spawn of a {} task: {stream_tasks} stream-holding tasks but {streams_open} open log streams",
            kind.as_str()
        ));
    }
    let container_tasks = before(TaskKind::Container);
    let monitored = Telemetry::get(&telemetry.containers_monitored);
    let retiring = Telemetry::get(&telemetry.containers_retiring);
    if container_tasks > monitored + retiring {
        return Err(format!(
            "at a spawn of a {} task: {container_tasks} container tasks for {monitored} monitored + {retiring} retiring containers",
            kind.as_str()
        ));
    }
    Ok(())
}
