//! log-capturer: the daemon binary (work in progress).
mod checkpoint_file;
mod config;
#[allow(dead_code)]
mod docker;
mod http;
mod labels;
mod logging;
mod rt;
mod sink;

fn main() {}
