//! Discovery: which containers exist, and one supervisor for each.
//!
//! Sources of truth, both needed: the events stream (fast) and a periodic `list`
//! reconcile (heals anything the events stream missed, e.g. while it was reconnecting
//! after a Docker daemon restart). The events stream is reopened with a growing backoff
//! whenever it ends or fails, and a reconcile follows every reconnect: those decisions
//! are the sans-IO [`DiscoveryTiming`]. Every Docker call (`events`, `list`,
//! `inspect`) is awaited inside a `select!` with the shutdown signal, so a slow dockerd
//! cannot eat the shutdown deadline.
//!
//! First sight: a container discovery has never seen gets a [`FirstOpen`] fixed now —
//! `first_sight` for the containers of the first reconcile of a first run (no
//! checkpoint), the beginning of its log for every later one; with "now" the instant is
//! the moment discovery saw it, so a container that waits for a stream slot loses
//! nothing, and it is recorded in the checkpoint until a position is: a container whose
//! checkpoint has it and no position opens there again after a restart.
//!
//! Ownership: discovery spawns every supervisor, keeps its handle, and joins it — when
//! the container is removed (its state channel is closed, the supervisor finishes and
//! is joined concurrently with everything else discovery does) and at shutdown (every
//! supervisor is cancelled and joined before discovery returns).

use std::collections::{btree_map, BTreeMap};
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::watch;

use crate::container::discovery_timing::{DiscoveryCall, DiscoveryTiming};
use crate::container::machine::FirstOpen;
use crate::container::retired::{Retired, TailOutcome};
use crate::container::supervisor::Supervisor;
use crate::container::{ContainerState, FirstSight, MonitorShared};
use crate::model::{ContainerId, StdStream};
use crate::port::{ContainerCheckpoint, ContainerEvent, ContainerEventKind, ContainerInfo, EngineError, EventStream};
use crate::rt::{unit_from_bits, BoxFuture};
use crate::task::{TaskHandle, TaskKind};
use crate::telemetry::events::{ContainersCounted, DockerDown, DockerUp, TailUnread};

struct Known {
    state: watch::Sender<ContainerState>,
    task: TaskHandle<TailOutcome>,
}

pub struct Discovery {
    shared: Arc<MonitorShared>,
    known: BTreeMap<ContainerId, Known>,
    retiring: FuturesUnordered<BoxFuture<(ContainerId, TailOutcome)>>,
    /// Containers retired, for the events about them that come late.
    retired: Retired,
    /// No checkpoint was found: containers of the first reconcile get `first_sight`.
    first_run: bool,
    reconciled: bool,
    /// The last event's inspect failed: `run` asks for an early reconcile.
    inspect_failed: bool,
    /// Reconciles since the last one that rechecked the containers not running
    /// ([`Discovery::recheck_due`]).
    reconciles_since_recheck: u32,
    shutdown: watch::Receiver<bool>,
}

impl Discovery {
    pub fn new(shared: Arc<MonitorShared>, first_run: bool, shutdown: watch::Receiver<bool>) -> Discovery {
        Discovery {
            shared,
            known: BTreeMap::new(),
            retiring: FuturesUnordered::new(),
            retired: Retired::default(),
            first_run,
            reconciled: false,
            inspect_failed: false,
            reconciles_since_recheck: 0,
            shutdown,
        }
    }

    /// Whether this reconcile rechecks the containers it lists not running (their
    /// supervisors probe their logs for a run whose `start` and `die` were both lost):
    /// the first, then every `⌈stall_timeout / reconcile_every⌉`-th, so at most one probe
    /// per exited container per `stall_timeout`, as the watchdog makes one per silent
    /// running stream. (Every reconcile was 5–7 % of a simulated seed's instructions
    /// with 30 s reconciles: the watch's wake-up, the supervisor's poll and its probe.)
    fn recheck_due(&mut self) -> bool {
        let config = &self.shared.config;
        let every = reconciles_per_recheck(config.stall_timeout, config.reconcile_every);
        let due = self.reconciles_since_recheck == 0;
        self.reconciles_since_recheck = (self.reconciles_since_recheck + 1) % every;
        due
    }

    /// The task body: runs until shutdown is signalled, then joins every supervisor.
    /// When to connect and reconcile is decided by [`DiscoveryTiming`]; every Docker call
    /// is awaited against the shutdown signal.
    pub async fn run(mut self) {
        let shared = self.shared.clone();
        let rt = &shared.rt;
        let config = &shared.config;
        let mut timing = DiscoveryTiming::new(rt.now(), config.reconcile_every, config.backoff_min, config.backoff_max);
        let mut events: Option<EventStream> = None;
        let mut timer_at = None;
        let mut timer: BoxFuture<()> = Box::pin(std::future::pending());
        loop {
            while let Some(call) = timing.poll_call(rt.now()) {
                match call {
                    DiscoveryCall::ConnectEvents => {
                        let Some(result) = or_shutdown(&mut self.shutdown, shared.docker.events()).await else {
                            return self.finish().await;
                        };
                        match result {
                            Ok(stream) => {
                                events = Some(stream);
                                timing.handle_connected(rt.now());
                            }
                            Err(error) => {
                                timing.handle_events_lost(rt.now(), self.unit());
                                self.docker_down(&error);
                            }
                        }
                    }
                    DiscoveryCall::Reconcile => {
                        let Some(result) = or_shutdown(&mut self.shutdown, shared.docker.list()).await else {
                            return self.finish().await;
                        };
                        match result {
                            Ok(list) => {
                                self.reconcile(list);
                                if timing.handle_reconciled(rt.now()) {
                                    DockerUp.emit(&shared.telemetry);
                                }
                            }
                            Err(error) => {
                                timing.handle_reconcile_failed(rt.now(), self.unit());
                                self.docker_down(&error);
                            }
                        }
                    }
                }
            }
            let wake_at = timing.poll_timeout();
            if timer_at != Some(wake_at) {
                timer_at = Some(wake_at);
                timer = rt.sleep_until(wake_at);
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                Some((id, outcome)) = self.retiring.next(), if !self.retiring.is_empty() => {
                    self.joined(&id, outcome);
                    self.update_gauge();
                }
                event = next_event(&mut events) => match event {
                    Some(Ok(event)) => {
                        if !self.handle_event(event).await {
                            break;
                        }
                        if std::mem::take(&mut self.inspect_failed) {
                            timing.handle_call_failed(rt.now(), self.unit());
                        }
                    }
                    Some(Err(error)) => {
                        events = None;
                        timing.handle_events_lost(rt.now(), self.unit());
                        self.docker_down(&error);
                    }
                    None => {
                        events = None;
                        timing.handle_events_lost(rt.now(), self.unit());
                        self.docker_down(&"the events stream ended");
                    }
                },
                _ = &mut timer => timer_at = None,
            }
        }
        self.finish().await
    }

    /// Cancel and join every supervisor, then the retiring ones.
    async fn finish(mut self) {
        for (_, known) in std::mem::take(&mut self.known) {
            let _ = known.task.cancel_and_join().await;
        }
        while let Some((id, outcome)) = self.retiring.next().await {
            self.joined(&id, outcome);
        }
        self.update_gauge();
    }

    /// A retired container's supervisor ended with `outcome`: its tail is counted here
    /// if a run's event came after its `destroy` (see `retired`).
    fn joined(&mut self, id: &ContainerId, outcome: TailOutcome) {
        if self.retired.joined(id, outcome) {
            TailUnread.emit(&self.shared.telemetry);
        }
    }

    fn unit(&self) -> f64 {
        unit_from_bits(self.shared.rt.rand_u64())
    }

    fn docker_down(&self, error: &dyn std::fmt::Display) {
        let now = self.shared.rt.now();
        DockerDown { error }.emit(&self.shared.telemetry, now);
    }

    fn update_gauge(&self) {
        let (monitored, retiring) = (self.known.len() as u64, self.retiring.len() as u64);
        ContainersCounted { monitored, retiring }.emit(&self.shared.telemetry);
    }

    /// Apply one event; false if shutdown was signalled while asking Docker about it.
    async fn handle_event(&mut self, event: ContainerEvent) -> bool {
        let known = self.known.contains_key(&event.id);
        if !known && self.retired.contains(&event.id) {
            // Gone: nothing to ask Docker. A run's event held back past the `destroy`
            // may still say that lines were deleted unread (see `retired`).
            let ran = matches!(
                event.kind,
                ContainerEventKind::Start
                    | ContainerEventKind::Restart
                    | ContainerEventKind::Die
                    | ContainerEventKind::Stop
            );
            if ran && self.retired.ran_late(&event.id) {
                TailUnread.emit(&self.shared.telemetry);
            }
            return true;
        }
        match event.kind {
            ContainerEventKind::Destroy => self.retire(&event.id),
            // A `die` of a container believed not running: it ran again, and its `start`
            // was lost (an event fault), so what it wrote then is unread. Its supervisor
            // reads the log to its end again, or counts the tail unread if a `docker rm`
            // deleted it first (the world's seed 25785: a container stopped at 11,917 s
            // was started again at 11,955 s, that `start` lost, wrote 45 lines and was
            // removed by `docker rm -f` at 12,082 s, `die` and `destroy` together; the
            // agent believed its log read to the end and counted nothing; seed 27309: the
            // `die` and `stop` of a stop held back past the next `start`, so that the
            // agent believed the running container stopped). A `stop` comes after the
            // `die` of the same stop, and says nothing new. A duplicated `die` is taken
            // for a run too: one more read of the log to its end (Docker's events carry
            // no id to tell a duplicate; their time is not passed on).
            ContainerEventKind::Die if known => {
                if let Some(known) = self.known.get(&event.id) {
                    known.state.send_modify(|state| {
                        if !state.info.running {
                            state.runs_unseen += 1;
                        }
                        state.info.running = false;
                        state.died_at = event.time.or(state.died_at);
                    });
                }
            }
            ContainerEventKind::Stop if known => self.update(&event.id, |info| info.running = false),
            ContainerEventKind::Start | ContainerEventKind::Restart if known => {
                self.update(&event.id, |info| info.running = true)
            }
            ContainerEventKind::Rename if known => {
                if let Some(name) = event.attributes.get("name") {
                    let name: Arc<str> = name.trim_start_matches('/').into();
                    self.update(&event.id, |info| info.name = name);
                }
            }
            // A container we do not know yet: ask Docker what it is. A `die` or `stop`
            // of one is news too: its `create` and `start` were lost (the events
            // connection dropped them), and what it wrote is to be read to its end before
            // a `docker rm` deletes it (the world's seed 22606: a job's 1,435 lines,
            // removed 42 s after its `die`, were lost while discovery waited for the next
            // reconcile).
            ContainerEventKind::Create
            | ContainerEventKind::Start
            | ContainerEventKind::Restart
            | ContainerEventKind::Rename
            | ContainerEventKind::Die
            | ContainerEventKind::Stop => {
                let inspect = self.shared.docker.inspect(&event.id);
                let Some(result) = or_shutdown(&mut self.shutdown, inspect).await else { return false };
                match result {
                    Ok(info) => self.add(info, self.later_first_sight()),
                    Err(EngineError::NotFound(_)) => {}
                    Err(error) => {
                        // A reconcile soon heals it (see `handle_call_failed`).
                        self.inspect_failed = true;
                        self.docker_down(&error);
                    }
                }
            }
        }
        true
    }

    /// What to read of a container first seen after the first reconcile (or from an
    /// event): all of it. Only the containers already there when a first run starts
    /// are `first_sight`'s.
    fn later_first_sight(&self) -> FirstSight {
        #[cfg(feature = "broken-variants")]
        if self.first_run && self.shared.config.variant == crate::container::SupervisorVariant::FirstSightForAll {
            return self.shared.config.first_sight;
        }
        FirstSight::Beginning
    }

    fn reconcile(&mut self, list: Vec<ContainerInfo>) {
        // The known containers the list does not name are gone. The list's ids, sorted
        // (already so in the simulator: an O(n) check), are walked beside the known ones
        // (a map in id order): no set of the listed ids is built, and no id is searched
        // for (callgrind: seed 2, 474 reconciles a run, 450.9 M -> 433.3 M; seed 85
        // 346.6 M -> 342.1 M, seed 19 874.5 M -> 870.0 M).
        let mut listed: Vec<&ContainerId> = list.iter().map(|info| &info.id).collect();
        listed.sort_unstable();
        let gone: Vec<ContainerId> = not_in_sorted(self.known.keys(), &listed).cloned().collect();
        // The first reconcile keeps the positions of the listed containers only (below).
        let first_listed: Option<Vec<ContainerId>> =
            (!self.reconciled).then(|| listed.iter().map(|&id| id.clone()).collect());
        for id in gone {
            self.retire(&id);
        }
        let first_sight =
            if self.first_run && !self.reconciled { self.shared.config.first_sight } else { self.later_first_sight() };
        // The known containers are walked in id order alongside the list: where the list
        // is in id order too (the simulator's is), each listed container is found at the
        // walk's front in a comparison or two, and anything else is looked up as before,
        // so the walk only saves searches (callgrind: seed 85, 13 k listed containers,
        // 367.8 M -> 366.0 M).
        let recheck = self.recheck_due();
        let mut ahead = self.known.range::<ContainerId, _>(..).peekable();
        for info in list {
            if let Some(known) = find_ahead(&mut ahead, &self.known, &info.id) {
                // Same as `update` with `*current = info`, without copying the info to
                // compare: most reconciles change nothing. A container listed not running
                // as before may still have run since the last list, its start and die
                // events both lost: its supervisor is asked to look (a recheck, when due).
                known.state.send_if_modified(|state| {
                    if state.info != info {
                        state.info = info;
                    } else if !info.running && recheck {
                        state.rechecks += 1;
                    } else {
                        return false;
                    }
                    true
                });
            } else {
                let id = info.id.clone();
                self.add(info, first_sight);
                // Added: the walk goes on past it.
                ahead = self.known.range((Bound::Excluded(id), Bound::Unbounded)).peekable();
            }
        }
        if let Some(listed) = first_listed {
            self.reconciled = true;
            self.shared.acks.retain(|id| listed.binary_search(id).is_ok());
        }
    }

    fn update(&mut self, id: &ContainerId, change: impl FnOnce(&mut ContainerInfo)) {
        if let Some(known) = self.known.get(id) {
            known.state.send_if_modified(|state| {
                let before = state.info.clone();
                change(&mut state.info);
                state.info != before
            });
        }
    }

    fn add(&mut self, info: ContainerInfo, first_sight: FirstSight) {
        if self.known.contains_key(&info.id) || self.shared.labeler.labels(&info, StdStream::Stdout).is_none() {
            return;
        }
        let shared = &self.shared;
        let id = info.id.clone();
        shared.acks.track(&id);
        let resume = shared.acks.get(&id);
        // "Now" is the instant discovery first saw the container, not when its stream
        // opens: a container that waits for a slot loses nothing. Less `since_skew`, as
        // every reopen: stderr reaches Docker's log late, stamped up to that much before
        // it is written, and `since` filters by stamp (seeds 132, 149, 194: stderr lines
        // written after first sight, stamped before it, were never asked for).
        //
        // A first sight under "now" is recorded in the checkpoint until a position is:
        // a restart before then (first run again only if that commit never completed)
        // opens the container where it was first opened, not from the beginning.
        let first_open = match (recorded_first_sight(&shared.config, &resume), first_sight) {
            (Some(since), _) => FirstOpen::Since(since),
            (None, FirstSight::Beginning) => FirstOpen::Since(0),
            (None, FirstSight::Now) => {
                let since = first_sight_since(shared.rt.wall(), shared.config.since_skew);
                shared.acks.record_first_sight(&id, since);
                FirstOpen::Since(since)
            }
            (None, FirstSight::Tail(lines)) => FirstOpen::Tail(lines),
        };
        let (state, state_rx) =
            watch::channel(ContainerState { info, removed: false, rechecks: 0, runs_unseen: 0, died_at: None });
        let supervisor = Supervisor::new(shared.clone(), id.clone(), state_rx, resume, first_open);
        let task = shared.tasks.spawn(TaskKind::Container, supervisor.run());
        self.known.insert(id, Known { state, task });
        self.update_gauge();
    }

    fn retire(&mut self, id: &ContainerId) {
        let Some(known) = self.known.remove(id) else { return };
        self.retired.retire(id, known.state.borrow().info.running);
        known.state.send_modify(|state| state.removed = true);
        drop(known.state);
        let acks = self.shared.acks.clone();
        let id = id.clone();
        let task = known.task;
        // `join` takes over the handle's cancel-on-drop: a shutdown that cuts discovery
        // short drops this future, and must not leave the supervisor running on (corpus
        // seed-302: one container task alive after a mid-run shutdown).
        let cancel_if_dropped = CancelOnDrop(task.cancel_handle());
        self.retiring.push(Box::pin(async move {
            let outcome = task.join().await.unwrap_or(TailOutcome::Other);
            drop(cancel_if_dropped);
            acks.untrack(&id);
            (id, outcome)
        }));
        self.update_gauge();
    }
}

/// Cancels a task when dropped (after the task ended, a no-op).
struct CancelOnDrop(crate::task::CancelHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The first sight a container's checkpoint recorded, if it has no position yet.
pub(crate) fn recorded_first_sight(
    config: &crate::container::MonitorConfig,
    resume: &ContainerCheckpoint,
) -> Option<i64> {
    #[cfg(feature = "broken-variants")]
    if config.variant == crate::container::SupervisorVariant::FirstSightForgotten {
        return None;
    }
    let _ = config; // read only by the broken variant
    resume.since.filter(|_| !resume.has_position())
}

/// The `since` (Unix seconds) of a container first seen at `wall` (Unix nanoseconds)
/// with `first_sight = "now"`: `since_skew` earlier, so stderr stamped before it is
/// written (Docker's lag) but written after first sight is asked for.
pub(crate) fn first_sight_since(wall: i64, since_skew: std::time::Duration) -> i64 {
    (wall - since_skew.as_nanos() as i64).div_euclid(1_000_000_000)
}

/// `map.get(key)`, looked for first at the front of `ahead`, an in-order walk of `map`:
/// the entries before `key` are passed, and an entry at `key` is the answer without a
/// search. Keys looked up in order walk the map once; anything else (a key behind the
/// walk, or not in the map) is searched for as `get` does. Always `map.get(key)`.
pub(crate) fn find_ahead<'m, K: Ord, V>(
    ahead: &mut Peekable<btree_map::Range<'m, K, V>>,
    map: &'m BTreeMap<K, V>,
    key: &K,
) -> Option<&'m V> {
    while ahead.next_if(|(at, _)| *at < key).is_some() {}
    match ahead.peek() {
        Some((at, value)) if *at == key => Some(*value),
        _ => map.get(key),
    }
}

/// The keys of `keys`, an ascending walk, that `sorted` (ascending) does not hold, in
/// order: both are walked once, side by side. Always the keys `sorted.contains` refuses.
pub(crate) fn not_in_sorted<'k, 's, K: Ord + 'k>(
    keys: impl Iterator<Item = &'k K> + 's,
    sorted: &'s [&'s K],
) -> impl Iterator<Item = &'k K> + 's {
    let mut rest = sorted;
    keys.filter(move |key| {
        while let [first, tail @ ..] = rest {
            if *first >= *key {
                break;
            }
            rest = tail;
        }
        rest.first().is_none_or(|first| *first != *key)
    })
}

/// Await a Docker call unless shutdown is signalled first (`None` then): a slow dockerd
/// must not eat the shutdown deadline.
pub(crate) async fn or_shutdown<T>(shutdown: &mut watch::Receiver<bool>, call: BoxFuture<T>) -> Option<T> {
    tokio::select! {
        biased;
        _ = shutdown.changed() => None,
        result = call => Some(result),
    }
}

async fn next_event(events: &mut Option<EventStream>) -> Option<Result<ContainerEvent, EngineError>> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Every how many reconciles the containers listed not running are rechecked: the
/// fewest that span `stall_timeout` (at least 1).
pub(crate) fn reconciles_per_recheck(stall_timeout: Duration, reconcile_every: Duration) -> u32 {
    let every = stall_timeout.as_nanos().div_ceil(reconcile_every.as_nanos().max(1)).max(1);
    u32::try_from(every).unwrap_or(u32::MAX)
}
