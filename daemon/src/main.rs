//! log-capturer (in progress)
fn main() {}
