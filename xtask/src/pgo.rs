//! The simulator binary, built with profile-guided optimisation where the toolchain allows.
//!
//! `cargo xtask sim` runs sweeps of thousands of seeds; the binary it runs is built in
//! three steps: instrumented (`-Cprofile-generate`), a training sweep of 100 seeds the
//! default sweep does not play (from seed 1,000,000), then optimised with the merged
//! profile (`-Cprofile-use`). Measured on the default sweep, both binaries run side by
//! side on the 2-core machine (`--jobs 1` each, so that both see the same machine):
//! see the README's performance table. PGO changes how fast the code runs, never what it
//! does: seeds, digests and failures are the same with either binary (the README says
//! how that was checked).
//!
//! It needs `llvm-profdata` of the LLVM that rustc is built on (`rustc -vV`): Debian's
//! `llvm-N` has it, and is installed when it is missing and `apt-get` can. Without it,
//! or with `--no-pgo`, the plain `sim` profile is built and said so. Each build has a
//! target directory of its own (under `target/pgo/`, or `pgo/` in `CARGO_TARGET_DIR`), so neither invalidates the other
//! nor the plain one. The training runs again only when the instrumented binary
//! changed; the optimised build follows the profile (rustc lists it in its dep-info).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{cargo, project_root, run};

/// The seeds the profile is trained on: outside the default sweep's 0..1,000.
const TRAINING_FROM: &str = "1000000";
const TRAINING_SEEDS: &str = "100";

/// The simulator binary to run: optimised with a profile if `pgo` and `llvm-profdata`
/// is (or can be made) available, else the plain `sim` profile's.
pub fn simulator(pgo: bool) -> Result<PathBuf> {
    let target = target_dir();
    if pgo {
        match profdata_tool()? {
            Some(tool) => return optimised(&target.join("pgo"), &tool),
            None => eprintln!(
                "xtask: no llvm-profdata for rustc's LLVM: building the simulator without profile-guided \
                 optimisation (the sweep runs about 1.1× longer; on Debian `apt-get install llvm-{}`)",
                llvm_major().unwrap_or_default()
            ),
        }
    }
    run(cargo().args(["build", "--quiet", "--profile", "sim", "--package", "capture-sim", "--bin", "capture-sim"]))?;
    Ok(target.join("sim/capture-sim"))
}

/// Where cargo builds: `CARGO_TARGET_DIR` if set (relative to the working directory, as
/// cargo takes it), else the workspace's `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::env::current_dir().map_or_else(|_| PathBuf::from(&dir), |cwd| cwd.join(&dir)),
        None => project_root().join("target"),
    }
}

/// Instrumented build, training (if the instrumented binary changed), optimised build,
/// all under `dir`.
fn optimised(dir: &Path, tool: &Path) -> Result<PathBuf> {
    let (raw, profile) = (dir.join("raw"), dir.join("merged.profdata"));
    build(&dir.join("generate"), &format!("-Cprofile-generate={}", raw.display()))?;
    let instrumented = dir.join("generate/sim/capture-sim");
    if !is_newer(&profile, &instrumented) {
        // The build's own build scripts were instrumented too: only the training counts.
        let _ = std::fs::remove_dir_all(&raw);
        std::fs::create_dir_all(&raw)?;
        eprintln!("xtask: training the simulator's profile ({TRAINING_SEEDS} seeds from {TRAINING_FROM})");
        let scratch = dir.join("training-corpus");
        // Its outcome does not matter (a failing seed is the sweep's to report): only
        // the profile it leaves.
        let _ = Command::new(&instrumented)
            .args(["--seeds", TRAINING_SEEDS, "--from", TRAINING_FROM, "--no-progress", "--corpus"])
            .arg(&scratch)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("could not run {}", instrumented.display()))?;
        let raws: Vec<PathBuf> = std::fs::read_dir(&raw)?.filter_map(|entry| Some(entry.ok()?.path())).collect();
        if raws.is_empty() {
            bail!("the training run left no profile in {}", raw.display());
        }
        run(Command::new(tool).arg("merge").arg("-o").arg(&profile).args(&raws))?;
    }
    build(&dir.join("use"), &format!("-Cprofile-use={}", profile.display()))?;
    Ok(dir.join("use/sim/capture-sim"))
}

/// The simulator in the `sim` profile, in `target_dir`, with `flag` added to rustc's
/// (the caller's `CARGO_ENCODED_RUSTFLAGS`, else its `RUSTFLAGS`, which the former
/// would override).
fn build(target_dir: &Path, flag: &str) -> Result<()> {
    let mut flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_else(|_| {
        let plain = std::env::var("RUSTFLAGS").unwrap_or_default();
        plain.split_whitespace().collect::<Vec<_>>().join("\x1f")
    });
    if !flags.is_empty() {
        flags.push('\x1f');
    }
    flags.push_str(flag);
    run(cargo()
        .args(["build", "--quiet", "--profile", "sim", "--package", "capture-sim", "--bin", "capture-sim"])
        .arg("--target-dir")
        .arg(target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags))
}

/// Whether `path` exists and was modified after `than`.
fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a > b)
}

/// The major version of the LLVM rustc is built on.
fn llvm_major() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-vV").output().ok()?;
    llvm_major_of(&String::from_utf8_lossy(&output.stdout))
}

/// `LLVM version: 22.1.2` in `rustc -vV`'s output → 22.
fn llvm_major_of(verbose_version: &str) -> Option<u32> {
    let version = verbose_version.lines().find_map(|line| line.strip_prefix("LLVM version: "))?;
    version.split('.').next()?.trim().parse().ok()
}

/// An `llvm-profdata` of rustc's LLVM: Debian's versioned one, or one on the `PATH` that
/// says it is that version; installed with `apt-get` if missing and possible.
fn profdata_tool() -> Result<Option<PathBuf>> {
    let Some(major) = llvm_major() else { return Ok(None) };
    let find = || {
        let candidates = [
            PathBuf::from(format!("llvm-profdata-{major}")),
            PathBuf::from(format!("/usr/lib/llvm-{major}/bin/llvm-profdata")),
            PathBuf::from("llvm-profdata"),
        ];
        candidates.into_iter().find(|tool| {
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(&format!("LLVM version {major}.")))
        })
    };
    if let Some(tool) = find() {
        return Ok(Some(tool));
    }
    let installable = Command::new("apt-get").arg("--version").stdout(Stdio::null()).status().is_ok();
    if installable {
        eprintln!("xtask: installing llvm-{major} (its llvm-profdata merges the simulator's profile)");
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "sudo=; [ \"$(id -u)\" -ne 0 ] && sudo=sudo; export DEBIAN_FRONTEND=noninteractive; \
                 $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq --no-install-recommends llvm-{major} >/dev/null"
            ))
            .status();
        if !status.is_ok_and(|status| status.success()) {
            eprintln!("xtask: could not install llvm-{major}");
        }
    }
    Ok(find())
}

#[cfg(test)]
mod tests {
    use super::llvm_major_of;

    #[test]
    fn the_llvm_major_is_read_from_rustc_verbose_version() {
        let output = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n\
                      release: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(llvm_major_of(output), Some(22));
        assert_eq!(llvm_major_of("rustc 1.95.0\n"), None);
    }
}
