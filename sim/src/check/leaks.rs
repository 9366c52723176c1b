//! Zero live-task delta: at the quiet point (no containers, queue drained) the live
//! engine tasks, counted by kind and spawn site, equal the baseline taken right after
//! start with an empty world; after shutdown there are none.

use std::collections::BTreeMap;

use engine::task::{SpawnSite, TaskKind, TaskRegistry};

pub type Census = BTreeMap<(TaskKind, SpawnSite), u64>;

pub fn census(registry: &TaskRegistry) -> Census {
    registry.alive_by_site()
}

/// Every (kind, site) whose count differs from the baseline, as report lines.
pub fn delta(baseline: &Census, now: &Census) -> Vec<String> {
    let mut keys: Vec<&(TaskKind, SpawnSite)> = baseline.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (before, after) = (baseline.get(key).copied().unwrap_or(0), now.get(key).copied().unwrap_or(0));
            (before != after).then(|| format!("{} at {}: {} live, baseline {}", key.0.as_str(), key.1, after, before))
        })
        .collect()
}

/// Live tasks by kind and site, for failure reports.
pub fn describe(census: &Census) -> Vec<String> {
    census.iter().map(|((kind, site), count)| format!("{count} × {} at {site}", kind.as_str())).collect()
}
