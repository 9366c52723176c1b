//! `capture-sim`: the simulator's command line (what `cargo xtask sim` runs).
//!
//! ```text
//! capture-sim [--seeds N] [--from S] [--containers C] [--hours H] [--rotate-every SECS]
//!             [--jobs J] [--calm] [--pre-fix] [--seed S] [--corpus DIR] [--commit SHA] [--per-seed]
//! ```
//! `--seed S` replays one seed with a full trace of world actions and samples.
//! `--pre-fix` leaves out of the world what the engine before issue 7's fixes lost
//! (for comparisons; see `Overrides::pre_fix`). Every 10th seed is run twice (determinism).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sim::report::{failure_block, seed_line, summary};
use sim::run::{run_seed, RunConfig};
use sim::scenario::{Options, Overrides};
use sim::sweep::{save_to_corpus, sweep, SweepConfig};

/// A seed makes about a million small allocations (lines, chunks, batches, futures);
/// glibc's malloc and free cost ~9 % of a seed's instructions. mimalloc, measured on
/// 20 seeds alternating binaries: user CPU 0.88× (seed 8 callgrind: 0.95× instructions),
/// max RSS 35 → 63 MB. A hand-written slab allocator measured 0.93× instructions: not
/// enough over the library to keep its unsafe code.
#[global_allocator]
static ALLOC: SmallAlign = SmallAlign;

/// mimalloc, asked through `mimalloc::MiMalloc`, which calls `mi_malloc_aligned` for
/// every layout; that call takes a slower path for all but small blocks of exactly the
/// right alignment (callgrind: 16.2 M of seed 85's 369.5 M instructions inside it). Every
/// mimalloc block is aligned to at least a word, so layouts that ask no more take the
/// plain calls; the rest keep the aligned ones.
struct SmallAlign;

/// The alignment every mimalloc block has (`MI_INTPTR_SIZE`).
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: each method forwards to the mimalloc call that honours the layout: the plain
// ones only where the layout's alignment is at most a word, which every mimalloc block
// has; `mi_free` frees blocks of either kind.
unsafe impl std::alloc::GlobalAlloc for SmallAlign {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        if layout.align() <= WORD_ALIGN {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        if layout.align() <= WORD_ALIGN {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        if layout.align() <= WORD_ALIGN {
            mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

/// Every seed frees its whole world and the next seed allocates it again. mimalloc gives
/// freed pages back to the OS after 10 ms (`purge_delay`), so the next seed faults them
/// in again, zeroed by the kernel: 14.8–17.7 k minor faults on 200 seeds (`--jobs 1`).
/// With purging off: 186 faults, wall time 0.96–0.98× (alternating binaries twice), max
/// RSS 67 → 69 MB: the process keeps what one seed per job needs at once.
fn keep_freed_pages() {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h); the Rust
    // bindings name no constant for it.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a global option, which mimalloc reads atomically; no pointers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// A panic in a seed stops the sweep (the `sim` profile aborts on panic, see the
/// workspace's Cargo.toml): after the panic's own message, name the seed to replay.
fn name_the_seed_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if let Some(seed) = sim::sweep::seed_in_progress() {
            eprintln!("seed {seed} panicked; replay it with `cargo xtask sim --seed {seed}`");
        }
    }));
}

fn main() -> ExitCode {
    keep_freed_pages();
    name_the_seed_on_panic();
    let mut args = std::env::args().skip(1);
    let mut config = SweepConfig {
        from: 0,
        seeds: 1000,
        jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
        overrides: Overrides::default(),
        run: RunConfig::default(),
        determinism_every: 10,
        progress: true,
    };
    let mut replay = None;
    let mut corpus = PathBuf::from("corpus");
    let mut commit = String::from("unknown");
    let mut per_seed = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--seeds" => config.seeds = parse(&value()),
            "--from" => config.from = parse(&value()),
            "--jobs" => config.jobs = parse(&value()),
            "--containers" => config.overrides.containers = Some(parse(&value())),
            "--hours" => config.overrides.hours = Some(parse(&value())),
            "--rotate-every" => config.overrides.rotate_every = Some(Duration::from_secs(parse(&value()))),
            "--calm" => config.overrides.calm = true,
            "--pre-fix" => config.overrides.pre_fix = true,
            "--seed" => replay = Some(parse::<u64>(&value())),
            "--corpus" => corpus = PathBuf::from(value()),
            "--commit" => commit = value(),
            "--per-seed" => per_seed = true,
            "--no-progress" => config.progress = false,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if let Some(seed) = replay {
        let options = Options::from_seed(seed, &config.overrides);
        println!("seed {seed} (commit {commit})\noptions: {options}");
        let outcome = run_seed(&options, RunConfig { trace: true, ..config.run });
        let mut out = std::io::stdout().lock();
        for line in &outcome.trace {
            // A closed pipe (`| head`) ends the listing, not the process with a panic.
            if writeln!(out, "{line}").is_err() {
                return ExitCode::SUCCESS;
            }
        }
        drop(out);
        println!("{}", seed_line(&outcome));
        print!("{}", failure_block(&outcome));
        return if outcome.violation.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    let report = sweep(&config);
    if per_seed {
        for outcome in &report.outcomes {
            println!("{}", seed_line(outcome));
        }
    }
    print!("{}", summary(&report));
    let mut failed = false;
    for outcome in report.failures() {
        failed = true;
        match save_to_corpus(&corpus, outcome, &commit) {
            Ok(path) => println!("saved {}", path.display()),
            Err(error) => eprintln!("could not save seed {} to {}: {error}", outcome.options.seed, corpus.display()),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn parse<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| usage(&format!("not a valid value: {text}")))
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("capture-sim: {problem}");
    }
    eprintln!("usage: capture-sim [--seeds N] [--from S] [--containers C] [--hours H] [--rotate-every SECS] [--jobs J] [--calm] [--pre-fix] [--seed S] [--corpus DIR] [--commit SHA] [--per-seed] [--no-progress]");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::SmallAlign;

    /// Every layout's alignment holds, through the plain and the aligned calls, for
    /// fresh, zeroed and grown blocks.
    #[test]
    fn blocks_keep_their_layouts_alignment() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 16, 24, 40, 100, 1000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every block is freed with the layout it has.
                unsafe {
                    let block = SmallAlign.alloc(layout);
                    assert_eq!(block as usize % align, 0, "alloc {size} aligned {align}");
                    block.write_bytes(7, size);
                    let grown = SmallAlign.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "realloc {size} aligned {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 7), "realloc kept the bytes");
                    SmallAlign.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                    let zeroed = SmallAlign.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "alloc_zeroed {size} aligned {align}");
                    assert!((0..size).all(|i| *zeroed.add(i) == 0), "alloc_zeroed zeroes");
                    SmallAlign.dealloc(zeroed, layout);
                }
            }
        }
    }
}
