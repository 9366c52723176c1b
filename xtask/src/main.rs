//! `cargo xtask`: the project's tasks, one dispatch `match` (like rust-analyzer's).
//!
//! - `cargo xtask sim [FLAGS]`: the simulator sweep in the `sim` profile (release with
//!   fat LTO; defaults: 1,000
//!   seeds × 55 containers × 4 simulated hours, rotation every 5 min). Flags are passed
//!   to `capture-sim`: `--seeds N --from S --containers C --hours H --jobs J
//!   --rotate-every SECS --calm --per-seed`, and `--seed S` replays one seed with a full
//!   trace. Failing seeds are saved under `corpus/`.
//! - `cargo xtask test`: installs the Debian packages the end-to-end tests need (if
//!   missing), runs every workspace test (which replays `corpus/`), then a short sweep of
//!   50 seeds. This is what CI runs.
//! - `cargo xtask bench`: the benchmarks: the executor's per-poll cost, the default
//!   sweep's throughput in release mode, and the daemon's CPU, RSS and lines per
//!   CPU-second against the local Docker engine.
//!
//! Dependencies stay few so this compiles in seconds.

use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const TASKS: &str = "\
cargo xtask <task>

tasks:
  sim [FLAGS]   simulator sweep (release): --seeds N --from S --containers C --hours H
                --jobs J --rotate-every SECS --calm --per-seed | --seed S (replay with trace)
  test          workspace tests + corpus replay + a 50-seed sweep (what CI runs)
  bench         benchmarks: executor poll cost, default sweep, daemon CPU/RSS on Docker";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sim") => sim(&args[1..]),
        Some("test") => test(),
        Some("bench") => bench(),
        Some("-h" | "--help") | None => {
            println!("{TASKS}");
            Ok(())
        }
        Some(other) => {
            eprintln!("unknown task {other}\n\n{TASKS}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {command:?}");
    let status = command.status().with_context(|| format!("could not run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn sim(flags: &[String]) -> Result<()> {
    run(cargo()
        .args(["run", "--quiet", "--profile", "sim", "--package", "capture-sim", "--bin", "capture-sim", "--"])
        .args(["--commit", &commit()])
        .args(flags))
}

fn test() -> Result<()> {
    // Debian packages the end-to-end tests use (busybox-static for the test image,
    // logrotate, promtool); installs only what is missing.
    run(Command::new("bash").arg("tests/image/install-deps.sh"))?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    // The short sweep runs in the test profile: one build profile for CI.
    run(cargo().args(["run", "--quiet", "--package", "capture-sim", "--bin", "capture-sim", "--"]).args([
        "--seeds",
        "50",
        "--no-progress",
        "--commit",
        &commit(),
    ]))
}

fn bench() -> Result<()> {
    run(cargo().args(["run", "--quiet", "--release", "--package", "capture-sim", "--example", "executor_bench"]))?;
    sim(&["--no-progress".to_string()])?;
    // The daemon against the local Docker engine: CPU and RSS at 55 containers × 10
    // lines/s, and lines per CPU-second flat out.
    run(cargo().args(["build", "--quiet", "--release", "--package", "capture-daemon"]))?;
    run(cargo()
        .args(["run", "--quiet", "--release", "--package", "capture-tests", "--bin", "daemon-bench", "--"])
        .args(["--daemon", "target/release/log-capturer", "--scenario", "all", "--seconds", "30"]))
}
