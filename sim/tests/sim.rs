//! The simulator's own tests: the oracle has teeth (each of the Go predecessor's bugs,
//! rebuilt as a broken supervisor, is caught within 20 seeds with the right invariant
//! and spawn site), the shipped supervisor passes the same seeds, saved failing seeds
//! replay, the same seed gives the same trace, worlds of TTY containers pass, and the
//! report format is pinned.

use std::path::Path;
use std::time::Duration;

use engine::container::SupervisorVariant;
use sim::check::Invariant;
use sim::report::{failure_block, summary};
use sim::run::{run_seed, RunConfig, SeedOutcome};
use sim::scenario::{Options, Overrides};
use sim::sweep::{corpus_entry, corpus_options, corpus_seeds, rerun_differs, sweep, SweepConfig};

/// Small, quick worlds: 12 containers for 1 simulated hour, the full world (`pre_fix`
/// off: exits for good, small pools, stalls and `first_sight = "now"` included).
fn small() -> Overrides {
    Overrides {
        containers: Some(12),
        hours: Some(1.0),
        rotate_every: Some(Duration::from_secs(300)),
        calm: false,
        pre_fix: false,
    }
}

/// The small world of `seed` (what the variant tests run unless they need a special one).
fn small_world(seed: u64) -> Options {
    Options::from_seed(seed, &small())
}

fn run(seed: u64, variant: SupervisorVariant) -> SeedOutcome {
    run_seed(&small_world(seed), RunConfig { variant, trace: false, ..RunConfig::default() })
}

/// The first failing seed among 0..20 of `worlds`, with its outcome.
fn first_failure_in(worlds: fn(u64) -> Options, variant: SupervisorVariant) -> SeedOutcome {
    for seed in 0..20 {
        let outcome = run_seed(&worlds(seed), RunConfig { variant, trace: false, ..RunConfig::default() });
        if outcome.violation.is_some() {
            return outcome;
        }
    }
    panic!("{variant:?} was not caught within 20 seeds");
}

fn first_failure(variant: SupervisorVariant) -> SeedOutcome {
    first_failure_in(small_world, variant)
}

fn assert_caught(variant: SupervisorVariant, invariants: &[Invariant], site_fragment: &str) {
    let outcome = first_failure(variant);
    let violation = outcome.violation.as_ref().unwrap();
    let block = failure_block(&outcome);
    assert!(invariants.contains(&violation.invariant), "expected one of {invariants:?}:\n{block}");
    let blamed = violation.detail.contains(site_fragment)
        || violation.live_tasks.iter().any(|line| line.contains(site_fragment));
    assert!(blamed, "the report must name the spawn site {site_fragment}:\n{block}");
}

#[test]
fn the_shipped_supervisor_passes_the_seeds_the_broken_ones_fail() {
    for seed in 0..5 {
        let outcome = run(seed, SupervisorVariant::Correct);
        assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
        assert!(outcome.stats.lines_delivered > 1000, "seed {seed} delivered too little to mean anything");
        assert!(outcome.stats.rotations > 50, "seed {seed} rotated too little to mean anything");
    }
}

#[test]
fn a_reader_task_left_running_at_each_rotation_is_caught() {
    // Go: a new reader goroutine per rotation, the old one never awaited (pile-up).
    assert_caught(
        SupervisorVariant::ReaderPileUp,
        &[Invariant::TaskBudget],
        "stream at engine/src/container/broken.rs",
    );
}

#[test]
fn a_join_that_waits_on_the_heartbeat_is_caught() {
    // Go: one WaitGroup for the heartbeat and the reader; rotation waits forever.
    // Rotation stalls: the container goes unstreamed (liveness) or, if it is removed
    // meanwhile, its supervisor never finishes (quiet-point delta).
    assert_caught(
        SupervisorVariant::WrongJoin,
        &[Invariant::Liveness, Invariant::LiveTaskDelta],
        "heartbeat at engine/src/container/broken.rs",
    );
}

#[test]
fn a_task_nobody_joins_is_caught() {
    // Go: the file monitor's untracked reader goroutine. Found at the quiet point, or
    // earlier by a shutdown in the middle of the run (tasks alive after it).
    assert_caught(
        SupervisorVariant::OrphanTask,
        &[Invariant::LiveTaskDelta, Invariant::Shutdown],
        "heartbeat at engine/src/container/broken.rs",
    );
}

/// The first failing seed's violation, for variants that break a line-level invariant
/// (no spawn site to blame: the invariant and its detail name the fault).
fn assert_caught_as(variant: SupervisorVariant, invariant: Invariant, detail_fragment: &str) {
    assert_caught_in(small_world, variant, invariant, detail_fragment);
}

/// [`assert_caught_as`] on the worlds `worlds` makes; the failing outcome.
fn assert_caught_in(
    worlds: fn(u64) -> Options,
    variant: SupervisorVariant,
    invariant: Invariant,
    detail_fragment: &str,
) -> SeedOutcome {
    let outcome = first_failure_in(worlds, variant);
    let violation = outcome.violation.as_ref().unwrap();
    let block = failure_block(&outcome);
    assert_eq!(violation.invariant, invariant, "{block}");
    assert!(violation.detail.contains(detail_fragment), "expected {detail_fragment:?} in:\n{block}");
    outcome
}

#[test]
fn positions_advanced_before_loki_has_the_lines_are_caught() {
    // Each commit's positions are checked against what Loki had stored by then.
    assert_caught_as(SupervisorVariant::AckBeforeDelivery, Invariant::NoLoss, "checkpoint");
}

#[test]
fn a_queue_that_bypasses_its_byte_budget_is_caught() {
    assert_caught_as(SupervisorVariant::BudgetBypass, Invariant::Bounds, "queue_bytes_max");
}

#[test]
fn a_queue_that_charges_no_per_line_overhead_is_caught() {
    // Only the world's own count sees it: the queue's gauge stays within its bound.
    assert_caught_as(SupervisorVariant::LineOverheadUncharged, Invariant::Bounds, "the world handed it");
}

#[test]
fn streams_that_overlap_for_a_moment_at_rotation_are_caught() {
    // Open for a millisecond beyond `streams_max`: only the per-open high-water mark sees it.
    assert_caught_as(SupervisorVariant::OverlapAtRotation, Invariant::TaskBudget, "were open at once");
}

#[test]
fn a_shutdown_that_hangs_is_caught() {
    assert_caught_as(SupervisorVariant::HangShutdown, Invariant::Shutdown, "did not finish");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let first = run(7, SupervisorVariant::Correct);
    let second = run(7, SupervisorVariant::Correct);
    assert_eq!(first.stats.trace_digest, second.stats.trace_digest);
    assert_eq!(first.stats.lines_delivered, second.stats.lines_delivered);
    let other = run(8, SupervisorVariant::Correct);
    assert_ne!(first.stats.trace_digest, other.stats.trace_digest);
}

#[test]
fn saved_failing_seeds_replay() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let saved = corpus_options(&corpus);
    assert_eq!(saved.len(), corpus_seeds(&corpus).len(), "every corpus file names its seed once");
    for (path, options) in saved {
        let options = options.unwrap_or_else(|error| panic!("{}: unreadable options: {error}", path.display()));
        let outcome = run_seed(&options, RunConfig::default());
        assert!(outcome.violation.is_none(), "{} fails again:\n{}", path.display(), failure_block(&outcome));
    }
}

#[test]
fn saved_options_round_trip() {
    for seed in [0, 1, 573] {
        let options = Options::from_seed(seed, &small());
        assert_eq!(Options::parse(seed, &options.to_string()), Ok(options.clone()), "seed {seed}");
    }
}

#[test]
fn world_actions_after_the_schedule_end_are_still_played() {
    // Seed 573 stops a container 3 s before the end with unread lines in its log; its
    // start comes during the drain. A driver that stops playing at the end leaves it
    // stopped, and the backlog never drains.
    let outcome =
        run_seed(&Options::from_seed(573, &Overrides { pre_fix: true, ..Overrides::default() }), RunConfig::default());
    assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
}

#[test]
fn the_report_format_is_stable() {
    let outcome = run(3, SupervisorVariant::OrphanTask);
    let mut outcome = outcome;
    // Pin the format, not the numbers that depend on timing.
    outcome.stats.wall = Duration::ZERO;
    let violation = outcome.violation.as_mut().expect("the orphan variant fails on seed 3");
    violation.live_tasks.iter_mut().for_each(|line| *line = line.split(" at ").next().unwrap().to_string());
    violation.detail = violation.detail.split(':').next().unwrap().to_string();
    // Option values follow the seed's draws, which change as the scenario grows: keep
    // their names (the format), not their values.
    let keys_only = |text: String| -> String {
        text.lines()
            .map(|line| match line.split_once("options") {
                Some((head, rest)) if rest.starts_with(": ") || rest.starts_with(" = ") => {
                    let keys: Vec<&str> =
                        rest.split_whitespace().filter_map(|pair| pair.split_once('=').map(|(key, _)| key)).collect();
                    format!("{head}options{} {}", &rest[..2].trim_end(), keys.join(" "))
                }
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!("failure_block", keys_only(failure_block(&outcome)));
    insta::assert_snapshot!("corpus_entry", keys_only(corpus_entry(&outcome, "0000000")));
    let report = sweep(&SweepConfig {
        from: 0,
        seeds: 2,
        jobs: 1,
        overrides: small(),
        run: RunConfig::default(),
        determinism_every: 0,
        progress: false,
    });
    let text = summary(&report);
    let shape: Vec<&str> = text.lines().map(|line| line.split(':').next().unwrap()).collect();
    insta::assert_snapshot!("summary_lines", shape.join("\n"));
}

#[test]
fn worlds_of_tty_containers_pass() {
    // Every container a TTY: no frame headers, `\r\n` line ends, stderr bursts merged
    // into stdout. The shipped agent reads them all; the oracle checks them as stdout.
    // Empty lines come as `TIMESTAMP SP \r\n`.
    let mut empty_lines = 0;
    for seed in 0..3 {
        let options = Options { tty_share: 1.0, ..Options::from_seed(seed, &small()) };
        assert!(options.stderr_share > 0.0);
        let outcome = run_seed(&options, RunConfig::default());
        assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
        assert!(outcome.stats.lines_delivered > 1000, "seed {seed} delivered too little to mean anything");
        empty_lines += outcome.stats.empty_lines_written;
    }
    assert!(empty_lines > 0, "TTY worlds wrote no empty line");
}

#[test]
fn a_model_that_keeps_tty_stderr_apart_is_caught() {
    // The same worlds with the merge forgotten in the model: the agent delivers the
    // stderr lines as stdout (it cannot tell them apart), and the oracle must object.
    let options = Options { tty_share: 1.0, ..Options::from_seed(0, &small()) };
    let outcome = run_seed(&options, RunConfig { broken_tty_keeps_stderr: true, ..RunConfig::default() });
    let violation = outcome.violation.as_ref().expect("a TTY model that keeps stderr apart is caught");
    // Stderr line 0 arrives where stdout line 0 was expected: content other than written.
    assert!(
        [Invariant::NoLoss, Invariant::Order, Invariant::NoDuplicates].contains(&violation.invariant),
        "{}",
        failure_block(&outcome)
    );
}

#[test]
fn a_replay_that_is_not_skipped_is_caught() {
    // Every reopen starts up to `since_skew` + 1 s before the last queued line: without
    // the reader's dedupe those lines reach Loki twice, with no crash or ambiguous
    // acceptance to excuse them.
    assert_caught_as(SupervisorVariant::DuplicateReplay, Invariant::NoDuplicates, "delivered again");
}

#[test]
fn dedupe_of_live_lines_is_caught() {
    // After a host clock step back, live lines stamped before the last queued one are
    // new: a reader that dedupes live lines loses them, which no world action excuses
    // (Docker served them). Found as a gap when a later line of the stream arrives, or
    // by the backlog check when none does. Played on worlds whose host clock steps back
    // three times: of the small worlds, only those that step caught it, 1 seed in 10.
    let outcome = first_failure_in(stepped_world, SupervisorVariant::DedupeLiveLines);
    let violation = outcome.violation.as_ref().unwrap();
    let lost = (violation.invariant == Invariant::NoLoss && violation.detail.contains("never did"))
        || (violation.invariant == Invariant::Liveness && violation.detail.contains("backlog not drained"));
    assert!(lost, "{}", failure_block(&outcome));
}

/// A small world whose host clock steps back three times (at random instants, by 1 s
/// to 2 min).
fn stepped_world(seed: u64) -> Options {
    let mut options = small_world(seed);
    options.clock_steps = 3;
    options
}

#[test]
fn content_changed_on_the_way_is_caught() {
    // A reader that drops a line's trailing `\r` (the world writes `\r\n` line ends in
    // one burst in five outside TTY containers): the stored bytes are not the written ones.
    assert_caught_as(SupervisorVariant::StripCarriageReturn, Invariant::NoLoss, "content");
}

#[test]
fn empty_lines_dropped_on_the_way_are_caught() {
    // A reader that skips blank lines (the world writes a burst of empty lines in one
    // in 97 by first sequence number): the line after them is not the next one.
    assert_caught_as(SupervisorVariant::DropEmptyLines, Invariant::NoLoss, "never did");
}

#[test]
fn an_empty_line_delivered_twice_is_caught() {
    // An empty line has no number in it: the oracle names it by its timestamp, so its
    // second copy is a duplicate of the same line, not the next new one.
    assert_caught_as(SupervisorVariant::DuplicateEmptyLines, Invariant::NoDuplicates, "delivered again");
}

#[test]
fn a_tail_dropped_at_stop_is_caught() {
    // The supervisor stops reading at the stop instead of reading the log to its end:
    // an exited container keeps unread output with nothing delivered (the progress
    // check; a removed one's lines would be excused by `docker rm`, see the loss counts).
    assert_caught_as(SupervisorVariant::TailDropped, Invariant::Liveness, "unread output");
}

#[test]
fn a_probe_that_trusts_silence_is_caught() {
    // The probe says "at the end of its log" whatever Docker answers. The stall
    // watchdog's: a stalled stream (stream fault, json-file rotation) is kept until its
    // rotation, and the container's output waits unread past the stall timeout + 90 s
    // (progress). A waiter's: it never nudges a holder, however much it has to read
    // (starvation, where the pool is smaller than the containers).
    // Played where stalls are many (a stream fault per container every 20 min, a
    // quarter of them stalls) and the watchdog is quick (60 s): the rotation (at
    // 210-300 s) comes after the progress bound (60 s + 90 s).
    let caught = first_failure_in(stalling_world, SupervisorVariant::ProbeTrustsSilence);
    let (violation, block) = (caught.violation.as_ref().unwrap(), failure_block(&caught));
    assert_eq!(violation.invariant, Invariant::Liveness, "{block}");
    let named = ["unread output", "has had no log stream"].iter().any(|detail| violation.detail.contains(detail));
    assert!(named, "a stalled or starved container expected in:\n{block}");
    // The shipped probe passes the same world.
    let outcome = run_seed(&caught.options, RunConfig::default());
    assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
}

/// A small world with a stream fault per container every 20 minutes (a quarter of them
/// stalls) and a stall timeout of 60 s.
fn stalling_world(seed: u64) -> Options {
    let mut options = small_world(seed);
    options.stream_faults_per_hour = 3.0;
    options.stall_timeout = Duration::from_secs(60);
    options
}

#[test]
fn hidden_randomness_is_caught_by_the_rerun() {
    // A process-wide counter shifts the supervisor's jitter: the second run of a seed
    // differs from the first. The sweep's re-run (`rerun_differs`) must say so.
    let variant = SupervisorVariant::HiddenRandomness;
    let config = RunConfig { variant, trace: false, ..RunConfig::default() };
    for seed in 0..20 {
        let options = Options::from_seed(seed, &small());
        let first = run_seed(&options, config);
        assert!(first.violation.is_none(), "hidden randomness alone breaks nothing else:\n{}", failure_block(&first));
        if let Some(violation) = rerun_differs(&options, config, &first) {
            assert_eq!(violation.invariant, Invariant::Determinism);
            assert!(violation.detail.contains("trace digest"), "{violation}");
            return;
        }
    }
    panic!("{variant:?} was not caught within 20 seeds");
}

#[test]
fn a_stream_polled_again_after_its_end_is_caught() {
    // A busy loop on an ended stream: virtual time stops, the executor's livelock bound
    // fires (the deadlock invariant's half that can fire while the agent runs).
    assert_caught_as(SupervisorVariant::SpinOnEnd, Invariant::Deadlock, "livelock");
}

/// Small worlds with frequent json-file rotations that keep little, and no crash (so a
/// gap comes from a rotation, not from a restart's older resume line).
fn rotating(seed: u64) -> Options {
    Options {
        crashes: 0,
        graceful_stops: 0,
        json_rotations_per_hour: 6.0,
        json_keep_entries: 20,
        ..Options::from_seed(seed, &small())
    }
}

#[test]
fn a_gap_the_agent_does_not_count_is_caught() {
    // The agent's container_log_gaps_total must be at least the gaps the world says a
    // reader could notice (resume line deleted by json-file rotation, read past by a
    // request made after it, whose `since` had to replay it). An agent that finds the
    // gap and counts nothing is caught.
    assert_caught_in(rotating, SupervisorVariant::GapUncounted, Invariant::NoLoss, "container_log_gaps_total");
}

#[test]
fn tails_counted_without_a_removal_are_caught() {
    // container_tails_unread_total counts at most one per container the world removed:
    // an agent that counts every stream end is caught.
    assert_caught_as(SupervisorVariant::TailOvercounted, Invariant::NoLoss, "container_tails_unread_total");
}

/// Few slots for the containers and frequent replaces: containers removed while they wait
/// for a slot, with lines no stream read.
fn slot_starved(seed: u64) -> Options {
    Options {
        streams_max: 3,
        replaces_per_hour: 2.0,
        crashes: 0,
        graceful_stops: 0,
        ..Options::from_seed(seed, &small())
    }
}

#[test]
fn tails_left_uncounted_are_caught() {
    // container_tails_unread_total counts at least the removals that deleted lines the
    // running agent never read (of containers it knew): an agent that never counts is
    // caught.
    assert_caught_in(
        slot_starved,
        SupervisorVariant::TailUncounted,
        Invariant::NoLoss,
        "removals of containers it knew",
    );
}

/// Small worlds under `first_sight = "now"` with a backlog at the agent's first start
/// (late), rare bursts and frequent crashes: restarts find containers first seen with
/// nothing acknowledged yet.
fn first_sight_crashing(seed: u64) -> Options {
    Options {
        first_sight_now: true,
        first_sight_tail: 0,
        late_start: Duration::from_secs(120),
        burst_every_mean: Duration::from_secs(600),
        crashes: 20,
        ..Options::from_seed(seed, &small())
    }
}

#[test]
fn a_backlog_shipped_after_a_restart_is_caught() {
    // A container first seen under `first_sight = "now"` with nothing acknowledged when
    // the agent crashed is opened at its recorded first sight by the restart: an agent
    // that forgets it reads from the beginning and ships the backlog "now" skipped. The
    // shipped agent passes the same worlds.
    let caught = assert_caught_in(
        first_sight_crashing,
        SupervisorVariant::FirstSightForgotten,
        Invariant::FirstSight,
        "before its first sight",
    );
    let shipped = run_seed(&caught.options, RunConfig::default());
    assert!(shipped.violation.is_none(), "{}", failure_block(&shipped));
}

#[test]
fn first_sight_now_applied_to_containers_started_later_is_caught() {
    // Only the containers of a first run's first reconcile are read from "now"; one
    // started while the agent runs is read from its beginning (the world excuses only
    // what the first list's containers wrote before it). "Now" differs from the
    // beginning only when discovery sees the container after it wrote: its `create` and
    // `start` lost or held back by an events fault. So: bursts every minute, containers
    // created often (replaces, jobs), and many events faults. (With the agent's clock
    // apart from the host's, host clock steps made "now" skip lines too: a world that
    // does not exist.)
    let now = |seed| Options {
        first_sight_now: true,
        first_sight_tail: 0,
        burst_every_mean: Duration::from_secs(60),
        event_faults: 30,
        replaces_per_hour: 0.3,
        jobs_per_hour: 0.3,
        ..Options::from_seed(seed, &small())
    };
    // The backlog skipped is unread output the world owes the agent: a stall at once.
    let caught = assert_caught_in(now, SupervisorVariant::FirstSightForAll, Invariant::Liveness, "unread output");
    // The shipped agent passes the same worlds.
    for seed in 0..=caught.options.seed {
        let outcome = run_seed(&now(seed), RunConfig::default());
        assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
    }
}

#[test]
fn the_shipped_agent_counts_the_tails_it_did_not_read() {
    // The same worlds: the shipped agent's count is within the world's bounds, and the
    // worlds do owe tails (else the test above would prove nothing).
    let mut owed = 0;
    for seed in 0..20 {
        let outcome = run_seed(&slot_starved(seed), RunConfig::default());
        assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
        owed += outcome.stats.world_losses.tails_owed;
    }
    assert!(owed > 0, "the worlds owed no tail");
}

#[test]
fn the_shipped_agent_counts_the_gaps_it_can_see() {
    // The same worlds: the shipped agent's count is within the world's bounds, and the
    // worlds do make gaps (else the test above would prove nothing).
    let mut noticeable = 0;
    for seed in 0..5 {
        let outcome = run_seed(&rotating(seed), RunConfig::default());
        assert!(outcome.violation.is_none(), "{}", failure_block(&outcome));
        noticeable += outcome.stats.world_losses.gaps_noticeable;
    }
    assert!(noticeable > 0, "no gap a reader could notice in 5 seeds of frequent json-file rotation");
}
