//! capture-tests: helpers for the end-to-end tests in `tests/e2e.rs`, which run the real
//! Docker adapter and the real `log-capturer` binary against the machine's Docker
//! engine, real files and real tools.
//!
//! **Contract.** A test that needs Docker asks [`host::require_docker`] (or
//! [`host::require_docker_and_image`]) first: with no engine it fails loudly under
//! `CI=true` and skips, saying why, elsewhere. Every container a test makes is a
//! [`containers::TestContainer`], labelled `log-capturer-test=1` and removed when dropped,
//! and every `docker` CLI call is bounded in time. No image is ever pulled: the one test
//! image is built locally from Debian's `busybox-static` ([`image::ensure_test_image`]).
//!
//! [`daemon`] runs the binary (built once per test process) with a config per test and
//! drives it from outside (`/ready`, `/health`, `/metrics`, SIGTERM, SIGKILL, restart);
//! [`loki_receiver`] is an in-test Loki push endpoint (scripted statuses, Loki's per-entry
//! line-length validation); [`docker_proxy`] sits between the daemon and dockerd and can
//! stall open log streams; [`fake_engine`] is a Docker engine on loopback TCP whose API
//! versions a test sets (one too old for the adapter, then a good one); [`delivery`] reads what a sink
//! got and compares it, per stream and exactly, with what the containers printed.
//!
//! [`conformance`] holds the model-conformance script (DESIGN §6): one script of container
//! actions, run through the `ContainerEngine` port against any world that implements
//! [`conformance::WorldControl`], recording what it saw in a plain, comparable struct.

pub mod conformance;
pub mod conformance_tty;
pub mod containers;
pub mod daemon;
pub mod delivery;
pub mod docker_proxy;
pub mod fake_engine;
pub mod host;
pub mod image;
pub mod loki_receiver;
pub mod real_world;
pub mod server_thread;
pub mod sim_world;
