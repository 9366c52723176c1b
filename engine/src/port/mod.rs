//! Ports: the traits through which the engine reaches the world.
//!
//! Each has one real adapter in `capture-daemon` and one model in `capture-sim`. The
//! engine never learns which. Methods return [`crate::rt::BoxFuture`]s and boxed streams
//! so that the traits stay object safe and the engine can hold `Arc<dyn …>`.

pub mod checkpoint;
pub mod container_checkpoints;
pub mod docker;
pub mod labeler;
pub mod sink;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointOrigin, CheckpointStore, ContainerCheckpoint, ContainerCheckpoints,
    LoadedCheckpoint,
};
pub use docker::{
    ContainerEngine, ContainerEvent, ContainerEventKind, ContainerInfo, EngineError, EventStream, LogOptions, LogStream,
};
pub use labeler::Labeler;
pub use sink::{SendOutcome, SinkTransport};
