//! `cargo xtask tidy`: the repository rules neither the compiler nor clippy can check
//! (after rust-analyzer's `xtask/src/tidy.rs`). Each rule is a pure function over text,
//! unit-tested in [`tests`] on small snippets that break it, so each one can fail; the
//! test `the_tree_is_tidy` runs them all on the tree, so plain `cargo test` checks them too.
//!
//! What moved to clippy (`engine/clippy.toml`, `clippy.toml`): clock reads, runtime
//! spawns and std `HashMap`/`HashSet` inside the engine are `disallowed-methods` and
//! `disallowed-types`, checked on every target by `cargo xtask test`. What stays here:
//!
//! - **engine-dependencies**: `engine/Cargo.toml` (read with the `toml` crate, workspace
//!   inheritance resolved) names no runtime, Docker or HTTP client, file-system
//!   notification, OS clock or entropy; tokio only with `sync` and `macros`.
//! - **biased-select**: every `select!` in the engine starts with `biased;` (tokio's
//!   unbiased choice draws from an RNG the simulator does not control).
//! - **doc-header**: every `.rs` file of the workspace begins with a `//!` comment.
//! - **spawn-sites**: `tokio::spawn` and `thread::spawn` appear only in the runtime
//!   implementations ([`SPAWN_ALLOWED`]); everything else spawns through
//!   `engine::task::Tasks`, which gives every task an owner. Clippy could flag each call,
//!   but only with an `allow` at every exception; here the exceptions are one list.
//! - **self-contained**: no code, manifest or build script reads `../shared` (tests stand
//!   on the repository alone).
//!
//! Source rules look at code with `//` comments cut off, line by line (block comments and
//! string literals are not parsed: the tree has no rule-breaking text in either, and a
//! false alarm names its line).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml::{Table, Value};

/// Crates that are a runtime, a Docker or HTTP client, file-system notification, a timer
/// or OS entropy: none of them may be a (normal) dependency of the engine.
const ENGINE_DENIED_CRATES: &[&str] = &[
    "async-std",
    "async-io",
    "async-executor",
    "smol",
    "madsim",
    "madsim-tokio",
    "mio",
    "bollard",
    "docker-api",
    "hyper",
    "hyper-util",
    "h2",
    "reqwest",
    "ureq",
    "curl",
    "notify",
    "inotify",
    "futures-timer",
    "getrandom",
];

/// The only tokio features the engine may enable: runtime-agnostic primitives.
const ENGINE_TOKIO_FEATURES: &[&str] = &["sync", "macros"];

/// Features that bring an OS clock, OS entropy or a thread pool, per crate; a crate
/// listed here must also have `default-features = false`.
const ENGINE_DENIED_FEATURES: &[(&str, &[&str])] = &[
    ("chrono", &["clock", "now"]),
    ("time", &["std", "local-offset"]),
    ("rand", &["std", "thread_rng", "os_rng", "getrandom"]),
    ("futures", &["executor", "thread-pool"]),
    ("futures-executor", &["thread-pool"]),
];

/// Spawning paths, for the spawn-sites rule.
const TOKIO_SPAWNS: &[&str] = &["tokio::spawn", "tokio::task::spawn"];
const ANY_SPAWNS: &[&str] = &["tokio::spawn", "tokio::task::spawn", "thread::spawn"];

/// Where runtime spawns are allowed (a path ending in `/` is a directory), and why.
pub const SPAWN_ALLOWED: &[(&str, &str)] = &[
    ("sim/src/executor/", "the simulator's executor is a runtime implementation"),
    ("daemon/src/rt.rs", "TokioRt::spawn_raw is the daemon's runtime implementation"),
];

/// The workspace members whose `.rs` files must begin with `//!`.
const WORKSPACE_MEMBERS: &[&str] = &["engine", "sim", "daemon", "tests", "xtask"];

/// Run every rule on the tree at `root`; fail naming each broken rule and `file:line`.
pub fn tidy(root: &Path) -> Result<()> {
    let mut broken = Vec::new();
    let mut rule = |name: &str, why: &str, violations: Vec<String>| {
        if !violations.is_empty() {
            broken.push(format!("tidy rule `{name}` broken:\n  {}\n{why}", violations.join("\n  ")));
        }
    };

    let manifest: Table = read(&root.join("engine/Cargo.toml"))?.parse().context("engine/Cargo.toml")?;
    let workspace: Table = read(&root.join("Cargo.toml"))?.parse().context("Cargo.toml")?;
    let found = engine_dependencies(&manifest, &workspace);
    rule(
        "engine-dependencies",
        "The engine reaches the world only through engine::rt and engine::port (DESIGN §2).",
        found.into_iter().map(|message| format!("engine/Cargo.toml: {message}")).collect(),
    );

    let mut selects = Vec::new();
    for (path, text) in rust_files(root, "engine/src")? {
        selects.extend(
            unbiased_selects(&text).into_iter().map(|line| format!("{path}:{line}: `select!` without `biased;` first")),
        );
    }
    rule("biased-select", "tokio's unbiased select! draws from an RNG the simulator does not control.", selects);

    let mut headers = Vec::new();
    for member in WORKSPACE_MEMBERS {
        for (path, text) in rust_files(root, member)? {
            if !has_doc_header(&text) {
                headers.push(format!("{path}:1: no `//!` doc comment at the top"));
            }
        }
    }
    rule("doc-header", "Every file opens with a `//!` paragraph saying what it owns and promises.", headers);

    let mut spawns = Vec::new();
    // The daemon's own threads are its business; its tasks are not.
    for (scope, denied) in [("engine/src", ANY_SPAWNS), ("sim/src", ANY_SPAWNS), ("daemon/src", TOKIO_SPAWNS)] {
        for (path, text) in rust_files(root, scope)? {
            if !spawn_allowed(&path) {
                spawns.extend(
                    spawn_sites(&text, denied).into_iter().map(|(line, what)| format!("{path}:{line}: `{what}`")),
                );
            }
        }
    }
    rule("spawn-sites", "Spawn through engine::task::Tasks (exceptions: SPAWN_ALLOWED in xtask/src/tidy.rs).", spawns);

    let mut outside = Vec::new();
    for member in ["engine", "sim", "daemon", "tests"] {
        for (path, text) in files(root, member, &[".rs", ".toml"])? {
            let comment = if path.ends_with(".toml") { "#" } else { "//" };
            outside.extend(
                reads_outside_repository(&text, comment)
                    .into_iter()
                    .map(|line| format!("{path}:{line}: reads `../shared`")),
            );
        }
    }
    rule(
        "self-contained",
        "Tests stand on the repository alone: copy the data in (engine/src/loki/testdata/).",
        outside,
    );

    if !broken.is_empty() {
        bail!("{}", broken.join("\n\n"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The rules.

/// What is wrong with the engine's normal dependencies, one message per finding.
pub fn engine_dependencies(manifest: &Table, workspace: &Table) -> Vec<String> {
    let inherited = table(workspace, &["workspace", "dependencies"]);
    let mut sections = vec![table(manifest, &["dependencies"])];
    if let Some(targets) = manifest.get("target").and_then(Value::as_table) {
        sections.extend(targets.values().filter_map(Value::as_table).map(|target| table(target, &["dependencies"])));
    }
    let mut found = Vec::new();
    for (key, declared) in sections.into_iter().flat_map(|section| section.iter()) {
        let mut dependency = Dependency::from(key, declared);
        if declared.get("workspace").and_then(Value::as_bool) == Some(true) {
            let from = Dependency::from(key, inherited.get(key).unwrap_or(&Value::Table(Table::new())));
            dependency.package = from.package;
            dependency.default_features = from.default_features;
            dependency.features.extend(from.features);
        }
        let Dependency { package, features, default_features } = dependency;
        if ENGINE_DENIED_CRATES.contains(&package.as_str()) {
            found.push(format!(
                "`{key}` is `{package}`: a runtime, Docker/HTTP client, notification, timer or entropy crate"
            ));
        }
        if package == "tokio" {
            let extra: Vec<&String> =
                features.iter().filter(|f| !ENGINE_TOKIO_FEATURES.contains(&f.as_str())).collect();
            if !extra.is_empty() {
                found.push(format!("`{key}` enables {extra:?}: the engine may use only {ENGINE_TOKIO_FEATURES:?}"));
            }
        }
        if let Some((_, denied)) = ENGINE_DENIED_FEATURES.iter().find(|(name, _)| *name == package) {
            let on: Vec<&String> = features.iter().filter(|f| denied.contains(&f.as_str())).collect();
            if !on.is_empty() {
                found.push(format!("`{key}` enables {on:?}: an OS clock, OS entropy or a thread pool"));
            } else if default_features {
                found.push(format!("`{key}` keeps its default features (an OS clock, entropy or threads): set default-features = false"));
            }
        }
    }
    found
}

/// Lines (1-based) of every `select!` whose body does not begin with `biased;`.
pub fn unbiased_selects(source: &str) -> Vec<usize> {
    let code = code(source);
    let mut found = Vec::new();
    for (offset, _) in code.match_indices("select!") {
        let before = &code[..offset];
        let invocation = !before.ends_with(is_ident_char) && !before.trim_end().ends_with("macro_rules!");
        let body = code[offset + "select!".len()..].trim_start();
        let opened = body.strip_prefix(['{', '(', '[']).map(str::trim_start);
        if invocation && !opened.is_some_and(|body| body.starts_with("biased;")) {
            found.push(1 + before.matches('\n').count());
        }
    }
    found
}

/// Whether `source` begins with a `//!` comment.
pub fn has_doc_header(source: &str) -> bool {
    source.strip_prefix('\u{feff}').unwrap_or(source).starts_with("//!")
}

/// `(line, path)` for every mention of one of the `denied` spawn paths in code.
pub fn spawn_sites(source: &str, denied: &[&str]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in code(source).lines().enumerate() {
        // Whole paths only: `tokio::task::spawn_blocking` (awaited in place) is not a spawn.
        let names = |denied: &&&str| {
            line.match_indices(**denied).any(|(at, _)| !line[at + denied.len()..].starts_with(is_ident_char))
        };
        if let Some(what) = denied.iter().find(names) {
            found.push((index + 1, what.to_string()));
        }
    }
    found
}

/// Lines of code that name `../shared`, the data outside the repository; comments
/// (`//` in Rust, `#` in TOML) do not count.
pub fn reads_outside_repository(source: &str, comment: &str) -> Vec<usize> {
    let lines = source.lines().map(|line| line.split_once(comment).map_or(line, |(code, _)| code));
    lines.enumerate().filter(|(_, line)| line.contains("../shared")).map(|(index, _)| index + 1).collect()
}

pub fn spawn_allowed(path: &str) -> bool {
    SPAWN_ALLOWED
        .iter()
        .any(|(allowed, _)| if allowed.ends_with('/') { path.starts_with(allowed) } else { path == *allowed })
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `source` with every `//` comment cut off its line (line numbers kept).
fn code(source: &str) -> String {
    source.lines().map(|line| line.split_once("//").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// One dependency as it resolves: its package, features and whether defaults are on.
struct Dependency {
    package: String,
    features: Vec<String>,
    default_features: bool,
}

impl Dependency {
    fn from(key: &str, declared: &Value) -> Dependency {
        let field = |name: &str| declared.get(name).or_else(|| declared.get(name.replace('-', "_")));
        Dependency {
            package: field("package").and_then(Value::as_str).unwrap_or(key).to_string(),
            features: field("features")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            default_features: field("default-features").and_then(Value::as_bool).unwrap_or(true),
        }
    }
}

/// The table at `path` under `root`, or an empty one.
fn table<'a>(root: &'a Table, path: &[&str]) -> &'a Table {
    static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    let mut current = root;
    for key in path {
        match current.get(*key).and_then(Value::as_table) {
            Some(next) => current = next,
            None => return EMPTY.get_or_init(Table::new),
        }
    }
    current
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn rust_files(root: &Path, dir: &str) -> Result<Vec<(String, String)>> {
    files(root, dir, &[".rs"])
}

/// `(path relative to root, text)` of every file under `root/dir` whose name ends with
/// one of `endings`, sorted; build output, snapshots' data and hidden directories skipped.
fn files(root: &Path, dir: &str, endings: &[&str]) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![root.join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                if !(name == "target" || name.starts_with('.')) {
                    pending.push(entry.path());
                }
            } else if endings.iter().any(|ending| name.ends_with(ending)) {
                let relative =
                    entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_string_lossy().replace('\\', "/");
                found.push((relative, read(&entry.path())?));
            }
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests;
