//! capture-engine: the whole behaviour of log-capturer, with no I/O of its own.
//!
//! **Contract.** This crate is fully deterministic given its inputs. It contains no
//! runtime, no Docker client, no HTTP client and no file system code, and it never reads
//! a clock or an entropy source of the operating system. Time, randomness and task
//! spawning reach it only through [`rt::Rt`]; the world reaches it only through the
//! traits in [`port`]. That is what lets `capture-sim` run the very same container
//! monitor, dispatcher and sink worker under virtual time and a seeded scheduler, and the
//! daemon run them on tokio against a real Docker engine and a real Loki.
//!
//! Every task is spawned through [`task::Tasks`], which attributes it to a kind and a
//! spawn site, counts it while it lives, and hands its owner a handle to cancel and join
//! it. Every `select!` here is `biased;` and no decision follows the iteration order of a
//! std `HashMap`, so a seed fully decides a run.

pub mod agent;
pub mod checkpoint;
pub mod container;
pub mod loki;
pub mod model;
pub mod parse;
pub mod pipeline;
pub mod port;
pub mod rt;
pub mod task;
pub mod telemetry;
