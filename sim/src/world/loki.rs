//! `SimLoki`: the Loki push endpoint as the sink worker meets it, with faults on demand.
//!
//! Owns: the server side of every push — what it accepts, what it answers, and when —
//! and the hand-off of every accepted batch to the oracle's [`Delivery`] observer. It
//! receives the engine's structured `Arc<Batch>`; nothing is encoded in the simulator.
//!
//! ## One push, in virtual time
//! 1. The request travels for half the latency (uniform in `latency_min..=latency_max`).
//! 2. On arrival the server decides, in this order: outage (`Down` answers at once,
//!    `Partition` hangs until the client's `timeout`); `413` if the batch is over
//!    `batch_bytes_max`; `429` with Retry-After (`throttle_chance`); `5xx`
//!    (`server_error_chance`); a hang until `timeout` (`timeout_chance`); otherwise it
//!    accepts. An acceptance is ambiguous with `ambiguous_chance` (stored, but the
//!    `204` is lost: the client sees a retryable failure), and partial if entries are
//!    older than `reject_older_than` (those are refused, the rest stored, and the client
//!    sees a `400`: [`SendOutcome::Partial`] naming `sink_too_old`). An `Unauthorized`
//!    outage answers `401` at once (a retryable outage); a `429` comes without
//!    Retry-After with `no_retry_after_chance`.
//! 3. Stored lines are reported to the observer at that instant, then the reply travels
//!    back for the other half of the latency.
//!
//! A send future dropped before step 2 stores nothing; dropped after it, the lines are
//! stored although the engine never learns it (also ambiguous, as with a real crash).
//!
//! The arrival (step 2) is a timer callback ([`SimRt::call_at`]) that the send future
//! owns, not a wake of the sink's task: the task sleeps once, until the reply is due
//! (and once more only when the server hangs). Dropping the future cancels the arrival.
//!
//! Every accepted entry is stored, an empty line too: Loki's distributor validates age,
//! future, size and metadata, never emptiness (grafana/loki
//! `pkg/distributor/validator.go`, `ValidateEntry`). Its ingester's drop of an entry
//! equal in timestamp and content to one it holds is not modelled: the world never
//! writes two such lines (see `docker/log/empty.rs`), and a duplicate the agent sends is
//! counted as one by the oracle.
//!
//! Promises: decisions draw from the model's own seeded stream in arrival order;
//! the observer is called outside the model's lock and must not call back into SimLoki.

use std::sync::Arc;
use std::time::Duration;

use engine::model::Batch;
use engine::port::{SendOutcome, SinkTransport};
use engine::rt::{BoxFuture, Instant, UnixNanos};
use engine::telemetry::DropReason;

use crate::executor::{Lock, SimRng, SimRt};

/// How the server behaves; the driver changes it at any time.
#[derive(Clone, Debug, PartialEq)]
pub struct LokiBehaviour {
    /// Round-trip time, uniform in this range, split evenly between request and reply.
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// The client's request timeout: how long a hanging request takes to fail.
    pub timeout: Duration,
    pub throttle_chance: f64,
    /// Retry-After of a `429`, and the chance a `429` comes without one.
    pub retry_after: Duration,
    pub no_retry_after_chance: f64,
    pub server_error_chance: f64,
    pub timeout_chance: f64,
    pub ambiguous_chance: f64,
    /// `413` above this many bytes (`Batch::bytes`).
    pub batch_bytes_max: Option<usize>,
    /// Entries older than this (relative to the wall clock at arrival) are refused.
    pub reject_older_than: Option<Duration>,
}

impl Default for LokiBehaviour {
    /// A healthy server: 2–20 ms round trips, 10 s client timeout, no faults.
    fn default() -> LokiBehaviour {
        LokiBehaviour {
            latency_min: Duration::from_millis(2),
            latency_max: Duration::from_millis(20),
            timeout: Duration::from_secs(10),
            throttle_chance: 0.0,
            retry_after: Duration::from_secs(1),
            no_retry_after_chance: 0.0,
            server_error_chance: 0.0,
            timeout_chance: 0.0,
            ambiguous_chance: 0.0,
            batch_bytes_max: None,
            reject_older_than: None,
        }
    }
}

/// An outage of the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Loki is down: connections are refused at once.
    Down,
    /// The network is partitioned: requests hang until the client times out.
    Partition,
    /// Loki answers `401` (a credential was rotated): an outage, nothing is stored.
    Unauthorized,
}

/// One acceptance, as the oracle's observer sees it.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub batch: &'a Arc<Batch>,
    /// Stored, but the client was told to retry (the `204` was lost).
    pub ambiguous: bool,
    /// Lines with `ts` before this were refused (`400 too far behind`), the rest stored.
    pub rejected_before: Option<UnixNanos>,
    pub at: Instant,
}

/// The oracle's hook: called once per acceptance.
pub type DeliveryObserver = Box<dyn FnMut(&Delivery<'_>) + Send>;

/// Counters the oracle reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LokiCounters {
    pub requests: u64,
    pub in_flight: usize,
    pub in_flight_max: usize,
    /// Batches stored (fully or partly), and their lines and bytes.
    pub batches_accepted: u64,
    pub lines_accepted: u64,
    pub bytes_accepted: u64,
    /// Acceptances the client was told were failures.
    pub ambiguous: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub timeouts: u64,
    /// Requests failed by an outage.
    pub outage_failures: u64,
    pub too_large: u64,
    /// Requests answered `400`, and lines refused.
    pub rejected: u64,
    pub lines_rejected: u64,
    /// Requests that arrived before the Retry-After of the last `429` had passed (the
    /// agent sends one request at a time, so any is a retry that came early).
    pub early_retries: u64,
    /// Requests failed by an outage in a row (now, and the longest run): a run of
    /// `n` means the agent's sink backed off `n` times without a success between.
    pub outage_failures_in_a_row: u64,
    pub outage_failures_in_a_row_max: u64,
}

struct LokiState {
    behaviour: LokiBehaviour,
    outage: Option<(Outage, Instant)>,
    /// A `429`'s Retry-After ends here: a request arriving before it came early.
    retry_not_before: Option<Instant>,
    rng: SimRng,
    counters: LokiCounters,
    /// One slot per request in flight: its answer, once it has arrived. Slots are
    /// reused, so a request costs no allocation here.
    answers: Vec<Option<Answer>>,
    free_answers: Vec<u32>,
}

/// What the client gets once the request has arrived.
enum Answer {
    /// This, after the reply latency.
    Reply(SendOutcome),
    /// This, at the client's timeout.
    Hang(SendOutcome),
}

/// What the server decided for one request.
enum Verdict {
    /// Answer after the reply latency.
    Reply(SendOutcome),
    /// Hang until the client's timeout, then fail.
    Hang(SendOutcome),
    /// Store the lines (report them), then answer.
    Store { outcome: SendOutcome, ambiguous: bool, rejected_before: Option<UnixNanos> },
}

/// The simulated Loki. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct SimLoki {
    inner: Arc<Inner>,
}

/// Behind one `Arc`, so that a request clones one handle; the executor's `Lock`s,
/// because nothing else ever waits on them (see `executor::lock`).
struct Inner {
    state: Lock<LokiState>,
    observer: Lock<Option<DeliveryObserver>>,
    rt: SimRt,
}

impl SimLoki {
    pub fn new(rt: SimRt, seed: u64) -> SimLoki {
        let state = LokiState {
            behaviour: LokiBehaviour::default(),
            outage: None,
            retry_not_before: None,
            rng: SimRng::new(seed),
            counters: LokiCounters::default(),
            answers: Vec::new(),
            free_answers: Vec::new(),
        };
        SimLoki { inner: Arc::new(Inner { state: Lock::new(state), observer: Lock::new(None), rt }) }
    }

    /// Install the observer every acceptance is reported to (replaces any previous one).
    pub fn set_observer(&self, observer: impl FnMut(&Delivery<'_>) + Send + 'static) {
        let previous = self.inner.observer.lock().replace(Box::new(observer));
        drop(previous);
    }

    pub fn behaviour(&self) -> LokiBehaviour {
        self.inner.state.lock().behaviour.clone()
    }

    pub fn set_behaviour(&self, behaviour: LokiBehaviour) {
        self.inner.state.lock().behaviour = behaviour;
    }

    /// An outage from now until `until` (replaces any current one).
    pub fn outage_until(&self, kind: Outage, until: Instant) {
        self.inner.state.lock().outage = Some((kind, until));
    }

    /// An outage from now for `duration`.
    pub fn outage_for(&self, kind: Outage, duration: Duration) {
        let until = self.inner.rt.now() + duration;
        self.outage_until(kind, until);
    }

    /// The client that was told to wait is gone (the agent crashed): a new one may send.
    pub fn forget_retry_after(&self) {
        self.inner.state.lock().retry_not_before = None;
    }

    /// Whether an outage is on now.
    pub fn in_outage(&self) -> bool {
        let now = self.inner.rt.now();
        self.inner.state.lock().outage.is_some_and(|(_, until)| now < until)
    }

    /// End any outage now.
    pub fn heal(&self) {
        self.inner.state.lock().outage = None;
    }

    pub fn counters(&self) -> LokiCounters {
        self.inner.state.lock().counters.clone()
    }
}

impl Inner {
    /// A request leaves the client: count it, draw its latency, give it an answer slot.
    /// Returns (half the round trip, the client's timeout, the slot).
    fn start_request(&self) -> (Duration, Duration, u32) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let counters = &mut state.counters;
        counters.requests += 1;
        counters.in_flight += 1;
        counters.in_flight_max = counters.in_flight_max.max(counters.in_flight);
        let behaviour = &state.behaviour;
        let (min, max) = (behaviour.latency_min.as_nanos() as u64, behaviour.latency_max.as_nanos() as u64);
        let trip = if max > min { state.rng.range(min..max + 1) } else { min };
        let slot = match state.free_answers.pop() {
            Some(slot) => slot,
            None => {
                state.answers.push(None);
                (state.answers.len() - 1) as u32
            }
        };
        (Duration::from_nanos(trip / 2), behaviour.timeout, slot)
    }

    /// The request in `slot` arrives now: decide, keep the answer for the client, and
    /// report what is stored (outside the state's lock).
    fn arrive(&self, batch: &Arc<Batch>, slot: u32) {
        let stored = {
            let mut state = self.state.lock();
            let (answer, stored) = match self.decide(&mut state, batch) {
                Verdict::Reply(outcome) => (Answer::Reply(outcome), None),
                Verdict::Hang(outcome) => (Answer::Hang(outcome), None),
                Verdict::Store { outcome, ambiguous, rejected_before } => {
                    (Answer::Reply(outcome), Some((ambiguous, rejected_before)))
                }
            };
            // The slot is empty (`Request` empties it): filled, not replaced, so that no
            // drop of an old answer is called (with the one in `Request::drop`, callgrind:
            // seed 2 348.05 M -> 347.92 M, seed 3 395.47 M -> 395.26 M, seed 19 866.53 M
            // -> 866.39 M).
            let answer_slot = &mut state.answers[slot as usize];
            debug_assert!(answer_slot.is_none(), "a slot is emptied when its request ends");
            answer_slot.get_or_insert(answer);
            stored
        };
        if let Some((ambiguous, rejected_before)) = stored {
            self.notify(batch, ambiguous, rejected_before);
        }
    }

    fn decide(&self, state: &mut LokiState, batch: &Batch) -> Verdict {
        let now = self.rt.now();
        // Loki runs on another host: its clock does not step with the agent's.
        let wall = self.rt.reference_wall();
        if state.retry_not_before.take().is_some_and(|not_before| now < not_before) {
            state.counters.early_retries += 1;
        }
        if let Some((kind, until)) = state.outage {
            if now < until {
                let counters = &mut state.counters;
                counters.outage_failures += 1;
                counters.outage_failures_in_a_row += 1;
                counters.outage_failures_in_a_row_max =
                    counters.outage_failures_in_a_row_max.max(counters.outage_failures_in_a_row);
                return match kind {
                    Outage::Down => Verdict::Reply(retry(None, "connection refused")),
                    Outage::Partition => Verdict::Hang(retry(None, "request timed out (partition)")),
                    Outage::Unauthorized => Verdict::Reply(retry(None, "401 unauthorized")),
                };
            }
            state.outage = None;
        }
        state.counters.outage_failures_in_a_row = 0;
        let behaviour = &state.behaviour;
        if behaviour.batch_bytes_max.is_some_and(|max| batch.bytes > max) {
            state.counters.too_large += 1;
            return Verdict::Reply(SendOutcome::TooLarge);
        }
        if state.rng.chance(behaviour.throttle_chance) {
            state.counters.throttled += 1;
            let after = (!state.rng.chance(behaviour.no_retry_after_chance)).then_some(behaviour.retry_after);
            // The client hears it half a trip later and waits `after` from then, so its
            // next request cannot arrive before this instant unless it retried early.
            state.retry_not_before = after.map(|after| now + after);
            return Verdict::Reply(retry(after, "429 too many requests"));
        }
        if state.rng.chance(behaviour.server_error_chance) {
            state.counters.server_errors += 1;
            return Verdict::Reply(retry(None, "503 service unavailable"));
        }
        if state.rng.chance(behaviour.timeout_chance) {
            state.counters.timeouts += 1;
            return Verdict::Hang(retry(None, "request timed out"));
        }
        let ambiguous = state.rng.chance(behaviour.ambiguous_chance);
        let rejected_before = behaviour.reject_older_than.map(|age| wall - age.as_nanos() as i64);
        let refused = match rejected_before {
            Some(cutoff) => {
                batch.streams.iter().flat_map(|stream| &stream.lines).filter(|line| line.ts < cutoff).count()
            }
            None => 0,
        };
        let counters = &mut state.counters;
        counters.batches_accepted += 1;
        counters.lines_accepted += (batch.lines - refused.min(batch.lines)) as u64;
        counters.bytes_accepted += batch.bytes as u64;
        let outcome = if refused > 0 {
            counters.rejected += 1;
            counters.lines_rejected += refused as u64;
            SendOutcome::Partial {
                refused: vec![(DropReason::SinkTooOld, refused as u64)],
                detail: "entry too far behind".into(),
            }
        } else if ambiguous {
            counters.ambiguous += 1;
            retry(None, "connection reset after the request was sent")
        } else {
            SendOutcome::Ok
        };
        let rejected_before = if refused > 0 { rejected_before } else { None };
        Verdict::Store { outcome, ambiguous: ambiguous && refused == 0, rejected_before }
    }

    fn notify(&self, batch: &Arc<Batch>, ambiguous: bool, rejected_before: Option<UnixNanos>) {
        if let Some(observer) = self.observer.lock().as_mut() {
            observer(&Delivery { batch, ambiguous, rejected_before, at: self.rt.now() });
        }
    }
}

fn retry(after: Option<Duration>, reason: &str) -> SendOutcome {
    SendOutcome::Retry { after, reason: reason.into() }
}

/// A request in flight, counted until its future completes or is dropped; holds its
/// answer slot.
struct Request<'a> {
    server: &'a Inner,
    slot: u32,
}

impl Request<'_> {
    /// The answer; the request has arrived.
    fn take_answer(&self) -> Answer {
        let answer = self.server.state.lock().answers[self.slot as usize].take();
        // The arrival is due before the reply, and the clock never passes a live timer.
        answer.expect("the request arrived before the reply was due")
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        let mut state = self.server.state.lock();
        state.counters.in_flight -= 1;
        // Usually taken already: only an answer never read is dropped here.
        let answer = &mut state.answers[self.slot as usize];
        if answer.is_some() {
            *answer = None;
        }
        state.free_answers.push(self.slot);
    }
}

impl SinkTransport for SimLoki {
    fn send(&self, batch: Arc<Batch>) -> BoxFuture<SendOutcome> {
        let this = self.clone();
        Box::pin(async move {
            let server = &*this.inner;
            let (half_trip, timeout, slot) = server.start_request();
            let request = Request { server, slot };
            let arrival = server.rt.now() + half_trip;
            if half_trip.is_zero() {
                server.arrive(&batch, slot);
            } else {
                let at_arrival = this.clone();
                // Owned by this future: dropping it before the arrival cancels the arrival.
                let _arrival = server.rt.call_at(arrival, move || at_arrival.inner.arrive(&batch, slot));
                server.rt.sleep_until(arrival + half_trip).await;
            }
            match request.take_answer() {
                Answer::Reply(outcome) => outcome,
                Answer::Hang(outcome) => {
                    // At the client's timeout from the start (or at once, in the odd set-up
                    // where the timeout is shorter than the round trip).
                    server.rt.sleep_until(arrival + timeout.saturating_sub(half_trip)).await;
                    outcome
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "loki_tests.rs"]
mod tests;
