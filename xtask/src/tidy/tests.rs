//! Tests for [`super`]: the tree is tidy, and each rule fails on a snippet that breaks
//! it (a rule no snippet can break proves nothing).

use std::path::Path;

use super::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent")
}

#[test]
fn the_tree_is_tidy() {
    if let Err(error) = tidy(root()) {
        panic!("{error:#}");
    }
}

const WORKSPACE: &str = r#"
[workspace.dependencies]
tokio = { version = "1", default-features = false }
futures = { version = "0.3", default-features = false, features = ["std", "async-await"] }
futures-full = { package = "futures", version = "0.3" }
"#;

fn manifest(text: &str) -> Vec<String> {
    engine_dependencies(&text.parse().unwrap(), &WORKSPACE.parse().unwrap())
}

#[test]
fn engine_manifest_allows_sync_primitives_only() {
    let ok = "[dependencies]\nbytes = \"1\"\ntokio = { workspace = true, features = [\"sync\", \"macros\"] }\nfutures.workspace = true\n";
    assert_eq!(manifest(ok), Vec::<String>::new());
    assert_eq!(manifest("[dependencies]\ntokio = { workspace = true, features = [\"sync\", \"rt\"] }\n").len(), 1);
    assert_eq!(manifest("[dependencies.tokio]\nversion = \"1\"\nfeatures = [\"full\"]\n").len(), 1);
}

#[test]
fn engine_manifest_denies_runtimes_clients_clocks_and_entropy() {
    assert_eq!(manifest("[dependencies]\nbytes = \"1\"\nreqwest = \"0.12\"\n").len(), 1);
    assert_eq!(manifest("[dependencies]\nhttp = { package = \"hyper\", version = \"1\" }\n").len(), 1);
    assert_eq!(manifest("[target.'cfg(unix)'.dependencies]\nnotify = \"6\"\n").len(), 1);
    assert_eq!(manifest("[dependencies]\nchrono = \"0.4\"\n").len(), 1);
    assert_eq!(manifest("[dependencies]\nchrono = { version = \"0.4\", default-features = false }\n").len(), 0);
    let clock = "[dependencies]\nchrono = { version = \"0.4\", default-features = false, features = [\"clock\"] }\n";
    assert_eq!(manifest(clock).len(), 1);
    // Inherited from the workspace: the package and its default features come from there.
    assert_eq!(manifest("[dependencies]\nfutures-full.workspace = true\n").len(), 1);
    // Dev-dependencies are not the engine's runtime dependencies; comments are not either.
    assert_eq!(manifest("[dev-dependencies]\ntokio = { version = \"1\", features = [\"full\"] }\n").len(), 0);
    assert_eq!(manifest("[dependencies]\n# no reqwest here\nbytes = \"1\"\n").len(), 0);
}

#[test]
fn select_must_start_with_biased() {
    assert_eq!(unbiased_selects("tokio::select! {\n    biased;\n    _ = a => {}\n}\n"), Vec::<usize>::new());
    assert_eq!(unbiased_selects("tokio::select! { // first\n biased; _ = a => {} }"), Vec::<usize>::new());
    assert_eq!(unbiased_selects("fn f() {\n    let x = tokio::select! {\n        _ = a => {}\n    };\n}\n"), [2]);
    assert_eq!(unbiased_selects("futures::select!(_ = a => {}, _ = b => {});"), [1]);
    // `biased;` later in the body does not count.
    assert_eq!(unbiased_selects("select! {\n    _ = a => {}\n    biased;\n}\n"), [1]);
    // Not invocations: another macro, a definition, a comment.
    assert_eq!(unbiased_selects("futures::select_biased! { _ = a => {} }"), Vec::<usize>::new());
    assert_eq!(unbiased_selects("macro_rules! select { () => {} }"), Vec::<usize>::new());
    assert_eq!(unbiased_selects("// a select! { without bias } in prose\n"), Vec::<usize>::new());
}

#[test]
fn doc_header_is_required() {
    assert!(has_doc_header("//! What this is.\nfn f() {}\n"));
    assert!(!has_doc_header("/// An item doc is not a module doc.\nfn f() {}\n"));
    assert!(!has_doc_header("use std::fmt;\n//! too late\n"));
    assert!(!has_doc_header("\n//! after a blank line\n"));
    assert!(!has_doc_header(""));
}

#[test]
fn spawn_sites_are_checked_and_the_allow_list_applies() {
    assert_eq!(spawn_sites("fn f() {\n    tokio::spawn(fut);\n}\n", TOKIO_SPAWNS), [(2, "tokio::spawn".to_string())]);
    assert_eq!(spawn_sites("drop(tokio::task::spawn(fut));", TOKIO_SPAWNS).len(), 1);
    // A blocking call awaited in place is not a task anyone must own.
    assert_eq!(spawn_sites("tokio::task::spawn_blocking(f).await", TOKIO_SPAWNS).len(), 0);
    assert_eq!(spawn_sites("// tokio::spawn(fut) is never called here", TOKIO_SPAWNS).len(), 0);
    assert_eq!(spawn_sites("std::thread::spawn(|| ());", TOKIO_SPAWNS).len(), 0);
    assert_eq!(
        spawn_sites("use std::thread;\nthread::spawn(|| ());\n", ANY_SPAWNS),
        [(2, "thread::spawn".to_string())]
    );
    assert_eq!(spawn_sites("tasks.spawn(TaskKind::Http, serve());", ANY_SPAWNS).len(), 0);
    assert!(spawn_allowed("sim/src/executor/rt.rs"));
    assert!(spawn_allowed("daemon/src/rt.rs"));
    assert!(!spawn_allowed("daemon/src/http/server.rs"));
    assert!(!spawn_allowed("sim/src/world/docker/mod.rs"));
}

#[test]
fn nothing_reads_outside_the_repository() {
    let include = "const A: &[u8] = include_bytes!(\"../../../shared/testdata/loki/a.pb\");\n";
    assert_eq!(reads_outside_repository(include, "//"), [1]);
    assert_eq!(reads_outside_repository("//! See ../shared/DESIGN.md.\nfn f() {}\n", "//"), Vec::<usize>::new());
    assert_eq!(reads_outside_repository("[package]\nbuild = \"../shared/build.rs\"\n", "#"), [2]);
    assert_eq!(reads_outside_repository("# data was in ../shared once\n", "#"), Vec::<usize>::new());
}

/// The rules that moved to clippy stay in the engine's clippy.toml.
#[test]
fn engine_clippy_config_keeps_the_runtime_boundary() {
    let config: Table = read(&root().join("engine/clippy.toml")).unwrap().parse().unwrap();
    let paths = |key: &str| -> Vec<String> {
        let list = config.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        list.iter().filter_map(|entry| entry.get("path")?.as_str().map(str::to_string)).collect()
    };
    let (methods, types) = (paths("disallowed-methods"), paths("disallowed-types"));
    for method in ["std::time::Instant::now", "std::time::SystemTime::now", "tokio::spawn", "std::thread::spawn"] {
        assert!(methods.iter().any(|path| path == method), "engine/clippy.toml no longer disallows {method}");
    }
    for denied in ["std::collections::HashMap", "std::collections::HashSet", "std::time::Instant"] {
        assert!(types.iter().any(|path| path == denied), "engine/clippy.toml no longer disallows {denied}");
    }
}
