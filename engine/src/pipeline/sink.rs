//! The sink worker: sends batches one at a time, in order, until each is settled.
//!
//! A batch is settled when the transport accepted it, or rejected it for good (its
//! lines are counted as dropped under the reason), possibly after being split in halves
//! on `413`. Transient failures are retried with the [`RetryPolicy`] — forever: a sink
//! outage turns into backpressure on the sources, never into silent loss. After a batch
//! is settled its positions are acknowledged and its bytes refunded to the budget.
//!
//! [`RetryPolicy`]: crate::pipeline::retry::RetryPolicy

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::{Batch, BatchStream};
use crate::pipeline::ack::Acks;
use crate::pipeline::queue::Budget;
use crate::pipeline::retry::{unit_from_bits, RetryPolicy};
use crate::port::{SendOutcome, SinkTransport};
use crate::rt::Rt;
use crate::telemetry::{Component, DropReason, SinkStatus, Telemetry};

pub struct SinkWorker {
    pub rt: Arc<dyn Rt>,
    pub transport: Arc<dyn SinkTransport>,
    pub policy: RetryPolicy,
    pub acks: Arc<Acks>,
    pub budget: Budget,
    pub telemetry: Arc<Telemetry>,
}

impl SinkWorker {
    /// The task body: runs until the dispatcher closes the channel.
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>) {
        while let Some(batch) = batches.recv().await {
            let batch = Arc::new(batch);
            #[cfg(feature = "broken-variants")]
            if crate::container::broken::is_active(crate::container::SupervisorVariant::AckBeforeDelivery) {
                self.acks.acknowledge(&batch);
            }
            self.deliver(batch.clone()).await;
            self.acks.acknowledge(&batch);
            self.budget.refund(batch.lines, batch.bytes);
        }
    }

    /// Settle one batch, splitting on `413`.
    async fn deliver(&self, batch: Arc<Batch>) {
        // Depth-first over halves keeps lines in order.
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            match self.send_until_settled(batch.clone()).await {
                Settled::Accepted => {
                    self.telemetry.record_lines_out(batch.lines as u64, batch.bytes as u64);
                }
                Settled::Rejected(reason) => {
                    self.telemetry.record_drop(self.rt.now(), DropReason::SinkRejected, batch.lines as u64, &reason);
                }
                Settled::Partial { refused, detail } => {
                    let now = self.rt.now();
                    let mut refused_lines = 0u64;
                    for (reason, lines) in refused {
                        let lines = lines.min(batch.lines as u64 - refused_lines);
                        refused_lines += lines;
                        self.telemetry.record_drop(now, reason, lines, &detail);
                    }
                    // Bytes out are not known per refused line; the batch's are counted.
                    self.telemetry.record_lines_out(batch.lines as u64 - refused_lines, batch.bytes as u64);
                }
                Settled::TooLarge => match split_in_half(&batch) {
                    Some((first, second)) => {
                        pending.push(Arc::new(second));
                        pending.push(Arc::new(first));
                    }
                    None => self.telemetry.record_drop(
                        self.rt.now(),
                        DropReason::SinkRejected,
                        batch.lines as u64,
                        "a single line is larger than the sink accepts (413)",
                    ),
                },
            }
        }
    }

    async fn send_until_settled(&self, batch: Arc<Batch>) -> Settled {
        let mut failures = 0u32;
        loop {
            let started = self.rt.now();
            let outcome = self.transport.send(batch.clone()).await;
            self.telemetry.batch_send_seconds.observe(self.rt.now() - started);
            let sink_health = self.telemetry.health(Component::Sink);
            match outcome {
                SendOutcome::Ok => {
                    self.telemetry.record_sink_request(SinkStatus::Ok);
                    sink_health.set_up();
                    return Settled::Accepted;
                }
                SendOutcome::Reject { reason } => {
                    self.telemetry.record_sink_request(SinkStatus::Rejected);
                    sink_health.set_up();
                    return Settled::Rejected(reason);
                }
                SendOutcome::Partial { refused, detail } => {
                    self.telemetry.record_sink_request(SinkStatus::Partial);
                    sink_health.set_up();
                    return Settled::Partial { refused, detail };
                }
                SendOutcome::TooLarge => {
                    self.telemetry.record_sink_request(SinkStatus::TooLarge);
                    return Settled::TooLarge;
                }
                SendOutcome::Retry { after, reason } => {
                    self.telemetry.record_sink_request(SinkStatus::Retry);
                    failures += 1;
                    let now = self.rt.now();
                    sink_health.set_down(now, &reason);
                    let delay = self.policy.delay(failures, after, unit_from_bits(self.rt.rand_u64()));
                    if let Some(suppressed) = self.telemetry.sink_log.should_log(now) {
                        tracing::warn!(%reason, failures, suppressed, delay_ms = delay.as_millis() as u64, "sink send failed; retrying");
                    }
                    self.rt.sleep_until(now + delay).await;
                }
            }
        }
    }
}

enum Settled {
    Accepted,
    Rejected(String),
    Partial { refused: Vec<(DropReason, u64)>, detail: String },
    TooLarge,
}

/// Split a batch into two of about half the lines each, keeping order; `None` for a
/// single line.
pub fn split_in_half(batch: &Batch) -> Option<(Batch, Batch)> {
    if batch.lines < 2 {
        return None;
    }
    let half = batch.lines / 2;
    let (mut first, mut second) = (Batch::default(), Batch::default());
    let mut seen = 0;
    for stream in &batch.streams {
        for line in &stream.lines {
            let target = if seen < half { &mut first } else { &mut second };
            seen += 1;
            match target.streams.last_mut() {
                Some(last) if last.source == stream.source => last.lines.push(line.clone()),
                _ => target.streams.push(BatchStream {
                    source: stream.source.clone(),
                    labels: stream.labels.clone(),
                    lines: vec![line.clone()],
                }),
            }
            target.lines += 1;
            target.bytes += line.bytes.len();
        }
    }
    Some((first, second))
}
