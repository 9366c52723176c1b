//! `/debug/tasks`: every live task of the engine's registry, by kind, spawn site and age.
//!
//! Plain text by default (counts per kind, then one line per task, oldest first), JSON
//! with `?format=json`. This is the production view of the simulator's leak oracle: a
//! growing group of same-site tasks is a leak, and the site says where it is spawned.

use engine::rt::Instant;
use engine::task::{TaskKind, TaskRegistry};
use serde_json::json;

pub fn tasks_text(registry: &TaskRegistry, now: Instant) -> String {
    let mut out = String::from("# tasks alive by kind (spawned, finished)\n");
    for kind in TaskKind::ALL {
        out.push_str(&format!(
            "{:<11} {:>6} ({} spawned, {} finished)\n",
            kind.as_str(),
            registry.alive(kind),
            registry.spawned(kind),
            registry.finished(kind)
        ));
    }
    out.push_str("\n# live tasks by kind and spawn site\n");
    for ((kind, site), count) in registry.alive_by_site() {
        out.push_str(&format!("{:<11} {:>6}  {site}\n", kind.as_str(), count));
    }
    out.push_str("\n# live tasks, oldest first: id kind age_seconds site\n");
    for task in registry.live_tasks() {
        let age = now.saturating_duration_since(task.spawned_at).as_secs_f64();
        out.push_str(&format!("{} {} {age:.3} {}\n", task.id, task.kind.as_str(), task.site));
    }
    out
}

pub fn tasks_json(registry: &TaskRegistry, now: Instant) -> String {
    let by_kind: serde_json::Map<String, serde_json::Value> = TaskKind::ALL
        .iter()
        .map(|kind| {
            let counts = json!({
                "alive": registry.alive(*kind),
                "spawned": registry.spawned(*kind),
                "finished": registry.finished(*kind),
            });
            (kind.as_str().to_string(), counts)
        })
        .collect();
    let by_site: Vec<_> = registry
        .alive_by_site()
        .into_iter()
        .map(|((kind, site), count)| json!({"kind": kind.as_str(), "site": site.to_string(), "alive": count}))
        .collect();
    let live: Vec<_> = registry
        .live_tasks()
        .into_iter()
        .map(|task| {
            json!({
                "id": task.id,
                "kind": task.kind.as_str(),
                "site": task.site.to_string(),
                "age_seconds": now.saturating_duration_since(task.spawned_at).as_secs_f64(),
            })
        })
        .collect();
    format!("{}\n", json!({"by_kind": by_kind, "by_site": by_site, "live": live}))
}
