//! `/metrics`: Prometheus text exposition (format 0.0.4) through the `prometheus` crate.
//!
//! Owns the list of exported metrics and their names. [`EngineCollector`] is a custom
//! `prometheus::core::Collector` that reads the engine's [`Telemetry`] atomics and
//! [`TaskRegistry`] at scrape time: there is no second copy of any counter, and nothing
//! to keep in step. The crate's `ProcessCollector` (feature `process`, Linux) adds the
//! standard `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_virtual_memory_bytes`,
//! `process_threads` and `process_start_time_seconds` that dashboards expect, and the
//! crate's `TextEncoder` writes the page (families sorted by name, `# HELP` and `# TYPE`
//! for each).
//!
//! Every engine name is `log_capturer_*`: counters end in `_total`, units are in names
//! (`_bytes`, `_seconds`). Names are pinned by an insta snapshot of the `# TYPE` lines,
//! so a rename is a visible diff, and a test runs Debian's `promtool check metrics` on
//! real output. Dashboards depend on them: the predecessor's `container_streams_active`,
//! `container_stream_rotations_total`, `file_descriptors_open` and `component_health`
//! are kept as they were, and **`log_capturer_goroutines` is a compatibility gauge**:
//! the Go predecessor exported its goroutine count under that name, and its dashboards
//! graph it and alert on its growth. Tasks replace goroutines, so it reports the tokio
//! runtime's alive tasks, the same number as `log_capturer_runtime_tasks_alive` (ours,
//! and any a library spawned): a leak shows as growth under either name.

use std::collections::HashMap;
use std::sync::Arc;

use engine::port::CheckpointOrigin;
use engine::task::{TaskKind, TaskRegistry};
use engine::telemetry::{Component, DropReason, SinkStatus, Telemetry};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Registry, TextEncoder};

/// The exposition's content type (the text format, version 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const PREFIX: &str = "log_capturer_";

/// The `/metrics` page: a registry with the engine's collector and the process collector.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// `runtime_tasks_alive` reads the tokio runtime's alive tasks at scrape time.
    pub fn new(telemetry: Arc<Telemetry>, tasks: Arc<TaskRegistry>, runtime_tasks_alive: fn() -> u64) -> Metrics {
        let registry = Registry::new();
        let engine = EngineCollector::new(telemetry, tasks, runtime_tasks_alive);
        registry.register(Box::new(engine)).expect("the engine's metric names are valid and unique");
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process_* names do not clash with log_capturer_*");
        Metrics { registry }
    }

    /// Render every metric, as of now.
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).expect("families made here encode as text")
    }
}

/// Reads the engine's numbers when Prometheus scrapes; holds no counter of its own.
pub struct EngineCollector {
    telemetry: Arc<Telemetry>,
    tasks: Arc<TaskRegistry>,
    runtime_tasks_alive: fn() -> u64,
    /// One per family, derived from a first collection, so the names and help texts are
    /// written once, in [`EngineCollector::families`].
    descs: Vec<Desc>,
}

impl EngineCollector {
    pub fn new(telemetry: Arc<Telemetry>, tasks: Arc<TaskRegistry>, runtime_tasks_alive: fn() -> u64) -> Self {
        let mut collector = EngineCollector { telemetry, tasks, runtime_tasks_alive, descs: Vec::new() };
        collector.descs = collector
            .families()
            .iter()
            .map(|family| {
                let labels = family.get_metric().first().map_or_else(Vec::new, |metric| {
                    metric.get_label().iter().map(|label| label.name().to_string()).collect()
                });
                Desc::new(family.name().to_string(), family.help().to_string(), labels, HashMap::new())
                    .expect("metric names and help texts written here are valid")
            })
            .collect();
        collector
    }

    /// Every family, read from the engine now.
    fn families(&self) -> Vec<MetricFamily> {
        let telemetry = &*self.telemetry;
        let tasks = &*self.tasks;
        let get = Telemetry::get;
        let mut f = Families::default();
        let (counter, gauge) = (MetricType::COUNTER, MetricType::GAUGE);

        f.one("build_info", "Always 1; the version is a label.", gauge, &[("version", env!("CARGO_PKG_VERSION"))], 1);
        f.by(
            "tasks_alive",
            "Tasks alive in the engine's task registry, by kind.",
            gauge,
            "kind",
            TaskKind::ALL.map(|kind| (kind.as_str(), tasks.alive(kind))),
        );
        f.by(
            "tasks_spawned_total",
            "Tasks spawned through the engine's task registry, by kind.",
            counter,
            "kind",
            TaskKind::ALL.map(|kind| (kind.as_str(), tasks.spawned(kind))),
        );
        let runtime_tasks = (self.runtime_tasks_alive)();
        f.one(
            "runtime_tasks_alive",
            "Tasks alive on the tokio runtime, including tasks libraries spawned.",
            gauge,
            &[],
            runtime_tasks,
        );
        f.one(
            "goroutines",
            "Compatibility name for dashboards of the Go predecessor: the tokio runtime's alive tasks \
             (same as log_capturer_runtime_tasks_alive).",
            gauge,
            &[],
            runtime_tasks,
        );

        f.one(
            "containers_monitored",
            "Containers with a supervisor.",
            gauge,
            &[],
            get(&telemetry.containers_monitored),
        );
        f.one(
            "container_streams_active",
            "Docker log streams open now.",
            gauge,
            &[],
            get(&telemetry.container_streams_active),
        );
        f.one(
            "container_streams_waiting",
            "Containers waiting for a log stream slot (streams_max).",
            gauge,
            &[],
            get(&telemetry.container_streams_waiting),
        );
        f.one(
            "container_stream_rotations_total",
            "Log streams dropped and reopened on schedule.",
            counter,
            &[],
            get(&telemetry.container_stream_rotations_total),
        );
        f.one(
            "container_stream_opens_total",
            "Docker log streams opened.",
            counter,
            &[],
            get(&telemetry.container_stream_opens_total),
        );
        f.by(
            "container_stream_probes_total",
            "Silent log streams the stall watchdog probed (the log's last entry), by result: \
             silent (kept) or behind (stalled: reopened).",
            counter,
            "result",
            [("silent", 0), ("behind", 1)]
                .map(|(result, at)| (result, get(&telemetry.container_stream_probes_total[at]))),
        );
        f.one(
            "container_stream_errors_total",
            "Docker log streams that failed to open or broke.",
            counter,
            &[],
            get(&telemetry.container_stream_errors_total),
        );

        f.one("lines_in_total", "Complete log lines read from sources.", counter, &[], get(&telemetry.lines_in_total));
        f.one("bytes_in_total", "Bytes of log lines read from sources.", counter, &[], get(&telemetry.bytes_in_total));
        f.one("lines_out_total", "Log lines the sink acknowledged.", counter, &[], get(&telemetry.lines_out_total));
        f.one(
            "bytes_out_total",
            "Bytes of log lines the sink acknowledged.",
            counter,
            &[],
            get(&telemetry.bytes_out_total),
        );
        f.by(
            "lines_dropped_total",
            "Log lines dropped (never silently), by reason.",
            counter,
            "reason",
            DropReason::ALL.map(|reason| (reason.as_str(), telemetry.dropped(reason))),
        );
        f.one(
            "lines_truncated_total",
            "Log lines cut at line_bytes_max.",
            counter,
            &[],
            get(&telemetry.lines_truncated_total),
        );
        f.one(
            "lines_duplicate_skipped_total",
            "Lines read again after a reopen and skipped as already queued.",
            counter,
            &[],
            get(&telemetry.lines_duplicate_skipped_total),
        );
        f.one(
            "container_log_gaps_total",
            "Reopens that found their position gone from the container's log (rotated away): lines may be lost.",
            counter,
            &[],
            get(&telemetry.container_log_gaps_total),
        );
        f.one(
            "container_tails_unread_total",
            "Containers removed before their log was read to its end: their last lines may be lost.",
            counter,
            &[],
            get(&telemetry.container_tails_unread_total),
        );

        f.by(
            "sink_requests_total",
            "Sink requests by outcome.",
            counter,
            "status",
            SinkStatus::ALL.map(|status| (status.as_str(), telemetry.sink_requests(status))),
        );
        f.one("queue_lines", "Lines queued, batched or in flight.", gauge, &[], get(&telemetry.queue_lines));
        f.one(
            "reader_lines_held",
            "Lines read from sources and waiting for queue budget (a full pipeline), not queued yet.",
            gauge,
            &[],
            get(&telemetry.reader_lines_held),
        );
        f.one(
            "queue_bytes",
            "Bytes charged to queue_bytes_max by lines queued, batched or in flight (content + 128 per line).",
            gauge,
            &[],
            get(&telemetry.queue_bytes),
        );
        f.one(
            "queue_bytes_max_seen",
            "Highest queue_bytes since start.",
            gauge,
            &[],
            get(&telemetry.queue_bytes_max_seen),
        );

        let (buckets, count, sum) = telemetry.batch_send_seconds.snapshot();
        let mut histogram = proto::Histogram::default();
        histogram.set_sample_count(count);
        histogram.set_sample_sum(sum);
        histogram.set_bucket(
            buckets
                .into_iter()
                .map(|(bound, cumulative)| {
                    let mut bucket = proto::Bucket::default();
                    bucket.set_upper_bound(bound);
                    bucket.set_cumulative_count(cumulative);
                    bucket
                })
                .collect(),
        );
        let mut metric = proto::Metric::default();
        metric.set_histogram(histogram);
        f.push("batch_send_seconds", "Time to send one batch to the sink.", MetricType::HISTOGRAM, vec![metric]);

        f.one(
            "checkpoint_commits_total",
            "Checkpoint commits that succeeded.",
            counter,
            &[],
            get(&telemetry.checkpoint_commits_total),
        );
        f.one(
            "checkpoint_errors_total",
            "Checkpoint commits that failed.",
            counter,
            &[],
            get(&telemetry.checkpoint_errors_total),
        );
        f.by(
            "checkpoint_loads_total",
            "Checkpoint loads at start by what was found (fresh, current, previous generation, lost).",
            counter,
            "origin",
            CheckpointOrigin::ALL.map(|origin| (origin.as_str(), telemetry.checkpoint_loads(origin))),
        );
        f.by(
            "component_health",
            "1 if the component is healthy, else 0.",
            gauge,
            "component",
            Component::ALL.map(|component| (component.as_str(), u64::from(telemetry.health(component).is_up()))),
        );

        if let Some(fds) = file_descriptors_open() {
            f.one("file_descriptors_open", "Open file descriptors of the process.", gauge, &[], fds);
        }
        if let Some(rss) = memory_usage_bytes() {
            f.one("memory_usage_bytes", "Resident set size of the process.", gauge, &[], rss);
        }
        f.0
    }
}

impl Collector for EngineCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families()
    }
}

/// Families under construction, each named `log_capturer_<name>`.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn push(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) {
        let mut family = MetricFamily::default();
        family.set_name(format!("{PREFIX}{name}"));
        family.set_help(help.to_string());
        family.set_field_type(kind);
        family.set_metric(metrics);
        self.0.push(family);
    }

    /// One sample of a counter or gauge.
    fn one(&mut self, name: &str, help: &str, kind: MetricType, labels: &[(&str, &str)], value: u64) {
        self.push(name, help, kind, vec![sample(kind, labels, value)]);
    }

    /// One sample per value of the label `label`.
    fn by<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        let metrics = values.into_iter().map(|(value_of_label, value)| sample(kind, &[(label, value_of_label)], value));
        self.push(name, help, kind, metrics.collect());
    }
}

fn sample(kind: MetricType, labels: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect(),
    );
    if kind == MetricType::COUNTER {
        let mut counter = proto::Counter::default();
        counter.set_value(value as f64);
        metric.set_counter(counter);
    } else {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value as f64);
        metric.set_gauge(gauge);
    }
    metric
}

/// Open file descriptors: the entries of `/proc/self/fd` (Linux only). Kept under the
/// predecessor's name beside the process collector's `process_open_fds`.
pub fn file_descriptors_open() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of them.
    Some((entries.count() as u64).saturating_sub(1))
}

/// Resident set size: `VmRSS` of `/proc/self/status` (Linux only). Read there rather
/// than from `/proc/self/statm` because it is already in bytes (kB), with no page size
/// to guess.
pub fn memory_usage_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
