//! `SimDocker` as the engine sees it: the [`ContainerEngine`] port.
//!
//! Owns: the translation of API calls into model state — each call first waits the
//! configured API latency (so the world can change in between, as with a real daemon),
//! then fails if the daemon is down or a failure is armed, then answers from the state
//! at that moment.
//!
//! Promises: `logs` registers the stream as open before returning it and consumes at
//! most one armed [`super::StreamFault`]; `since_secs <= 0` means no `since` filter.
//! A non-follow `tail` request (the agent's stall probe: `tail = 1`) is answered at once
//! with those last entries, as one chunk: a short answer, not an open stream, with no
//! fault and no part in the world's account of what readers were handed (the agent
//! compares the entry with the last line it read and queues nothing of it).

use engine::model::ContainerId;
use engine::port::{ContainerEngine, ContainerInfo, EngineError, EventStream, LogOptions, LogStream};
use engine::rt::BoxFuture;

use super::events::SimEventStream;
use super::log::{ReadRequest, ReaderInfo};
use super::log_stream::SimLogStream;
use super::state::{ApiCall, DockerState, EventSubscriber, OpenLogStream};
use super::{not_found, SimDocker};

impl SimDocker {
    async fn api_latency(&self) {
        // Not through `with`: reading the latency needs no clock reading (the call's own
        // `with` takes it, and nothing reads it in between).
        let latency = self.shared.state.lock().api_latency;
        if !latency.is_zero() {
            self.shared.rt.sleep(latency).await;
        }
    }
}

/// The answer to a non-follow request for the last `entries` entries of `id`'s log.
/// Not inlined into `logs`' future: inlined, it cost seed 19 (few probes, 60 k opens)
/// 0.4 M instructions more.
#[inline(never)]
fn tail_answer(state: &mut DockerState, id: &ContainerId, entries: u64) -> Result<bytes::Bytes, EngineError> {
    state.begin_call(ApiCall::Logs)?;
    let serial = state.containers.get(id).ok_or_else(|| not_found(id))?.serial;
    if entries == 1 {
        // The stall probe: one run at most, no run list to take from the pool and give
        // back (callgrind: seed 2 326.77 M -> 326.42 M, seed 3 369.67 M -> 369.29 M); the
        // answer of the last probe of an unchanged log kept.
        return Ok(state.frames.last_entry(&state.logs[serial], serial, &mut state.timestamps));
    }
    // A kept run list, not a new one per probe (an allocation and a free each: 72 k
    // probes over seeds 100..119, callgrind 4,547.2 M -> 4,541.8 M; seed 3 399.0 M ->
    // 397.7 M).
    let mut runs = state.buffers.runs();
    let log = &state.logs[serial];
    log.tail_runs(entries, &mut runs);
    // Mostly the burst the agent read last: a slice of its kept frames.
    let kept = match &runs[..] {
        [run] => state.frames.run_frames(log, serial, run, &mut state.timestamps),
        _ => None,
    };
    let answer = kept.unwrap_or_else(|| {
        let mut answer = bytes::BytesMut::new();
        runs.iter().for_each(|run| log.write_run(run, &mut answer, &mut state.timestamps));
        answer.freeze()
    });
    state.buffers.give_runs(runs);
    Ok(answer)
}

impl ContainerEngine for SimDocker {
    fn list(&self) -> BoxFuture<Result<Vec<ContainerInfo>, EngineError>> {
        let this = self.clone();
        Box::pin(async move {
            this.api_latency().await;
            this.with(|state| {
                state.begin_call(ApiCall::List)?;
                let first_list = std::mem::take(&mut state.first_sight_now);
                Ok(state.list_seen(first_list))
            })
        })
    }

    fn inspect(&self, id: &ContainerId) -> BoxFuture<Result<ContainerInfo, EngineError>> {
        let this = self.clone();
        let id = id.clone();
        Box::pin(async move {
            this.api_latency().await;
            this.with(|state| {
                state.begin_call(ApiCall::Inspect)?;
                let container = state.containers.get(&id).ok_or_else(|| not_found(&id))?;
                let (info, serial) = (container.info.clone(), container.serial);
                state.seen(serial, false);
                Ok(info)
            })
        })
    }

    fn events(&self) -> BoxFuture<Result<EventStream, EngineError>> {
        let this = self.clone();
        Box::pin(async move {
            this.api_latency().await;
            let stream_id = this.with(|state| {
                state.begin_call(ApiCall::Events)?;
                let stream_id = state.next_stream_id();
                state.event_streams.insert(stream_id, EventSubscriber::default());
                state.counters.event_streams_open = state.event_streams.len();
                state.counters.event_streams_open_max =
                    state.counters.event_streams_open_max.max(state.event_streams.len());
                Ok::<u64, EngineError>(stream_id)
            })?;
            let stream = SimEventStream { docker: this.shared.clone(), stream_id, done: false };
            Ok(Box::pin(stream) as EventStream)
        })
    }

    fn logs(&self, id: &ContainerId, options: LogOptions) -> BoxFuture<Result<LogStream, EngineError>> {
        let this = self.clone();
        let id = id.clone();
        Box::pin(async move {
            // `api_latency`, written out: no future of its own to build and poll at
            // every open and stall probe (callgrind: seed 3 370.40 M -> 369.67 M, seed 19
            // 840.45 M -> 838.91 M).
            let latency = this.shared.state.lock().api_latency;
            if !latency.is_zero() {
                this.shared.rt.sleep(latency).await;
            }
            if let (false, Some(entries)) = (options.follow, options.tail) {
                let answer = this.with(|state| tail_answer(state, &id, entries))?;
                let chunks = (!answer.is_empty()).then_some(Ok(answer));
                return Ok(Box::pin(futures::stream::iter(chunks)) as LogStream);
            }
            let opened = this.with(|state| {
                state.begin_call(ApiCall::Logs)?;
                let container = state.containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
                container.opens_total += 1;
                let fault = container.next_open_faults.pop_front();
                let since = (options.since_secs > 0).then(|| options.since_secs.saturating_mul(1_000_000_000));
                let log = &mut state.logs[container.serial];
                let start = log.seek(ReadRequest { since, tail: options.tail });
                if options.tail.is_none() {
                    // What `since` skipped before the first entry served (host clock step).
                    log.record_since_skips(log.first_kept(), start.cursor, &start.qualify);
                    log.note_stepped_replay(since);
                }
                if options.tail.is_some() {
                    // `first_sight = { tail = N }`: what lies before the last N entries is
                    // not the agent's (a named loss, as with "now").
                    // The agent's rule (`cut_after_tail`) compares with its own wall clock: the
                    // host clock, which Docker stamps with too.
                    log.skip_before_tail(start.cursor, this.shared.rt.wall());
                }
                let following = options.follow && container.info.running;
                let limit = (!following).then(|| log.end());
                let serial = container.serial;
                let stream_id = state.next_stream_id;
                state.next_stream_id += 1;

                let record = OpenLogStream { container: id, serial, fault, limit, end: None, waker: None };
                let record = state.log_streams.insert(stream_id, record);
                state.open_streams[serial].push(record);
                state.counters.log_opens_total += 1;
                state.counters.log_streams_open = state.log_streams.len();
                state.counters.log_streams_open_max = state.counters.log_streams_open_max.max(state.log_streams.len());
                let rng = state.chunk_rng.fork();
                let info = ReaderInfo { opened_epoch: log.rotation_epoch(), since, tail: options.tail.is_some() };
                Ok::<_, EngineError>((record, serial, start, rng, info))
            })?;
            // The stream takes the handle's `Arc`, and the record the id this call owns:
            // no clone of each and a drop at the end (atomic operations, 60 k opens on seed 19).
            let (record, serial, start, rng, info) = opened;
            let SimDocker { shared } = this;
            // Allocated first, then built in place: `Box::pin(value)` built the stream
            // on the stack and copied it into the allocation (~370 bytes per open).
            // Callgrind: seed 2 429.0 M → 427.7 M instructions, seed 3 469.0 M → 467.7 M,
            // seed 19 863.3 M → 859.9 M.
            let stream = Box::write(Box::new_uninit(), SimLogStream::new(shared, record, serial, start, rng, info));
            Ok(Box::into_pin(stream) as LogStream)
        })
    }
}
