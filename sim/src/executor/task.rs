//! What the executor knows about a task: where it came from, and its slot.
//!
//! Owns: [`TaskOrigin`] (an engine task spawned through [`engine::rt::Rt::spawn_raw`],
//! tagged with the kind and spawn site of its [`engine::rt::TaskMeta`], or a world task
//! of the simulator's own, tagged with a name) and [`SimTask`], the row of
//! [`super::Executor::live_tasks`].
//!
//! Promises: world tasks are never counted as engine tasks, never dropped by
//! [`super::Executor::drop_tasks`], and never appear in the engine's task registry.

use std::task::Waker;

use engine::rt::{BoxFuture, TaskMeta};
use engine::task::{SpawnSite, TaskKind};

/// Executor-wide task id, in spawn order (engine and world tasks share the sequence).
pub type SimTaskId = u64;

/// Who spawned a task.
#[derive(Clone, Copy, Debug)]
pub enum TaskOrigin {
    /// Spawned by the engine through `Rt::spawn_raw` (normally via `engine::task::Tasks`).
    Engine(TaskMeta),
    /// A world-driver task of the simulator (`Executor::spawn_world`, `SimRt::spawn_world`).
    World(&'static str),
}

/// A live task, as listed by [`super::Executor::live_tasks`].
#[derive(Clone, Copy, Debug)]
pub struct SimTask {
    pub id: SimTaskId,
    pub origin: TaskOrigin,
}

impl SimTask {
    pub fn is_world(&self) -> bool {
        matches!(self.origin, TaskOrigin::World(_))
    }

    /// The engine's kind; `None` for world tasks.
    pub fn kind(&self) -> Option<TaskKind> {
        match self.origin {
            TaskOrigin::Engine(meta) => Some(meta.kind),
            TaskOrigin::World(_) => None,
        }
    }

    /// The engine's spawn site; `None` for world tasks.
    pub fn site(&self) -> Option<SpawnSite> {
        match self.origin {
            TaskOrigin::Engine(meta) => Some(SpawnSite::of(meta.site)),
            TaskOrigin::World(_) => None,
        }
    }

    /// The engine's meta; `None` for world tasks.
    pub fn meta(&self) -> Option<TaskMeta> {
        match self.origin {
            TaskOrigin::Engine(meta) => Some(meta),
            TaskOrigin::World(_) => None,
        }
    }

    /// The grouping used by [`super::Executor::live_by_label`].
    pub fn label(&self) -> TaskLabel {
        match self.origin {
            TaskOrigin::Engine(meta) => TaskLabel::Engine { kind: meta.kind, site: SpawnSite::of(meta.site) },
            TaskOrigin::World(name) => TaskLabel::World(name),
        }
    }
}

/// Live tasks are counted by this label: engine tasks by (kind, spawn site), world tasks
/// by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskLabel {
    Engine { kind: TaskKind, site: SpawnSite },
    World(&'static str),
}

impl std::fmt::Display for TaskLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskLabel::Engine { kind, site } => write!(f, "{} @ {}", kind.as_str(), site),
            TaskLabel::World(name) => write!(f, "world:{name}"),
        }
    }
}

/// A task spawned but not yet admitted into a slot (spawns are queued while a task is
/// being polled, and admitted right after the poll).
pub(crate) struct PendingTask {
    pub(crate) task: SimTask,
    pub(crate) future: BoxFuture<()>,
}

/// A task owned by the executor.
pub(crate) struct TaskSlot {
    pub(crate) task: SimTask,
    pub(crate) future: BoxFuture<()>,
    /// Built once ([`super::waker::TaskWaker::new_waker`]); cloning it only bumps a
    /// (non-atomic) reference count.
    pub(crate) waker: Waker,
}

impl TaskSlot {
    pub(crate) fn new(pending: PendingTask, waker: Waker) -> TaskSlot {
        TaskSlot { task: pending.task, future: pending.future, waker }
    }
}
