//! One seed expands into every option of a run (TigerBeetle's VOPR "swarm" style).
//!
//! [`Options::from_seed`] draws every knob from a stream of its own, derived from the
//! seed; the command line may pin a few (containers, hours, rotation period). All of
//! them are printed with every result, so a report is "seed + commit", nothing else.

use std::fmt;
use std::time::Duration;

use engine::container::MonitorConfig;

use crate::executor::SimRng;

/// The options stream (distinct from the scheduler, engine, world and model streams).
const OPTIONS_STREAM: u64 = 7;

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub seed: u64,
    pub containers: u32,
    pub hours: f64,
    pub rotate_every: Duration,
    pub streams_max: usize,
    /// Mean time between bursts of one container, and mean lines per burst.
    pub burst_every_mean: Duration,
    pub burst_lines_mean: u32,
    /// Content bytes per ordinary line.
    pub line_bytes: u32,
    /// Chance that a burst is one giant line (20–100 KiB: split by Docker, sometimes
    /// over `line_bytes_max` and truncated).
    pub giant_line_chance: f64,
    /// Share of bursts written to stderr, and how far stderr timestamps may lag.
    pub stderr_share: f64,
    pub stderr_lag_max: Duration,
    /// Per container-hour: `docker restart`, stop + later start, replace (rm + new).
    pub restarts_per_hour: f64,
    pub stops_per_hour: f64,
    pub replaces_per_hour: f64,
    pub renames_per_hour: f64,
    /// Per container-hour: log stream faults (end, stall, error mid-frame, trickle).
    pub stream_faults_per_hour: f64,
    /// Per run: Docker daemon restarts and events-connection drops.
    pub docker_restarts: u32,
    pub events_drops: u32,
    /// Loki behaviour.
    pub loki_latency_max: Duration,
    pub loki_throttle_chance: f64,
    pub loki_error_chance: f64,
    pub loki_timeout_chance: f64,
    pub loki_ambiguous_chance: f64,
    pub loki_outages: u32,
    pub loki_outage_max: Duration,
    /// Crashes of the capture agent (everything not committed is lost), each followed
    /// by a restart from the checkpoint after `crash_downtime_max` at most.
    pub crashes: u32,
    pub crash_downtime_max: Duration,
    pub queue_bytes_max: usize,
    pub batch_bytes_max: usize,
    pub batch_wait: Duration,
    pub line_bytes_max: usize,
    /// The agent's own knobs a user sets: full `list` reconcile period, stall watchdog,
    /// checkpoint commit period.
    pub reconcile_every: Duration,
    pub stall_timeout: Duration,
    pub commit_every: Duration,
    /// Per container-hour: the process exits by itself (then a crash-loop restart, a
    /// replacement, or nothing), and a short job replaces the container (writes at once,
    /// exits seconds later).
    pub exits_per_hour: f64,
    pub jobs_per_hour: f64,
    /// Per container-hour: Docker's json-file rotation, keeping this many entries.
    pub json_rotations_per_hour: f64,
    pub json_keep_entries: u64,
    /// Per run: failed `list`/`inspect`/`logs` calls on a live daemon, and floods (a
    /// burst of many thousand lines in several containers at once, to fill the queue).
    pub api_failures: u32,
    pub floods: u32,
    /// Share of Docker daemon restarts without live-restore (they stop every container;
    /// the restart policy starts them again when the daemon is back).
    pub docker_no_live_restore: f64,
    /// Loki refuses entries older than this (`400`, partial acceptance); `0`: never.
    pub loki_reject_older_than: Duration,
    /// Loki answers `413` above this many batch bytes; `0`: never.
    pub loki_body_max: usize,
    /// Share of Loki outages that are `401` (a credential rotated), and of `429`s
    /// without Retry-After.
    pub loki_unauthorized_share: f64,
    pub loki_no_retry_after_share: f64,
    /// How long a checkpoint commit takes, and per run how many stretches of failing
    /// commits there are.
    pub checkpoint_latency: Duration,
    pub checkpoint_failures: u32,
    /// Share of bursts whose lines all carry one timestamp.
    pub same_ts_share: f64,
    /// Shutdowns of the agent at a random instant of the run (under load, Loki perhaps
    /// down), each followed by a restart from its checkpoint.
    pub graceful_stops: u32,
    /// The agent's `first_sight` is `"now"` (the production default) instead of
    /// `"beginning"`.
    pub first_sight_now: bool,
    /// The agent's first start comes this long after the world's (zero: at once): its
    /// containers are already running and writing, as on a host where the agent is
    /// installed late.
    pub late_start: Duration,
    /// Share of containers created with a TTY (`docker run -t`: no frame headers, lines
    /// end `\r\n`, stderr is stdout); zero in about half the seeds.
    pub tty_share: f64,
    /// Share of the agent's crashes that also damage the checkpoint's current generation
    /// (empty, garbled or half-renamed): the agent falls back to the previous one.
    pub checkpoint_damage_share: f64,
    /// Per run: faults of the events stream on a live connection (the next events lost,
    /// duplicated, or delayed past later ones: out of order, stale).
    pub event_faults: u32,
    /// Per container-hour: `docker pause`, then `docker unpause` seconds to minutes later.
    pub pauses_per_hour: f64,
    /// The agent's `first_sight` is `{ tail = N }` (when not `"now"`): its first run reads
    /// the last N entries of each container's log at the first open; zero: not tail.
    pub first_sight_tail: u64,
    /// Per run: steps back of the host clock (NTP corrections; every container's
    /// timestamps step back), each 1–120 s; zero in about two thirds of the seeds.
    pub clock_steps: u32,
    /// The agent's `slot_wait_max`: how long a running container may wait for a stream
    /// slot (holders yield after half of it). The default, 30 s, in half the seeds.
    pub slot_wait_max: Duration,
}

/// What the command line pins; `None` leaves the knob to the seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub containers: Option<u32>,
    pub hours: Option<f64>,
    pub rotate_every: Option<Duration>,
    /// Turn every fault off (a calm world: output, rotation and churn only).
    pub calm: bool,
    /// Leave out what the engine before issue 7's fixes lost or starved on: containers
    /// exiting for good (exits, jobs), `streams_max` below the container count, stalled
    /// streams (stream faults, json-file rotation). For comparisons with that engine and
    /// for regression tests pinned to a pre-fix world (seed 573); the default sweep and
    /// the teeth tests never set it.
    pub pre_fix: bool,
}

/// A per-hour rate drawn up to `max` (zero in a calm world).
fn rate_of(rng: &mut SimRng, faults: bool, max: f64) -> f64 {
    if faults {
        rng.unit_f64() * max
    } else {
        0.0
    }
}

/// A count drawn in `0..=max` (zero in a calm world).
fn count_of(rng: &mut SimRng, faults: bool, max: u64) -> u32 {
    if faults {
        rng.below(max + 1) as u32
    } else {
        0
    }
}

impl Options {
    pub fn from_seed(seed: u64, overrides: &Overrides) -> Options {
        let mut rng = SimRng::derive(seed, OPTIONS_STREAM);
        let faults = !overrides.calm;
        let mut rate = |max: f64| if faults { rng.unit_f64() * max } else { 0.0 };
        let restarts_per_hour = rate(0.2);
        let stops_per_hour = rate(0.1);
        let replaces_per_hour = rate(0.1);
        let renames_per_hour = rate(0.05);
        let stream_faults_per_hour = rate(0.3);
        let loki_throttle_chance = rate(0.03);
        let loki_error_chance = rate(0.03);
        let loki_timeout_chance = rate(0.005);
        let loki_ambiguous_chance = rate(0.01);
        let mut count = |max: u64| if faults { rng.below(max + 1) as u32 } else { 0 };
        let docker_restarts = count(2);
        let events_drops = count(3);
        let loki_outages = count(2);
        let crashes = count(2);
        // 270–360 lines per container-hour, in bursts every 2–4 minutes on average (every
        // 1.5–3 minutes cost 37.4 k polls per seed against 32.7 k, the sweep about 1.06×,
        // for the same lines: a burst's wake-ups, chunks and batches, not its lines).
        let burst_every_mean = Duration::from_secs(rng.range(120..240));
        let rate = |rng: &mut SimRng, max: f64| rate_of(rng, faults, max);
        let count = |rng: &mut SimRng, max: u64| count_of(rng, faults, max);
        let lines_per_hour = rng.range(270..360) as f64;
        let burst_lines_mean = (lines_per_hour * burst_every_mean.as_secs_f64() / 3600.0).round().max(1.0) as u32;
        let mut options = Options {
            seed,
            containers: overrides.containers.unwrap_or(55),
            hours: overrides.hours.unwrap_or(4.0),
            // Below the daemon's 300 s so that every seed rotates at least 2,600 times
            // (55 containers, 4 h, rotation at 0.7–1.0 × this) even when a fifth of its
            // containers are down: exited, replaced by jobs, or not yet seen.
            rotate_every: overrides.rotate_every.unwrap_or(Duration::from_secs(240)),
            // From well below the container count to above it. A starved pool costs
            // 1.6–2.0× a full one per seed (every waiter made a holder yield every
            // `slot_wait_max / 2`: 19–29k reopens in 4 h against 3.3k; since the first
            // nudge waits ¾ of it, a 13-slot seed 0.77× that), and the starved
            // seeds, a quarter, took a third of the sweep. The two starved sizes come in
            // an eighth of the seeds (about 125 of the default 1,000, 6 of CI's 50):
            // polls per seed 0.89×. The rest keep their shares: 5 short of the
            // containers (the daemon's default 50 against 55), as many, more.
            streams_max: {
                let c = overrides.containers.unwrap_or(55) as usize;
                let (short, over) = (c.saturating_sub(5), c + 9);
                let choices = [c / 4, c / 2, short, short, short, short, short, c, c, c, c, c, c, c, over, over];
                (*rng.pick(&choices)).max(1)
            },
            burst_every_mean,
            burst_lines_mean,
            line_bytes: rng.range(16..160) as u32,
            giant_line_chance: rng.unit_f64() * 0.01,
            stderr_share: 0.1 + rng.unit_f64() * 0.4,
            stderr_lag_max: Duration::from_millis(rng.below(1500)),
            restarts_per_hour,
            stops_per_hour,
            replaces_per_hour,
            renames_per_hour,
            stream_faults_per_hour,
            docker_restarts,
            events_drops,
            loki_latency_max: Duration::from_millis(rng.range(5..80)),
            loki_throttle_chance,
            loki_error_chance,
            loki_timeout_chance,
            loki_ambiguous_chance,
            loki_outages,
            loki_outage_max: Duration::from_secs(rng.range(60..600)),
            crashes,
            crash_downtime_max: Duration::from_secs(rng.range(5..120)),
            // 1–8 MiB: the bound behaves alike at every size, and a flood (which fills it
            // two or three times over) costs the sweep by its bytes: with 16 MiB drawn too,
            // floods were two thirds of the bytes the world rendered.
            queue_bytes_max: 1usize << rng.range(20..24),
            batch_bytes_max: 1usize << rng.range(15..21),
            batch_wait: Duration::from_millis(rng.range(200..2000)),
            line_bytes_max: 64 << 10,
            // Drawn last, so that adding them kept every earlier option of a seed.
            reconcile_every: Duration::from_secs(*rng.pick(&[30, 60, 120, 300])),
            stall_timeout: Duration::from_secs(*rng.pick(&[60, 120, 300])),
            commit_every: Duration::from_secs(*rng.pick(&[1, 5, 10, 30])),
            exits_per_hour: rate(&mut rng, 0.2),
            // A job's slot stays exited after it: at up to 0.2 per hour a third of the
            // slots were dead on average, so the seed had neither rotations nor lines.
            jobs_per_hour: rate(&mut rng, 0.1),
            json_rotations_per_hour: rng.unit_f64() * 2.0,
            json_keep_entries: rng.range(50..3000),
            api_failures: count(&mut rng, 6),
            floods: if faults && rng.chance(0.4) { rng.range(1..4) as u32 } else { 0 },
            docker_no_live_restore: rng.unit_f64(),
            loki_reject_older_than: if faults && rng.chance(0.25) {
                Duration::from_secs(rng.range(300..1800))
            } else {
                Duration::ZERO
            },
            loki_body_max: if faults && rng.chance(0.25) { 1usize << rng.range(17..21) } else { 0 },
            loki_unauthorized_share: rng.unit_f64(),
            loki_no_retry_after_share: rng.unit_f64(),
            checkpoint_latency: Duration::from_millis(*rng.pick(&[0, 5, 200, 3000])),
            checkpoint_failures: count(&mut rng, 3),
            same_ts_share: rng.unit_f64() * 0.3,
            graceful_stops: count(&mut rng, 2),
            first_sight_now: rng.chance(0.5),
            late_start: if rng.chance(0.3) { Duration::from_secs(rng.range(45..240)) } else { Duration::ZERO },
            tty_share: if rng.chance(0.5) { rng.unit_f64() * 0.2 } else { 0.0 },
            checkpoint_damage_share: if faults && rng.chance(0.5) { rng.unit_f64() } else { 0.0 },
            event_faults: count(&mut rng, 4),
            pauses_per_hour: rate(&mut rng, 0.1),
            first_sight_tail: if rng.chance(0.3) { *rng.pick(&[1, 10, 100, 1000]) } else { 0 },
            clock_steps: if faults && rng.chance(0.35) { rng.range(1..4) as u32 } else { 0 },
            // Drawn last, like every knob added after the others. Larger values let a
            // starved pool's holders keep their streams longer: a starved seed with
            // 60 s costs about 0.65× one with 30 s, with 120 s about 0.5× (fewer yields).
            slot_wait_max: Duration::from_secs(*rng.pick(&[30, 30, 60, 120])),
        };
        if overrides.pre_fix {
            options.streams_max = options.streams_max.max(options.containers as usize);
            options.exits_per_hour = 0.0;
            options.jobs_per_hour = 0.0;
            options.stream_faults_per_hour = 0.0;
            options.json_rotations_per_hour = 0.0;
            options.first_sight_now = false;
            options.first_sight_tail = 0;
        }
        // A pool of at most half the containers: only its holders rotate (a waiter whose
        // log was read to the end makes no holder yield), so their rotation comes as
        // much sooner as the pool is smaller, and a starved seed reopens about as often as
        // a full one (13 and 27 slots: 2,041–2,600 rotations in 4 h at 240 s).
        if overrides.rotate_every.is_none() && options.streams_max * 2 <= options.containers as usize {
            let share = options.streams_max as f64 / f64::from(options.containers);
            options.rotate_every = options.rotate_every.mul_f64(share);
        }
        options
    }

    /// The options of `seed` as printed by `Display` (a corpus file's `options = ...`
    /// line): start from the seed's own draws, then set every printed knob, so a saved
    /// seed replays with the options it failed with, not with what the seed draws today.
    /// Unknown keys are an error; knobs the text does not name keep the seed's draw, but
    /// `tty_share` (added last) is zero unless named.
    pub fn parse(seed: u64, text: &str) -> Result<Options, String> {
        let mut options = Options::from_seed(seed, &Overrides::default());
        // A text without `tty_share` was printed before TTY containers existed: replay it
        // without them.
        options.tty_share = 0.0;
        // Likewise the world's later additions: a text without them replays without them.
        options.checkpoint_damage_share = 0.0;
        options.event_faults = 0;
        options.pauses_per_hour = 0.0;
        options.first_sight_tail = 0;
        options.clock_steps = 0;
        options.slot_wait_max = MonitorConfig::default().slot_wait_max;
        for pair in text.split_whitespace() {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("not key=value: {pair}"))?;
            let secs = |value: &str| -> Result<Duration, String> {
                let number = value.strip_suffix('s').ok_or_else(|| format!("{key}: not seconds: {value}"))?;
                number.parse::<f64>().map(Duration::from_secs_f64).map_err(|e| format!("{key}: {e}"))
            };
            let millis = |value: &str| -> Result<Duration, String> {
                let number = value.strip_suffix("ms").ok_or_else(|| format!("{key}: not milliseconds: {value}"))?;
                number.parse::<u64>().map(Duration::from_millis).map_err(|e| format!("{key}: {e}"))
            };
            fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
                value.parse().map_err(|_| format!("{key}: not a number: {value}"))
            }
            match key {
                "containers" => options.containers = num(key, value)?,
                "hours" => options.hours = num(key, value)?,
                "rotate_every" => options.rotate_every = secs(value)?,
                "streams_max" => options.streams_max = num(key, value)?,
                "burst_every_mean" => options.burst_every_mean = secs(value)?,
                "burst_lines_mean" => options.burst_lines_mean = num(key, value)?,
                "line_bytes" => options.line_bytes = num(key, value)?,
                "giant_line_chance" => options.giant_line_chance = num(key, value)?,
                "stderr_share" => options.stderr_share = num(key, value)?,
                "stderr_lag_max" => options.stderr_lag_max = millis(value)?,
                "restarts/h" => options.restarts_per_hour = num(key, value)?,
                "stops/h" => options.stops_per_hour = num(key, value)?,
                "replaces/h" => options.replaces_per_hour = num(key, value)?,
                "renames/h" => options.renames_per_hour = num(key, value)?,
                "stream_faults/h" => options.stream_faults_per_hour = num(key, value)?,
                "docker_restarts" => options.docker_restarts = num(key, value)?,
                "events_drops" => options.events_drops = num(key, value)?,
                "loki_latency_max" => options.loki_latency_max = millis(value)?,
                "loki_throttle" => options.loki_throttle_chance = num(key, value)?,
                "loki_errors" => options.loki_error_chance = num(key, value)?,
                "loki_timeouts" => options.loki_timeout_chance = num(key, value)?,
                "loki_ambiguous" => options.loki_ambiguous_chance = num(key, value)?,
                "loki_outages" => options.loki_outages = num(key, value)?,
                "loki_outage_max" => options.loki_outage_max = secs(value)?,
                "crashes" => options.crashes = num(key, value)?,
                "crash_downtime_max" => options.crash_downtime_max = secs(value)?,
                "queue_bytes_max" => options.queue_bytes_max = num(key, value)?,
                "batch_bytes_max" => options.batch_bytes_max = num(key, value)?,
                "batch_wait" => options.batch_wait = millis(value)?,
                "line_bytes_max" => options.line_bytes_max = num(key, value)?,
                "reconcile_every" => options.reconcile_every = secs(value)?,
                "stall_timeout" => options.stall_timeout = secs(value)?,
                "commit_every" => options.commit_every = secs(value)?,
                "exits/h" => options.exits_per_hour = num(key, value)?,
                "jobs/h" => options.jobs_per_hour = num(key, value)?,
                "json_rotations/h" => options.json_rotations_per_hour = num(key, value)?,
                "json_keep_entries" => options.json_keep_entries = num(key, value)?,
                "api_failures" => options.api_failures = num(key, value)?,
                "floods" => options.floods = num(key, value)?,
                "docker_no_live_restore" => options.docker_no_live_restore = num(key, value)?,
                "loki_reject_older_than" => options.loki_reject_older_than = secs(value)?,
                "loki_body_max" => options.loki_body_max = num(key, value)?,
                "loki_unauthorized_share" => options.loki_unauthorized_share = num(key, value)?,
                "loki_no_retry_after_share" => options.loki_no_retry_after_share = num(key, value)?,
                "checkpoint_latency" => options.checkpoint_latency = millis(value)?,
                "checkpoint_failures" => options.checkpoint_failures = num(key, value)?,
                "same_ts_share" => options.same_ts_share = num(key, value)?,
                "graceful_stops" => options.graceful_stops = num(key, value)?,
                "first_sight_now" => options.first_sight_now = num(key, value)?,
                "late_start" => options.late_start = secs(value)?,
                "tty_share" => options.tty_share = num(key, value)?,
                "checkpoint_damage" => options.checkpoint_damage_share = num(key, value)?,
                "event_faults" => options.event_faults = num(key, value)?,
                "pauses/h" => options.pauses_per_hour = num(key, value)?,
                "first_sight_tail" => options.first_sight_tail = num(key, value)?,
                "clock_steps" => options.clock_steps = num(key, value)?,
                "slot_wait_max" => options.slot_wait_max = secs(value)?,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(options)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.hours * 3600.0)
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "containers={} hours={} rotate_every={}s streams_max={} burst_every_mean={}s burst_lines_mean={} \
             line_bytes={} giant_line_chance={} stderr_share={} stderr_lag_max={}ms \
             restarts/h={} stops/h={} replaces/h={} renames/h={} stream_faults/h={} \
             docker_restarts={} events_drops={} loki_latency_max={}ms loki_throttle={} loki_errors={} \
             loki_timeouts={} loki_ambiguous={} loki_outages={} loki_outage_max={}s crashes={} \
             crash_downtime_max={}s queue_bytes_max={} batch_bytes_max={} batch_wait={}ms line_bytes_max={} \
             reconcile_every={}s stall_timeout={}s commit_every={}s exits/h={} jobs/h={} \
             json_rotations/h={} json_keep_entries={} api_failures={} floods={} docker_no_live_restore={} \
             loki_reject_older_than={}s loki_body_max={} loki_unauthorized_share={} loki_no_retry_after_share={} \
             checkpoint_latency={}ms checkpoint_failures={} same_ts_share={} graceful_stops={} first_sight_now={} late_start={}s \
             tty_share={} checkpoint_damage={} event_faults={} pauses/h={} first_sight_tail={} clock_steps={} \
             slot_wait_max={}s",
            self.containers,
            self.hours,
            self.rotate_every.as_secs(),
            self.streams_max,
            self.burst_every_mean.as_secs(),
            self.burst_lines_mean,
            self.line_bytes,
            self.giant_line_chance,
            self.stderr_share,
            self.stderr_lag_max.as_millis(),
            self.restarts_per_hour,
            self.stops_per_hour,
            self.replaces_per_hour,
            self.renames_per_hour,
            self.stream_faults_per_hour,
            self.docker_restarts,
            self.events_drops,
            self.loki_latency_max.as_millis(),
            self.loki_throttle_chance,
            self.loki_error_chance,
            self.loki_timeout_chance,
            self.loki_ambiguous_chance,
            self.loki_outages,
            self.loki_outage_max.as_secs(),
            self.crashes,
            self.crash_downtime_max.as_secs(),
            self.queue_bytes_max,
            self.batch_bytes_max,
            self.batch_wait.as_millis(),
            self.line_bytes_max,
            self.reconcile_every.as_secs(),
            self.stall_timeout.as_secs(),
            self.commit_every.as_secs(),
            self.exits_per_hour,
            self.jobs_per_hour,
            self.json_rotations_per_hour,
            self.json_keep_entries,
            self.api_failures,
            self.floods,
            self.docker_no_live_restore,
            self.loki_reject_older_than.as_secs(),
            self.loki_body_max,
            self.loki_unauthorized_share,
            self.loki_no_retry_after_share,
            self.checkpoint_latency.as_millis(),
            self.checkpoint_failures,
            self.same_ts_share,
            self.graceful_stops,
            self.first_sight_now,
            self.late_start.as_secs(),
            self.tty_share,
            self.checkpoint_damage_share,
            self.event_faults,
            self.pauses_per_hour,
            self.first_sight_tail,
            self.clock_steps,
            self.slot_wait_max.as_secs(),
        )
    }
}
