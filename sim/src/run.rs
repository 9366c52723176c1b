//! One seed, start to finish: build the world, play its schedule against the real
//! engine, check the oracle, and report.
//!
//! Phases (DESIGN §6, TigerBeetle-style "safety, then liveness"):
//! 1. start the agent on an empty world and take the task baseline;
//! 2. play the schedule (output, churn, faults, crashes), sampling the budget and the
//!    progress check every simulated minute and checking every delivery as it happens;
//! 3. heal every fault and let the backlog drain, within a bound (liveness); then every
//!    line ever written is delivered or its loss named (completeness);
//! 4. remove every container: the live tasks must return to the baseline (quiet point);
//! 5. shut down within the deadline: afterwards no engine task may be alive.
//!
//! Every phase is bounded in virtual time, so a hang is a reported failure. The checks
//! themselves live in `check/`; this file only drives the phases and calls them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as WallInstant};

use engine::agent::{Agent, AgentConfig, AgentPorts, ShutdownReport};
use engine::checkpoint::CheckpointConfig;
use engine::container::{FirstSight, MonitorConfig, SupervisorVariant};
use engine::model::{ContainerId, Labels, StdStream};
use engine::pipeline::PipelineConfig;
use engine::port::ContainerInfo;
use engine::port::Labeler;
use engine::rt::{Instant, Rt};
use engine::task::Tasks;
use engine::telemetry::Telemetry;

use crate::check::budget::{self, BudgetChecker};
use crate::check::completeness::{self, AgentLossCounts, NamedLosses, WorldLossCounts};
use crate::check::delivery::DeliveryChecker;
use crate::check::leaks::{census, describe, Census};
use crate::check::liveness::{self, ProgressChecker};
use crate::check::{quiet, shutdown, Invariant, Violation};
use crate::executor::{streams, Executor, Lock, RunOutcome, SimRng};
use crate::scenario::{Action, Options, Schedule};
use crate::world::docker::{Burst, SimDocker};
use crate::world::loki::{LokiBehaviour, SimLoki};
use crate::world::SimCheckpointStore;
use engine::telemetry::DropReason;

/// The wall clock at virtual time zero: 2025-11-22T19:00:00Z.
pub const WALL_START: i64 = 1_763_838_000 * 1_000_000_000;

/// How a run is made, besides its options.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunConfig {
    pub variant: SupervisorVariant,
    /// Keep a human-readable trace of world actions and samples.
    pub trace: bool,
    /// Test-only broken model: a TTY container's stderr writes keep their own sequence
    /// numbers although they reach the agent as stdout (the oracle must catch it).
    pub broken_tty_keeps_stderr: bool,
}

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedStats {
    pub lines_written: u64,
    /// Of which empty (only a newline).
    pub empty_lines_written: u64,
    pub lines_delivered: u64,
    pub duplicates: u64,
    pub rotations: u64,
    pub stream_opens: u64,
    pub bursts: u64,
    pub crashes: u32,
    pub polls: u64,
    pub streams_open_max: usize,
    /// World actions played: containers exiting by themselves, json-file rotations.
    pub exits: u64,
    pub json_rotations: u64,
    /// Minute samples with the queue at 90 % of `queue_bytes_max` or more, counted as
    /// episodes (consecutive samples are one).
    pub backpressure_episodes: u64,
    /// Lines lost by a named, world-caused reason.
    pub losses: NamedLosses,
    /// Faults of Docker and the checkpoint store the world played.
    pub faults: WorldFaults,
    /// The agent's loss counters (over its incarnations), and what the world did that
    /// they answer for.
    pub agent_losses: AgentLossCounts,
    pub world_losses: WorldLossCounts,
    pub losses_read_past: u64,
    pub trace_digest: u64,
    pub simulated: Duration,
    pub container_hours: f64,
    pub wall: Duration,
}

/// Faults the world played on a seed (issue 7 item 2), for the report.
#[derive(Clone, Debug, Default)]
pub struct WorldFaults {
    /// Events on a live connection lost, delivered twice, held back behind a later one.
    pub events_lost: u64,
    pub events_duplicated: u64,
    pub events_delayed: u64,
    pub pauses: u64,
    /// Crashes that left the checkpoint's current generation corrupt or missing.
    pub checkpoint_damages: u64,
    /// The longest run of requests a Loki outage failed, and whether it was long enough
    /// for the sink's backoff to reach its cap (`RetryPolicy::backoff_max`).
    pub outage_failures_in_a_row_max: u64,
    pub sink_backoff_capped: bool,
}

/// Failures in a row after which the sink's backoff is at its cap.
fn failures_to_backoff_cap(policy: &engine::pipeline::retry::RetryPolicy) -> u64 {
    (1..64u32)
        .find(|&failures| {
            engine::rt::exponential_backoff(policy.backoff_min, policy.backoff_max, failures) >= policy.backoff_max
        })
        .unwrap_or(64) as u64
}

#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub options: Options,
    pub violation: Option<Violation>,
    pub stats: SeedStats,
    pub trace: Vec<String>,
}

/// Labels every container by name and stream. Supervisors ask on every (re)open, so the
/// label sets are built once per name and shared (`Labels` is an `Arc`).
#[derive(Default)]
struct Labels2 {
    by_name: Mutex<BTreeMap<String, [Labels; 2]>>,
}

impl Labeler for Labels2 {
    fn labels(&self, info: &ContainerInfo, stream: StdStream) -> Option<Labels> {
        let mut by_name = self.by_name.lock().unwrap();
        if let Some(labels) = by_name.get(&*info.name) {
            return Some(labels[stream.index()].clone());
        }
        let make = |stream: StdStream| -> Labels {
            Arc::new(
                [("container".to_string(), info.name.to_string()), ("stream".to_string(), stream.as_str().to_string())]
                    .into_iter()
                    .collect(),
            )
        };
        let labels = [make(StdStream::Stdout), make(StdStream::Stderr)];
        let chosen = labels[stream.index()].clone();
        by_name.insert(info.name.to_string(), labels);
        Some(chosen)
    }
}

/// The agent configuration a seed runs with.
pub fn agent_config(options: &Options, variant: SupervisorVariant) -> AgentConfig {
    AgentConfig {
        monitor: MonitorConfig {
            rotate_every: options.rotate_every,
            streams_max: options.streams_max,
            line_bytes_max: options.line_bytes_max,
            reconcile_every: options.reconcile_every,
            stall_timeout: options.stall_timeout,
            slot_wait_max: options.slot_wait_max,
            first_sight: match (options.first_sight_now, options.first_sight_tail) {
                (true, _) => FirstSight::Now,
                (false, 0) => FirstSight::Beginning,
                (false, lines) => FirstSight::Tail(lines),
            },
            variant,
            ..MonitorConfig::default()
        },
        pipeline: PipelineConfig {
            queue_bytes_max: options.queue_bytes_max,
            batch_bytes_max: options.batch_bytes_max,
            batch_wait: options.batch_wait,
            ..PipelineConfig::default()
        },
        checkpoint: CheckpointConfig { commit_every: options.commit_every },
    }
}

/// One incarnation of the agent: its registry and telemetry survive it for the report.
struct Incarnation {
    tasks: Tasks,
    telemetry: Arc<Telemetry>,
    agent: Arc<Mutex<Option<Agent>>>,
}

struct World {
    exec: Executor,
    rt: Arc<dyn Rt>,
    docker: SimDocker,
    loki: SimLoki,
    store: SimCheckpointStore,
    /// The line check, behind the executor's lock (no atomic update per delivery or
    /// commit: the seed's thread owns it).
    delivery: Arc<Lock<DeliveryChecker>>,
    budget: BudgetChecker,
    /// The first breach of the task budget the executor's spawn hook saw.
    spawn_breach: Arc<Mutex<Option<String>>>,
    progress: ProgressChecker,
    /// Whether the last sample found the queue at its bound, and episodes so far.
    at_bound: bool,
    backpressure_episodes: u64,
    /// Lines the agent counted as refused by Loki (`sink_too_old`), over incarnations.
    refused_before: u64,
    /// The agent's loss counters, over past incarnations.
    counted_before: AgentLossCounts,
    /// Lines the last graceful shutdown abandoned (queued or in flight at its deadline).
    abandoned_at_stop: u64,
    config: AgentConfig,
    labeler: Arc<Labels2>,
    incarnation: Option<Incarnation>,
    rotations_before: u64,
    opens_before: u64,
    trace: Option<Arc<Mutex<Vec<String>>>>,
}

type Failed = Box<Violation>;

impl World {
    fn fail(&self, invariant: Invariant, detail: impl Into<String>) -> Failed {
        let live = self.incarnation.as_ref().map(|inc| describe(&census(inc.tasks.registry()))).unwrap_or_default();
        Box::new(Violation { invariant, at: self.exec.now(), detail: detail.into(), live_tasks: live })
    }

    fn note(&self, line: impl FnOnce() -> String) {
        if let Some(trace) = &self.trace {
            let secs = self.exec.now().as_nanos() as f64 / 1e9;
            trace.lock().unwrap().push(format!("{secs:>10.3}s {}", line()));
        }
    }

    fn start_agent(&mut self) {
        // Only a first run applies `first_sight`, and only to its first list.
        let fresh = self.store.to_be_loaded().origin == engine::port::CheckpointOrigin::Fresh;
        let now = self.config.monitor.first_sight == FirstSight::Now;
        self.docker.set_first_sight_now(fresh && now);
        let tasks = Tasks::new(self.rt.clone());
        let telemetry = Arc::new(Telemetry::default());
        // The task budget at every spawn of this incarnation (the first breach is kept).
        let (registry, gauges, docker) = (tasks.registry().clone(), telemetry.clone(), self.docker.clone());
        let (breach, rt) = (self.spawn_breach.clone(), self.rt.clone());
        self.exec.set_spawn_hook(move |meta| {
            let open = docker.counters().log_streams_open;
            if let Err(detail) = budget::check_spawn(meta.kind, &registry, &gauges, open) {
                let at = rt.now().as_nanos() as f64 / 1e9;
                breach.lock().unwrap().get_or_insert(format!("{detail} (at {at:.3}s, {})", meta.site));
            }
        });
        let slot = Arc::new(Mutex::new(None));
        let ports = AgentPorts {
            docker: Arc::new(self.docker.clone()),
            sink: Arc::new(self.loki.clone()),
            checkpoints: Arc::new(self.store.clone()),
            labeler: self.labeler.clone(),
        };
        let (config, tasks_for_start, telemetry_for_start, slot_for_start) =
            (self.config.clone(), tasks.clone(), telemetry.clone(), slot.clone());
        self.exec.spawn_world("agent-start", async move {
            match Agent::start(tasks_for_start, config, ports, telemetry_for_start).await {
                Ok(agent) => *slot_for_start.lock().unwrap() = Some(agent),
                Err(error) => panic!("the simulated checkpoint store failed to load: {error}"),
            }
        });
        self.incarnation = Some(Incarnation { tasks, telemetry, agent: slot });
        self.note(|| "agent started".to_string());
    }

    fn crash(&mut self) {
        if let Some(incarnation) = self.incarnation.take() {
            self.rotations_before += Telemetry::get(&incarnation.telemetry.container_stream_rotations_total);
            self.opens_before += Telemetry::get(&incarnation.telemetry.container_stream_opens_total);
            self.refused_before += incarnation.telemetry.dropped(DropReason::SinkTooOld);
            self.counted_before = self.counted_before.plus(AgentLossCounts::of(&incarnation.telemetry));
            let mut delivery = self.delivery.lock();
            // From what the restart will load (the previous generation if the world
            // damaged the current one): duplicates back to there are allowed, no further,
            // and the world's account of gaps a reader can notice starts from its lines.
            let engine::port::LoadedCheckpoint { checkpoint: loaded, origin } = self.store.to_be_loaded();
            delivery.handle_crash(&loaded);
            self.docker.reset_readers(|id, stream| delivery.committed_line(id, stream, &loaded));
            // What it had read of a container removed since (or rotated away) is gone with
            // it: a named loss, but only if it held lines at all when it died. Lines read
            // and undelivered while its queue was empty were dropped by the agent itself.
            // Readers' lines count too: read, waiting for the budget (seed 1190).
            let telemetry = &incarnation.telemetry;
            let in_hand = (Telemetry::get(&telemetry.queue_lines) + Telemetry::get(&telemetry.reader_lines_held))
                .max(std::mem::take(&mut self.abandoned_at_stop));
            if in_hand > 0 {
                self.docker.abandon_removed_reads(|id, stream| delivery.delivered(id, stream));
            }
            drop(delivery);
            self.docker.forget_reads();
            // Nothing durable says the agent ever ran (its first commit, which records
            // the first sights under "now", never completed): its restart is a first run
            // again, and `first_sight` applies anew (seed 2699: crashed 0.4 s after its
            // first start, lines written while it was down). Once that commit completed,
            // the restart opens those containers where they were first opened, and the
            // lines written after that first sight are the agent's.
            if origin == engine::port::CheckpointOrigin::Fresh {
                self.docker.forget_seen();
            }
            self.loki.forget_retry_after();
            self.exec.drop_engine_tasks();
            drop(incarnation.agent.lock().unwrap().take());
        }
        self.budget.excuse_all();
        self.progress.excuse_all();
        self.note(|| "agent crashed".to_string());
    }

    /// A shutdown now, under whatever load the world is in: inside its deadline, with
    /// nothing alive afterwards. The caller then retires the incarnation as after a crash
    /// (the restart resumes from what the shutdown committed; lines delivered after that
    /// commit may come again, and the per-commit check has held the commit to Loki's word).
    fn stop_gracefully(&mut self) -> Result<(), Failed> {
        let deadline = Duration::from_secs(10);
        let Some(agent) = self.incarnation.as_ref().and_then(|inc| inc.agent.lock().unwrap().take()) else {
            return Ok(());
        };
        self.note(|| "agent shutting down (SIGTERM)".to_string());
        self.docker.agent_stopping();
        let commit_may_fail = self.store.failures_armed();
        let report: Arc<Mutex<Option<ShutdownReport>>> = Arc::new(Mutex::new(None));
        let report_slot = report.clone();
        self.exec.spawn_world("shutdown", async move {
            let outcome = agent.shutdown(deadline).await;
            *report_slot.lock().unwrap() = Some(outcome);
        });
        let give_up = self.exec.now() + deadline + Duration::from_secs(5);
        while report.lock().unwrap().is_none() && self.exec.now() < give_up {
            let step = self.exec.now() + Duration::from_millis(500);
            if let RunOutcome::Idle = self.exec.run_until(step) {
                break;
            }
        }
        let outcome = report.lock().unwrap().clone();
        self.abandoned_at_stop = outcome.as_ref().map_or(0, |report| report.lines_abandoned);
        shutdown::check_report(outcome.as_ref(), deadline, commit_may_fail)
            .map_err(|detail| self.fail(Invariant::Shutdown, detail))?;
        self.exec.run_until(self.exec.now() + Duration::from_secs(1));
        let registry = self.incarnation.as_ref().unwrap().tasks.registry().clone();
        let live = describe(&census(&registry));
        shutdown::check_after(registry.alive_total(), self.exec.live_engine_tasks(), &live)
            .map_err(|detail| self.fail(Invariant::Shutdown, detail))?;
        self.note(|| "agent shut down".to_string());
        Ok(())
    }

    /// [`Self::run_to`], applying the world actions due on the way at their instants
    /// (those the schedule left for after its end: starts after late stops, a Docker
    /// daemon coming back).
    fn play_to(&mut self, player: &mut Player, deadline: Instant) -> Result<(), Failed> {
        while let Some(at) = player.next_at().filter(|at| *at < deadline) {
            self.run_to(at)?;
            player.apply_due(at);
        }
        self.run_to(deadline)?;
        player.apply_due(deadline);
        Ok(())
    }

    /// [`Self::run_to`] while an agent runs; while none does (it crashed), only world
    /// tasks may be left, and time moves on to `deadline` even if nothing waits for it.
    fn advance(&mut self, deadline: Instant) -> Result<(), Failed> {
        if self.incarnation.is_some() {
            return self.run_to(deadline);
        }
        match self.exec.advance_to(deadline) {
            RunOutcome::Livelock { polls, .. } => {
                Err(self.fail(Invariant::Deadlock, format!("livelock: {polls} polls without time moving")))
            }
            _ => Ok(()),
        }
    }

    fn run_to(&mut self, deadline: Instant) -> Result<(), Failed> {
        match self.exec.run_until(deadline) {
            RunOutcome::DeadlineReached | RunOutcome::Stalled => Ok(()),
            RunOutcome::Idle => {
                Err(self.fail(Invariant::Deadlock, "nothing runnable and no timer left while the run was not over"))
            }
            RunOutcome::Livelock { polls, .. } => {
                Err(self.fail(Invariant::Deadlock, format!("livelock: {polls} polls without time moving")))
            }
        }
    }

    fn check_deliveries(&self) -> Result<(), Failed> {
        let first = self.delivery.lock().first_violation.clone();
        if let Some((invariant, detail)) = first {
            return Err(self.fail(invariant, detail));
        }
        if let Some(detail) = self.spawn_breach.lock().unwrap().clone() {
            return Err(self.fail(Invariant::TaskBudget, detail));
        }
        // Checked by the Docker model at every chunk handed, reported here.
        match self.docker.unsettled().0 {
            Some(detail) => Err(self.fail(Invariant::Bounds, detail)),
            None => Ok(()),
        }
    }

    fn sample(&mut self) -> Result<(), Failed> {
        self.check_deliveries()?;
        let now = self.exec.now();
        // Borrowed, not cloned: two reference counts fewer per sample.
        let agent = self.incarnation.as_ref().map(|inc| (&**inc.tasks.registry(), &*inc.telemetry));
        // A sender waits once the queue cannot take its run (at most a quarter of the
        // bound): from three quarters on, sources may be held.
        let queue_full = agent.is_some_and(|(_, telemetry)| {
            Telemetry::get(&telemetry.queue_bytes) * 4 >= self.config.pipeline.queue_bytes_max as u64 * 3
        });
        let result = self.budget.sample(now, &self.docker, agent, queue_full || self.loki.in_outage());
        result.map_err(|(invariant, detail)| self.fail(invariant, detail))?;
        if let Some(inc) = &self.incarnation {
            let queued = Telemetry::get(&inc.telemetry.queue_bytes);
            let at_bound = queued * 10 >= self.config.pipeline.queue_bytes_max as u64 * 9;
            if at_bound && !self.at_bound {
                self.backpressure_episodes += 1;
            }
            self.at_bound = at_bound;
        }
        if self.incarnation.is_some() && self.docker.is_daemon_up() && !self.loki.in_outage() {
            let delivery = self.delivery.lock();
            let result = self.progress.sample(now, &self.docker, &delivery);
            drop(delivery);
            result.map_err(|(invariant, detail)| self.fail(invariant, detail))?;
        } else {
            self.progress.excuse_all();
        }
        self.note(|| {
            let counters = self.docker.counters();
            let delivered = self.delivery.lock().lines_delivered;
            let engine = match &self.incarnation {
                Some(inc) => {
                    let t = &inc.telemetry;
                    let alive: Vec<String> = engine::task::TaskKind::ALL
                        .iter()
                        .filter_map(|kind| {
                            let alive = inc.tasks.registry().alive(*kind);
                            (alive > 0).then(|| format!("{}={alive}", kind.as_str()))
                        })
                        .collect();
                    format!(
                        " monitored={} rotations={} opens={} queue_bytes={} lines_in={} lines_out={} tasks[{}]",
                        Telemetry::get(&t.containers_monitored),
                        Telemetry::get(&t.container_stream_rotations_total),
                        Telemetry::get(&t.container_stream_opens_total),
                        Telemetry::get(&t.queue_bytes),
                        Telemetry::get(&t.lines_in_total),
                        Telemetry::get(&t.lines_out_total),
                        alive.join(" "),
                    )
                }
                None => " (agent down)".to_string(),
            };
            let (unsettled, slack) = self.docker.unsettled_now();
            format!(
                "sample: docker streams_open={} delivered={delivered} unsettled={unsettled} slack={slack}{engine}",
                counters.log_streams_open
            )
        });
        Ok(())
    }

    /// The agent's loss counters over its incarnations, this one included.
    fn agent_losses(&self) -> AgentLossCounts {
        let now = self.incarnation.as_ref().map(|inc| AgentLossCounts::of(&inc.telemetry));
        self.counted_before.plus(now.unwrap_or_default())
    }

    /// The running agent counted fewer tails unread than the world owes it, and a
    /// removal whose `destroy` it did not hear (an [`EventFault`] lost it, or no events
    /// connection was open) is less than `grace` old. The agent learns of such a removal
    /// at its next reconcile (a `docker ps -a` that no longer lists it; a log request
    /// answered "no such container" only makes the supervisor wait for discovery, which
    /// owns removals) and counts the tail at the container's finish that this brings.
    /// The end of the run waits for that before the tails are checked (seed 100020: a
    /// `docker rm -f` at 14,341.8 s, its `die` and `destroy` both lost, deleted 11 lines
    /// that a stream held up by a full queue during a Loki outage had not read; the drain
    /// found no backlog at 14,430 s, before the agent's next reconcile at 14,442.7 s).
    ///
    /// [`EventFault`]: crate::world::docker::EventFault
    fn tails_not_heard_of(&self, grace: Duration) -> bool {
        let owed = self.docker.tails_owed()[0];
        let counted = self.agent_losses().tails_unread - self.counted_before.tails_unread;
        let since = Instant::from_nanos(self.exec.now().as_nanos().saturating_sub(grace.as_nanos() as u64));
        counted < owed && self.docker.unannounced_removals_since(since) > 0
    }

    /// Lines written and not (yet) delivered, over containers that still exist.
    fn backlog(&self) -> Option<String> {
        liveness::backlog(&self.docker, &self.delivery.lock())
    }
}

/// Plays the schedule's world actions (crashes are the driver's, outside). The driver
/// applies each at its instant, once the executor has run everything due up to it: the
/// world changes between polls, as it did from a world task, without a task, a timer and
/// a poll per action.
struct Player<'a> {
    docker: SimDocker,
    loki: SimLoki,
    store: SimCheckpointStore,
    /// The schedule's, borrowed: not copied per run.
    actions: &'a [(Duration, Action)],
    next: usize,
    names: SimRng,
    slots: Vec<Option<ContainerId>>,
    generation: Vec<u32>,
    trace: Option<Arc<Mutex<Vec<String>>>>,
    /// Containers a daemon restart without live-restore stopped, started again (their
    /// restart policy) when it is back.
    stopped_by_daemon: Vec<ContainerId>,
    exits: u64,
    json_rotations: u64,
    /// Share of new containers created with a TTY, drawn from a stream of their own.
    tty_share: f64,
    ttys: SimRng,
}

impl<'a> Player<'a> {
    fn new(
        docker: SimDocker,
        loki: SimLoki,
        store: SimCheckpointStore,
        actions: &'a [(Duration, Action)],
        options: &Options,
        trace: Option<Arc<Mutex<Vec<String>>>>,
    ) -> Player<'a> {
        let (containers, seed) = (options.containers, options.seed);
        Player {
            docker,
            loki,
            store,
            actions,
            next: 0,
            names: SimRng::derive(seed, streams::WORLD ^ 0xA5),
            slots: vec![None; containers as usize],
            generation: vec![0u32; containers as usize],
            trace,
            stopped_by_daemon: Vec::new(),
            exits: 0,
            json_rotations: 0,
            tty_share: options.tty_share,
            ttys: SimRng::derive(seed, streams::WORLD ^ 0x77),
        }
    }

    /// When the next action is due.
    fn next_at(&self) -> Option<Instant> {
        self.actions.get(self.next).map(|(at, _)| Instant::ZERO + *at)
    }

    /// Apply every action due at or before `now`, in schedule order.
    fn apply_due(&mut self, now: Instant) {
        let actions = self.actions;
        while let Some((at, action)) = actions.get(self.next) {
            if Instant::ZERO + *at > now {
                break;
            }
            self.next += 1;
            self.apply(*at, action.clone());
        }
    }

    fn apply(&mut self, at: Duration, action: Action) {
        let Player {
            docker,
            loki,
            store,
            names,
            slots,
            generation,
            trace,
            stopped_by_daemon,
            exits,
            json_rotations,
            tty_share,
            ttys,
            ..
        } = self;
        if let Some(trace) = trace {
            trace.lock().unwrap().push(format!("{:>10.3}s world: {action:?}", at.as_secs_f64()));
        }
        // A TTY container's stderr bursts land on its stdout (the model merges them).
        let mut new_container = |slot: u32, generation: u32| {
            let tty = *tty_share > 0.0 && ttys.chance(*tty_share);
            docker.create_tty(&format!("app-{slot}-{generation}"), "sim/app:latest", Default::default(), tty)
        };
        let current = |slot: u32| slots[slot as usize].as_ref();
        match action {
            Action::Create { slot } => {
                let id = new_container(slot, 0);
                let _ = docker.start(&id);
                slots[slot as usize] = Some(id);
            }
            Action::Emit { slot, stream, lines, line_bytes, lag, same_ts } => {
                if let Some(id) = current(slot) {
                    let entry_gap = if same_ts { Duration::ZERO } else { Duration::from_micros(1) };
                    let burst = Burst { stream, lines, line_bytes, entry_gap, lag };
                    let _ = docker.emit(id, burst);
                }
            }
            Action::Restart { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.restart(id);
                }
            }
            Action::Stop { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.stop(id);
                }
            }
            Action::Start { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.start(id);
                }
            }
            Action::Replace { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.remove(id);
                    generation[slot as usize] += 1;
                    let id = new_container(slot, generation[slot as usize]);
                    let _ = docker.start(&id);
                    slots[slot as usize] = Some(id);
                }
            }
            Action::Rename { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.rename(id, &format!("app-{slot}-renamed-{}", names.below(1_000_000)));
                }
            }
            Action::StreamFault { slot, fault } => {
                if let Some(id) = current(slot) {
                    docker.fault_open_streams(id, fault);
                }
            }
            Action::Exit { slot, code } => {
                if let Some(id) = current(slot) {
                    if docker.exit(id, code).is_ok() {
                        *exits += 1;
                    }
                }
            }
            Action::Job { slot, lines } => {
                if let Some(id) = current(slot) {
                    let _ = docker.remove(id);
                }
                generation[slot as usize] += 1;
                let id = new_container(slot, generation[slot as usize]);
                let _ = docker.start(&id);
                let burst = Burst { lines, ..Burst::lines(StdStream::Stdout, lines) };
                let _ = docker.emit(&id, Burst { line_bytes: 40, ..burst });
                slots[slot as usize] = Some(id);
            }
            Action::JsonRotate { slot, keep_entries, effect } => {
                if let Some(id) = current(slot) {
                    if docker.rotate_log(id, keep_entries, effect).is_ok() {
                        *json_rotations += 1;
                    }
                }
            }
            Action::FailCalls { call, count } => docker.fail_next(call, count),
            Action::FailCommits { count } => store.fail_next_commits(count),
            Action::DockerDown { live_restore } => {
                if !live_restore {
                    for id in docker.running_ids() {
                        if docker.stop(&id).is_ok() {
                            stopped_by_daemon.push(id);
                        }
                    }
                }
                docker.daemon_down();
            }
            Action::DockerUp => {
                docker.daemon_up();
                for id in stopped_by_daemon.drain(..) {
                    let _ = docker.start(&id);
                }
            }
            Action::EventsDrop => {
                docker.drop_event_streams();
            }
            Action::EventFault { fault, count } => docker.fault_events(fault, count),
            Action::Pause { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.pause(id);
                }
            }
            Action::Unpause { slot } => {
                if let Some(id) = current(slot) {
                    let _ = docker.unpause(id);
                }
            }
            Action::LokiOutage { kind, duration } => loki.outage_for(kind, duration),
            Action::ClockStepBack { back } => docker.step_clock_back(back),
        }
    }
}

pub fn run_seed(options: &Options, run: RunConfig) -> SeedOutcome {
    let started = WallInstant::now();
    // The hooks outside the supervisor (sink, queue, shutdown) read the variant here.
    engine::container::set_thread_variant(run.variant);
    let exec = Executor::new(options.seed, WALL_START);
    let rt = exec.rt();
    let docker = SimDocker::new(exec.handle(), SimRng::derive(options.seed, streams::DOCKER).next_u64());
    docker.set_broken_tty_keeps_stderr(run.broken_tty_keeps_stderr);
    let truncated_line_max = options.line_bytes_max + engine::parse::assemble::TRUNCATION_MARKER.len();
    docker.set_unsettled_bound(options.queue_bytes_max, truncated_line_max);
    let loki = SimLoki::new(exec.handle(), SimRng::derive(options.seed, streams::LOKI).next_u64());
    loki.set_behaviour(LokiBehaviour {
        latency_min: Duration::from_millis(1),
        latency_max: options.loki_latency_max,
        throttle_chance: options.loki_throttle_chance,
        server_error_chance: options.loki_error_chance,
        timeout_chance: options.loki_timeout_chance,
        ambiguous_chance: options.loki_ambiguous_chance,
        no_retry_after_chance: options.loki_no_retry_after_share,
        batch_bytes_max: (options.loki_body_max > 0).then_some(options.loki_body_max),
        reject_older_than: (!options.loki_reject_older_than.is_zero()).then_some(options.loki_reject_older_than),
        ..LokiBehaviour::default()
    });
    let store = SimCheckpointStore::new(exec.handle());
    let delivery = Arc::new(Lock::new(DeliveryChecker::new(docker.clone(), options.line_bytes_max)));
    let observer = delivery.clone();
    let trace = run.trace.then(|| Arc::new(Mutex::new(Vec::new())));
    let delivery_trace = trace.clone();
    loki.set_observer(move |accepted| {
        if let Some(trace) = &delivery_trace {
            let secs = accepted.at.as_nanos() as f64 / 1e9;
            let ambiguous = if accepted.ambiguous { " (ambiguous: the client is told to retry)" } else { "" };
            trace.lock().unwrap().push(format!(
                "{secs:>10.3}s loki: stored {} lines of {} streams{ambiguous}",
                accepted.batch.lines,
                accepted.batch.streams.len()
            ));
        }
        observer.lock().handle_delivery(accepted.batch, accepted.ambiguous, accepted.rejected_before)
    });
    let committed = delivery.clone();
    store.set_observer(move |checkpoint| committed.lock().handle_commit(checkpoint));
    store.set_commit_latency(options.checkpoint_latency);
    // The pool's promise: no running container waits longer than `slot_wait_max` for a
    // slot (holders yield); the budget is sampled once a simulated minute, so the bound
    // is checked to within one sample period, plus the open's own latency.
    let starvation_max = options.slot_wait_max * 2 + Duration::from_secs(60);
    let mut world = World {
        exec,
        rt,
        docker,
        loki,
        store,
        delivery,
        budget: {
            let mut budget = BudgetChecker::new(options.streams_max, options.queue_bytes_max, starvation_max);
            // A reconcile period, plus a sample period (the checks sample once a minute).
            budget.unannounced_grace = options.reconcile_every + Duration::from_secs(60);
            budget
        },
        spawn_breach: Arc::default(),
        progress: {
            let mut progress = ProgressChecker::new(options.stall_timeout, options.slot_wait_max);
            // A run whose `start` and `die` were both lost is found by the agent's next
            // recheck of the containers it lists not running: at most one per
            // `stall_timeout`, at a reconcile (every ⌈stall_timeout / reconcile_every⌉-th,
            // `Discovery::recheck_due`).
            let reconcile = options.reconcile_every.as_nanos().max(1);
            let every = options.stall_timeout.as_nanos().div_ceil(reconcile).max(1);
            let recheck_every = options.reconcile_every * u32::try_from(every).expect("a few reconciles");
            progress.unannounced_grace = recheck_every + Duration::from_secs(60);
            progress
        },
        at_bound: false,
        backpressure_episodes: 0,
        refused_before: 0,
        counted_before: AgentLossCounts::default(),
        abandoned_at_stop: 0,
        config: agent_config(options, run.variant),
        labeler: Arc::default(),
        incarnation: None,
        rotations_before: 0,
        opens_before: 0,
        trace: trace.clone(),
    };
    let schedule = Schedule::generate(options);
    let mut played = PlayedCounts::default();
    let mut losses = NamedLosses::default();
    let result = drive(&mut world, options, &schedule, &mut played, &mut losses);
    let incarnation_counter =
        |get: fn(&Telemetry) -> u64| world.incarnation.as_ref().map_or(0, |inc| get(&inc.telemetry));
    let delivery = world.delivery.lock();
    let containers = world.docker.containers();
    let lines_written = containers.iter().map(|report| report.lines_written[0] + report.lines_written[1]).sum();
    let empty_lines_written = containers.iter().map(|report| report.empty_lines_written).sum();
    let simulated = Duration::from_nanos(world.exec.now().as_nanos());
    let stats = SeedStats {
        lines_written,
        empty_lines_written,
        lines_delivered: delivery.lines_delivered,
        duplicates: delivery.duplicates,
        rotations: world.rotations_before
            + incarnation_counter(|t| Telemetry::get(&t.container_stream_rotations_total)),
        stream_opens: world.opens_before + incarnation_counter(|t| Telemetry::get(&t.container_stream_opens_total)),
        bursts: schedule.bursts() as u64,
        crashes: schedule.crashes.len() as u32,
        polls: world.exec.polls(),
        streams_open_max: world.budget.streams_open_max,
        exits: played.exits,
        json_rotations: played.json_rotations,
        backpressure_episodes: world.backpressure_episodes,
        losses,
        faults: {
            let (docker, loki) = (world.docker.counters(), world.loki.counters());
            let in_a_row = loki.outage_failures_in_a_row_max;
            WorldFaults {
                events_lost: docker.events_lost,
                events_duplicated: docker.events_duplicated,
                events_delayed: docker.events_delayed,
                pauses: docker.pauses,
                checkpoint_damages: world.store.damages(),
                outage_failures_in_a_row_max: in_a_row,
                sink_backoff_capped: in_a_row >= failures_to_backoff_cap(&world.config.pipeline.retry),
            }
        },
        agent_losses: world.agent_losses(),
        world_losses: completeness::world_loss_counts(&world.docker),
        losses_read_past: delivery.losses_read_past,
        trace_digest: world_digest(&world, world.exec.trace_digest(), &played, delivery.lines_delivered),
        simulated,
        container_hours: options.containers as f64 * options.hours,
        wall: started.elapsed(),
    };
    drop(delivery);
    let trace = trace.map(|trace| std::mem::take(&mut *trace.lock().unwrap())).unwrap_or_default();
    SeedOutcome { options: options.clone(), violation: result.err().map(|failed| *failed), stats, trace }
}

/// The executor's trace digest (every poll and callback, in order) folded with what the
/// world did and saw: a re-run that polls alike but plays or observes the world
/// differently still shows up as nondeterminism.
fn world_digest(world: &World, trace: u64, played: &PlayedCounts, delivered: u64) -> u64 {
    let docker = world.docker.counters();
    let loki = world.loki.counters();
    let observed = [
        played.exits,
        played.json_rotations,
        delivered,
        docker.api_calls,
        docker.api_failures,
        docker.log_opens_total,
        docker.log_bytes_delivered,
        docker.events_delivered,
        loki.requests,
        loki.lines_accepted,
        loki.lines_rejected,
        world.store.commits_total(),
        docker.events_lost + docker.events_duplicated + docker.events_delayed,
        docker.pauses,
        world.store.damages(),
    ];
    observed.iter().fold(trace, |digest, value| crate::executor::splitmix64(&mut (digest ^ value)))
}

/// What the world's player did, for the report.
#[derive(Default)]
struct PlayedCounts {
    exits: u64,
    json_rotations: u64,
}

fn drive(
    world: &mut World,
    options: &Options,
    schedule: &Schedule,
    played: &mut PlayedCounts,
    losses: &mut NamedLosses,
) -> Result<(), Failed> {
    let mut player = Player::new(
        world.docker.clone(),
        world.loki.clone(),
        world.store.clone(),
        &schedule.actions,
        options,
        world.trace.clone(),
    );
    let result = drive_with(world, options, schedule, &mut player, losses);
    *played = PlayedCounts { exits: player.exits, json_rotations: player.json_rotations };
    result
}

fn drive_with(
    world: &mut World,
    options: &Options,
    schedule: &Schedule,
    player: &mut Player,
    losses: &mut NamedLosses,
) -> Result<(), Failed> {
    // 1. Start on an empty world; the baseline is what an idle agent runs.
    world.start_agent();
    world.run_to(Instant::ZERO + Duration::from_secs(1))?;
    let baseline: Census = census(world.incarnation.as_ref().unwrap().tasks.registry());
    let executor_baseline = quiet::engine_only(world.exec.live_by_label());
    // 2. The schedule.
    let end = Instant::ZERO + options.duration();
    let mut crashes = schedule.crashes.iter().peekable();
    let mut next_sample = Instant::ZERO + Duration::from_secs(60);
    // While the agent is down (crashed, to restart then), time runs on for the world;
    // samples wait for the restart.
    let mut restart_at: Option<Instant> = None;
    if !options.late_start.is_zero() {
        // The baseline probe goes (it committed nothing); the agent's real first start
        // finds the containers running and writing, none of them seen before.
        world.crash();
        world.docker.forget_seen();
        // Under "now" it committed its first sights: not the real first start's.
        world.store.forget_first_sights();
        world.delivery.lock().forget_first_sights();
        restart_at = Some(Instant::ZERO + options.late_start);
    }
    while world.exec.now() < end || restart_at.is_some() {
        let crash_at = crashes.peek().map(|crash| Instant::ZERO + crash.at);
        let bound = match restart_at {
            Some(restart) => restart,
            None => next_sample.min(end).min(crash_at.unwrap_or(end)),
        };
        let next_action = player.next_at().filter(|at| *at < bound);
        world.advance(next_action.unwrap_or(bound))?;
        player.apply_due(world.exec.now());
        if next_action.is_some() {
            continue;
        }
        if restart_at.take().is_some() {
            world.start_agent();
        } else if crash_at == Some(bound) {
            let crash = crashes.next().unwrap();
            if crash.graceful {
                world.stop_gracefully()?;
            }
            if let Some(damage) = crash.damage {
                world.store.damage(damage);
                world.note(|| format!("world: checkpoint damaged ({damage:?})"));
            }
            world.crash();
            restart_at = Some(bound + crash.downtime);
            continue;
        }
        if world.exec.now() >= next_sample {
            world.sample()?;
            next_sample = next_sample + Duration::from_secs(60);
        }
    }
    // 3. Heal, then drain within a bound.
    world.loki.heal();
    world.store.heal();
    world.loki.set_behaviour(LokiBehaviour { latency_max: options.loki_latency_max, ..LokiBehaviour::default() });
    if !world.docker.is_daemon_up() {
        world.docker.daemon_up();
    }
    world.note(|| "healed; draining".to_string());
    let drain_deadline = world.exec.now() + Duration::from_secs(30 * 60);
    // A removal the agent did not hear of is learned at its next reconcile: the grace the
    // budget and progress checks give it (a reconcile period and a sample period).
    let unannounced_grace = options.reconcile_every + Duration::from_secs(60);
    loop {
        let step = world.exec.now() + Duration::from_secs(10);
        world.play_to(player, step)?;
        world.check_deliveries()?;
        let in_time = world.exec.now() < drain_deadline;
        match world.backlog() {
            None if !in_time || !world.tails_not_heard_of(unannounced_grace) => break,
            Some(detail) if !in_time => {
                return Err(world
                    .fail(Invariant::Liveness, format!("backlog not drained 30 min after faults healed: {detail}")))
            }
            _ => {
                if world.exec.now() >= next_sample {
                    world.sample()?;
                    next_sample = next_sample + Duration::from_secs(60);
                }
            }
        }
    }
    // Completeness: every line of every container, removed ones included, delivered or
    // lost for a named reason; the agent's count of Loki's refusals is Loki's.
    {
        let delivery = world.delivery.lock();
        let result = completeness::check(&world.docker, &delivery);
        drop(delivery);
        *losses = result.map_err(|(invariant, detail)| world.fail(invariant, detail))?;
        let agent_refused = world.refused_before
            + world.incarnation.as_ref().map_or(0, |inc| inc.telemetry.dropped(DropReason::SinkTooOld));
        let loki_refused = world.loki.counters().lines_rejected;
        completeness::check_refusals(agent_refused, loki_refused, schedule.crashes.is_empty())
            .map_err(|(invariant, detail)| world.fail(invariant, detail))?;
        let agent_losses = world.agent_losses();
        let world_losses = completeness::world_loss_counts(&world.docker);
        completeness::check_gaps(agent_losses.gaps, &world_losses)
            .map_err(|(invariant, detail)| world.fail(invariant, detail))?;
        let tails_now = agent_losses.tails_unread - world.counted_before.tails_unread;
        completeness::check_tails(agent_losses.tails_unread, tails_now, &world_losses)
            .map_err(|(invariant, detail)| world.fail(invariant, detail))?;
        let early = world.loki.counters().early_retries;
        if early > 0 {
            return Err(world.fail(
                Invariant::Bounds,
                format!("{early} requests reached Loki before the Retry-After of the 429 before them had passed"),
            ));
        }
    }
    // 4. Quiet point: no containers, nothing queued; tasks back to the baseline.
    for id in world.docker.container_ids() {
        let _ = world.docker.remove(&id);
    }
    world.note(|| "all containers removed".to_string());
    let quiet_deadline = world.exec.now() + Duration::from_secs(5 * 60);
    loop {
        let step = world.exec.now() + Duration::from_secs(5);
        // The world is still from here: an exit's follow-up drawn past the end (a
        // replacement 10-600 s later) played now would create a container after they
        // were all removed, and its own live stream and supervisor would be blamed on
        // the agent (seed 185). The drain above still plays them.
        world.run_to(step)?;
        let registry = world.incarnation.as_ref().unwrap().tasks.registry().clone();
        let executor_now = quiet::engine_only(world.exec.live_by_label());
        let streams_open = world.docker.counters().log_streams_open;
        match quiet::check(&baseline, &registry, &executor_baseline, &executor_now, streams_open) {
            Ok(()) => break,
            Err(detail) if world.exec.now() >= quiet_deadline => {
                return Err(world.fail(Invariant::LiveTaskDelta, detail));
            }
            Err(_) => {}
        }
    }
    // 5. Shutdown within its deadline; nothing alive afterwards.
    let deadline = Duration::from_secs(10);
    let incarnation = world.incarnation.as_ref().unwrap();
    let agent = incarnation.agent.lock().unwrap().take().expect("the agent is running");
    let report: Arc<Mutex<Option<ShutdownReport>>> = Arc::new(Mutex::new(None));
    let report_slot = report.clone();
    world.exec.spawn_world("shutdown", async move {
        let outcome = agent.shutdown(deadline).await;
        *report_slot.lock().unwrap() = Some(outcome);
    });
    let give_up = world.exec.now() + deadline + Duration::from_secs(5);
    while report.lock().unwrap().is_none() && world.exec.now() < give_up {
        let step = world.exec.now() + Duration::from_millis(500);
        if let RunOutcome::Idle = world.exec.run_until(step) {
            break;
        }
    }
    let outcome = report.lock().unwrap().clone();
    shutdown::check_report(outcome.as_ref(), deadline, false)
        .map_err(|detail| world.fail(Invariant::Shutdown, detail))?;
    world.exec.run_until(world.exec.now() + Duration::from_secs(1));
    let registry = world.incarnation.as_ref().unwrap().tasks.registry().clone();
    let live = describe(&census(&registry));
    shutdown::check_after(registry.alive_total(), world.exec.live_engine_tasks(), &live)
        .map_err(|detail| world.fail(Invariant::Shutdown, detail))?;
    Ok(())
}
