//! capture-sim: the deterministic simulator of log-capturer.
//!
//! **Contract.** Everything here is a function of one seed: no OS clock, no OS entropy,
//! no thread, no iteration over std `HashMap`s. The [`executor`] runs the engine's very
//! own tasks single-threaded under virtual time, choosing the next runnable task with a
//! seeded RNG; the [`world`] models (Docker, Loki, the checkpoint store) implement the
//! engine's ports with the semantics of the real thing and faults the scenario driver
//! controls. Separate random streams (see [`executor::streams`]) feed the scheduler, the
//! engine's jitter and the world's schedule, so a saved seed replays the same world even
//! after the engine changes how often it draws.

pub mod check;
pub mod executor;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sweep;
pub mod world;

pub use executor::{Executor, RunOutcome, SimRng, SimRt};
