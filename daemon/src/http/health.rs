//! `/health` and `/ready`.
//!
//! `/health` is JSON with one entry per engine component (docker, sink, checkpoint):
//! whether it is up, for how long it has been failing, and its last error. The answer is
//! `200` when every component is up and `503` otherwise, so a plain HTTP check (Docker
//! `HEALTHCHECK`, Kubernetes probe) needs no JSON parsing. `/ready` is `200` once the
//! agent has started and until shutdown begins, `503` otherwise.

use engine::rt::Instant;
use engine::telemetry::{Component, Telemetry};
use serde_json::{json, Map, Value};

/// (status code, JSON body).
pub fn health(telemetry: &Telemetry, now: Instant) -> (u16, String) {
    let mut components = Map::new();
    let mut all_up = true;
    for component in Component::ALL {
        let health = telemetry.health(component);
        let up = health.is_up();
        all_up &= up;
        let failing_for = health.failing_since().map(|since| now.saturating_duration_since(since).as_secs_f64());
        let last_error = health.last_error();
        components.insert(
            component.as_str().to_string(),
            json!({
                "healthy": up,
                "failing_for_seconds": failing_for,
                "last_error": if last_error.is_empty() { Value::Null } else { Value::String(last_error) },
            }),
        );
    }
    let body = json!({
        "status": if all_up { "ok" } else { "unhealthy" },
        "components": components,
    });
    (if all_up { 200 } else { 503 }, format!("{body}\n"))
}

pub fn ready(ready: bool) -> (u16, &'static str) {
    if ready {
        (200, "ready\n")
    } else {
        (503, "not ready\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_every_component_is_up() {
        let telemetry = Telemetry::default();
        let (status, body) = health(&telemetry, Instant::ZERO);
        assert_eq!(status, 503);
        assert!(body.contains("\"status\":\"unhealthy\""), "{body}");
        for component in Component::ALL {
            telemetry.health(component).set_up();
        }
        let (status, body) = health(&telemetry, Instant::ZERO);
        assert_eq!(status, 200, "{body}");
        telemetry.health(Component::Sink).set_down(Instant::from_nanos(1_000_000_000), "http_500");
        let (status, body) = health(&telemetry, Instant::from_nanos(3_000_000_000));
        assert_eq!(status, 503);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["components"]["sink"]["healthy"], false);
        assert_eq!(parsed["components"]["sink"]["failing_for_seconds"], 2.0);
        assert_eq!(parsed["components"]["sink"]["last_error"], "http_500");
        assert_eq!(parsed["components"]["docker"]["healthy"], true);
    }
}
