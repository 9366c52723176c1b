//! `/metrics`: Prometheus text exposition (format 0.0.4), every name `log_capturer_*`.
//!
//! Owns the list of exported metrics and their names. The numbers come from the engine's
//! [`Telemetry`] and [`TaskRegistry`], the tokio runtime, and `/proc/self` (file
//! descriptors, RSS). Written by hand (no metrics crate): each family gets `# HELP` and
//! `# TYPE`, counters end in `_total`, units are in names (`_bytes`, `_seconds`), and a
//! test runs `promtool check metrics` on real output. Names are pinned by an insta
//! snapshot of the `# TYPE` lines, so a rename is a visible diff: dashboards depend on
//! them (the predecessor's `container_streams_active`, `container_stream_rotations_total`,
//! `file_descriptors_open`, `component_health` are kept as they were).

use std::fmt::Write;
use std::sync::atomic::AtomicU64;

use engine::port::CheckpointOrigin;
use engine::task::{TaskKind, TaskRegistry};
use engine::telemetry::{Component, DropReason, SinkStatus, Telemetry};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const PREFIX: &str = "log_capturer_";

/// Everything `/metrics` reads, at one moment.
pub struct MetricsInput<'a> {
    pub telemetry: &'a Telemetry,
    pub registry: &'a TaskRegistry,
    pub runtime_tasks_alive: u64,
    pub file_descriptors_open: Option<u64>,
    pub memory_usage_bytes: Option<u64>,
}

struct Exposition {
    out: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.out, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(PREFIX);
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (label, label_value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(label_value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    fn atomic(&mut self, name: &str, kind: &str, help: &str, value: &AtomicU64) {
        self.single(name, kind, help, Telemetry::get(value));
    }
}

fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Render every metric.
pub fn render(input: &MetricsInput<'_>) -> String {
    let telemetry = input.telemetry;
    let mut exposition = Exposition { out: String::with_capacity(8 << 10) };
    let e = &mut exposition;

    e.header("build_info", "gauge", "Always 1; the version is a label.");
    e.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

    e.header("tasks_alive", "gauge", "Tasks alive in the engine's task registry, by kind.");
    for kind in TaskKind::ALL {
        e.sample("tasks_alive", &[("kind", kind.as_str())], input.registry.alive(kind));
    }
    e.header("tasks_spawned_total", "counter", "Tasks spawned through the engine's task registry, by kind.");
    for kind in TaskKind::ALL {
        e.sample("tasks_spawned_total", &[("kind", kind.as_str())], input.registry.spawned(kind));
    }
    e.single(
        "runtime_tasks_alive",
        "gauge",
        "Tasks alive on the tokio runtime, including tasks libraries spawned.",
        input.runtime_tasks_alive,
    );

    e.atomic("containers_monitored", "gauge", "Containers with a supervisor.", &telemetry.containers_monitored);
    e.atomic("container_streams_active", "gauge", "Docker log streams open now.", &telemetry.container_streams_active);
    e.atomic(
        "container_streams_waiting",
        "gauge",
        "Containers waiting for a log stream slot (streams_max).",
        &telemetry.container_streams_waiting,
    );
    e.atomic(
        "container_stream_rotations_total",
        "counter",
        "Log streams dropped and reopened on schedule.",
        &telemetry.container_stream_rotations_total,
    );
    e.atomic(
        "container_stream_opens_total",
        "counter",
        "Docker log streams opened.",
        &telemetry.container_stream_opens_total,
    );
    e.atomic(
        "container_stream_errors_total",
        "counter",
        "Docker log streams that failed to open or broke.",
        &telemetry.container_stream_errors_total,
    );

    e.atomic("lines_in_total", "counter", "Complete log lines read from sources.", &telemetry.lines_in_total);
    e.atomic("bytes_in_total", "counter", "Bytes of log lines read from sources.", &telemetry.bytes_in_total);
    e.atomic("lines_out_total", "counter", "Log lines the sink acknowledged.", &telemetry.lines_out_total);
    e.atomic("bytes_out_total", "counter", "Bytes of log lines the sink acknowledged.", &telemetry.bytes_out_total);
    e.header("lines_dropped_total", "counter", "Log lines dropped (never silently), by reason.");
    for reason in DropReason::ALL {
        e.sample("lines_dropped_total", &[("reason", reason.as_str())], telemetry.dropped(reason));
    }
    e.atomic("lines_truncated_total", "counter", "Log lines cut at line_bytes_max.", &telemetry.lines_truncated_total);
    e.atomic(
        "lines_duplicate_skipped_total",
        "counter",
        "Lines read again after a reopen and skipped as already queued.",
        &telemetry.lines_duplicate_skipped_total,
    );

    e.header("sink_requests_total", "counter", "Sink requests by outcome.");
    for status in SinkStatus::ALL {
        e.sample("sink_requests_total", &[("status", status.as_str())], telemetry.sink_requests(status));
    }
    e.atomic("queue_lines", "gauge", "Lines queued, batched or in flight.", &telemetry.queue_lines);
    e.atomic("queue_bytes", "gauge", "Line bytes queued, batched or in flight.", &telemetry.queue_bytes);
    e.atomic("queue_bytes_max_seen", "gauge", "Highest queue_bytes since start.", &telemetry.queue_bytes_max_seen);

    let (buckets, count, sum) = telemetry.batch_send_seconds.snapshot();
    e.header("batch_send_seconds", "histogram", "Time to send one batch to the sink.");
    for (bound, cumulative) in buckets {
        e.sample("batch_send_seconds_bucket", &[("le", &bound.to_string())], cumulative);
    }
    e.sample("batch_send_seconds_bucket", &[("le", "+Inf")], count);
    e.sample("batch_send_seconds_sum", &[], sum);
    e.sample("batch_send_seconds_count", &[], count);

    e.atomic(
        "checkpoint_commits_total",
        "counter",
        "Checkpoint commits that succeeded.",
        &telemetry.checkpoint_commits_total,
    );
    e.atomic(
        "checkpoint_errors_total",
        "counter",
        "Checkpoint commits that failed.",
        &telemetry.checkpoint_errors_total,
    );
    e.header(
        "checkpoint_loads_total",
        "counter",
        "Checkpoint loads at start by what was found (fresh, current, previous generation, lost).",
    );
    for origin in CheckpointOrigin::ALL {
        e.sample("checkpoint_loads_total", &[("origin", origin.as_str())], telemetry.checkpoint_loads(origin));
    }

    e.header("component_health", "gauge", "1 if the component is healthy, else 0.");
    for component in Component::ALL {
        e.sample(
            "component_health",
            &[("component", component.as_str())],
            u8::from(telemetry.health(component).is_up()),
        );
    }

    if let Some(fds) = input.file_descriptors_open {
        e.single("file_descriptors_open", "gauge", "Open file descriptors of the process.", fds);
    }
    if let Some(rss) = input.memory_usage_bytes {
        e.single("memory_usage_bytes", "gauge", "Resident set size of the process.", rss);
    }
    exposition.out
}

/// Open file descriptors: the entries of `/proc/self/fd` (Linux only).
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
