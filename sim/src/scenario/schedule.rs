//! The world's schedule: every action of a run, drawn up front from the world stream.
//!
//! Drawing the whole schedule before the run starts makes it independent of what the
//! engine does: a saved seed replays the same world on a later commit even if the
//! engine draws its own randomness differently.
//!
//! Containers live in numbered slots; a replace (`docker rm` + a new container) gives a
//! slot a new container. Output is modelled as bursts of lines (one action per burst),
//! never one event per line.

use std::time::Duration;

use engine::model::StdStream;

use crate::executor::{streams, SimRng};
use crate::scenario::options::Options;
use crate::world::docker::{ApiCall, EventFault, RotationEffect, StreamFault};
use crate::world::loki::Outage;
use crate::world::CheckpointDamage;

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create and start the slot's first container.
    Create {
        slot: u32,
    },
    Emit {
        slot: u32,
        stream: StdStream,
        lines: u32,
        line_bytes: u32,
        lag: Duration,
        /// Every line of the burst carries one timestamp (a fast writer: Docker's
        /// nanosecond clock ties), so a reopen's `since` lands among equal timestamps.
        same_ts: bool,
    },
    Restart {
        slot: u32,
    },
    Stop {
        slot: u32,
    },
    Start {
        slot: u32,
    },
    /// `docker rm -f` the slot's container, then create and start a new one.
    Replace {
        slot: u32,
    },
    Rename {
        slot: u32,
    },
    StreamFault {
        slot: u32,
        fault: StreamFault,
    },
    /// The process exits by itself (`die`, no `stop`).
    Exit {
        slot: u32,
        code: i32,
    },
    /// `docker rm -f` the slot's container; a new one runs a short job: it writes
    /// `lines` at once (an exit follows as its own action).
    Job {
        slot: u32,
        lines: u32,
    },
    /// Docker's json-file rotation of the slot's container, keeping `keep_entries`.
    JsonRotate {
        slot: u32,
        keep_entries: u64,
        effect: RotationEffect,
    },
    /// The next `count` calls of `call` fail (a live daemon answering 500).
    FailCalls {
        call: ApiCall,
        count: u32,
    },
    /// The next `count` checkpoint commits fail (disk full, I/O error).
    FailCommits {
        count: u32,
    },
    /// The daemon stops; without live-restore it stops every running container first.
    DockerDown {
        live_restore: bool,
    },
    DockerUp,
    EventsDrop,
    /// The next `count` events on the live connection are lost, duplicated or delayed.
    EventFault {
        fault: EventFault,
        count: u32,
    },
    /// `docker pause` (the process is frozen, its stream stays open and silent), and
    /// `docker unpause`.
    Pause {
        slot: u32,
    },
    Unpause {
        slot: u32,
    },
    LokiOutage {
        kind: Outage,
        duration: Duration,
    },
    /// The host clock steps back by `back` (an NTP correction): every container's
    /// timestamps from now on are that much earlier.
    ClockStepBack {
        back: Duration,
    },
}

/// A crash of the capture agent at `at`, restarted `downtime` later. `graceful`: not a
/// crash but a shutdown (SIGTERM) at that instant, under whatever load and Loki state the
/// world is in; the restart resumes from the checkpoint it committed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crash {
    pub at: Duration,
    pub downtime: Duration,
    pub graceful: bool,
    /// A crash (not a graceful stop) that also damages the checkpoint's current
    /// generation: the restart falls back to the previous one.
    pub damage: Option<CheckpointDamage>,
}

#[derive(Clone, Debug, Default)]
pub struct Schedule {
    /// Sorted by time; ties keep drawing order.
    pub actions: Vec<(Duration, Action)>,
    pub crashes: Vec<Crash>,
}

impl Schedule {
    pub fn generate(options: &Options) -> Schedule {
        let mut rng = SimRng::derive(options.seed, streams::WORLD);
        // Its own stream: drawing ties did not move any other draw of the schedule.
        let mut ties = SimRng::derive(options.seed, streams::WORLD ^ 0x7135);
        let end = options.duration();
        // Room for the bursts (most of the actions) and a few more per container, so
        // that the list is not copied as it grows: seed 85 7.86 M → 7.23 M Ir.
        let bursts_per_container = end.as_secs_f64() / options.burst_every_mean.as_secs_f64().max(1.0);
        let per_container = (bursts_per_container * 1.1) as usize + 16;
        let mut actions = Vec::with_capacity(options.containers as usize * per_container);
        let poisson = |rng: &mut SimRng,
                       per_hour: f64,
                       actions: &mut Vec<(Duration, Action)>,
                       make: &mut dyn FnMut(&mut SimRng) -> Action| {
            if per_hour <= 0.0 {
                return;
            }
            let mean_secs = 3600.0 / per_hour;
            let mut at = Duration::from_secs(30);
            loop {
                at += Duration::from_secs_f64(rng.exponential(mean_secs));
                if at >= end {
                    break;
                }
                let action = make(rng);
                actions.push((at, action));
            }
        };
        for slot in 0..options.containers {
            actions.push((Duration::from_millis(rng.below(30_000)), Action::Create { slot }));
            // Output.
            let mean = options.burst_every_mean.as_secs_f64();
            let mut at = Duration::from_secs(30);
            loop {
                at += Duration::from_secs_f64(rng.exponential(mean));
                if at >= end {
                    break;
                }
                let stderr = rng.chance(options.stderr_share);
                let stream = if stderr { StdStream::Stderr } else { StdStream::Stdout };
                let lag = if stderr {
                    Duration::from_nanos(rng.below(options.stderr_lag_max.as_nanos() as u64 + 1))
                } else {
                    Duration::ZERO
                };
                let (lines, line_bytes) = if rng.chance(options.giant_line_chance) {
                    (1, rng.range(20_000..100_000) as u32)
                } else {
                    let lines = (0.5 + rng.exponential(options.burst_lines_mean as f64)).clamp(1.0, 400.0) as u32;
                    (lines, options.line_bytes)
                };
                let same_ts = ties.chance(options.same_ts_share);
                actions.push((at, Action::Emit { slot, stream, lines, line_bytes, lag, same_ts }));
            }
            // Churn and stream faults.
            poisson(&mut rng, options.restarts_per_hour, &mut actions, &mut |_| Action::Restart { slot });
            poisson(&mut rng, options.replaces_per_hour, &mut actions, &mut |_| Action::Replace { slot });
            poisson(&mut rng, options.renames_per_hour, &mut actions, &mut |_| Action::Rename { slot });
            let mut stops = Vec::new();
            poisson(&mut rng, options.stops_per_hour, &mut stops, &mut |_| Action::Stop { slot });
            for (at, stop) in stops {
                let downtime = Duration::from_secs(rng.range(5..120));
                actions.push((at, stop));
                actions.push((at + downtime, Action::Start { slot }));
            }
            let mut exits = Vec::new();
            poisson(&mut rng, options.exits_per_hour, &mut exits, &mut |rng| Action::Exit {
                slot,
                code: *rng.pick(&[0, 1, 137]),
            });
            for (at, exit) in exits {
                actions.push((at, exit));
                // Then a crash-loop restart, a replacement (the job is done; a new one
                // comes), or nothing: it stays exited.
                match rng.below(10) {
                    0..=4 => actions.push((at + Duration::from_secs(rng.range(1..30)), Action::Start { slot })),
                    5..=7 => actions.push((at + Duration::from_secs(rng.range(10..600)), Action::Replace { slot })),
                    _ => {}
                }
            }
            let mut jobs = Vec::new();
            poisson(&mut rng, options.jobs_per_hour, &mut jobs, &mut |rng| Action::Job {
                slot,
                lines: rng.range(1..2000) as u32,
            });
            for (at, job) in jobs {
                actions.push((at, job));
                actions.push((at + Duration::from_millis(rng.range(200..20_000)), Action::Exit { slot, code: 0 }));
            }
            poisson(&mut rng, options.json_rotations_per_hour, &mut actions, &mut |rng| {
                let effect = match rng.below(10) {
                    0..=6 => RotationEffect::Continue,
                    7..=8 => RotationEffect::End,
                    _ => RotationEffect::Stall,
                };
                Action::JsonRotate { slot, keep_entries: options.json_keep_entries, effect }
            });
            poisson(&mut rng, options.stream_faults_per_hour, &mut actions, &mut |rng| {
                let fault = match rng.below(4) {
                    0 => StreamFault::End,
                    1 => StreamFault::Stall,
                    2 => StreamFault::ErrorMidFrame,
                    _ => StreamFault::Trickle {
                        chunk_bytes: rng.range(7..200) as usize,
                        delay: Duration::from_millis(rng.range(1..50)),
                    },
                };
                Action::StreamFault { slot, fault }
            });
        }
        let at_random =
            |rng: &mut SimRng| Duration::from_secs_f64(60.0 + rng.unit_f64() * (end.as_secs_f64() - 120.0).max(1.0));
        for _ in 0..options.docker_restarts {
            let at = at_random(&mut rng);
            let live_restore = !rng.chance(options.docker_no_live_restore);
            actions.push((at, Action::DockerDown { live_restore }));
            actions.push((at + Duration::from_secs(rng.range(2..90)), Action::DockerUp));
        }
        for _ in 0..options.events_drops {
            actions.push((at_random(&mut rng), Action::EventsDrop));
        }
        for _ in 0..options.api_failures {
            let call = *rng.pick(&[ApiCall::List, ApiCall::Inspect, ApiCall::Logs]);
            actions.push((at_random(&mut rng), Action::FailCalls { call, count: rng.range(1..4) as u32 }));
        }
        for _ in 0..options.checkpoint_failures {
            actions.push((at_random(&mut rng), Action::FailCommits { count: rng.range(1..6) as u32 }));
        }
        // Which floods are of tiny lines: from their own stream, so nothing drawn above
        // or below changes.
        let mut tiny_floods = SimRng::derive(options.seed, streams::WORLD ^ 0x71D7);
        for _ in 0..options.floods {
            // A flood: about a third of the containers write, at once, 1.5 to 3 times
            // `queue_bytes_max` between them, mostly while Loki is down, so the queue
            // reaches its bound and the readers must wait. Half the floods of the smallest
            // queue (1 MiB) are of lines of a few bytes (their sequence number), one per
            // 64 bytes of the target: per-line overhead, not content, fills the budget.
            // The others are of lines of 0.9–9 KB. A simulated line costs about the same
            // whatever its size, and floods were a sixth of all lines (tiny ones on queues
            // of 2 MiB too, lines of 0.3–3 KB): now the same bytes in fewer lines.
            let tiny = options.queue_bytes_max <= 1 << 20 && tiny_floods.chance(0.5);
            let at = at_random(&mut rng);
            if rng.chance(0.7) {
                let duration = Duration::from_secs(rng.range(60..900));
                actions.push((at, Action::LokiOutage { kind: Outage::Down, duration }));
            }
            let chosen: Vec<u32> = (0..options.containers).filter(|_| rng.chance(0.33)).collect();
            let chosen = if chosen.is_empty() { vec![rng.below(options.containers as u64) as u32] } else { chosen };
            let target = options.queue_bytes_max as u64 * rng.range(3..7) / 2;
            for slot in chosen.iter().copied() {
                let line_bytes = rng.range(300..3_000) * 3;
                let (line_bytes, per_line) = if tiny { (1, 64) } else { (line_bytes, line_bytes) };
                let lines = (target / (chosen.len() as u64 * per_line)).max(1) as u32;
                let (stream, line_bytes, lag) = (StdStream::Stdout, line_bytes as u32, Duration::ZERO);
                actions.push((at, Action::Emit { slot, stream, lines, line_bytes, lag, same_ts: false }));
            }
        }
        for _ in 0..options.loki_outages {
            let kind = if rng.chance(options.loki_unauthorized_share * 0.5) {
                Outage::Unauthorized
            } else if rng.chance(0.5) {
                Outage::Down
            } else {
                Outage::Partition
            };
            let duration = Duration::from_secs(rng.range(10..options.loki_outage_max.as_secs().max(11)));
            actions.push((at_random(&mut rng), Action::LokiOutage { kind, duration }));
        }
        let mut crashes: Vec<Crash> = (0..options.crashes)
            .map(|_| Crash {
                at: at_random(&mut rng),
                downtime: Duration::from_secs(rng.range(1..options.crash_downtime_max.as_secs().max(2))),
                graceful: false,
                damage: None,
            })
            .collect();
        // Graceful stops from their own stream, so the crashes drawn above are unchanged.
        let mut stops = SimRng::derive(options.seed, streams::WORLD ^ 0x5709);
        for _ in 0..options.graceful_stops {
            let at = at_random(&mut stops);
            crashes.push(Crash { at, downtime: Duration::from_secs(stops.range(1..60)), graceful: true, damage: None });
        }
        // Events faults and pauses from a stream of their own, so every other draw is
        // unchanged.
        let mut later = SimRng::derive(options.seed, streams::WORLD ^ 0xE7F1);
        for _ in 0..options.event_faults {
            let fault = *later.pick(&[EventFault::Lose, EventFault::Duplicate, EventFault::Delay]);
            let count = later.range(1..4) as u32;
            actions.push((at_random(&mut later), Action::EventFault { fault, count }));
        }
        if options.pauses_per_hour > 0.0 {
            for slot in 0..options.containers {
                let mut pauses = Vec::new();
                poisson(&mut later, options.pauses_per_hour, &mut pauses, &mut |_| Action::Pause { slot });
                for (at, pause) in pauses {
                    let paused_for = Duration::from_secs(later.range(2..900));
                    actions.push((at, pause));
                    actions.push((at + paused_for, Action::Unpause { slot }));
                }
            }
        }
        // Checkpoint damage from its own stream, so every other draw is unchanged.
        let mut damage = SimRng::derive(options.seed, streams::WORLD ^ 0xDA3A);
        for crash in crashes.iter_mut().filter(|crash| !crash.graceful) {
            if damage.chance(options.checkpoint_damage_share) {
                crash.damage =
                    Some(if damage.chance(0.7) { CheckpointDamage::Corrupt } else { CheckpointDamage::Missing });
            }
        }
        // Host clock steps from their own stream, so every other draw is unchanged.
        let mut clock = SimRng::derive(options.seed, streams::WORLD ^ 0xC10C);
        for _ in 0..options.clock_steps {
            let back = Duration::from_millis(clock.range(1_000..120_001));
            actions.push((at_random(&mut clock), Action::ClockStepBack { back }));
        }
        crashes.sort_by_key(|crash| crash.at);
        // Crashes must not overlap: keep those that start after the previous restart.
        let mut last_up = Duration::ZERO;
        crashes.retain(|crash| {
            let keep = crash.at > last_up;
            if keep {
                last_up = crash.at + crash.downtime;
            }
            keep
        });
        // Stable: ties keep drawing order (a flood's outage before its bursts).
        let actions = sort_by_time(actions);
        Schedule { actions, crashes }
    }

    pub fn bursts(&self) -> usize {
        self.actions.iter().filter(|(_, action)| matches!(action, Action::Emit { .. })).count()
    }
}

/// `actions` in time order, ties in their order in `actions` (a stable sort by time).
/// Sorts `(nanos, index)` keys and moves each action once, instead of merging the
/// actions (48 bytes each) themselves: `Schedule::generate` on seed 1 (callgrind)
/// 7.74 M → 6.08 M instructions. The keys are packed in one `u64` when they fit (times
/// under 2^44 ns, about 4.9 hours, and fewer than 2^20 actions: every default run), the
/// same order sorted as integers: seed 85 9.09 M → 7.86 M.
fn sort_by_time(actions: Vec<(Duration, Action)>) -> Vec<(Duration, Action)> {
    const INDEX_BITS: u32 = 20;
    let nanos = |at: &Duration| u64::try_from(at.as_nanos()).expect("a schedule spans less than 584 years");
    let latest = actions.iter().map(|(at, _)| nanos(at)).max().unwrap_or(0);
    let order: Vec<usize> = if actions.len() <= 1 << INDEX_BITS && latest < 1 << (64 - INDEX_BITS) {
        let mut keys: Vec<u64> =
            actions.iter().enumerate().map(|(index, (at, _))| nanos(at) << INDEX_BITS | index as u64).collect();
        keys.sort_unstable();
        keys.into_iter().map(|key| (key & ((1 << INDEX_BITS) - 1)) as usize).collect()
    } else {
        let key = |(index, (at, _)): (usize, &(Duration, Action))| {
            (nanos(at), u32::try_from(index).expect("fewer than 2^32 actions"))
        };
        let mut keys: Vec<(u64, u32)> = actions.iter().enumerate().map(key).collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, index)| index as usize).collect()
    };
    let mut actions: Vec<Option<(Duration, Action)>> = actions.into_iter().map(Some).collect();
    order.into_iter().map(|index| actions[index].take().expect("each index once")).collect()
}
