//! `SinkTransport`: send one batch, learn what to do next.
//!
//! The transport encodes (Loki protobuf + snappy, JSON, JSON lines to a file...) and
//! sends. It never retries by itself: the sink worker owns the retry policy, so the
//! outcome says which class the failure belongs to and a rejection can never be retried
//! forever nor a retryable failure be treated as fatal.

use std::sync::Arc;
use std::time::Duration;

use crate::model::Batch;
use crate::rt::BoxFuture;
use crate::telemetry::DropReason;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted (Loki `204`). Every line of the batch is acknowledged.
    Ok,
    /// Transient: throttled (`429`), `5xx`, timeout, connection error. Send again later,
    /// not before `after` if the server said so (Retry-After).
    Retry { after: Option<Duration>, reason: String },
    /// Too large (`413`): split the batch and send the halves.
    TooLarge,
    /// Permanent (a `4xx` that is not 400, 401, 403, 404, 413 or 429): drop the whole
    /// batch, count its lines under `reason`.
    Reject { reason: String },
    /// Stored in part (Loki `400`: its distributor validates each entry, stores the
    /// valid ones and answers 400 naming the others). Never resent; `refused` counts the
    /// refused lines by reason (at most the batch's lines), every other line was stored.
    /// A 401, 403 or 404 is not this: it is an outage (`Retry`), nothing is dropped.
    Partial { refused: Vec<(DropReason, u64)>, detail: String },
}

pub trait SinkTransport: Send + Sync + 'static {
    fn send(&self, batch: Arc<Batch>) -> BoxFuture<SendOutcome>;
}
