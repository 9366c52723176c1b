//! Many seeds on several threads, with a progress bar and the final report.
//!
//! Seeds are handed out from a shared counter; each runs on its own thread's fresh
//! executor, so results do not depend on `--jobs`. Failing seeds are written to
//! `corpus/` as small readable files that the tests replay.

use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as WallInstant};

use crate::run::{run_seed, RunConfig, SeedOutcome};
use crate::scenario::{Options, Overrides};

#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub from: u64,
    pub seeds: u64,
    pub jobs: usize,
    pub overrides: Overrides,
    pub run: RunConfig,
    /// Re-run every Nth seed and compare trace digests (0: never).
    pub determinism_every: u64,
    pub progress: bool,
}

#[derive(Debug, Default)]
pub struct SweepReport {
    pub outcomes: Vec<SeedOutcome>,
    pub wall: Duration,
    pub determinism_checked: u64,
}

impl SweepReport {
    pub fn failures(&self) -> impl Iterator<Item = &SeedOutcome> {
        self.outcomes.iter().filter(|outcome| outcome.violation.is_some())
    }
}

thread_local! {
    /// The seed this thread is running, for a panic's message ([`seed_in_progress`]).
    static RUNNING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The seed the calling thread is running in a sweep, if any: what a panic hook names so
/// that the panic can be replayed (`cargo xtask sim --seed S`).
pub fn seed_in_progress() -> Option<u64> {
    RUNNING.with(Cell::get)
}

pub fn sweep(config: &SweepConfig) -> SweepReport {
    let started = WallInstant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let checked = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.max(1) {
            let (next, done, failed, checked, outcomes) =
                (next.clone(), done.clone(), failed.clone(), checked.clone(), outcomes.clone());
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= config.seeds {
                    break;
                }
                let seed = config.from + index;
                RUNNING.with(|running| running.set(Some(seed)));
                let options = Options::from_seed(seed, &config.overrides);
                let mut outcome = run_seed(&options, config.run);
                if outcome.violation.is_none() && config.determinism_every > 0 && index % config.determinism_every == 0
                {
                    checked.fetch_add(1, Ordering::Relaxed);
                    outcome.violation = rerun_differs(&options, config.run, &outcome);
                }
                if outcome.violation.is_some() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                outcomes.lock().unwrap().push(outcome);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if config.progress {
                    progress(finished, config.seeds as usize, failed.load(Ordering::Relaxed), started.elapsed());
                }
            });
        }
    });
    if config.progress {
        eprintln!();
    }
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    outcomes.sort_by_key(|outcome| outcome.options.seed);
    SweepReport { outcomes, wall: started.elapsed(), determinism_checked: checked.load(Ordering::Relaxed) }
}

/// The determinism re-run: `options` run again must give `first`'s digest (the
/// executor's trace folded with what the world did and saw).
pub fn rerun_differs(options: &Options, run: RunConfig, first: &SeedOutcome) -> Option<crate::check::Violation> {
    let again = run_seed(options, run);
    (again.stats.trace_digest != first.stats.trace_digest).then(|| crate::check::Violation {
        invariant: crate::check::Invariant::Determinism,
        at: engine::rt::Instant::ZERO,
        detail: format!("trace digest {:#x} then {:#x}", first.stats.trace_digest, again.stats.trace_digest),
        live_tasks: Vec::new(),
    })
}

fn progress(done: usize, total: usize, failed: usize, elapsed: Duration) {
    let width = 40;
    let filled = done * width / total.max(1);
    let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
    eprint!("\r[{bar}] {done}/{total} seeds, {failed} failed, {:.1}s", elapsed.as_secs_f64());
    let _ = std::io::stderr().flush();
}

/// The failing seed as a corpus file: `key = value` lines, readable and replayable.
pub fn corpus_entry(outcome: &SeedOutcome, commit: &str) -> String {
    let violation = outcome.violation.as_ref().expect("a failing seed");
    format!(
        "# A seed that once failed; replayed by `cargo xtask test`.\nseed = {}\ninvariant = {}\ncommit = {commit}\ndetail = {}\noptions = {}\n",
        outcome.options.seed,
        violation.invariant,
        violation.detail.replace('\n', " "),
        outcome.options,
    )
}

pub fn save_to_corpus(dir: &Path, outcome: &SeedOutcome, commit: &str) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("seed-{}.txt", outcome.options.seed));
    std::fs::write(&path, corpus_entry(outcome, commit))?;
    Ok(path)
}

/// The saved options of every corpus file (`seed = N` and `options = ...` lines): a
/// replay runs what failed, not what the seed draws today. A file without an options
/// line (or with one this version cannot read) falls back to the seed's draws, named.
pub fn corpus_options(dir: &Path) -> Vec<(std::path::PathBuf, Result<Options, String>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    let mut paths: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let field = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
        let Some(seed) = field("seed = ").and_then(|seed| seed.parse::<u64>().ok()) else { continue };
        let options = match field("options = ") {
            Some(options) => Options::parse(seed, options),
            None => Ok(Options::from_seed(seed, &Overrides::default())),
        };
        found.push((path, options));
    }
    found
}

/// Seeds listed in corpus files (`seed = N` lines).
pub fn corpus_seeds(dir: &Path) -> Vec<u64> {
    let mut seeds = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return seeds };
    let mut paths: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("seed = ") {
                if let Ok(seed) = value.trim().parse() {
                    seeds.push(seed);
                }
            }
        }
    }
    seeds
}
