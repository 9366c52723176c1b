//! `cargo xtask`: the project's tasks, one dispatch `match` (like rust-analyzer's).
//!
//! - `cargo xtask sim [FLAGS]`: the simulator sweep in the `sim` profile (release with
//!   fat LTO, and profile-guided optimisation where `llvm-profdata` is at hand: [`pgo`];
//!   `--no-pgo` builds without it; defaults: 1,000
//!   seeds × 55 containers × 4 simulated hours, rotation every 4 min). Flags are passed
//!   to `capture-sim`: `--seeds N --from S --containers C --hours H --jobs J
//!   --rotate-every SECS --calm --per-seed`, and `--seed S` replays one seed with a full
//!   trace. Failing seeds are saved under `corpus/`.
//! - `cargo xtask test`: the gates first: the repository rules ([`tidy`]), `cargo fmt
//!   --check` and `cargo clippy --workspace --all-targets -- -D warnings` (the engine is
//!   linted once more alone, without the simulator's `broken-variants` feature); any
//!   finding fails it. Then it installs the Debian packages the end-to-end tests need (if
//!   missing), runs every workspace test (which replays `corpus/`), then a short sweep of
//!   50 seeds. This is what CI runs.
//! - `cargo xtask tidy`: the repository rules alone ([`tidy`]; `cargo test -p xtask`
//!   runs them too).
//! - `cargo xtask bench`: the benchmarks: the executor's per-poll cost, the default
//!   sweep's throughput in release mode, and the daemon's CPU, RSS and lines per
//!   CPU-second against the local Docker engine.
//!
//! Dependencies stay few so this compiles in seconds.

mod pgo;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const TASKS: &str = "\
cargo xtask <task>

tasks:
  sim [FLAGS]   simulator sweep (release, PGO unless --no-pgo): --seeds N --from S
                --containers C --hours H --jobs J --rotate-every SECS --calm --per-seed
                | --seed S (replay with trace)
  test          tidy, fmt --check, clippy -D warnings, then workspace tests + corpus
                replay + a 50-seed sweep (what CI runs)
  tidy          repository rules clippy cannot check (xtask/src/tidy.rs)
  bench         benchmarks: executor poll cost, default sweep, daemon CPU/RSS on Docker";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sim") => sim(&args[1..]),
        Some("test") => test(),
        Some("tidy") => tidy::tidy(&project_root()),
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

/// The workspace root (xtask's parent), wherever `cargo xtask` was started.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_path_buf()
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
    let pgo = !flags.iter().any(|flag| flag == "--no-pgo");
    let flags = flags.iter().filter(|flag| *flag != "--no-pgo");
    run(Command::new(pgo::simulator(pgo)?).args(["--commit", &commit()]).args(flags))
}

fn test() -> Result<()> {
    // The gates, cheapest first; any finding fails the run before the slow tests.
    tidy::tidy(&project_root())?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The workspace build turns on the simulator's `broken-variants` engine feature;
    // lint the engine as the daemon builds it too.
    run(cargo().args(["clippy", "--package", "capture-engine", "--all-targets", "--", "-D", "warnings"]))?;
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
