//! The end-to-end test binary.

#[path = "../../daemon/src/docker/mod.rs"]
#[allow(dead_code, unused_imports)]
mod docker;
