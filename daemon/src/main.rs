//! log-capturer: the daemon binary (work in progress).
mod config;
#[allow(dead_code)]
mod docker;
mod http;
mod labels;
mod logging;
mod rt;
mod sink;

fn main() {}
