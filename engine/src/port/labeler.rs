//! `Labeler`: which containers are collected, and with which Loki labels.
//!
//! A port like the others: the daemon implements it from its `[docker]` filters and
//! `[labels]` settings (`ConfigLabeler`), the simulator with a fixed rule. Discovery asks
//! it before it supervises a container, the supervisor before each stream it opens (a
//! rename may change the answer).

use crate::model::{Labels, StdStream};
use crate::port::ContainerInfo;

/// Decides which containers are collected and with which Loki labels.
pub trait Labeler: Send + Sync + 'static {
    /// The labels for one output stream of a container, or `None` to leave the
    /// container out entirely (include/exclude filters).
    fn labels(&self, info: &ContainerInfo, stream: StdStream) -> Option<Labels>;
}
