//! The daemon's HTTP endpoints on one listener (`[http] listen`, default 127.0.0.1:8001).
//!
//! - `GET /metrics`: Prometheus text ([`metrics`]).
//! - `GET /health`: JSON per component, 503 when any is unhealthy ([`health`]).
//! - `GET /ready`: 200 once the agent runs, 503 before and during shutdown.
//! - `GET /debug/tasks`: live tasks by kind, spawn site and age ([`debug`];
//!   `?format=json` for JSON).
//!
//! [`server`] owns the listener and connection tasks (all `TaskKind::Http`, joined at
//! shutdown). Handlers only read shared state; none blocks or allocates without bound.

pub mod debug;
pub mod health;
pub mod metrics;
pub mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engine::task::Tasks;
use engine::telemetry::Telemetry;
use hyper::Method;

use self::server::{respond, Handler};
use crate::rt::TokioRt;

/// What the endpoints read.
pub struct HttpState {
    pub telemetry: Arc<Telemetry>,
    pub tasks: Tasks,
    /// Set once the agent has started; cleared when shutdown begins.
    pub ready: AtomicBool,
    metrics: metrics::Metrics,
}

impl HttpState {
    pub fn new(telemetry: Arc<Telemetry>, tasks: Tasks) -> Arc<HttpState> {
        let runtime_tasks_alive = || TokioRt::runtime_tasks_alive() as u64;
        let metrics = metrics::Metrics::new(telemetry.clone(), tasks.registry().clone(), runtime_tasks_alive);
        Arc::new(HttpState { telemetry, tasks, ready: AtomicBool::new(false), metrics })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }
}

/// The request router.
pub fn handler(state: Arc<HttpState>) -> Handler {
    Arc::new(move |request| {
        let state = state.clone();
        Box::pin(async move {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return respond(405, "text/plain", "method not allowed\n");
            }
            let now = state.tasks.rt().now();
            let json = request.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "format=json"));
            match request.uri().path() {
                "/metrics" => respond(200, metrics::CONTENT_TYPE, state.render_metrics()),
                "/health" => {
                    let (status, body) = health::health(&state.telemetry, now);
                    respond(status, "application/json", body)
                }
                "/ready" => {
                    let (status, body) = health::ready(state.ready.load(Ordering::Acquire));
                    respond(status, "text/plain", body)
                }
                "/debug/tasks" if json => {
                    respond(200, "application/json", debug::tasks_json(state.tasks.registry(), now))
                }
                "/debug/tasks" => respond(200, "text/plain", debug::tasks_text(state.tasks.registry(), now)),
                "/" => respond(200, "text/plain", "log-capturer: /metrics /health /ready /debug/tasks\n"),
                _ => respond(404, "text/plain", "not found\n"),
            }
        })
    })
}

#[cfg(test)]
mod tests;
