//! Scenarios: a seed's options ([`options`]) and the world schedule they imply
//! ([`schedule`]).

pub mod options;
pub mod schedule;

pub use options::{Options, Overrides};
pub use schedule::{Action, Crash, Schedule};
