//! Task ownership: the only way the engine (and the daemon) spawns.
//!
//! [`Tasks::spawn`] wraps a future so that the registry counts it alive from the moment
//! it is spawned until the moment its future has been dropped, whether it completed or
//! was cancelled. The owner gets a [`TaskHandle`] to cancel and join it; joining
//! returns only after the task's future, and everything it owned (streams, files,
//! permits), has been dropped. That ordering is what makes "drop, then reopen" safe.
//!
//! The registry is the production gauge `log_capturer_tasks_alive{kind}` and the
//! simulator's leak oracle: live tasks by kind and by spawn site.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::channel::oneshot;
use futures::task::AtomicWaker;

use crate::rt::{Rt, TaskMeta};

/// What a task is for. The label of `log_capturer_tasks_alive{kind}`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskKind {
    /// Container discovery: events stream and periodic reconcile.
    Discovery,
    /// One supervisor per known container; it polls that container's log stream itself.
    Container,
    /// A helper that holds a log stream (unused by the shipped supervisor; kept for
    /// tests that model the predecessor's reader-per-stream design).
    Stream,
    /// A file tailer.
    File,
    /// The batcher between sources and the sink worker.
    Dispatcher,
    /// The sink worker that sends batches and retries.
    Sink,
    /// Commits acknowledged positions.
    Checkpoint,
    /// Heartbeats and watchdogs that are tasks of their own.
    Heartbeat,
    /// The daemon's HTTP server and connections.
    Http,
    /// Connection drivers owned by an adapter (e.g. a Docker HTTP connection).
    Connection,
    /// Signal handling and other daemon plumbing.
    Control,
}

impl TaskKind {
    pub const ALL: [TaskKind; 11] = [
        TaskKind::Discovery,
        TaskKind::Container,
        TaskKind::Stream,
        TaskKind::File,
        TaskKind::Dispatcher,
        TaskKind::Sink,
        TaskKind::Checkpoint,
        TaskKind::Heartbeat,
        TaskKind::Http,
        TaskKind::Connection,
        TaskKind::Control,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Discovery => "discovery",
            TaskKind::Container => "container",
            TaskKind::Stream => "stream",
            TaskKind::File => "file",
            TaskKind::Dispatcher => "dispatcher",
            TaskKind::Sink => "sink",
            TaskKind::Checkpoint => "checkpoint",
            TaskKind::Heartbeat => "heartbeat",
            TaskKind::Http => "http",
            TaskKind::Connection => "connection",
            TaskKind::Control => "control",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A spawn site, printed as `file:line:column`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpawnSite {
    pub file: &'static str,
    pub line: u32,
    pub column: u32,
}

impl SpawnSite {
    pub fn of(location: &'static Location<'static>) -> SpawnSite {
        SpawnSite { file: location.file(), line: location.line(), column: location.column() }
    }
}

impl std::fmt::Display for SpawnSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One live task, for `/debug/tasks` and failure reports.
#[derive(Clone, Debug)]
pub struct LiveTask {
    pub id: u64,
    pub kind: TaskKind,
    pub site: SpawnSite,
    pub spawned_at: crate::rt::Instant,
}

/// Counters per kind plus the set of live tasks.
#[derive(Default)]
pub struct TaskRegistry {
    spawned: [AtomicU64; TaskKind::ALL.len()],
    finished: [AtomicU64; TaskKind::ALL.len()],
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, LiveTask>>,
}

impl TaskRegistry {
    pub fn alive(&self, kind: TaskKind) -> u64 {
        let spawned = self.spawned[kind.index()].load(Ordering::Acquire);
        let finished = self.finished[kind.index()].load(Ordering::Acquire);
        spawned - finished
    }

    pub fn spawned(&self, kind: TaskKind) -> u64 {
        self.spawned[kind.index()].load(Ordering::Acquire)
    }

    pub fn finished(&self, kind: TaskKind) -> u64 {
        self.finished[kind.index()].load(Ordering::Acquire)
    }

    pub fn alive_total(&self) -> u64 {
        TaskKind::ALL.iter().map(|kind| self.alive(*kind)).sum()
    }

    /// Every live task, oldest first.
    pub fn live_tasks(&self) -> Vec<LiveTask> {
        self.live.lock().unwrap().values().cloned().collect()
    }

    /// Live tasks counted by (kind, spawn site): the oracle's leak fingerprint.
    pub fn alive_by_site(&self) -> BTreeMap<(TaskKind, SpawnSite), u64> {
        let mut counts = BTreeMap::new();
        for task in self.live.lock().unwrap().values() {
            *counts.entry((task.kind, task.site)).or_insert(0) += 1;
        }
        counts
    }

    fn register(&self, kind: TaskKind, site: SpawnSite, now: crate::rt::Instant) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.spawned[kind.index()].fetch_add(1, Ordering::AcqRel);
        self.live.lock().unwrap().insert(id, LiveTask { id, kind, site, spawned_at: now });
        id
    }

    fn unregister(&self, id: u64, kind: TaskKind) {
        self.live.lock().unwrap().remove(&id);
        self.finished[kind.index()].fetch_add(1, Ordering::AcqRel);
    }
}

/// Removes a task from the registry when its future is dropped, completed or not.
struct LiveGuard {
    registry: Arc<TaskRegistry>,
    id: u64,
    kind: TaskKind,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.registry.unregister(self.id, self.kind);
    }
}

/// The spawner: a runtime plus the registry every spawn is counted in. Cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    rt: Arc<dyn Rt>,
    registry: Arc<TaskRegistry>,
}

impl Tasks {
    pub fn new(rt: Arc<dyn Rt>) -> Tasks {
        Tasks { rt, registry: Arc::new(TaskRegistry::default()) }
    }

    pub fn rt(&self) -> &Arc<dyn Rt> {
        &self.rt
    }

    pub fn registry(&self) -> &Arc<TaskRegistry> {
        &self.registry
    }

    /// Spawn `future` as a task of `kind`, attributed to the caller's location.
    #[track_caller]
    pub fn spawn<F, T>(&self, kind: TaskKind, future: F) -> TaskHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let location = Location::caller();
        let site = SpawnSite::of(location);
        let id = self.registry.register(kind, site, self.rt.now());
        let guard = LiveGuard { registry: self.registry.clone(), id, kind };
        let abort = Arc::new(Abort::default());
        let (done_tx, done_rx) = oneshot::channel();
        let wrapped = Task {
            future: Some(future),
            abort: abort.clone(),
            registered: None,
            guard: Some(guard),
            done: Some(done_tx),
        };
        let meta = TaskMeta { id, kind, site: location };
        self.rt.spawn_raw(meta, Box::pin(wrapped));
        TaskHandle { abort, done: Some(done_rx), cancel_on_drop: true, kind, site }
    }
}

/// A task's cancellation: what `futures::future::Abortable` and its `AbortHandle` did,
/// with one difference: the task's waker is handed to [`Abort::waker`] when it differs
/// from the one handed last (a task's waker is the same at every poll, in tokio and in the
/// simulator), not at every poll (two atomic read-modify-writes and a compare per poll of
/// every task). Cancelling still wakes the task: the waker stays registered until
/// [`Abort::abort`] takes it, and a poll after that sees `aborted` and ends the task
/// (see [`Task`]). Callgrind: seed 2 353.06 M -> 352.13 M, seed 3 401.33 M -> 399.81 M, seed 19 864.18 M
/// -> 860.91 M.
#[derive(Default)]
struct Abort {
    aborted: AtomicBool,
    waker: AtomicWaker,
}

impl Abort {
    /// Stop the task at its next poll (waking it for that poll). Does not wait.
    fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
        self.waker.wake();
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// What [`Tasks::spawn`] hands the runtime: the task's future, polled until it
    /// completes or the task is aborted; then the future (and all it owned) is dropped,
    /// and only then does the task leave the registry and its owner learn that it is
    /// finished. Dropped before that (the runtime shut down, or the simulator crashed the
    /// daemon), the fields drop in this order: the future first, then the registry entry,
    /// then the owner's channel. A plain future rather than an `async` block around an
    /// abortable future: one state machine less to enter on every poll (callgrind: seed 2
    /// 350.10 M -> 347.27 M, seed 3 396.71 M -> 392.09 M, seed 19 856.99 M -> 853.07 M).
    struct Task<F: Future> {
        #[pin]
        future: Option<F>,
        abort: Arc<Abort>,
        // A clone of the waker registered last: keeps its identity alive for the compare.
        registered: Option<Waker>,
        guard: Option<LiveGuard>,
        done: Option<oneshot::Sender<Option<F::Output>>>,
    }
}

impl<F: Future> Future for Task<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else { return Poll::Ready(()) };
        let outcome = if this.abort.is_aborted() {
            None
        } else if let Poll::Ready(output) = future.poll(cx) {
            Some(output)
        } else {
            if !this.registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                this.abort.waker.register(cx.waker());
                *this.registered = Some(cx.waker().clone());
            }
            if !this.abort.is_aborted() {
                return Poll::Pending;
            }
            None
        };
        this.future.set(None);
        drop(this.guard.take());
        if let Some(done) = this.done.take() {
            let _ = done.send(outcome);
        }
        Poll::Ready(())
    }
}

/// Returned by [`TaskHandle::join`] when the task was cancelled before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task was cancelled")]
pub struct Cancelled;

/// The owner's side of a task: cancel it, join it.
///
/// Dropping a handle cancels the task (structured cancellation: when an owner is
/// cancelled, so is everything it owns), but it does not wait for it; an owner that
/// finishes normally calls [`join`](Self::join) or [`cancel_and_join`](Self::cancel_and_join)
/// on every handle first. [`detach`](Self::detach) exists only for tests that model
/// the predecessor's untracked spawns.
pub struct TaskHandle<T> {
    abort: Arc<Abort>,
    done: Option<oneshot::Receiver<Option<T>>>,
    cancel_on_drop: bool,
    kind: TaskKind,
    site: SpawnSite,
}

impl<T> TaskHandle<T> {
    pub fn kind(&self) -> TaskKind {
        self.kind
    }

    pub fn site(&self) -> SpawnSite {
        self.site
    }

    /// Ask the task to stop at its next suspension point. Does not wait.
    pub fn cancel(&self) {
        self.abort.abort();
    }

    /// A handle that can cancel the task while another owner waits on [`join`](Self::join).
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.abort.clone())
    }

    /// Wait until the task has finished and its future has been dropped.
    pub async fn join(mut self) -> Result<T, Cancelled> {
        let done = self.done.take().expect("joined once");
        self.cancel_on_drop = false;
        match done.await {
            Ok(Some(value)) => Ok(value),
            // Aborted, or the runtime dropped the task (runtime shut down).
            Ok(None) | Err(oneshot::Canceled) => Err(Cancelled),
        }
    }

    /// Cancel, then wait until the task's future has been dropped.
    pub async fn cancel_and_join(self) -> Result<T, Cancelled> {
        self.cancel();
        self.join().await
    }

    /// Let the task run on with no owner. Only the simulator's deliberately broken
    /// variants do this; the oracle then reports the task as a leak at its spawn site.
    pub fn detach(mut self) {
        self.cancel_on_drop = false;
    }
}

/// Cancels a task without owning it (see [`TaskHandle::cancel_handle`]).
#[derive(Clone)]
pub struct CancelHandle(Arc<Abort>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.abort();
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            self.abort.abort();
        }
    }
}
