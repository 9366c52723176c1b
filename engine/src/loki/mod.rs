//! Loki push encoding as pure functions: `logproto.PushRequest` protobuf compressed with
//! snappy (block format), and Loki's JSON push body.
//!
//! - [`protobuf`]: the wire format the sink sends (`Content-Type:
//!   application/x-protobuf`), hand-written, encoded straight from a
//!   [`crate::model::Batch`] without copying lines; plus [`PushRequest`], an owned form
//!   for tests and receivers, and the decoder.
//! - [`json`]: Loki's JSON push body (`application/json`), and the JSON-lines rendering
//!   of the daemon's file and stdout sinks.
//!
//! Both encoders emit valid UTF-8 only: a line that is not valid UTF-8 has its invalid
//! sequences replaced by U+FFFD, and that is the only copy of a line they make. Stream
//! labels are rendered as Loki's selector text `{a="x", b="y"}` ([`render_labels`]),
//! sorted by name because they come from a `BTreeMap`.
//!
//! Both are checked against golden vectors made outside this project and accepted by a
//! real Loki (`engine/src/loki/testdata/`, with a README saying where they came from).

pub mod json;
pub mod protobuf;

pub use protobuf::{is_valid_utf8, parse_labels, render_labels, PushEntry, PushRequest, PushStream};

/// Why a push body could not be decoded (tests and receivers only; the agent never
/// decodes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("protobuf message ends inside a field")]
    Truncated,
    #[error("protobuf varint is longer than 10 bytes")]
    VarintOverflow,
    #[error("protobuf field {field} has unexpected wire type {wire_type}")]
    WireType { field: u32, wire_type: u8 },
    #[error("protobuf field number 0 is invalid")]
    FieldZero,
    #[error("string field is not valid UTF-8")]
    InvalidUtf8,
    #[error("entry timestamp does not fit in i64 nanoseconds")]
    TimestampOutOfRange,
    #[error("invalid stream labels {0:?}")]
    InvalidLabels(String),
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("json: {0}")]
    Json(String),
}

#[cfg(test)]
mod tests;
