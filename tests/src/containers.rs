//! Containers made by tests: started from the test image, labelled, and removed on drop.
//!
//! Every container carries `log-capturer-test=1` and `log-capturer-test.pid=<pid of the
//! test process>`. A [`TestContainer`] removes its container (`docker rm -f -v`) when
//! dropped, panics included; [`sweep_stale_test_containers`] removes what a killed test
//! process left behind, and only that (a live process's containers are not touched, so
//! concurrent test runs on one engine do not remove each other's containers).
//!
//! [`LinePrinter`] writes the shell loop most tests need: numbered lines on stdout and
//! stderr at given rates, then an idle wait that ends promptly on `docker stop`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::host::docker;
use crate::image::TEST_IMAGE;

/// The label every test container has.
pub const TEST_LABEL: &str = "log-capturer-test";
/// The label naming the process that made the container.
pub const TEST_PID_LABEL: &str = "log-capturer-test.pid";

/// A container this test made; removed when dropped.
#[derive(Debug)]
pub struct TestContainer {
    id: String,
    name: String,
    removed: bool,
}

impl TestContainer {
    /// `docker run -d` of the test image running `sh -c script`, named
    /// `lc-test-<name_hint>-<pid>-<n>`.
    pub fn run(name_hint: &str, script: &str) -> Result<TestContainer> {
        TestContainer::run_with(name_hint, script, &[])
    }

    /// Like [`run`](Self::run), with extra `docker run` arguments (e.g. `--log-opt`).
    pub fn run_with(name_hint: &str, script: &str, extra_args: &[&str]) -> Result<TestContainer> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("lc-test-{name_hint}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let label = format!("{TEST_LABEL}=1");
        let pid_label = format!("{TEST_PID_LABEL}={}", std::process::id());
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label, "--label", &pid_label];
        args.extend_from_slice(extra_args);
        args.extend_from_slice(&[TEST_IMAGE, "sh", "-c", script]);
        let id = docker(&args)?;
        if id.len() != 64 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            bail!("docker run printed {id:?}, not a container id");
        }
        Ok(TestContainer { id, name, removed: false })
    }

    /// The full 64-hex id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `docker stop -t <grace>`.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        docker(&["stop", "-t", &grace.as_secs().to_string(), &self.id]).map(drop)
    }

    /// `docker start`.
    pub fn start(&self) -> Result<()> {
        docker(&["start", &self.id]).map(drop)
    }

    /// `docker restart -t <grace>`: same id, same log.
    pub fn restart(&self, grace: Duration) -> Result<()> {
        docker(&["restart", "-t", &grace.as_secs().to_string(), &self.id]).map(drop)
    }

    /// `docker kill`.
    pub fn kill(&self) -> Result<()> {
        docker(&["kill", &self.id]).map(drop)
    }

    /// `docker rename`.
    pub fn rename(&mut self, new_name: &str) -> Result<()> {
        docker(&["rename", &self.id, new_name])?;
        self.name = new_name.to_owned();
        Ok(())
    }

    /// `docker rm -f -v`, now rather than on drop.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        docker(&["rm", "-f", "-v", &self.id]).map(drop)
    }

    /// Whether the container is running.
    pub fn is_running(&self) -> Result<bool> {
        Ok(docker(&["inspect", "--format", "{{.State.Running}}", &self.id])? == "true")
    }

    /// Waits (polling) until the container is no longer running.
    pub fn wait_exited(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while self.is_running()? {
            if started.elapsed() > timeout {
                bail!("container {} still running after {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `docker logs` (stdout and stderr interleaved as the CLI prints them), as lines.
    pub fn cli_log_lines(&self) -> Result<Vec<String>> {
        let output = std::process::Command::new("docker").args(["logs", &self.id]).output()?;
        let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        lines.extend(String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned));
        Ok(lines)
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(error) = docker(&["rm", "-f", "-v", &self.id]) {
                eprintln!("cleanup of test container {}: {error:#}", self.name);
            }
        }
    }
}

/// Removes test containers whose process is gone (killed test runs). Returns how many.
pub fn sweep_stale_test_containers() -> Result<usize> {
    let format = format!("{{{{.ID}}}} {{{{.Label \"{TEST_PID_LABEL}\"}}}}");
    let filter = format!("label={TEST_LABEL}=1");
    let listed = docker(&["ps", "-a", "--no-trunc", "--filter", &filter, "--format", &format])?;
    let mut removed = 0;
    for line in listed.lines() {
        let mut fields = line.split_whitespace();
        let (Some(id), pid) = (fields.next(), fields.next()) else { continue };
        let alive = pid
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive && docker(&["rm", "-f", "-v", id]).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Numbered lines on stdout and stderr at given rates. Lines read
/// `<prefix> out <n>` and `<prefix> err <n>`, `n` from 1.
#[derive(Clone, Debug)]
pub struct LinePrinter {
    pub prefix: String,
    pub stdout_lines: u64,
    pub stderr_lines: u64,
    /// Lines per second on stdout; 0: as fast as the shell goes.
    pub stdout_per_sec: u32,
    pub stderr_per_sec: u32,
    /// After printing, idle until stopped (`true`) or exit 0 (`false`).
    pub then_idle: bool,
}

impl LinePrinter {
    pub fn new(prefix: &str, stdout_lines: u64, stderr_lines: u64) -> LinePrinter {
        LinePrinter {
            prefix: prefix.to_owned(),
            stdout_lines,
            stderr_lines,
            stdout_per_sec: 0,
            stderr_per_sec: 0,
            then_idle: true,
        }
    }

    pub fn rates(mut self, stdout_per_sec: u32, stderr_per_sec: u32) -> LinePrinter {
        self.stdout_per_sec = stdout_per_sec;
        self.stderr_per_sec = stderr_per_sec;
        self
    }

    pub fn exit_when_done(mut self) -> LinePrinter {
        self.then_idle = false;
        self
    }

    /// The `sh -c` script. `docker stop` ends it at once (TERM is trapped).
    pub fn script(&self) -> String {
        let pause = |per_sec: u32| 1_000_000u32.checked_div(per_sec).unwrap_or(0);
        let prefix = shell_quote(&self.prefix);
        let mut script = String::from("trap 'exit 0' TERM INT; ");
        script.push_str(
            "emit() { i=1; while [ $i -le $2 ]; do \
               if [ $1 = out ]; then echo \"$P out $i\"; else echo \"$P err $i\" >&2; fi; \
               i=$((i+1)); if [ $3 -gt 0 ]; then usleep $3; fi; done; }; ",
        );
        script.push_str(&format!("P={prefix}; "));
        script.push_str(&format!(
            "emit out {} {} & emit err {} {} & wait; ",
            self.stdout_lines,
            pause(self.stdout_per_sec),
            self.stderr_lines,
            pause(self.stderr_per_sec)
        ));
        if self.then_idle {
            script.push_str(IDLE_UNTIL_STOPPED);
        }
        script
    }

    /// The lines the script prints on stdout, in order.
    pub fn expected_stdout(&self) -> Vec<String> {
        (1..=self.stdout_lines).map(|n| format!("{} out {n}", self.prefix)).collect()
    }

    /// The lines the script prints on stderr, in order.
    pub fn expected_stderr(&self) -> Vec<String> {
        (1..=self.stderr_lines).map(|n| format!("{} err {n}", self.prefix)).collect()
    }
}

/// Shell tail that idles until the container is stopped (with TERM trapped beforehand,
/// `wait` returns as soon as TERM arrives).
pub const IDLE_UNTIL_STOPPED: &str = "while true; do sleep 3600 & wait $!; done";

/// Single-quotes `text` for `sh`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
