//! The sweep report: what users read after `cargo xtask sim`.
//!
//! Per failing seed: the seed, its options, the first broken invariant and the live
//! tasks by spawn site. Then the totals: seeds, failures, simulated container-hours per
//! wall second, events (executor polls) per seed, per-seed substance (stream rotations,
//! lines delivered and empty lines written, minimum and mean), what the world did
//! (container exits, json-file rotations, seeds whose queue reached its bound) and the
//! lines lost by a named, world-caused reason.

use std::fmt::Write;

use crate::run::SeedOutcome;
use crate::sweep::SweepReport;

pub fn seed_line(outcome: &SeedOutcome) -> String {
    let stats = &outcome.stats;
    format!(
        "seed {}: {} | rotations={} lines_delivered={} lines_written={} duplicates={} bursts={} crashes={} exits={} json_rotations={} backpressure_episodes={} lost_json_file_rotation={} lost_container_removed={} lost_loki_refused={} lost_first_sight_now={} lost_clock_step={} polls={} streams_open_max={} digest={:#018x} wall={:.0}ms",
        outcome.options.seed,
        match &outcome.violation {
            None => "ok".to_string(),
            Some(violation) => format!("FAILED {violation}"),
        },
        stats.rotations,
        stats.lines_delivered,
        stats.lines_written,
        stats.duplicates,
        stats.bursts,
        stats.crashes,
        stats.exits,
        stats.json_rotations,
        stats.backpressure_episodes,
        stats.losses.json_file_rotation,
        stats.losses.container_removed,
        stats.losses.loki_refused,
        stats.losses.first_sight_now,
        stats.losses.clock_step,
        stats.polls,
        stats.streams_open_max,
        stats.trace_digest,
        stats.wall.as_secs_f64() * 1e3,
    )
}

pub fn failure_block(outcome: &SeedOutcome) -> String {
    let mut out = String::new();
    let Some(violation) = &outcome.violation else { return out };
    let _ = writeln!(out, "FAILED seed {} — {}", outcome.options.seed, violation.invariant);
    let _ = writeln!(out, "  options: {}", outcome.options);
    let _ = writeln!(out, "  first broken invariant: {violation}");
    if violation.live_tasks.is_empty() {
        let _ = writeln!(out, "  live tasks by spawn site: (none)");
    } else {
        let _ = writeln!(out, "  live tasks by spawn site:");
        for line in &violation.live_tasks {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(out, "  replay: cargo xtask sim --seed {}", outcome.options.seed);
    out
}

pub fn summary(report: &SweepReport) -> String {
    let mut out = String::new();
    for outcome in report.failures() {
        out.push_str(&failure_block(outcome));
    }
    let seeds = report.outcomes.len().max(1) as f64;
    let container_hours: f64 = report.outcomes.iter().map(|o| o.stats.container_hours).sum();
    let polls: u64 = report.outcomes.iter().map(|o| o.stats.polls).sum();
    let min = |get: fn(&SeedOutcome) -> u64| report.outcomes.iter().map(get).min().unwrap_or(0);
    let mean = |get: fn(&SeedOutcome) -> u64| report.outcomes.iter().map(get).sum::<u64>() as f64 / seeds;
    let wall = report.wall.as_secs_f64();
    let _ = writeln!(out, "seeds run: {}", report.outcomes.len());
    let _ = writeln!(out, "failures: {}", report.failures().count());
    let _ = writeln!(out, "determinism re-runs: {}", report.determinism_checked);
    let _ = writeln!(out, "wall time: {wall:.2}s");
    let _ = writeln!(
        out,
        "simulated container-hours: {container_hours:.0} ({:.0} per wall second)",
        container_hours / wall.max(1e-9)
    );
    let _ = writeln!(out, "events (polls) per seed: mean {:.0}", polls as f64 / seeds);
    let _ = writeln!(
        out,
        "stream rotations per seed: min {} mean {:.0}",
        min(|o| o.stats.rotations),
        mean(|o| o.stats.rotations)
    );
    let _ = writeln!(
        out,
        "lines delivered per seed: min {} mean {:.0}",
        min(|o| o.stats.lines_delivered),
        mean(|o| o.stats.lines_delivered)
    );
    let _ = writeln!(
        out,
        "empty lines written per seed: min {} mean {:.0}",
        min(|o| o.stats.empty_lines_written),
        mean(|o| o.stats.empty_lines_written)
    );
    let _ = writeln!(
        out,
        "container exits per seed: mean {:.1}; json-file rotations per seed: mean {:.1}",
        mean(|o| o.stats.exits),
        mean(|o| o.stats.json_rotations)
    );
    let capped = report.outcomes.iter().filter(|o| o.stats.faults.sink_backoff_capped).count();
    let _ = writeln!(
        out,
        "world faults per seed (mean): events lost {:.2}, duplicated {:.2}, delayed {:.2}; pauses {:.2}; \
         checkpoint damages {:.2}; {capped} seeds had a Loki outage past the sink's backoff cap",
        mean(|o| o.stats.faults.events_lost),
        mean(|o| o.stats.faults.events_duplicated),
        mean(|o| o.stats.faults.events_delayed),
        mean(|o| o.stats.faults.pauses),
        mean(|o| o.stats.faults.checkpoint_damages),
    );
    let reached = report.outcomes.iter().filter(|o| o.stats.backpressure_episodes > 0).count();
    let _ = writeln!(
        out,
        "backpressure: {reached} seeds reached 90 % of queue_bytes_max; episodes per seed: mean {:.2}",
        mean(|o| o.stats.backpressure_episodes)
    );
    let _ = writeln!(
        out,
        "lines lost by named cause per seed (mean): json_file_rotation {:.1}, container_removed {:.1}, loki_refused_too_old {:.1}, first_sight_now {:.1}, clock_step {:.1}",
        mean(|o| o.stats.losses.json_file_rotation),
        mean(|o| o.stats.losses.container_removed),
        mean(|o| o.stats.losses.loki_refused),
        mean(|o| o.stats.losses.first_sight_now),
        mean(|o| o.stats.losses.clock_step)
    );
    // The agent's gap count is held to the world's bounds on every seed.
    let sum = |get: fn(&SeedOutcome) -> u64| report.outcomes.iter().map(get).sum::<u64>();
    let _ = writeln!(
        out,
        "agent loss counts: log gaps {} on {} seeds (world: {} noticeable, {} possible); tails unread {} (world: {} removed, {} with lines unread, {} owed)",
        sum(|o| o.stats.agent_losses.gaps),
        report.outcomes.len(),
        sum(|o| o.stats.world_losses.gaps_noticeable),
        sum(|o| o.stats.world_losses.gaps_possible),
        sum(|o| o.stats.agent_losses.tails_unread),
        sum(|o| o.stats.world_losses.removed),
        sum(|o| o.stats.world_losses.removed_unread),
        sum(|o| o.stats.world_losses.tails_owed)
    );
    out
}
