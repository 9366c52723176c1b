//! log-capturer: the daemon binary (work in progress).
mod config;
#[allow(dead_code)]
mod docker;
mod labels;
mod logging;
mod rt;

fn main() {}
