//! The world: models of what the capture agent talks to, implementing the engine's ports.
//!
//! Owns: [`docker`] (containers, logs, events, daemon restarts), [`loki`] (the sink:
//! latency, throttling, errors, outages, ambiguous acceptance) and [`checkpoint`] (the
//! store that survives a crash only with what was committed). Each model is a cheap
//! clonable handle: the engine holds it as `Arc<dyn Port>`, the scenario driver keeps a
//! clone to change the world and inject faults, the oracle keeps one to read counters.
//!
//! Promises: every model is deterministic given its seed and the order of calls (no
//! std `HashMap` iteration, no clock but the [`engine::rt::Rt`] it was given), and no
//! model holds its lock across an `.await` or while calling out to other code.

pub(crate) mod by_address;
pub mod checkpoint;
pub mod docker;
pub mod loki;

pub use checkpoint::{CheckpointDamage, SimCheckpointStore};
pub use docker::SimDocker;
pub use loki::SimLoki;
