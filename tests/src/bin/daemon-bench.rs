//! `daemon-bench`: the daemon performance benchmark the project reports. A benchmark,
//! not a test: it prints figures and asserts nothing about time.
//!
//! ```text
//! cargo build --release -p capture-daemon
//! cargo run --release -p capture-tests --bin daemon-bench -- \
//!     --daemon target/release/log-capturer --scenario all --seconds 60
//! ```
//!
//! It builds nothing but the test image (`capture_tests::image`); the daemon binary is
//! given with `--daemon PATH` (or `LOG_CAPTURER_BIN`).
//!
//! Scenarios:
//! - `steady`: 55 containers, each printing 10 numbered ~100-byte lines a second; the
//!   daemon (file sink, temp dir, include only these containers by label) runs through a
//!   warm-up, then is sampled over the window: CPU (utime+stime from `/proc/PID/stat`) as
//!   % of one core, RSS (`VmRSS`) mean and max. Checks that the file sink got lines from
//!   every container. Target: RSS <= 20 MiB and < 2 % of a core.
//! - `throughput`: 4 containers printing numbered ~100-byte lines as fast as busybox
//!   `awk` goes; lines delivered per second (`lines_out_total` deltas) and per daemon
//!   CPU-second (= lines/s one core sustains).
//!
//! Every container is a [`TestContainer`] (labelled, removed on drop, errors and panics
//! included); containers of a killed earlier run are swept at start. The daemon process
//! is stopped (SIGTERM, then SIGKILL) when its guard drops.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use capture_tests::containers::{shell_quote, LinePrinter, TestContainer};
use capture_tests::host::{docker_socket_path, require_docker_and_image};

const USAGE: &str = "\
usage: daemon-bench --daemon PATH [--scenario steady|throughput|all] [--seconds N]
                    [--warmup N] [--steady-containers N] [--rate N]
                    [--throughput-containers N] [--keep]
  --daemon PATH              release log-capturer binary (or env LOG_CAPTURER_BIN)
  --scenario                 default: all
  --seconds N                measuring window per scenario (default 60)
  --warmup N                 seconds between daemon ready and the window (default 10)
  --steady-containers N      default 55
  --rate N                   lines/s per steady container (default 10)
  --throughput-containers N  default 4
  --keep                     keep the temp dirs (config, daemon log, sink output)
";

/// The label (value `<pid>-<scenario>`) the daemon's include rule selects.
const BENCH_LABEL: &str = "log-capturer-bench";

#[derive(Clone, Debug)]
struct Args {
    daemon: PathBuf,
    scenarios: Vec<Scenario>,
    seconds: u64,
    warmup: u64,
    steady_containers: usize,
    rate: u32,
    throughput_containers: usize,
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Steady,
    Throughput,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Throughput => "throughput",
        }
    }
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        daemon: std::env::var_os("LOG_CAPTURER_BIN").map(PathBuf::from).unwrap_or_default(),
        scenarios: vec![Scenario::Steady, Scenario::Throughput],
        seconds: 60,
        warmup: 10,
        steady_containers: 55,
        rate: 10,
        throughput_containers: 4,
        keep: false,
    };
    let mut rest = std::env::args().skip(1);
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline.clone().or_else(|| rest.next()).ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        let number = |text: String| -> Result<u64> {
            text.parse::<u64>().map_err(|_| anyhow!("{flag}: not a number: {text:?}"))
        };
        match flag.as_str() {
            "--daemon" => args.daemon = PathBuf::from(value()?),
            "--scenario" => {
                args.scenarios = match value()?.as_str() {
                    "steady" => vec![Scenario::Steady],
                    "throughput" => vec![Scenario::Throughput],
                    "all" => vec![Scenario::Steady, Scenario::Throughput],
                    other => bail!("unknown scenario {other:?}"),
                }
            }
            "--seconds" => args.seconds = number(value()?)?.max(1),
            "--warmup" => args.warmup = number(value()?)?,
            "--steady-containers" => args.steady_containers = number(value()?)?.max(1) as usize,
            "--rate" => args.rate = number(value()?)?.clamp(1, 1_000_000) as u32,
            "--throughput-containers" => args.throughput_containers = number(value()?)?.max(1) as usize,
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.daemon.as_os_str().is_empty() {
        bail!("no daemon binary: pass --daemon target/release/log-capturer (or LOG_CAPTURER_BIN)\n{USAGE}");
    }
    if !args.daemon.is_file() {
        bail!("{}: no such file (build it: cargo build --release -p capture-daemon)", args.daemon.display());
    }
    args.daemon = args.daemon.canonicalize()?;
    Ok(args)
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(error) => {
            eprintln!("daemon-bench: {error:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let load_at_start = loadavg();
    if require_docker_and_image("daemon-bench").is_none() {
        bail!("no Docker engine or no test image (see above)");
    }
    let mut reports = Vec::new();
    for scenario in &args.scenarios {
        eprintln!("== scenario {} ==", scenario.name());
        let report = match scenario {
            Scenario::Steady => steady(&args)?,
            Scenario::Throughput => throughput(&args)?,
        };
        reports.push(report);
    }
    println!();
    println!("log-capturer daemon benchmark");
    println!("command:  {command}");
    println!("daemon:   {}", args.daemon.display());
    println!("host:     {} cores, load before start: {}", cores(), load_at_start);
    for report in reports {
        println!();
        print!("{report}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scenarios

fn steady(args: &Args) -> Result<String> {
    let n = args.steady_containers;
    let label = format!("{}-steady", std::process::id());
    let workdir = Workdir::new("steady", args.keep)?;
    // `<prefix> out <i>` padded to ~100 bytes with a 5-digit counter.
    let scripts: Vec<String> = (0..n)
        .map(|index| {
            let prefix = padded_prefix(&format!("bench-steady-{index:03}"), 100 - " out 00000".len());
            LinePrinter::new(&prefix, 100_000_000, 0).rates(args.rate, 0).script()
        })
        .collect();
    eprintln!("starting {n} containers at {} lines/s each ...", args.rate);
    let fleet = Fleet::start("bench-steady", &label, &scripts, &[])?;
    let daemon = Daemon::start(args, &workdir, &label, n)?;
    eprintln!("daemon pid {} ready on {}; warm-up {} s ...", daemon.pid(), daemon.addr, args.warmup);
    std::thread::sleep(Duration::from_secs(args.warmup));

    let window = sample(&daemon, args.seconds)?;
    let tasks = daemon.metrics()?;
    let seen = containers_in_sink(&workdir.sink_file())?;
    let missing: Vec<String> = fleet
        .containers
        .iter()
        .map(TestContainer::name)
        .filter(|name| !seen.contains(*name))
        .map(str::to_owned)
        .collect();
    let hwm = proc_status_kib(daemon.pid(), "VmHWM").unwrap_or(0);
    let threads = proc_status_kib(daemon.pid(), "Threads").unwrap_or(0);
    let stop = daemon.stop()?;
    drop(fleet);

    let mut out = String::new();
    out += &format!("scenario steady: {n} containers x {} lines/s (~100-byte lines), file sink\n", args.rate);
    out += &format!("  window            {:.1} s after {} s warm-up\n", window.wall_secs, args.warmup);
    out += &format!(
        "  daemon CPU        {:.2} % of one core ({:.2} CPU-s; target < 2 %)\n",
        window.cpu_percent(),
        window.cpu_secs
    );
    out += &format!(
        "  daemon RSS        mean {:.1} MiB, max {:.1} MiB, peak (VmHWM) {:.1} MiB (target <= 20 MiB)\n",
        window.rss_mean_kib / 1024.0,
        window.rss_max_kib as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    out += &format!("  daemon threads    {threads}\n");
    out += &format!(
        "  lines out         {:.0} lines/s (nominal {} lines/s; usleep loops run a little slower); lines_out_total {} at end\n",
        window.lines_out_per_sec(),
        n as u64 * args.rate as u64,
        tasks.value("log_capturer_lines_out_total").unwrap_or(-1.0)
    );
    if let Some(dockerd) = window.dockerd_cpu_percent() {
        out += &format!("  dockerd CPU       {dockerd:.2} % of one core (context, not ours)\n");
    }
    out += &format!("  tasks_alive       {}\n", tasks.tasks_alive());
    out += &format!("  dropped           {}\n", tasks.sum("log_capturer_lines_dropped_total"));
    out += &format!(
        "  sink coverage     {}/{n} containers seen in logs.jsonl{}\n",
        n - missing.len(),
        if missing.is_empty() { String::new() } else { format!(" MISSING: {}", missing.join(", ")) }
    );
    out += &format!("  shutdown          {stop}\n");
    out += &format!(
        "  verdict           CPU {} / RSS {}\n",
        if window.cpu_percent() < 2.0 { "within target" } else { "OVER target" },
        if window.rss_max_kib as f64 <= 20.0 * 1024.0 { "within target" } else { "OVER target" }
    );
    if !missing.is_empty() {
        eprint!("{out}");
        bail!("the file sink has no lines from {} of {n} containers", missing.len());
    }
    Ok(out)
}

fn throughput(args: &Args) -> Result<String> {
    let n = args.throughput_containers;
    let label = format!("{}-throughput", std::process::id());
    let workdir = Workdir::new("throughput", args.keep)?;
    // `<prefix> <12-digit counter>`, ~100 bytes, as fast as awk's buffered stdout goes.
    let scripts: Vec<String> = (0..n)
        .map(|index| {
            let prefix = padded_prefix(&format!("bench-throughput-{index:03}"), 100 - 13);
            format!(
                "exec awk -v p={} 'BEGIN {{ for (i = 1; ; i++) printf \"%s %012d\\n\", p, i }}'",
                shell_quote(&prefix)
            )
        })
        .collect();
    // Bound what Docker keeps per container on disk.
    let log_opts = ["--log-opt", "max-size=200m", "--log-opt", "max-file=2"];
    let daemon = Daemon::start(args, &workdir, &label, n)?;
    eprintln!("daemon pid {} ready on {}; starting {n} flat-out containers ...", daemon.pid(), daemon.addr);
    let fleet = Fleet::start("bench-throughput", &label, &scripts, &log_opts)?;
    let warmup = args.warmup.clamp(2, 5);
    eprintln!("warm-up {warmup} s ...");
    std::thread::sleep(Duration::from_secs(warmup));

    let window = sample(&daemon, args.seconds)?;
    let end = daemon.metrics()?;
    let hwm = proc_status_kib(daemon.pid(), "VmHWM").unwrap_or(0);
    drop(fleet);
    let stop = daemon.stop()?;

    let lines_per_sec = window.lines_out_per_sec();
    let per_cpu_sec = if window.cpu_secs > 0.0 { window.lines_out as f64 / window.cpu_secs } else { 0.0 };
    let mut out = String::new();
    out += &format!("scenario throughput: {n} containers printing ~100-byte lines flat out, file sink\n");
    out += &format!("  window            {:.1} s after {warmup} s warm-up\n", window.wall_secs);
    out += &format!(
        "  delivered         {:.0} lines/s ({:.1} MiB/s of line bytes), {} lines in the window\n",
        lines_per_sec,
        window.bytes_out as f64 / window.wall_secs / (1024.0 * 1024.0),
        window.lines_out
    );
    out += &format!("  daemon CPU        {:.1} % of one core ({:.2} CPU-s)\n", window.cpu_percent(), window.cpu_secs);
    out += &format!("  per core          {per_cpu_sec:.0} lines per daemon CPU-second\n");
    if let Some(dockerd) = window.dockerd_cpu_percent() {
        out += &format!("  dockerd CPU       {dockerd:.1} % of one core (context: it serves every line to us)\n");
    }
    out += &format!(
        "  daemon RSS        mean {:.1} MiB, max {:.1} MiB, peak (VmHWM) {:.1} MiB\n",
        window.rss_mean_kib / 1024.0,
        window.rss_max_kib as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    out += &format!(
        "  queue             queue_bytes_max_seen {} B; dropped {}\n",
        end.value("log_capturer_queue_bytes_max_seen").unwrap_or(-1.0),
        end.sum("log_capturer_lines_dropped_total")
    );
    out += &format!("  shutdown          {stop}\n");
    if window.lines_out == 0 {
        eprint!("{out}");
        bail!("no lines delivered during the throughput window");
    }
    Ok(out)
}

/// `base` padded with `.` to `len` bytes (never cut).
fn padded_prefix(base: &str, len: usize) -> String {
    let mut prefix = format!("{base} ");
    while prefix.len() < len {
        prefix.push('.');
    }
    prefix
}

// ---------------------------------------------------------------------------------------
// Sampling

struct Window {
    wall_secs: f64,
    cpu_secs: f64,
    rss_mean_kib: f64,
    rss_max_kib: u64,
    lines_out: u64,
    bytes_out: u64,
    dockerd_cpu_secs: Option<f64>,
}

impl Window {
    fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_secs / self.wall_secs
    }
    fn lines_out_per_sec(&self) -> f64 {
        self.lines_out as f64 / self.wall_secs
    }
    fn dockerd_cpu_percent(&self) -> Option<f64> {
        self.dockerd_cpu_secs.map(|secs| 100.0 * secs / self.wall_secs)
    }
}

/// Samples the daemon for `seconds`: CPU and counters at both ends, RSS every second.
fn sample(daemon: &Daemon, seconds: u64) -> Result<Window> {
    let pid = daemon.pid();
    let dockerd = dockerd_pid();
    eprintln!("measuring {seconds} s ...");
    let metrics_start = daemon.metrics()?;
    let dockerd_start = dockerd.and_then(|pid| cpu_ticks(pid).ok());
    let cpu_start = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut rss = Vec::new();
    for tick in 1..=seconds {
        rss.push(proc_status_kib(pid, "VmRSS")?);
        let next = started + Duration::from_secs(tick);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        daemon.check_alive()?;
    }
    let cpu_end = cpu_ticks(pid)?;
    let wall_secs = started.elapsed().as_secs_f64();
    let dockerd_end = dockerd.and_then(|pid| cpu_ticks(pid).ok());
    let metrics_end = daemon.metrics()?;
    rss.push(proc_status_kib(pid, "VmRSS")?);
    let counter = |metrics: &Metrics, name: &str| metrics.value(name).unwrap_or(0.0) as u64;
    let hz = clock_ticks_per_sec();
    Ok(Window {
        wall_secs,
        cpu_secs: (cpu_end - cpu_start) as f64 / hz,
        rss_mean_kib: rss.iter().sum::<u64>() as f64 / rss.len() as f64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        lines_out: counter(&metrics_end, "log_capturer_lines_out_total")
            - counter(&metrics_start, "log_capturer_lines_out_total"),
        bytes_out: counter(&metrics_end, "log_capturer_bytes_out_total")
            - counter(&metrics_start, "log_capturer_bytes_out_total"),
        dockerd_cpu_secs: match (dockerd_start, dockerd_end) {
            (Some(start), Some(end)) => Some((end - start) as f64 / hz),
            _ => None,
        },
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after_comm = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))? + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |number: usize| -> Result<u64> {
        fields.get(number - 3).and_then(|text| text.parse().ok()).ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// A `Key:   N kB` (or plain number) line of `/proc/PID/status`.
fn proc_status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(key)?.strip_prefix(':')?;
            value.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0)
}

fn dockerd_pid() -> Option<u32> {
    let output = Command::new("pidof").arg("dockerd").output().ok()?;
    String::from_utf8_lossy(&output.stdout).split_whitespace().next()?.parse().ok()
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Names of the containers (`labels.container`) in the file sink's output.
fn containers_in_sink(path: &Path) -> Result<BTreeSet<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut seen = BTreeSet::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if let Some(name) = value["labels"]["container"].as_str() {
            seen.insert(name.trim_start_matches('/').to_owned());
        }
    }
    Ok(seen)
}

// ---------------------------------------------------------------------------------------
// Containers

/// Test containers started in parallel and removed in parallel when dropped.
struct Fleet {
    containers: Vec<TestContainer>,
}

impl Fleet {
    fn start(name_hint: &str, bench_label: &str, scripts: &[String], extra_args: &[&str]) -> Result<Fleet> {
        let label = format!("{BENCH_LABEL}={bench_label}");
        let mut args: Vec<&str> = vec!["--label", &label];
        args.extend_from_slice(extra_args);
        let workers = 4.min(scripts.len()).max(1);
        let chunk = scripts.len().div_ceil(workers);
        let started = Instant::now();
        // Every started container is kept (and so removed on drop) even if another fails.
        let results: Vec<(Vec<TestContainer>, Option<anyhow::Error>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = scripts
                .chunks(chunk)
                .map(|part| {
                    let args = &args;
                    scope.spawn(move || {
                        let mut made = Vec::new();
                        for script in part {
                            match TestContainer::run_with(name_hint, script, args) {
                                Ok(container) => made.push(container),
                                Err(error) => return (made, Some(error)),
                            }
                        }
                        (made, None)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("container starter panicked")).collect()
        });
        let mut fleet = Fleet { containers: Vec::new() };
        let mut first_error = None;
        for (made, error) in results {
            fleet.containers.extend(made);
            first_error = first_error.or(error);
        }
        if let Some(error) = first_error {
            return Err(error.context("starting bench containers"));
        }
        eprintln!("{} containers up in {:.1} s", fleet.containers.len(), started.elapsed().as_secs_f64());
        Ok(fleet)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        if containers.is_empty() {
            return;
        }
        let count = containers.len();
        let started = Instant::now();
        let chunk = count.div_ceil(4);
        let mut containers = containers.into_iter();
        std::thread::scope(|scope| loop {
            let part: Vec<TestContainer> = containers.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            scope.spawn(move || drop(part));
        });
        eprintln!("removed {count} containers in {:.1} s", started.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------------------------------
// The daemon

/// A temp dir for one scenario: config, positions, daemon log, sink output.
struct Workdir {
    path: PathBuf,
    keep: bool,
}

impl Workdir {
    fn new(scenario: &str, keep: bool) -> Result<Workdir> {
        let path = std::env::temp_dir().join(format!("daemon-bench-{}-{scenario}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Workdir { path, keep })
    }

    fn sink_file(&self) -> PathBuf {
        self.path.join("out").join("logs.jsonl")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The running daemon; SIGTERM (then SIGKILL) when dropped.
struct Daemon {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Daemon {
    fn start(args: &Args, workdir: &Workdir, bench_label: &str, containers: usize) -> Result<Daemon> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let toml_string = |text: &str| serde_json::to_string(text).expect("a string serialises");
        let config = format!(
            "shutdown_timeout = \"10s\"\n\
             [docker]\n\
             socket = {socket}\n\
             streams_max = {streams_max}\n\
             [docker.include]\n\
             labels = [{label}]\n\
             [sinks.file]\n\
             dir = {out}\n\
             [positions]\n\
             path = {positions}\n\
             [http]\n\
             listen = {listen}\n\
             [log]\n\
             level = \"warn\"\n",
            socket = toml_string(&docker_socket_path().to_string_lossy()),
            // One stream per container: none waits for a slot (the default is 50).
            streams_max = containers.max(50) + 8,
            label = toml_string(&format!("{BENCH_LABEL}={bench_label}")),
            out = toml_string(&workdir.path.join("out").to_string_lossy()),
            positions = toml_string(&workdir.path.join("positions.json").to_string_lossy()),
            listen = toml_string(&addr),
        );
        let config_path = workdir.path.join("config.toml");
        std::fs::write(&config_path, &config)?;
        let check = Command::new(&args.daemon).arg("check-config").arg(&config_path).output()?;
        if !check.status.success() {
            bail!(
                "check-config rejected the bench config:\n{config}\n{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let log = workdir.path.join("daemon.log");
        let child = Command::new(&args.daemon)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&workdir.path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", args.daemon.display()))?;
        let daemon = Daemon { child: Some(child), addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            daemon.check_alive()?;
            if matches!(http_get(&daemon.addr, "/ready"), Ok((200, _))) {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                bail!("daemon not ready within 30 s; its log:\n{}", daemon.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn check_alive(&self) -> Result<()> {
        // `try_wait` needs `&mut`; /proc tells whether it is still running (not a zombie).
        let state = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let running = state.rfind(')').and_then(|at| state[at + 2..].chars().next()).is_some_and(|state| state != 'Z');
        if !running {
            bail!("the daemon exited; its log:\n{}", self.log_tail());
        }
        Ok(())
    }

    fn metrics(&self) -> Result<Metrics> {
        match http_get(&self.addr, "/metrics")? {
            (200, body) => Ok(Metrics { text: body }),
            (status, body) => bail!("/metrics answered {status}: {body}"),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM and wait; returns how the shutdown went.
    fn stop(mut self) -> Result<String> {
        let started = Instant::now();
        let status = self.terminate()?;
        Ok(format!("{status} after {:.2} s", started.elapsed().as_secs_f64()))
    }

    fn terminate(&mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else { return Ok("already stopped".into()) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(format!("exited {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok("KILLED: no exit within 15 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(error) = self.terminate() {
                eprintln!("stopping the daemon: {error:#}");
            }
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET: (status, body).
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP response from {addr}{path}"))?;
    Ok((status, body.to_owned()))
}

/// A Prometheus text exposition.
struct Metrics {
    text: String,
}

impl Metrics {
    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.text.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('{')) {
                return None;
            }
            Some((rest, value.parse().ok()?))
        })
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.samples(name).find(|(labels, _)| labels.is_empty()).map(|(_, value)| value)
    }

    fn sum(&self, name: &str) -> f64 {
        self.samples(name).map(|(_, value)| value).sum()
    }

    /// `kind=N` for each non-zero `log_capturer_tasks_alive{kind=...}`.
    fn tasks_alive(&self) -> String {
        let parts: Vec<String> = self
            .samples("log_capturer_tasks_alive")
            .filter(|(_, value)| *value != 0.0)
            .map(|(labels, value)| {
                let kind = labels.trim_start_matches("{kind=\"").trim_end_matches("\"}");
                format!("{kind}={value}")
            })
            .collect();
        let runtime = self.value("log_capturer_runtime_tasks_alive").unwrap_or(-1.0);
        format!("{} (runtime_tasks_alive {runtime})", parts.join(" "))
    }
}
