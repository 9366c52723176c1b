//! [`RealDocker`]: the conformance script's [`WorldControl`] on the machine's Docker
//! engine, through the `docker` CLI and [`TestContainer`]s (labelled, removed on drop).
//!
//! A [`Program`] becomes a busybox `sh -c` script: `echo` per line; for a long line,
//! `head -c N /dev/zero | tr '\000' x` (in a `seq` loop with `usleep` when written in
//! pieces) and then `echo`; `usleep` for a pause; then an idle loop. SIGTERM is trapped
//! so `docker stop` and `docker restart` end it at once. CLI calls block, so they run on
//! tokio's blocking pool and are awaited at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use engine::model::ContainerId;
use engine::rt::BoxFuture;

use crate::conformance::{Program, Step, WorldControl};
use crate::containers::{shell_quote, TestContainer, IDLE_UNTIL_STOPPED};

/// Grace period of `docker stop` / `docker restart` (programs exit on SIGTERM at once).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The real engine as a [`WorldControl`]. Removes every container it made when dropped.
#[derive(Default)]
pub struct RealDocker {
    containers: Arc<Mutex<BTreeMap<ContainerId, TestContainer>>>,
}

impl RealDocker {
    pub fn new() -> RealDocker {
        RealDocker::default()
    }
}

/// The `sh -c` script that plays `program`.
pub fn shell_script(program: &Program) -> String {
    let mut script = String::from("trap 'exit 0' TERM INT; ");
    for step in &program.steps {
        match step {
            Step::Stdout(line) => script.push_str(&format!("echo {}; ", shell_quote(line))),
            Step::Stderr(line) => script.push_str(&format!("echo {} >&2; ", shell_quote(line))),
            Step::LongStdout { byte, len, chunk, pause } => {
                assert!(byte.is_ascii_alphanumeric() && *chunk > 0 && len % chunk == 0);
                let byte = *byte as char;
                let piece = format!("head -c {chunk} /dev/zero | tr '\\000' {byte}");
                if chunk >= len {
                    script.push_str(&format!("{piece}; "));
                } else {
                    script.push_str(&format!(
                        "for i in $(seq {}); do {piece}; usleep {}; done; ",
                        len / chunk,
                        pause.as_micros()
                    ));
                }
                script.push_str("echo; ");
            }
            Step::Sleep(pause) => script.push_str(&format!("usleep {}; ", pause.as_micros())),
        }
    }
    script.push_str(IDLE_UNTIL_STOPPED);
    script
}

impl RealDocker {
    fn with_container(
        &self,
        id: &ContainerId,
        action: impl FnOnce(&TestContainer) -> Result<()> + Send + 'static,
    ) -> BoxFuture<Result<()>> {
        let containers = self.containers.clone();
        let id = id.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let containers = containers.lock().unwrap();
                let container = containers.get(&id).ok_or_else(|| anyhow!("no test container {id}"))?;
                action(container)
            })
            .await?
        })
    }
}

impl RealDocker {
    fn run_with(&self, name: &str, program: &Program, tty: bool) -> BoxFuture<Result<ContainerId>> {
        let containers = self.containers.clone();
        let name = name.to_owned();
        let script = shell_script(program);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let args: &[&str] = if tty { &["-t"] } else { &[] };
                let container = TestContainer::run_with(&name, &script, args)?;
                let id = ContainerId::new(container.id());
                containers.lock().unwrap().insert(id.clone(), container);
                Ok(id)
            })
            .await?
        })
    }
}

impl WorldControl for RealDocker {
    fn run(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>> {
        self.run_with(name, program, false)
    }

    fn run_tty(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>> {
        self.run_with(name, program, true)
    }

    fn stop(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        self.with_container(id, |container| container.stop(STOP_GRACE))
    }

    fn restart(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        self.with_container(id, |container| container.restart(STOP_GRACE))
    }

    fn remove(&self, id: &ContainerId) -> BoxFuture<Result<()>> {
        let containers = self.containers.clone();
        let id = id.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let container =
                    containers.lock().unwrap().remove(&id).ok_or_else(|| anyhow!("no test container {id}"))?;
                container.remove()
            })
            .await?
        })
    }
}
