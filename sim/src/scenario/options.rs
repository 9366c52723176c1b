//! One seed expands into every option of a run (TigerBeetle's VOPR "swarm" style).
//!
//! [`Options::from_seed`] draws every knob from a stream of its own, derived from the
//! seed; the command line may pin a few (containers, hours, rotation period). All of
//! them are printed with every result, so a report is "seed + commit", nothing else.

use std::fmt;
use std::time::Duration;

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
}

/// What the command line pins; `None` leaves the knob to the seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub containers: Option<u32>,
    pub hours: Option<f64>,
    pub rotate_every: Option<Duration>,
    /// Turn every fault off (a calm world: output, rotation and churn only).
    pub calm: bool,
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
        // 250–340 lines per container-hour, in bursts every 1.5–3 minutes on average.
        let burst_every_mean = Duration::from_secs(rng.range(90..180));
        let lines_per_hour = rng.range(250..340) as f64;
        let burst_lines_mean = (lines_per_hour * burst_every_mean.as_secs_f64() / 3600.0).round().max(1.0) as u32;
        Options {
            seed,
            containers: overrides.containers.unwrap_or(55),
            hours: overrides.hours.unwrap_or(4.0),
            rotate_every: overrides.rotate_every.unwrap_or(Duration::from_secs(300)),
            streams_max: *rng.pick(&[50, 55, 64]),
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
            queue_bytes_max: 1usize << rng.range(20..25),
            batch_bytes_max: 1usize << rng.range(15..21),
            batch_wait: Duration::from_millis(rng.range(200..2000)),
            line_bytes_max: 64 << 10,
            // Drawn last, so that adding them kept every earlier option of a seed.
            reconcile_every: Duration::from_secs(*rng.pick(&[30, 60, 120, 300])),
            stall_timeout: Duration::from_secs(*rng.pick(&[60, 120, 300])),
            commit_every: Duration::from_secs(*rng.pick(&[1, 5, 10, 30])),
        }
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
             line_bytes={} giant_line_chance={:.4} stderr_share={:.2} stderr_lag_max={}ms \
             restarts/h={:.3} stops/h={:.3} replaces/h={:.3} renames/h={:.3} stream_faults/h={:.3} \
             docker_restarts={} events_drops={} loki_latency_max={}ms loki_throttle={:.3} loki_errors={:.3} \
             loki_timeouts={:.4} loki_ambiguous={:.4} loki_outages={} loki_outage_max={}s crashes={} \
             crash_downtime_max={}s queue_bytes_max={} batch_bytes_max={} batch_wait={}ms line_bytes_max={} \
             reconcile_every={}s stall_timeout={}s commit_every={}s",
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
        )
    }
}
