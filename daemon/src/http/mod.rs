//! The daemon's HTTP endpoints on one listener (`[http] listen`).
//!
//! - [`server`]: the HTTP/1 server whose every task is owned and joined.
//! - `/metrics`, `/health`, `/ready`, `/debug/tasks`: added by the modules beside it.

pub mod server;
