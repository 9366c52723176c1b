//! What a daemon under test delivered, and what it should have delivered.
//!
//! - [`Delivered`]: one line as a sink saw it (timestamp, labels, text), read from the
//!   file sink's JSON lines ([`read_file_sink`]) or recorded by the in-test Loki
//!   receiver (`crate::loki_receiver`).
//! - [`StreamKey`]: (container name, `stdout`|`stderr`), from the `container` and
//!   `stream` labels the daemon always sets. [`by_stream`] groups deliveries by it,
//!   keeping arrival order.
//! - The oracle of what a container printed: [`docker_log_streams`] (the engine's own
//!   log, through `docker logs`, stdout and stderr kept apart) or a
//!   [`LinePrinter`](crate::containers::LinePrinter)'s expected lines.
//! - [`compare_streams`]: expected vs delivered per stream, exact (same lines, same
//!   order, no extra stream), with a readable account of every difference: missing
//!   lines, duplicates, lines out of order, unexpected lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use engine::rt::UnixNanos;

/// One line as the sink received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub ts: UnixNanos,
    pub labels: BTreeMap<String, String>,
    pub line: String,
}

impl Delivered {
    pub fn stream_key(&self) -> StreamKey {
        StreamKey {
            container: self.labels.get("container").cloned().unwrap_or_default(),
            stream: self.labels.get("stream").cloned().unwrap_or_default(),
        }
    }
}

/// (container name, `stdout` | `stderr`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    pub container: String,
    pub stream: String,
}

impl StreamKey {
    pub fn new(container: &str, stream: &str) -> StreamKey {
        StreamKey { container: container.to_owned(), stream: stream.to_owned() }
    }
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.container, self.stream)
    }
}

/// The file sink's `logs.jsonl` (a missing file is empty). A last line without its
/// newline — a write cut short by SIGKILL — is left out (see [`truncate_partial_line`]).
pub fn read_file_sink(path: &Path) -> Result<Vec<Delivered>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let complete = match bytes.iter().rposition(|&byte| byte == b'\n') {
        Some(last) => &bytes[..=last],
        None => &[][..],
    };
    let text = std::str::from_utf8(complete).context("logs.jsonl is not UTF-8")?;
    text.lines()
        .enumerate()
        .map(|(index, line)| parse_json_line(line).with_context(|| format!("logs.jsonl line {}", index + 1)))
        .collect()
}

fn parse_json_line(line: &str) -> Result<Delivered> {
    let value: serde_json::Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line:?}"))?;
    let ts_text = value["ts"].as_str().ok_or_else(|| anyhow!("no \"ts\" in {line:?}"))?;
    let ts = engine::parse::timestamp::parse_rfc3339_nanos(ts_text.as_bytes())
        .ok_or_else(|| anyhow!("bad \"ts\" {ts_text:?}"))?;
    let labels = value["labels"]
        .as_object()
        .ok_or_else(|| anyhow!("no \"labels\" in {line:?}"))?
        .iter()
        .map(|(name, value)| {
            Ok((name.clone(), value.as_str().ok_or_else(|| anyhow!("label {name} not a string"))?.to_owned()))
        })
        .collect::<Result<_>>()?;
    let text = value["line"].as_str().ok_or_else(|| anyhow!("no \"line\" in {line:?}"))?.to_owned();
    Ok(Delivered { ts, labels, line: text })
}

/// Cuts a trailing partial line (no newline: the process was killed mid-write) off the
/// file sink's output, so that the next daemon appends after a whole line. Returns the
/// bytes removed. What was cut was not acknowledged, so it is sent again.
pub fn truncate_partial_line(path: &Path) -> Result<usize> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let keep = bytes.iter().rposition(|&byte| byte == b'\n').map_or(0, |last| last + 1);
    let cut = bytes.len() - keep;
    if cut > 0 {
        std::fs::OpenOptions::new().write(true).open(path)?.set_len(keep as u64)?;
    }
    Ok(cut)
}

/// Deliveries grouped by stream, each in arrival order.
pub fn by_stream(delivered: &[Delivered]) -> BTreeMap<StreamKey, Vec<Delivered>> {
    let mut streams: BTreeMap<StreamKey, Vec<Delivered>> = BTreeMap::new();
    for line in delivered {
        streams.entry(line.stream_key()).or_default().push(line.clone());
    }
    streams
}

/// Line texts per stream, in arrival order.
pub fn texts_by_stream(delivered: &[Delivered]) -> BTreeMap<StreamKey, Vec<String>> {
    by_stream(delivered)
        .into_iter()
        .map(|(key, lines)| (key, lines.into_iter().map(|line| line.line).collect()))
        .collect()
}

/// Expected vs delivered, per stream, exactly. `Ok(())` when every expected stream got
/// exactly its lines in order and no other stream got anything; otherwise a report.
pub fn compare_streams(
    expected: &BTreeMap<StreamKey, Vec<String>>,
    delivered: &BTreeMap<StreamKey, Vec<String>>,
) -> Result<()> {
    let mut report = String::new();
    for (key, want) in expected {
        let got = delivered.get(key).map(Vec::as_slice).unwrap_or_default();
        if got != want.as_slice() {
            let _ = writeln!(report, "{key}: {}", describe_difference(want, got));
        }
    }
    for (key, got) in delivered {
        if !expected.contains_key(key) {
            let _ = writeln!(report, "{key}: not expected, got {} lines, first {:?}", got.len(), got.first());
        }
    }
    if report.is_empty() {
        Ok(())
    } else {
        bail!("delivery differs from what the containers printed:\n{report}")
    }
}

/// What is wrong with `got` as a copy of `want`: counts, missing lines, duplicates,
/// unexpected lines, and the first position where order differs.
pub fn describe_difference(want: &[String], got: &[String]) -> String {
    const SHOW: usize = 8;
    let wanted: BTreeSet<&String> = want.iter().collect();
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    let mut unexpected = Vec::new();
    for line in got {
        if !wanted.contains(line) {
            unexpected.push(line);
        } else if !seen.insert(line) {
            duplicates.push(line);
        }
    }
    let missing: Vec<&String> = want.iter().filter(|line| !seen.contains(line)).collect();
    let first_difference =
        want.iter().zip(got).position(|(want, got)| want != got).unwrap_or(want.len().min(got.len()));
    let mut text = format!("expected {} lines, got {}", want.len(), got.len());
    let mut list = |name: &str, lines: &[&String]| {
        if !lines.is_empty() {
            let _ = write!(
                text,
                "; {} {name}: {:?}{}",
                lines.len(),
                &lines[..lines.len().min(SHOW)],
                if lines.len() > SHOW { " …" } else { "" }
            );
        }
    };
    list("missing", &missing);
    list("duplicated", &duplicates);
    list("unexpected", &unexpected);
    let _ = write!(
        text,
        "; first difference at index {first_difference}: expected {:?}, got {:?}",
        want.get(first_difference),
        got.get(first_difference)
    );
    text
}

/// What the engine logged for a container (`docker logs`), stdout and stderr apart,
/// each in order: the ground truth of what it printed. Bounded in time.
pub fn docker_log_streams(container: &str) -> Result<(Vec<String>, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("docker")
        .args(["logs", container])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .context("starting `docker logs`")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > crate::host::DOCKER_CLI_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`docker logs {container}` did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |path: &Path| -> Result<Vec<String>> {
        Ok(std::fs::read_to_string(path)?.lines().map(str::to_owned).collect())
    };
    let (stdout, stderr) = (read(&out_path)?, read(&err_path)?);
    if !status.success() {
        bail!("`docker logs {container}` failed ({status}): {stderr:?}");
    }
    Ok((stdout, stderr))
}

/// `docker_log_streams` of a container as the two expected streams of `name`.
pub fn expected_from_docker(id: &str, name: &str) -> Result<BTreeMap<StreamKey, Vec<String>>> {
    let (stdout, stderr) = docker_log_streams(id)?;
    Ok(BTreeMap::from([(StreamKey::new(name, "stdout"), stdout), (StreamKey::new(name, "stderr"), stderr)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| text.to_string()).collect()
    }

    #[test]
    fn differences_are_named() {
        let want = lines(&["a 1", "a 2", "a 3"]);
        assert!(describe_difference(&want, &lines(&["a 1", "a 3"])).contains("1 missing: [\"a 2\"]"));
        assert!(describe_difference(&want, &lines(&["a 1", "a 2", "a 2", "a 3"])).contains("1 duplicated: [\"a 2\"]"));
        let reordered = describe_difference(&want, &lines(&["a 1", "a 3", "a 2"]));
        assert!(reordered.contains("first difference at index 1"), "{reordered}");
        assert!(describe_difference(&want, &lines(&["a 1", "a 2", "a 3", "b"])).contains("1 unexpected"));
    }

    #[test]
    fn comparison_is_exact_per_stream() {
        let key = StreamKey::new("c", "stdout");
        let expected = BTreeMap::from([(key.clone(), lines(&["x 1", "x 2"]))]);
        assert!(compare_streams(&expected, &BTreeMap::from([(key.clone(), lines(&["x 1", "x 2"]))])).is_ok());
        assert!(compare_streams(&expected, &BTreeMap::from([(key.clone(), lines(&["x 2", "x 1"]))])).is_err());
        let extra = BTreeMap::from([(key, lines(&["x 1", "x 2"])), (StreamKey::new("c", "stderr"), lines(&["y"]))]);
        assert!(compare_streams(&expected, &extra).is_err());
    }

    #[test]
    fn file_sink_lines_parse_and_a_cut_last_line_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.jsonl");
        std::fs::write(
            &path,
            "{\"ts\":\"2024-05-01T10:00:00.000000001Z\",\"labels\":{\"container\":\"c\",\"stream\":\"stderr\"},\"line\":\"x 1\"}\n\
             {\"ts\":\"2024-05-01T10:00:00.0000",
        )
        .unwrap();
        let delivered = read_file_sink(&path).unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].ts, 1_714_557_600_000_000_001);
        assert_eq!(delivered[0].stream_key(), StreamKey::new("c", "stderr"));
        assert_eq!(truncate_partial_line(&path).unwrap(), r#"{"ts":"2024-05-01T10:00:00.0000"#.len());
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("\"x 1\"}\n"));
    }
}
