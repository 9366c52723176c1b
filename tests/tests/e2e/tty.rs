//! TTY containers on the real engine: `docker run -t` makes Docker send the log without
//! frame headers (lines end in `\r\n`), which the engine reads with its TTY decoder
//! because inspect says `Config.Tty`. The predecessor's reader counted such a stream as
//! malformed frames and delivered nothing; here every line arrives, as stdout, without
//! its `\r`, and nothing is counted as dropped.

use super::*;

#[test]
fn daemon_collects_every_line_of_a_tty_container() {
    const LINES: usize = 1_000;
    let test = "daemon_collects_every_line_of_a_tty_container";
    let Some(_image) = require_docker_and_image(test) else { return };
    let _serial = one_docker_test_at_a_time_blocking();
    let mut phases = Phases::new(test);
    let run_id = capture_tests::daemon::new_run_id(test);
    let mut spec = DaemonSpec::new(&run_id, SinkSpec::File);
    spec.rotate_every = "2s".into();
    let mut daemon = Daemon::start(spec.clone()).unwrap();
    daemon.wait_ready(READY_TIMEOUT).unwrap();

    let script = format!(
        "i=1; while [ $i -le {LINES} ]; do echo \"tty line $i\"; i=$((i+1)); done; {}",
        capture_tests::containers::IDLE_UNTIL_STOPPED
    );
    let mut args = spec.container_args();
    args.insert(0, "-t".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let container = TestContainer::run_with("tty", &script, &args).unwrap();
    let expected: BTreeMap<StreamKey, Vec<String>> = BTreeMap::from([(
        StreamKey::new(container.name(), "stdout"),
        (1..=LINES).map(|line| format!("tty line {line}")).collect(),
    )]);
    wait_lines_out(&daemon, LINES as u64, DELIVERY_TIMEOUT);
    wait_delivered(&daemon, &expected, || read_file_sink(&daemon.sink_path()).unwrap());
    phases.done("1,000 lines of a TTY container delivered");
    // A rotation later, nothing is delivered twice (resume keys work for TTY streams).
    let rotations = daemon.metrics().unwrap().count("container_stream_rotations_total");
    wait_until("two more rotations", Duration::from_secs(30), || {
        Ok(daemon.metrics()?.count("container_stream_rotations_total") >= rotations + 2)
    })
    .unwrap();
    wait_idle(&daemon);
    assert_nothing_dropped(&daemon);
    terminate_cleanly(&mut daemon);
    let delivered = read_file_sink(&daemon.sink_path()).unwrap();
    compare_streams(&expected, &texts_by_stream(&delivered)).unwrap();
    assert_eq!(delivered.len(), LINES, "exactly once, nothing on stderr");
    drop(container);
    phases.done("checked after rotations");
}
