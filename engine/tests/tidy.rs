//! Repository rules as a test (after rust-analyzer's `xtask/src/tidy.rs` and
//! TigerBeetle's `src/tidy.zig`): plain `cargo test` fails, naming `file:line`, when the
//! tree breaks a rule that the compiler cannot check. The rules are DESIGN.md §2's
//! architecture invariants:
//!
//! - **engine-dependencies**: `engine/Cargo.toml` depends on no runtime, no Docker or
//!   HTTP client, no file-system notification and no OS clock or entropy (tokio only
//!   with `sync` and `macros`).
//! - **engine-determinism**: `engine/src` never reads a clock, draws OS entropy, spawns
//!   on a runtime, sleeps on a runtime timer or touches the file system; it uses no std
//!   `HashMap`/`HashSet` (per-process random iteration order); every `select!` starts
//!   with `biased;` (tokio's unbiased choice draws from an RNG the simulator does not
//!   control).
//! - **doc-header**: every `.rs` file of the workspace begins with a `//!` comment.
//! - **spawn-sites**: `tokio::spawn` and `std::thread::spawn` appear only in the runtime
//!   implementations (the simulator's executor, the daemon's `rt.rs`); everything else
//!   spawns through `engine::task::Tasks`, which gives every task an owner.
//!
//! Source rules look at code only: comments and string literals are blanked first
//! (keeping line numbers), and `use` trees are expanded, so `use std::time::{Duration,
//! Instant}` is seen as `std::time::Instant`. Each rule is a pure function over text,
//! unit-tested at the bottom of this file on small snippets, so each one can fail.

use std::fmt;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// The rules' parameters.

/// Crates that are a runtime, a Docker or HTTP client, file-system notification, a timer
/// or OS entropy: none of them may be a (normal) dependency of the engine.
const ENGINE_DENIED_CRATES: &[&str] = &[
    "async-std",
    "async-io",
    "async-executor",
    "async-global-executor",
    "smol",
    "madsim",
    "madsim-tokio",
    "mio",
    "bollard",
    "docker-api",
    "shiplift",
    "hyper",
    "hyper-util",
    "h2",
    "reqwest",
    "ureq",
    "isahc",
    "surf",
    "curl",
    "notify",
    "inotify",
    "futures-timer",
    "getrandom",
];

/// The only tokio features the engine may enable: runtime-agnostic primitives.
const ENGINE_TOKIO_FEATURES: &[&str] = &["sync", "macros"];

/// Paths the engine's code must not mention (matched segment by segment anywhere in a
/// path, so `Instant::now` also catches `std::time::Instant::now`), with the reason.
const ENGINE_DENIED_PATHS: &[(&str, &str)] = &[
    ("Instant::now", "reads the OS clock: use Rt::now"),
    ("SystemTime::now", "reads the OS clock: use Rt::wall"),
    ("std::time::Instant", "is the OS clock's type: use engine::rt::Instant"),
    ("thread_rng", "draws OS-seeded entropy: use Rt::rand_u64"),
    ("tokio::spawn", "spawns on tokio: use engine::task::Tasks::spawn"),
    ("tokio::task::spawn", "spawns on tokio: use engine::task::Tasks::spawn"),
    ("tokio::task::spawn_blocking", "spawns on tokio: use engine::task::Tasks::spawn"),
    ("tokio::task::spawn_local", "spawns on tokio: use engine::task::Tasks::spawn"),
    ("tokio::time", "is tokio's timer and clock: use Rt::sleep_until and Rt::now"),
    ("std::fs", "is file-system I/O: go through a port (engine::port)"),
    ("thread::spawn", "spawns an OS thread: use engine::task::Tasks::spawn"),
    ("HashMap", "iterates in a per-process random order: use BTreeMap"),
    ("HashSet", "iterates in a per-process random order: use BTreeSet"),
];

/// A line whose text contains this marker may name `HashMap`/`HashSet`: for a map with a
/// fixed-seed hasher (DESIGN §2 allows it), written in a comment on the same line.
const FIXED_SEED_HASH_MARKER: &str = "tidy: fixed-seed hasher";

/// Spawning functions, for the spawn-sites rule.
const TOKIO_SPAWN_PATHS: &[&str] = &["tokio::spawn", "tokio::task::spawn"];
const THREAD_SPAWN_PATHS: &[&str] = &["thread::spawn"];

/// Where runtime spawns are allowed: the runtime implementations, and test scaffolding
/// that implements a runtime of its own. A path ending in `/` is a directory.
const SPAWN_ALLOWED: &[(&str, &str)] = &[
    ("sim/src/executor/", "the simulator's executor is a runtime implementation"),
    ("daemon/src/rt.rs", "TokioRt::spawn_raw is the daemon's runtime implementation"),
];

/// The workspace members whose `.rs` files must begin with `//!`.
const WORKSPACE_MEMBERS: &[&str] = &["engine", "sim", "daemon", "tests", "xtask"];

// ---------------------------------------------------------------------------------------
// The tests that check the tree.

#[test]
fn engine_manifest_has_no_runtime_or_io_dependencies() {
    let root = workspace_root();
    let manifest = read(&root.join("engine/Cargo.toml"));
    let workspace_manifest = read(&root.join("Cargo.toml"));
    let violations: Vec<Violation> = check_engine_manifest(&manifest, &workspace_manifest)
        .into_iter()
        .map(|(line, message)| Violation::new("engine/Cargo.toml", line, message))
        .collect();
    report(
        "engine-dependencies",
        "The engine reaches the world only through engine::rt and engine::port (DESIGN §2); \
         put the dependency in capture-daemon or capture-sim instead.",
        violations,
    );
}

#[test]
fn engine_source_is_deterministic() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for path in rust_files(&root.join("engine/src")) {
        let relative = relative(&root, &path);
        for (line, message) in check_engine_source(&read(&path)) {
            violations.push(Violation::new(&relative, line, message));
        }
    }
    report(
        "engine-determinism",
        "Time, randomness and spawning enter the engine only through engine::rt::Rt, and no \
         decision may depend on hidden randomness (DESIGN §2).",
        violations,
    );
}

#[test]
fn every_rust_file_has_a_doc_header() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for member in WORKSPACE_MEMBERS {
        for path in rust_files(&root.join(member)) {
            if let Some(message) = check_doc_header(&read(&path)) {
                violations.push(Violation::new(&relative(&root, &path), 1, message));
            }
        }
    }
    report(
        "doc-header",
        "Every file opens with a `//!` paragraph saying what it owns and promises (STYLE 1, 15).",
        violations,
    );
}

#[test]
fn runtime_spawns_only_in_runtime_implementations() {
    let root = workspace_root();
    let mut violations = Vec::new();
    let scopes: [(&str, &[&str]); 3] = [
        ("engine/src", &[TOKIO_SPAWN_PATHS, THREAD_SPAWN_PATHS].concat()),
        ("sim/src", &[TOKIO_SPAWN_PATHS, THREAD_SPAWN_PATHS].concat()),
        // The daemon's own threads are its business; its tasks are not.
        ("daemon/src", TOKIO_SPAWN_PATHS),
    ];
    for (scope, denied) in scopes {
        for path in rust_files(&root.join(scope)) {
            let relative = relative(&root, &path);
            if spawn_allowed(&relative) {
                continue;
            }
            for (line, message) in check_spawns(&read(&path), denied) {
                violations.push(Violation::new(&relative, line, message));
            }
        }
    }
    report(
        "spawn-sites",
        "Spawn through engine::task::Tasks, which gives every task an owner that cancels and \
         joins it; only runtime implementations call tokio::spawn or std::thread::spawn \
         (allowed: see SPAWN_ALLOWED in engine/tests/tidy.rs).",
        violations,
    );
}

// ---------------------------------------------------------------------------------------
// Reporting and files.

struct Violation {
    path: String,
    line: usize,
    message: String,
}

impl Violation {
    fn new(path: &str, line: usize, message: String) -> Violation {
        Violation { path: path.to_string(), line, message }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.message)
    }
}

fn report(rule: &str, why: &str, violations: Vec<Violation>) {
    if violations.is_empty() {
        return;
    }
    let mut text = format!("tidy rule `{rule}` broken {} time(s):\n", violations.len());
    for violation in &violations {
        text.push_str(&format!("  {violation}\n"));
    }
    text.push_str(why);
    panic!("{text}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("engine/ has a parent").to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn relative(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

/// Every `.rs` file under `dir`, sorted; build output and hidden directories skipped.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if !(name == "target" || name.starts_with("target-") || name.starts_with('.')) {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn spawn_allowed(relative: &str) -> bool {
    SPAWN_ALLOWED.iter().any(
        |(allowed, _)| {
            if allowed.ends_with('/') {
                relative.starts_with(allowed)
            } else {
                relative == *allowed
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Rule: doc header.

/// `None` if `source` begins with a `//!` comment, else what is wrong.
fn check_doc_header(source: &str) -> Option<String> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    if source.starts_with("//!") {
        None
    } else {
        Some("file does not begin with a `//!` doc comment saying what it is for".to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Rules: engine source and spawn sites.

/// `(line, message)` for every denied path, `HashMap`/`HashSet` and unbiased `select!`.
fn check_engine_source(source: &str) -> Vec<(usize, String)> {
    let code = blank_comments_and_strings(source);
    let lines: Vec<&str> = source.lines().collect();
    let tokens = tokenize(&code);
    let mut found = Vec::new();
    for path in paths(&tokens) {
        let line = line_of(&code, path.offset);
        // The first denied pattern a path contains is enough to report it.
        let denied = ENGINE_DENIED_PATHS.iter().find(|(denied, _)| {
            let is_hash = *denied == "HashMap" || *denied == "HashSet";
            let marked = lines.get(line - 1).is_some_and(|text| text.contains(FIXED_SEED_HASH_MARKER));
            path.contains(denied) && !(is_hash && marked)
        });
        if let Some((_, why)) = denied {
            found.push((line, format!("`{}` {why}", path.text())));
        }
    }
    for offset in unbiased_selects(&tokens) {
        found.push((
            line_of(&code, offset),
            "`select!` without `biased;` as its first token: tokio picks a branch with a \
             thread-local RNG the simulator does not control"
                .to_string(),
        ));
    }
    found.sort();
    found.dedup();
    found
}

/// `(line, message)` for every mention of one of the `denied` spawn paths.
fn check_spawns(source: &str, denied: &[&str]) -> Vec<(usize, String)> {
    let code = blank_comments_and_strings(source);
    let tokens = tokenize(&code);
    let mut found = Vec::new();
    for path in paths(&tokens) {
        if denied.iter().any(|denied| path.contains(denied)) {
            found.push((line_of(&code, path.offset), format!("`{}` outside a runtime implementation", path.text())));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// `source` with every comment and string/char literal replaced by spaces, newlines
/// kept, so offsets and line numbers are those of the original.
fn blank_comments_and_strings(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        out.extend(chars[from..to].iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let mut j = i;
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j.min(chars.len()));
            i = j;
        } else if c == '"' {
            let end = end_of_quoted(&chars, i, '"');
            blank(&mut out, i, end);
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime / label ('a, 'static).
            let end = if next == Some('\\') {
                end_of_quoted(&chars, i, '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                i + 3
            } else {
                i + 1
            };
            if end > i + 1 {
                blank(&mut out, i, end);
            } else {
                out.push(c);
            }
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
            if raw && chars.get(i + hashes) == Some(&'"') {
                // Raw string: ends at `"` followed by the same number of `#`.
                let mut j = i + hashes + 1;
                let closing = |j: usize| chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#'));
                while j < chars.len() && !closing(j) {
                    j += 1;
                }
                let end = (j + 1 + hashes).min(chars.len());
                blank(&mut out, start, end);
                i = end;
            } else if matches!(word.as_str(), "b" | "c") && matches!(chars.get(i), Some('"' | '\'')) {
                let end = end_of_quoted(&chars, i, chars[i]);
                blank(&mut out, start, end);
                i = end;
            } else {
                out.extend(&chars[start..i]);
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The index just past the closing `quote` of the literal opening at `start`.
fn end_of_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    chars.len()
}

fn line_of(text: &str, char_offset: usize) -> usize {
    1 + text.chars().take(char_offset).filter(|&c| c == '\n').count()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Identifiers, `::` and single punctuation, each with its char offset. Whitespace is
/// skipped; input has been through [`blank_comments_and_strings`].
fn tokenize(code: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), start));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push((Token::PathSep, i));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), i));
            i += 1;
        }
    }
    tokens
}

/// A path as written (`tokio::time::sleep`), or as a `use` tree leaf expands to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CodePath {
    segments: Vec<String>,
    /// Char offset of the path's last segment.
    offset: usize,
}

impl CodePath {
    fn text(&self) -> String {
        self.segments.join("::")
    }

    /// Whether `pattern`'s segments appear, in a row, among this path's segments.
    fn contains(&self, pattern: &str) -> bool {
        let pattern: Vec<&str> = pattern.split("::").collect();
        self.segments.windows(pattern.len()).any(|window| window.iter().zip(&pattern).all(|(a, b)| a == b))
    }
}

/// Every path of the code: `a::b::c` sequences outside `use` items, and every leaf of
/// every `use` tree with its prefix.
fn paths(tokens: &[(Token, usize)]) -> Vec<CodePath> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let after_sep = i > 0 && tokens[i - 1].0 == Token::PathSep;
        match &tokens[i].0 {
            Token::Ident(word) if word == "use" && !after_sep => {
                i += 1;
                let mut leaves = Vec::new();
                i = parse_use_tree(tokens, i, &[], &mut leaves);
                found.extend(leaves);
            }
            Token::Ident(_) | Token::PathSep => {
                let mut segments = Vec::new();
                let mut offset = tokens[i].1;
                while i < tokens.len() {
                    match &tokens[i].0 {
                        Token::Ident(word) => {
                            segments.push(word.clone());
                            offset = tokens[i].1;
                            i += 1;
                            if tokens.get(i).map(|t| &t.0) != Some(&Token::PathSep) {
                                break;
                            }
                        }
                        Token::PathSep => i += 1,
                        Token::Punct(_) => break,
                    }
                }
                if !segments.is_empty() {
                    found.push(CodePath { segments, offset });
                }
            }
            Token::Punct(_) => i += 1,
        }
    }
    found
}

/// Parse one use tree starting at `i` (after `use`, or inside `{}`), push its leaves
/// prefixed by `prefix`, and return the index after it (at `,`, `}` or after `;`).
fn parse_use_tree(tokens: &[(Token, usize)], mut i: usize, prefix: &[String], leaves: &mut Vec<CodePath>) -> usize {
    let mut segments: Vec<String> = prefix.to_vec();
    let mut offset = tokens.get(i).map_or(0, |t| t.1);
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::PathSep => i += 1,
            Token::Ident(word) if word == "as" => i += 2, // the alias is not a path
            Token::Ident(word) => {
                if word != "self" {
                    segments.push(word.clone());
                }
                offset = tokens[i].1;
                i += 1;
            }
            Token::Punct('{') => {
                i += 1;
                while i < tokens.len() {
                    match tokens[i].0 {
                        Token::Punct('}') => {
                            i += 1;
                            break;
                        }
                        Token::Punct(',') => i += 1,
                        _ => i = parse_use_tree(tokens, i, &segments, leaves),
                    }
                }
                return skip_semicolon(tokens, i);
            }
            Token::Punct('*') => {
                offset = tokens[i].1;
                i += 1;
            }
            Token::Punct(_) => break,
        }
    }
    if !segments.is_empty() {
        leaves.push(CodePath { segments, offset });
    }
    skip_semicolon(tokens, i)
}

fn skip_semicolon(tokens: &[(Token, usize)], i: usize) -> usize {
    if tokens.get(i).map(|t| &t.0) == Some(&Token::Punct(';')) {
        i + 1
    } else {
        i
    }
}

/// Offsets of every `select!` whose body does not begin with `biased;`.
fn unbiased_selects(tokens: &[(Token, usize)]) -> Vec<usize> {
    let mut found = Vec::new();
    for (i, (token, offset)) in tokens.iter().enumerate() {
        if *token != Token::Ident("select".to_string()) || tokens.get(i + 1).map(|t| &t.0) != Some(&Token::Punct('!')) {
            continue;
        }
        let opens = matches!(tokens.get(i + 2).map(|t| &t.0), Some(Token::Punct('{' | '(' | '[')));
        let biased = tokens.get(i + 3).map(|t| &t.0) == Some(&Token::Ident("biased".to_string()))
            && tokens.get(i + 4).map(|t| &t.0) == Some(&Token::Punct(';'));
        // `macro_rules! select` and the like are not invocations.
        let definition = i > 0 && tokens[i - 1].0 == Token::Punct('!');
        if opens && !biased && !definition {
            found.push(*offset);
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// Rule: engine dependencies (a line-based reading of Cargo.toml: enough for the shapes
// Cargo accepts in practice, and it knows line numbers).

/// One dependency as declared: its key, effective package name, fields, and line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Dependency {
    key: String,
    line: usize,
    /// `key = value` fields (`version`, `features`, `default-features`, `workspace`,
    /// `package`, ...), values as written.
    fields: Vec<(String, String)>,
}

impl Dependency {
    fn field(&self, name: &str) -> Option<&str> {
        let alternative = name.replace('-', "_");
        self.fields.iter().find(|(key, _)| *key == name || *key == alternative).map(|(_, value)| value.as_str())
    }

    fn package(&self) -> String {
        self.field("package").map_or_else(|| self.key.clone(), unquote)
    }

    fn features(&self) -> Vec<String> {
        self.field("features").map(string_list).unwrap_or_default()
    }

    fn default_features(&self) -> Option<bool> {
        self.field("default-features").map(|value| value.trim() == "true")
    }

    fn inherits_workspace(&self) -> bool {
        self.field("workspace").is_some_and(|value| value.trim() == "true")
    }
}

/// `(line, message)` for every runtime, client or I/O dependency of the engine.
fn check_engine_manifest(manifest: &str, workspace_manifest: &str) -> Vec<(usize, String)> {
    let workspace = dependencies(workspace_manifest, |section| section == "workspace.dependencies");
    let mut found = Vec::new();
    for dependency in dependencies(manifest, is_normal_dependency_section) {
        let inherited = dependency
            .inherits_workspace()
            .then(|| workspace.iter().find(|candidate| candidate.key == dependency.key))
            .flatten();
        let package = inherited.map_or_else(|| dependency.package(), Dependency::package);
        let mut features = dependency.features();
        features.extend(inherited.map(Dependency::features).unwrap_or_default());
        // With `workspace = true`, default-features comes from the workspace entry.
        let default_features = match inherited {
            Some(inherited) => inherited.default_features().unwrap_or(true),
            None => dependency.default_features().unwrap_or(true),
        };
        let named =
            if package == dependency.key { package.clone() } else { format!("{} (package {package})", dependency.key) };
        let line = dependency.line;
        if ENGINE_DENIED_CRATES.contains(&package.as_str()) {
            found.push((line, format!("engine depends on `{named}`: a runtime, Docker/HTTP client, file-system notification, timer or entropy crate")));
        }
        let denied_features: &[&str] = match package.as_str() {
            "tokio" => {
                let extra: Vec<&String> =
                    features.iter().filter(|f| !ENGINE_TOKIO_FEATURES.contains(&f.as_str())).collect();
                if !extra.is_empty() {
                    found.push((line, format!("`{named}` enables {extra:?}: the engine may use only {ENGINE_TOKIO_FEATURES:?} (runtime-agnostic primitives)")));
                }
                &[]
            }
            "chrono" => &["clock", "now", "default"],
            "time" => &["std", "local-offset", "default"],
            "rand" => &["std", "thread_rng", "os_rng", "getrandom", "default"],
            "futures" | "futures-executor" => &["executor", "thread-pool", "default"],
            _ => &[],
        };
        let on: Vec<&String> = features.iter().filter(|f| denied_features.contains(&f.as_str())).collect();
        if !on.is_empty() {
            found.push((line, format!("`{named}` enables {on:?}: an OS clock, OS entropy or a thread pool")));
        } else if !denied_features.is_empty() && default_features {
            found.push((line, format!("`{named}` with default features brings an OS clock, OS entropy or a thread pool: set default-features = false")));
        }
    }
    found
}

fn is_normal_dependency_section(section: &str) -> bool {
    section == "dependencies" || (section.starts_with("target.") && section.ends_with(".dependencies"))
}

/// The dependencies declared in sections for which `wanted(section)` holds, both as
/// `name = ...` lines and as `[section.name]` tables.
fn dependencies(manifest: &str, wanted: impl Fn(&str) -> bool) -> Vec<Dependency> {
    let mut found: Vec<Dependency> = Vec::new();
    // Some(None): inside a wanted list section; Some(Some(i)): inside the table of found[i].
    let mut current: Option<Option<usize>> = None;
    for (index, key, value) in key_values(manifest) {
        let line = index + 1;
        if key.starts_with('[') {
            let section = key.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            current = if wanted(&section) {
                Some(None)
            } else if let Some((_, name)) = section.rsplit_once('.').filter(|(parent, _)| wanted(parent)) {
                found.push(Dependency { key: unquote(name), line, fields: Vec::new() });
                Some(Some(found.len() - 1))
            } else {
                None
            };
            continue;
        }
        match current {
            Some(None) => match key.split_once('.') {
                // A dotted key: `bytes.workspace = true`, `tokio.features = [..]`.
                Some((name, field)) => {
                    let name = unquote(name);
                    let field = (unquote(field), value);
                    match found.iter_mut().rev().find(|dependency| dependency.key == name) {
                        Some(dependency) => dependency.fields.push(field),
                        None => found.push(Dependency { key: name, line, fields: vec![field] }),
                    }
                }
                None => {
                    let fields = if value.starts_with('{') {
                        inline_table(&value)
                    } else {
                        vec![("version".to_string(), value.clone())]
                    };
                    found.push(Dependency { key: unquote(&key), line, fields });
                }
            },
            Some(Some(table)) => found[table].fields.push((unquote(&key), value)),
            None => {}
        }
    }
    found
}

/// `(line index, key, value)` per logical line; section headers come as `([..], "")`.
/// Comments are dropped and values spanning lines (open `[`/`{`) are joined.
fn key_values(manifest: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = manifest.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let mut text = strip_toml_comment(lines[i]).trim().to_string();
        i += 1;
        if text.is_empty() {
            continue;
        }
        if text.starts_with('[') {
            found.push((start, text, String::new()));
            continue;
        }
        while depth(&text) > 0 && i < lines.len() {
            text.push(' ');
            text.push_str(strip_toml_comment(lines[i]).trim());
            i += 1;
        }
        if let Some((key, value)) = split_top_level(&text, '=').split_first().filter(|(_, rest)| !rest.is_empty()) {
            found.push((start, key.trim().to_string(), rest_joined(value, '=').trim().to_string()));
        }
    }
    found
}

fn rest_joined(parts: &[String], separator: char) -> String {
    parts.join(&separator.to_string())
}

/// Fields of an inline table `{ a = 1, b = [..] }`.
fn inline_table(value: &str) -> Vec<(String, String)> {
    let inner = value.trim().trim_start_matches('{').trim_end_matches('}');
    split_top_level(inner, ',')
        .iter()
        .filter_map(|field| {
            let parts = split_top_level(field, '=');
            let (key, rest) = parts.split_first()?;
            (!rest.is_empty()).then(|| (unquote(key.trim()), rest_joined(rest, '=').trim().to_string()))
        })
        .collect()
}

/// Split at `separator` outside strings, brackets and braces.
fn split_top_level(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut nesting, mut quote) = (0i32, None::<char>);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => nesting += 1,
            (None, ']' | '}') => nesting -= 1,
            (None, c) if c == separator && nesting == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts.into_iter().filter(|part| !part.trim().is_empty()).collect()
}

/// Open brackets and braces minus closed ones, outside strings.
fn depth(text: &str) -> i32 {
    let (mut nesting, mut quote) = (0, None::<char>);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => nesting += 1,
            (None, ']' | '}') => nesting -= 1,
            _ => {}
        }
    }
    nesting
}

fn strip_toml_comment(line: &str) -> &str {
    let mut quote = None::<char>;
    for (index, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return &line[..index],
            _ => {}
        }
    }
    line
}

fn unquote(text: &str) -> String {
    text.trim().trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// The strings of a TOML array `["a", "b"]`.
fn string_list(value: &str) -> Vec<String> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    split_top_level(inner, ',').iter().map(|item| unquote(item)).filter(|item| !item.is_empty()).collect()
}

// ---------------------------------------------------------------------------------------
// Unit tests of the rules: each rule must be able to fail.

mod rules {
    use super::*;

    fn engine_lines(source: &str) -> Vec<usize> {
        check_engine_source(source).into_iter().map(|(line, _)| line).collect()
    }

    #[test]
    fn clock_reads_are_flagged_in_code_only() {
        assert_eq!(engine_lines("fn f() {\n    let t = std::time::Instant::now();\n}\n"), [2]);
        assert_eq!(engine_lines("let t = Instant::now();"), [1]);
        assert_eq!(engine_lines("let t = SystemTime::now();"), [1]);
        assert_eq!(
            engine_lines("// Instant::now() would be wrong here\n/* SystemTime::now() */\n"),
            Vec::<usize>::new()
        );
        assert_eq!(engine_lines("/// Never call `Instant::now`.\nfn f() {}\n//! thread_rng\n"), Vec::<usize>::new());
        assert_eq!(
            engine_lines("/* outer /* nested Instant::now() */ still comment */ let x = 1;"),
            Vec::<usize>::new()
        );
        assert_eq!(engine_lines("let s = \"Instant::now()\"; let r = r#\"tokio::spawn\"#;"), Vec::<usize>::new());
        // The engine's own clock type is fine; reading it through Rt too.
        assert_eq!(engine_lines("use crate::rt::Instant;\nlet now: Instant = rt.now();\n"), Vec::<usize>::new());
    }

    #[test]
    fn use_trees_are_expanded() {
        assert_eq!(engine_lines("use std::time::{Duration, Instant};"), [1]);
        assert_eq!(engine_lines("use std::time::Duration;"), Vec::<usize>::new());
        assert_eq!(engine_lines("use std::{\n    fs,\n    io,\n};"), [2]);
        assert_eq!(engine_lines("use std::fs::File;"), [1]);
        assert_eq!(engine_lines("use tokio::{sync::mpsc, time::sleep};"), [1]);
        assert_eq!(engine_lines("use tokio::sync::{mpsc, Semaphore};"), Vec::<usize>::new());
        assert_eq!(engine_lines("use tokio::spawn as go;"), [1]);
        assert_eq!(engine_lines("use rand::thread_rng;"), [1]);
    }

    #[test]
    fn spawns_timers_and_threads_are_flagged() {
        assert_eq!(engine_lines("tokio::spawn(async {});"), [1]);
        assert_eq!(engine_lines("tokio::task::spawn(async {});"), [1]);
        assert_eq!(engine_lines("tokio::task::spawn_blocking(|| ());"), [1]);
        assert_eq!(engine_lines("tokio::time::sleep(d).await;"), [1]);
        assert_eq!(engine_lines("std::thread::spawn(|| ());"), [1]);
        assert_eq!(engine_lines("let rng = rand::thread_rng();"), [1]);
        assert_eq!(engine_lines("let data = std::fs::read(path);"), [1]);
        assert_eq!(engine_lines("tasks.spawn(TaskKind::Sink, future);"), Vec::<usize>::new());
    }

    #[test]
    fn std_hash_collections_are_flagged_unless_marked_fixed_seed() {
        assert_eq!(engine_lines("use std::collections::HashMap;"), [1]);
        assert_eq!(engine_lines("use std::collections::{BTreeMap, HashSet};"), [1]);
        assert_eq!(engine_lines("let m: std::collections::HashMap<u8, u8> = Default::default();"), [1]);
        assert_eq!(engine_lines("use std::collections::{BTreeMap, BTreeSet};"), Vec::<usize>::new());
        assert_eq!(engine_lines("#[derive(Hash)] struct Key;"), Vec::<usize>::new());
        assert_eq!(engine_lines("/// Not a std `HashMap`.\nstruct Map;"), Vec::<usize>::new());
        assert_eq!(
            engine_lines("type Fixed = HashMap<u8, u8, FixedState>; // tidy: fixed-seed hasher\n"),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn select_must_start_with_biased() {
        assert_eq!(engine_lines("tokio::select! {\n    biased;\n    _ = a => {}\n}\n"), Vec::<usize>::new());
        assert_eq!(engine_lines("tokio::select! { biased; _ = a => {} }"), Vec::<usize>::new());
        assert_eq!(engine_lines("let x = tokio::select! {\n    _ = a => {}\n    _ = b => {}\n};\n"), [1]);
        assert_eq!(engine_lines("futures::select!(_ = a => {}, _ = b => {});"), [1]);
        // `biased;` later in the body does not count.
        assert_eq!(engine_lines("select! {\n    _ = a => {}\n    biased;\n}\n"), [1]);
        // A comment between `{` and `biased;` is fine.
        assert_eq!(engine_lines("tokio::select! { // first\n biased; _ = a => {} }"), Vec::<usize>::new());
        assert_eq!(engine_lines("futures::select_biased! { _ = a => {} }"), Vec::<usize>::new());
    }

    #[test]
    fn char_literals_and_lifetimes_do_not_confuse_the_scanner() {
        let source = "fn f<'a>(x: &'a str) -> char { let q = '\"'; let s = '\\''; 'x' }\nlet t = Instant::now();\n";
        assert_eq!(engine_lines(source), [2]);
        assert_eq!(engine_lines("let b = b\"Instant::now\"; let c = b'x';"), Vec::<usize>::new());
    }

    #[test]
    fn doc_header_is_required() {
        assert_eq!(check_doc_header("//! What this is.\nfn f() {}\n"), None);
        assert!(check_doc_header("/// An item doc is not a module doc.\nfn f() {}\n").is_some());
        assert!(check_doc_header("use std::fmt;\n//! too late\n").is_some());
        assert!(check_doc_header("\n//! after a blank line\n").is_some());
        assert!(check_doc_header("").is_some());
    }

    #[test]
    fn spawn_sites_are_checked_and_the_allow_list_applies() {
        let tokio_only = TOKIO_SPAWN_PATHS;
        let both = [TOKIO_SPAWN_PATHS, THREAD_SPAWN_PATHS].concat();
        assert_eq!(check_spawns("fn f() {\n    tokio::spawn(fut);\n}\n", tokio_only).len(), 1);
        assert_eq!(check_spawns("drop(tokio::task::spawn(fut));", tokio_only).len(), 1);
        assert_eq!(check_spawns("// tokio::spawn(fut) is never called here", tokio_only).len(), 0);
        assert_eq!(check_spawns("std::thread::spawn(|| ());", tokio_only).len(), 0);
        assert_eq!(check_spawns("std::thread::spawn(|| ());", &both).len(), 1);
        assert_eq!(
            check_spawns("use std::thread;\nthread::spawn(|| ());\n", &both),
            [(2, "`thread::spawn` outside a runtime implementation".to_string())]
        );
        assert_eq!(check_spawns("tasks.spawn(TaskKind::Http, serve());", &both).len(), 0);
        assert!(spawn_allowed("sim/src/executor/rt.rs"));
        assert!(spawn_allowed("daemon/src/rt.rs"));
        assert!(!spawn_allowed("daemon/src/http/server.rs"));
        assert!(!spawn_allowed("sim/src/world/docker/mod.rs"));
    }

    const WORKSPACE: &str = r#"
[workspace.dependencies]
tokio = { version = "1", default-features = false }
futures = { version = "0.3", default-features = false, features = ["std", "async-await"] }
futures-full = { package = "futures", version = "0.3" }
"#;

    fn manifest_lines(manifest: &str) -> Vec<usize> {
        check_engine_manifest(manifest, WORKSPACE).into_iter().map(|(line, _)| line).collect()
    }

    #[test]
    fn engine_manifest_allows_sync_primitives_only() {
        let ok = "[package]\nname = \"x\"\n\n[dependencies]\nbytes = \"1\"\ntokio = { workspace = true, features = [\"sync\", \"macros\"] }\nfutures.workspace = true\n";
        // `futures.workspace = true` is a dotted key: the dependency `futures`.
        assert_eq!(manifest_lines(ok), Vec::<usize>::new());
        let rt = "[dependencies]\ntokio = { workspace = true, features = [\"sync\", \"rt\"] }\n";
        assert_eq!(manifest_lines(rt), [2]);
        let multiline =
            "[dependencies]\ntokio = { version = \"1\", features = [\n    \"sync\",\n    \"time\", # timers\n] }\n";
        assert_eq!(manifest_lines(multiline), [2]);
        let table = "[dependencies.tokio]\nversion = \"1\"\nfeatures = [\"full\"]\n";
        assert_eq!(manifest_lines(table), [1]);
    }

    #[test]
    fn engine_manifest_denies_runtimes_clients_and_clocks() {
        assert_eq!(manifest_lines("[dependencies]\nbytes = \"1\"\nreqwest = \"0.12\"\n"), [3]);
        assert_eq!(manifest_lines("[dependencies]\nhttp = { package = \"hyper\", version = \"1\" }\n"), [2]);
        assert_eq!(manifest_lines("[target.'cfg(unix)'.dependencies]\nnotify = \"6\"\n"), [2]);
        assert_eq!(manifest_lines("[dependencies]\nchrono = \"0.4\"\n"), [2]);
        assert_eq!(
            manifest_lines(
                "[dependencies]\nchrono = { version = \"0.4\", default-features = false, features = [\"alloc\"] }\n"
            ),
            Vec::<usize>::new()
        );
        assert_eq!(
            manifest_lines(
                "[dependencies]\nchrono = { version = \"0.4\", default-features = false, features = [\"clock\"] }\n"
            ),
            [2]
        );
        assert_eq!(manifest_lines("[dependencies]\nfutures-full.workspace = true\n"), [2]);
        // Dev-dependencies are not the engine's runtime dependencies.
        assert_eq!(
            manifest_lines(
                "[dev-dependencies]\ntokio = { version = \"1\", features = [\"full\"] }\nmadsim = \"0.2\"\n"
            ),
            Vec::<usize>::new()
        );
        // A comment naming a crate is not a dependency.
        assert_eq!(manifest_lines("[dependencies]\n# no reqwest here\nbytes = \"1\"\n"), Vec::<usize>::new());
    }
}
