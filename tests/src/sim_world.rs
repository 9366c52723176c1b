//! [`SimWorld`]: the conformance script's [`WorldControl`] on the simulator's Docker model
//! (`sim::world::SimDocker`), so that [`crate::conformance::run_script`] runs against the
//! model through the same `ContainerEngine` port as against the real engine
//! ([`crate::real_world::RealDocker`]), and the two [`Facts`] can be compared (DESIGN §6).
//!
//! A [`Program`] is played by a world task on the simulator's executor, like busybox `sh`
//! plays [`crate::real_world::shell_script`]: a line is one `emit_line` at the current
//! virtual time; a sleep is a virtual sleep; a long line is written piece by piece with
//! the program's pause after each (as the shell's `usleep`), and Docker's copier is
//! played on the way: every time 16 KiB without a newline are buffered they are cut
//! (`emit_line_head`: readable at once, stamped at the first cut), and the newline
//! writes the rest (`emit_line`). Stop, restart and remove end the task at once (the
//! program obeys SIGTERM immediately); a restart starts the program again from its first
//! step, as Docker re-runs the container's command.
//!
//! [`run_script_on_the_model`] runs the whole script on a fresh `sim::Executor`.
//!
//! ## What is compared
//! All of [`Facts`]: the model must produce exactly [`reference_facts`], what Docker
//! 20.10.24 did. [`Notes`] are timing: on the model they are exact (virtual time, every
//! echo at the same instant), so the test pins the one that shows the copier is
//! played — the slow line's first piece is stamped 300 ms after the line began, when
//! its first 16 KiB were cut (the real engine: 302 ms) — and leaves the others (how
//! stdout and stderr timestamps interleave within a burst) to the real engine's report.
//!
//! [`Facts`]: crate::conformance::Facts
//! [`Notes`]: crate::conformance::Notes
//! [`reference_facts`]: crate::conformance::reference_facts

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use engine::model::{ContainerId, StdStream};
use engine::port::docker::ContainerEngine;
use engine::rt::{BoxFuture, Rt, UnixNanos};
use futures::future::{AbortHandle, Abortable};
use sim::world::docker::{CommandError, ENTRY_CONTENT_MAX};
use sim::world::SimDocker;
use sim::{Executor, SimRt};

use crate::conformance::{run_script, Observations, Program, Step, WorldControl};
use crate::conformance_tty::{run_tty_script, TtyFacts};

/// The image name the model's containers carry (the real world's test image).
const IMAGE: &str = "log-capturer-test-busybox";

/// The simulator's Docker model as a [`WorldControl`].
pub struct SimWorld {
    docker: SimDocker,
    rt: SimRt,
    /// Per container: its program, and the handle that ends the task playing it.
    containers: Mutex<BTreeMap<ContainerId, Running>>,
}

struct Running {
    program: Arc<Program>,
    task: Option<AbortHandle>,
}

impl SimWorld {
    pub fn new(docker: SimDocker, rt: SimRt) -> SimWorld {
        SimWorld { docker, rt, containers: Mutex::new(BTreeMap::new()) }
    }

    /// Spawn the world task that plays `program` in container `id`; returns its handle.
    fn play(&self, id: &ContainerId, program: Arc<Program>) -> AbortHandle {
        let (handle, registration) = AbortHandle::new_pair();
        let task = play(self.docker.clone(), self.rt.clone(), id.clone(), program);
        self.rt.spawn_world("conformance program", async move {
            let _ = Abortable::new(task, registration).await;
        });
        handle
    }

    /// End the task playing `id`'s program (SIGTERM ends it at once).
    fn kill_program(&self, id: &ContainerId) -> Result<Arc<Program>> {
        let mut containers = self.containers.lock().unwrap();
        let running = containers.get_mut(id).ok_or_else(|| anyhow!("no simulated container {id}"))?;
        if let Some(task) = running.task.take() {
            task.abort();
        }
        Ok(running.program.clone())
    }
}

/// Plays `program` in container `id` until it ends, or until the container stops (an
/// emit is refused).
async fn play(docker: SimDocker, rt: SimRt, id: ContainerId, program: Arc<Program>) {
    let written = |result: Result<u64, CommandError>| match result {
        Ok(_) => true,
        Err(CommandError::NotRunning | CommandError::NoSuchContainer) => false,
        Err(error) => panic!("emit on {id}: {error:?}"),
    };
    let emit = |stream: StdStream, content: &[u8]| written(docker.emit_line(&id, stream, content));
    for step in &program.steps {
        let written = match step {
            Step::Stdout(line) => emit(StdStream::Stdout, line.as_bytes()),
            Step::Stderr(line) => emit(StdStream::Stderr, line.as_bytes()),
            Step::LongStdout { byte, len, chunk, pause } => {
                // The shell writes the line `chunk` bytes at a time with `pause` after
                // each (none when it is written at once), then the newline. The copier
                // cuts a piece each time 16 KiB without a newline are buffered.
                let mut buffered = 0;
                let mut ok = true;
                for _ in 0..len / chunk {
                    buffered += chunk;
                    let cut = buffered - buffered % ENTRY_CONTENT_MAX;
                    if cut > 0 {
                        ok = written(docker.emit_line_head(&id, StdStream::Stdout, &vec![*byte; cut]));
                        if !ok {
                            break;
                        }
                        buffered -= cut;
                    }
                    if chunk < len {
                        rt.sleep(*pause).await;
                    }
                }
                ok && emit(StdStream::Stdout, &vec![*byte; buffered])
            }
            Step::Sleep(pause) => {
                rt.sleep(*pause).await;
                true
            }
        };
        if !written {
            return;
        }
    }
    // Then idle until stopped: nothing more to do.
}

fn command(result: Result<(), CommandError>, what: &str, id: &ContainerId) -> Result<()> {
    result.map_err(|error| anyhow!("{what} {id}: {error:?}"))
}

impl SimWorld {
    fn run_with(&self, name: &str, program: &Program, tty: bool) -> BoxFuture<Result<ContainerId>> {
        let id = self.docker.create_tty(name, IMAGE, BTreeMap::new(), tty);
        let result = command(self.docker.start(&id), "start", &id).map(|()| {
            let program = Arc::new(program.clone());
            let task = self.play(&id, program.clone());
            self.containers.lock().unwrap().insert(id.clone(), Running { program, task: Some(task) });
            id
        });
        Box::pin(async move { result })
    }
}

impl WorldControl for SimWorld {
    fn run(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>> {
        self.run_with(name, program, false)
    }

    fn run_tty(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>> {
        self.run_with(name, program, true)
    }

    fn stop(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        let result = self.kill_program(id).and_then(|_| command(self.docker.stop(id), "stop", id));
        Box::pin(async move { result })
    }

    fn restart(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        let result = self.kill_program(id).and_then(|program| {
            command(self.docker.restart(id), "restart", id)?;
            let task = self.play(id, program);
            if let Some(running) = self.containers.lock().unwrap().get_mut(id) {
                running.task = Some(task);
            }
            Ok(())
        });
        Box::pin(async move { result })
    }

    fn remove(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        let result = self.kill_program(id).and_then(|_| {
            self.containers.lock().unwrap().remove(id);
            command(self.docker.remove(id), "remove", id)
        });
        Box::pin(async move { result })
    }
}

/// Runs the conformance script against a fresh model on a fresh executor: `seed` drives
/// the executor's choices and the model's own streams (ids, chunk boundaries), and the
/// virtual wall clock starts at `wall_start`.
pub fn run_script_on_the_model(seed: u64, wall_start: UnixNanos) -> Result<Observations> {
    let mut executor = Executor::new(seed, wall_start);
    let docker = SimDocker::new(executor.handle(), seed);
    let engine: Arc<dyn ContainerEngine> = Arc::new(docker.clone());
    let world = Arc::new(SimWorld::new(docker, executor.handle()));
    let rt: Arc<dyn Rt> = executor.rt();
    let observations = executor
        .block_on(run_script(engine, world, rt))
        .map_err(|outcome| anyhow!("the script did not finish: {outcome:?}"))??;
    Ok(observations)
}

/// Runs the TTY script ([`run_tty_script`]) against a fresh model on a fresh executor.
pub fn run_tty_script_on_the_model(seed: u64, wall_start: UnixNanos) -> Result<TtyFacts> {
    let mut executor = Executor::new(seed, wall_start);
    let docker = SimDocker::new(executor.handle(), seed);
    let engine: Arc<dyn ContainerEngine> = Arc::new(docker.clone());
    let world = Arc::new(SimWorld::new(docker, executor.handle()));
    let rt: Arc<dyn Rt> = executor.rt();
    executor
        .block_on(run_tty_script(engine, world, rt))
        .map_err(|outcome| anyhow!("the TTY script did not finish: {outcome:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::reference_facts;
    use crate::conformance_tty::tty_reference_facts;

    #[test]
    fn the_model_produces_the_real_engines_tty_facts() {
        for seed in 1..=3 {
            let facts =
                run_tty_script_on_the_model(seed, WALL).unwrap_or_else(|error| panic!("seed {seed}: {error:#}"));
            assert_eq!(facts, tty_reference_facts(), "seed {seed}");
        }
    }

    const SECOND: i64 = 1_000_000_000;
    /// 2023-11-14T22:13:20Z.
    const WALL: i64 = 1_700_000_000 * SECOND;

    #[test]
    fn the_model_produces_the_real_engines_facts() {
        // Different seeds (scheduling, chunk boundaries) and different places of the
        // script inside its first second (where `since` cuts).
        for (seed, offset_millis) in [(1, 250), (2, 0), (3, 999), (4, 600), (5, 42)] {
            let observations = run_script_on_the_model(seed, WALL + offset_millis * 1_000_000)
                .unwrap_or_else(|error| panic!("seed {seed}: {error:#}"));
            let json = serde_json::to_string_pretty(&observations).unwrap();
            assert_eq!(observations.facts, reference_facts(), "seed {seed}, offset {offset_millis} ms:\n{json}");
            // The slow line's pieces are stamped when its first 16 KiB were cut: after
            // two 8 KiB writes, one 300 ms pause (the fast one at once).
            assert_eq!(observations.notes.long_line_first_piece_after_previous_millis, vec![0, 300], "{json}");
        }
    }
}
