//! Termination signals: the first SIGTERM or SIGINT starts a graceful shutdown, a second
//! one exits at once with status 130.
//!
//! [`Signals::install`] registers the handlers (before anything else runs, so an early
//! signal is not lost). [`Signals::first`] waits for the first. [`Signals::exit_on_second`]
//! then hands the listeners to a `TaskKind::Control` task owned by the caller: it exits
//! the process on the next signal, and is cancelled and joined once shutdown finished.

use engine::task::{TaskHandle, TaskKind, Tasks};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Exit status after a second signal (128 + SIGINT, what shells report for Ctrl-C).
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    /// Wait for SIGTERM or SIGINT; returns its name.
    pub async fn first(&mut self) -> &'static str {
        tokio::select! {
            biased;
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }

    /// Exit the process (status 130) on the next signal. Cancel and join the handle when
    /// the graceful shutdown is done.
    pub fn exit_on_second(mut self, tasks: &Tasks) -> TaskHandle<()> {
        tasks.spawn(TaskKind::Control, async move {
            let name = self.first().await;
            eprintln!("log-capturer: second signal ({name}) during shutdown: exiting now");
            std::process::exit(EXIT_ON_SECOND_SIGNAL);
        })
    }
}
