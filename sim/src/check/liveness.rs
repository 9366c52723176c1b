//! Liveness: what was written is delivered, within bounds of virtual time.
//!
//! - [`backlog`]: after every fault is healed, every container that still exists
//!   (running or exited) has all its lines delivered or excused (the drain phase waits
//!   for this within a bound);
//! - [`ProgressChecker`]: while the agent, Docker and Loki are all up, no container
//!   (running or exited) keeps output nobody has read, with nothing of it delivered,
//!   for longer than the stall timeout plus a margin: a stalled or starved stream is
//!   healed by the agent's watchdog and its fair pool, not by the next rotation.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::model::{ContainerId, StdStream};
use engine::rt::Instant;

use crate::check::delivery::by_container::ByContainer;
use crate::check::delivery::DeliveryChecker;
use crate::check::Invariant;
use crate::world::docker::SimDocker;

/// The first stream of an existing container with lines neither delivered nor excused.
pub fn backlog(docker: &SimDocker, delivery: &DeliveryChecker) -> Option<String> {
    for report in docker.existing_containers() {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let written = report.lines_written[stream.index()];
            let delivered = delivery.delivered(&report.id, stream);
            if delivered >= written {
                continue;
            }
            let accounted = docker.excused_through(&report.id, stream, delivered);
            if accounted < written {
                return Some(format!(
                    "container {} ({}{}) {}: {delivered} of {written} lines delivered",
                    report.id.short(),
                    report.name,
                    if report.running { "" } else { ", exited" },
                    stream.as_str()
                ));
            }
        }
    }
    None
}

/// Per container with unread output: since when, and how much was delivered then.
pub struct ProgressChecker {
    pub bound: Duration,
    /// How long after the world lost or held back one of a container's events the agent
    /// may not know it runs (until its next reconcile): the clock starts that much later.
    pub unannounced_grace: Duration,
    waiting: BTreeMap<ContainerId, (Instant, u64)>,
    /// The world's handle of each container's log, once asked (it never changes).
    logs: ByContainer<Option<usize>>,
}

impl ProgressChecker {
    /// `stall_timeout` and `slot_wait_max` are the agent's: a stalled stream is reopened
    /// after the first; a container that waits for a stream slot gets one within twice
    /// the second (the pool's promise, as the starvation check holds it: a waiter nudges
    /// the oldest holder at ¾ of `slot_wait_max`, then every ¼, and with four times as many
    /// containers as slots the nudges queue up). With the default 30 s the stall timeout
    /// (60 s or more) is the longer. The margin covers one sampling period and a reopen's
    /// back-off.
    pub fn new(stall_timeout: Duration, slot_wait_max: Duration) -> ProgressChecker {
        ProgressChecker {
            bound: stall_timeout.max(slot_wait_max * 2) + Duration::from_secs(90),
            unannounced_grace: Duration::ZERO,
            waiting: BTreeMap::new(),
            logs: ByContainer::default(),
        }
    }

    /// Nobody can make progress now (agent, Docker or Loki down): clocks restart.
    pub fn excuse_all(&mut self) {
        self.waiting.clear();
    }

    /// One sample while everything is up.
    ///
    /// Asks the world only whether each container's log has unread output (by the log's
    /// handle, kept per container), not for a whole report of every container (about
    /// 19,000 instructions a sample for 55 containers): seed 85 (callgrind, 480 samples):
    /// `World::sample` 13.0 M → 5.4 M Ir.
    pub fn sample(
        &mut self,
        now: Instant,
        docker: &SimDocker,
        delivery: &DeliveryChecker,
    ) -> Result<(), (Invariant, String)> {
        let mut previous = std::mem::take(&mut self.waiting);
        for id in docker.container_ids() {
            let log = self.logs.get_or_default(&id);
            if log.is_none() {
                *log = docker.log_serial(&id);
            }
            if !docker.with_log(*log, |log| log.is_some_and(|log| log.has_unread())) {
                continue;
            }
            let delivered = delivery.delivered(&id, StdStream::Stdout) + delivery.delivered(&id, StdStream::Stderr);
            let mut since = match previous.remove(&id) {
                Some((since, before)) if before == delivered => since,
                _ => now,
            };
            if let Some(at) = docker.events_disturbed_at(&id) {
                since = since.max(at + self.unannounced_grace);
            }
            self.waiting.insert(id.clone(), (since, delivered));
            let waited = now.saturating_duration_since(since);
            if waited > self.bound {
                let report = docker.container(&id).expect("a container of the world's list");
                return Err((
                    Invariant::Liveness,
                    format!(
                        "container {} ({}, {}) has had unread output and nothing delivered for {}s \
                         (bound: the longer of stall timeout and 2 × slot_wait_max, + 90 s = {}s) while the agent, Docker and Loki were up",
                        id.short(),
                        report.name,
                        if report.running { "running" } else { "exited" },
                        waited.as_secs(),
                        self.bound.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }
}
