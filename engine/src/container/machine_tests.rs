//! Tests of the supervisor's state machine: one per rule, at explicit instants, no runtime.

use std::time::Duration;

use crate::container::machine::{Action, DropWhy, FirstOpen, Inspected, Machine, MachineConfig, OpenFailure};
use crate::port::LogOptions;
use crate::rt::Instant;

const SEC: u64 = 1_000_000_000;
const WALL: i64 = 1_700_000_000 * 1_000_000_000;

fn at(secs: u64) -> Instant {
    Instant::from_nanos(secs * SEC)
}

fn config() -> MachineConfig {
    MachineConfig {
        rotate_every: Duration::from_secs(300),
        rotate_jitter: 0.3,
        stall_timeout: Duration::from_secs(120),
        slot_wait_max: Duration::from_secs(30),
        backoff_min: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
        since_skew: Duration::from_secs(2),
    }
}

fn new_machine(first_open: FirstOpen) -> Machine {
    Machine::new(config(), first_open, None)
}

fn actions(machine: &mut Machine) -> Vec<Action> {
    std::iter::from_fn(|| machine.poll_action()).collect()
}

fn open_since(since_secs: i64) -> Action {
    Action::Open(LogOptions { follow: true, since_secs, tail: None })
}

/// A machine for a running container with its stream open since `t`.
fn streaming(t: u64) -> Machine {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(t), true, false, true);
    machine.handle_slot_granted(at(t));
    machine.handle_opened(at(t), WALL, 0.0);
    actions(&mut machine);
    machine
}

#[test]
fn a_running_container_takes_a_slot_then_opens_where_first_sight_says() {
    let mut machine = new_machine(FirstOpen::Since(1234));
    machine.handle_state(at(0), true, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    assert!(machine.wants_slot());
    // The slot comes late: "now" was fixed at first sight, nothing written meanwhile is lost.
    machine.handle_slot_granted(at(40));
    assert_eq!(actions(&mut machine), [open_since(1234)]);
}

#[test]
fn the_resume_position_beats_first_sight() {
    let mut machine = Machine::new(config(), FirstOpen::Since(1234), Some(99));
    machine.handle_state(at(0), true, false, true);
    machine.handle_slot_granted(at(0));
    assert_eq!(actions(&mut machine), [Action::TakeSlot, open_since(99)]);
    machine.handle_opened(at(0), WALL, 0.0);
    machine.handle_data(at(1), Some(150));
    machine.handle_timeout(at(300));
    machine.handle_slot_granted(at(300));
    assert_eq!(
        actions(&mut machine),
        [Action::DropStream(DropWhy::Rotate), Action::ReleaseSlot, Action::TakeSlot, open_since(150)]
    );
}

#[test]
fn a_tail_is_asked_once_then_reopens_from_the_first_open() {
    let mut machine = new_machine(FirstOpen::Tail(100));
    machine.handle_state(at(0), true, false, true);
    machine.handle_slot_granted(at(0));
    assert_eq!(actions(&mut machine)[1], Action::Open(LogOptions { follow: true, since_secs: 0, tail: Some(100) }));
    machine.handle_opened(at(0), WALL + 300_000_000, 0.0);
    machine.handle_timeout(at(300));
    machine.handle_slot_granted(at(300));
    // `since_skew` (2 s) before the tail's open: stderr written after it but stamped
    // before it (Docker's lag) is asked for.
    assert_eq!(actions(&mut machine).last(), Some(&open_since(WALL / 1_000_000_000 - 2)));
}

#[test]
fn rotation_comes_at_0_7_to_1_0_of_rotate_every() {
    for (unit, due) in [(0.0, 300), (0.5, 255), (1.0, 210)] {
        let mut machine = new_machine(FirstOpen::Since(0));
        machine.handle_state(at(0), true, false, true);
        machine.handle_slot_granted(at(0));
        machine.handle_opened(at(0), WALL, unit);
        actions(&mut machine);
        machine.handle_data(at(due - 1), None); // keep the stall timer away
        assert_eq!(machine.poll_timeout(), Some(at(due)), "unit {unit}");
        machine.handle_timeout(at(due - 1));
        assert_eq!(actions(&mut machine), []);
        machine.handle_timeout(at(due));
        assert_eq!(
            actions(&mut machine),
            [Action::DropStream(DropWhy::Rotate), Action::ReleaseSlot, Action::TakeSlot],
            "rotation gives the slot back and queues again at the back"
        );
    }
}

#[test]
fn a_silent_running_stream_behind_its_log_is_reopened_by_the_watchdog_keeping_its_slot() {
    let mut machine = streaming(0);
    machine.handle_data(at(10), Some(5));
    assert_eq!(machine.poll_timeout(), Some(at(130)));
    machine.handle_timeout(at(130));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    // The log has an entry past the last line read: the stream stalled.
    machine.handle_probed(at(130), false);
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Stall), open_since(5)]);
    machine.handle_opened(at(130), WALL, 0.5);
    assert_eq!(machine.poll_timeout(), Some(at(250)));
    // The reopen kept the slot, and with it the rotation deadline.
    machine.handle_data(at(200), None);
    assert_eq!(machine.poll_timeout(), Some(at(300)));
}

#[test]
fn a_silent_stream_whose_log_ends_at_the_last_line_read_is_kept() {
    let mut machine = streaming(0);
    machine.handle_data(at(10), Some(5));
    machine.handle_timeout(at(130));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    // Docker's last entry is the last line read: only silent. Nothing dropped, nothing
    // opened, the watchdog armed again from the answer.
    machine.handle_probed(at(131), true);
    assert_eq!(actions(&mut machine), []);
    assert_eq!(machine.poll_timeout(), Some(at(251)));
    // Silent again and behind by then: reopened from the last line read.
    machine.handle_timeout(at(251));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    machine.handle_probed(at(251), false);
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Stall), open_since(5)]);
}

#[test]
fn an_exited_container_is_read_to_its_end_then_waits_without_a_slot() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    machine.handle_slot_granted(at(1));
    assert_eq!(actions(&mut machine), [Action::TakeSlot, open_since(0)]);
    machine.handle_opened(at(1), WALL, 0.0);
    machine.handle_data(at(2), Some(7));
    // However long the stream takes, no timer cuts it short of its end (or a stall).
    assert_eq!(machine.poll_timeout(), Some(at(122)));
    machine.handle_stream_ended(at(50));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot]);
    assert!(machine.read_to_end() && machine.tail_read());
    assert_eq!(machine.poll_timeout(), None);
    // Its next start reads on.
    machine.handle_state(at(600), true, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
}

/// Seed 1082 (giant lines off): the container ran again between two reconciles, its
/// start and die events both lost, and the lists before and after showed it exited.
/// A machine for an exited container whose log was read to its end (last line at 7 s).
fn exited_and_read() -> Machine {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    machine.handle_slot_granted(at(1));
    machine.handle_opened(at(1), WALL, 0.0);
    machine.handle_data(at(2), Some(7));
    machine.handle_stream_ended(at(3));
    actions(&mut machine);
    machine
}

#[test]
fn a_recheck_of_an_exited_container_reads_a_run_nobody_reported() {
    let mut machine = exited_and_read();
    // A reconcile lists it exited, as believed: Docker is asked for the log's last entry,
    // which takes no slot; it is the last line read, so nothing more happens.
    machine.handle_recheck(at(300));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    machine.handle_probed(at(300), true);
    assert_eq!(actions(&mut machine), []);
    assert!(machine.read_to_end() && machine.tail_read());
    assert_eq!(machine.poll_timeout(), None);
    // The next one finds an entry past it: the log is read again from where it was.
    machine.handle_recheck(at(600));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    machine.handle_probed(at(600), false);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    assert!(!machine.read_to_end() && !machine.tail_read());
    machine.handle_slot_granted(at(601));
    assert_eq!(actions(&mut machine), [open_since(7)]);
    machine.handle_opened(at(601), WALL, 0.0);
    machine.handle_data(at(602), Some(9));
    machine.handle_stream_ended(at(603));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot]);
    assert!(machine.read_to_end() && machine.tail_read());
}

/// Seed 25785: a container stopped and read to its end was started again, that `start`
/// lost; it wrote, and `docker rm -f` sent its `die` and `destroy` together. The `die`
/// says it ran unseen: removed before its log was read again, the tail counts unread.
#[test]
fn a_die_of_a_container_believed_stopped_makes_its_log_unread() {
    let mut machine = exited_and_read();
    assert!(machine.read_to_end() && machine.tail_read());
    machine.handle_ran_unseen();
    machine.handle_state(at(300), false, true, true);
    assert_eq!(actions(&mut machine), [Action::Finish]);
    assert!(!machine.tail_read());
    // Not removed: the log is read again from where it was, to its end.
    let mut machine = exited_and_read();
    machine.handle_ran_unseen();
    machine.handle_state(at(300), false, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    machine.handle_slot_granted(at(301));
    assert_eq!(actions(&mut machine), [open_since(7)]);
    machine.handle_opened(at(301), WALL, 0.0);
    machine.handle_data(at(302), Some(9));
    machine.handle_stream_ended(at(303));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot]);
    assert!(machine.read_to_end() && machine.tail_read());
}

/// A stream opened while the container was stopped may end where the log ended then: a
/// `die` heard while it is open (the container ran meanwhile) has its end read on.
#[test]
fn a_die_heard_while_a_stopped_containers_stream_is_open_reads_on_after_its_end() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    machine.handle_slot_granted(at(1));
    machine.handle_opened(at(1), WALL, 0.0);
    machine.handle_data(at(2), Some(7));
    actions(&mut machine);
    machine.handle_ran_unseen();
    machine.handle_state(at(3), false, false, true);
    machine.handle_stream_ended(at(4));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), open_since(7)]);
}

/// A recheck asks only an idle machine whose log was read to its end, of a container
/// not running, collected and not removed; a running one has the watchdog.
#[test]
fn a_recheck_is_ignored_unless_an_exited_container_was_read_to_its_end() {
    // Running, streaming.
    let mut machine = streaming(0);
    machine.handle_recheck(at(300));
    assert_eq!(actions(&mut machine), []);
    // Exited, not read yet (waiting for a slot).
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    actions(&mut machine);
    machine.handle_recheck(at(300));
    assert_eq!(actions(&mut machine), []);
    // Exited and read, but no longer collected.
    let mut machine = exited_and_read();
    machine.handle_state(at(4), false, false, false);
    actions(&mut machine);
    machine.handle_recheck(at(300));
    assert_eq!(actions(&mut machine), []);
}

#[test]
fn a_stop_while_streaming_reopens_once_after_the_stop_and_reads_to_the_end() {
    let mut machine = streaming(0);
    machine.handle_state(at(20), false, false, true);
    assert_eq!(actions(&mut machine), []);
    machine.handle_stream_ended(at(21));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), open_since(0)]);
    machine.handle_opened(at(21), WALL, 0.0);
    machine.handle_stream_ended(at(22));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot]);
    assert!(machine.read_to_end());
}

#[test]
fn a_stream_outliving_its_stopped_container_is_dropped_after_a_stall() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    machine.handle_slot_granted(at(0));
    machine.handle_opened(at(0), WALL, 0.0);
    actions(&mut machine);
    machine.handle_timeout(at(120));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Stall), Action::ReleaseSlot]);
    assert!(machine.read_to_end());
}

#[test]
fn an_end_while_running_asks_docker_first() {
    // Still running and the stream had data: reopen at once.
    let mut machine = streaming(0);
    machine.handle_data(at(1), Some(3));
    machine.handle_stream_ended(at(2));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::Inspect]);
    machine.handle_inspected(at(2), WALL, Inspected::Running, 0.0);
    assert_eq!(actions(&mut machine), [open_since(3)]);
    // Still running, nothing read: back off instead of spinning.
    let mut machine = streaming(0);
    machine.handle_stream_ended(at(2));
    machine.handle_inspected(at(2), WALL, Inspected::Running, 0.0);
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::Inspect, Action::ReleaseSlot]);
    assert_eq!(machine.poll_timeout(), Some(at(2) + Duration::from_millis(500)));
    // Stopped (the event is late): read the rest with a request made after the stop.
    let mut machine = streaming(0);
    machine.handle_stream_ended(at(2));
    machine.handle_inspected(at(2), WALL, Inspected::Stopped, 0.0);
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::Inspect, open_since(0)]);
    machine.handle_opened(at(2), WALL, 0.0);
    machine.handle_stream_ended(at(3));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot]);
    // Discovery still says running: look again after slot_wait_max (< stall_timeout).
    assert_eq!(machine.poll_timeout(), Some(at(32)));
    machine.handle_timeout(at(32));
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
}

/// The `die` comes late: Docker said stopped, a request made after the stop read the log
/// to its end. The removal that follows finds the tail read (15,357 tails counted unread
/// on 1,000 seeds instead of 19,363; `container_tails_unread_total`).
#[test]
fn a_tail_read_before_discovery_heard_of_the_stop_counts_as_read_at_the_removal() {
    let mut machine = streaming(0);
    machine.handle_stream_ended(at(2));
    machine.handle_inspected(at(2), WALL, Inspected::Stopped, 0.0);
    machine.handle_opened(at(2), WALL, 0.0);
    machine.handle_stream_ended(at(3));
    actions(&mut machine);
    assert!(machine.read_to_end() && machine.tail_read());
    machine.handle_state(at(4), false, true, true);
    assert_eq!(actions(&mut machine), [Action::Finish]);
    assert!(machine.tail_read());
}

/// Seed 400: dockerd was down while the container exited; when it came back the stream
/// of the exited container ended, the inspect said stopped, and the container started
/// again 4 s later, before discovery's events reconnected. The reconcile after the
/// reconnect listed it running, as discovery already believed, so no news reached the
/// machine: it must look again within `slot_wait_max`, not after `stall_timeout`.
#[test]
fn a_start_nobody_reports_after_docker_said_stopped_is_found_within_slot_wait_max() {
    let mut config = config();
    config.stall_timeout = Duration::from_secs(300);
    let mut machine = Machine::new(config, FirstOpen::Since(0), Some(100));
    machine.handle_state(at(0), true, false, true);
    machine.handle_slot_granted(at(0));
    machine.handle_opened(at(0), WALL, 0.0);
    actions(&mut machine);
    // Docker comes back at 4303 s: the exited container's stream ends at once.
    machine.handle_stream_ended(at(4307));
    machine.handle_inspected(at(4307), WALL, Inspected::Stopped, 0.0);
    machine.handle_opened(at(4307), WALL, 0.0);
    machine.handle_stream_ended(at(4307));
    assert_eq!(
        actions(&mut machine),
        [
            Action::DropStream(DropWhy::Ended),
            Action::Inspect,
            open_since(100),
            Action::DropStream(DropWhy::Ended),
            Action::ReleaseSlot
        ]
    );
    assert!(machine.read_to_end());
    // It starts at 4311 s; discovery's view (running) does not change.
    machine.handle_state(at(4312), true, false, true);
    assert_eq!(actions(&mut machine), []);
    assert_eq!(machine.poll_timeout(), Some(at(4337)));
    machine.handle_timeout(at(4337));
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    machine.handle_slot_granted(at(4337));
    assert_eq!(actions(&mut machine), [open_since(100)]);
}

/// Seed 52171: Docker said stopped and a request made after the stop read the log to its
/// end (7,851 s); the container started again 26 s later, its `die`, `stop` and `start`
/// held back and heard together, so discovery's view (running) never changed. The look
/// again after `slot_wait_max` reads it while it runs, and its tail is no longer read: a
/// `docker rm -f` before a stream ends by itself after a stop counts it unread (77 lines
/// deleted unread while the stream was held up by a full queue; nothing counted).
#[test]
fn a_look_again_after_docker_said_stopped_makes_the_tail_unread() {
    let mut machine = streaming(0);
    machine.handle_data(at(1), Some(3));
    machine.handle_stream_ended(at(10));
    machine.handle_inspected(at(10), WALL, Inspected::Stopped, 0.0);
    machine.handle_opened(at(10), WALL, 0.0);
    machine.handle_stream_ended(at(10));
    actions(&mut machine);
    assert!(machine.read_to_end() && machine.tail_read());
    // It starts at 36 s; the events heard together leave discovery's view as it was.
    machine.handle_state(at(36), true, false, true);
    assert_eq!(actions(&mut machine), []);
    assert_eq!(machine.poll_timeout(), Some(at(40)));
    machine.handle_timeout(at(40));
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    assert!(!machine.read_to_end() && !machine.tail_read());
    machine.handle_slot_granted(at(40));
    assert_eq!(actions(&mut machine), [open_since(3)]);
    machine.handle_opened(at(40), WALL, 0.0);
    machine.handle_data(at(41), Some(5));
    // Removed at 2,600 s; the stream, held up, is given up at its stall.
    machine.handle_state(at(2600), false, true, true);
    assert_eq!(actions(&mut machine), []);
    machine.handle_timeout(at(2600));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Stall), Action::ReleaseSlot, Action::Finish]);
    assert!(!machine.tail_read());
}

/// Seed 41926: Docker said stopped while discovery believed the container running (its
/// `die` lost), and a request made after the stop read the log to its end. A `die`
/// heard later tells, by its time, whether it is that stop's (held back: the tail stays
/// read) or a later run's, its `start` lost (the tail is unread: counted if a removal
/// comes with it, else read again).
#[test]
fn a_die_stamped_after_docker_said_stopped_is_a_later_runs() {
    let stopped_and_read = || {
        let mut machine = streaming(0);
        machine.handle_data(at(1), Some(3));
        machine.handle_stream_ended(at(10));
        machine.handle_inspected(at(10), WALL + 10 * SEC as i64, Inspected::Stopped, 0.0);
        machine.handle_opened(at(10), WALL, 0.0);
        machine.handle_stream_ended(at(10));
        actions(&mut machine);
        assert!(machine.read_to_end() && machine.tail_read());
        machine
    };
    // The stop's own `die`, stamped before Docker said so (or at that instant), heard
    // with the removal: the tail stays read.
    for died in [WALL + 9 * SEC as i64, WALL + 10 * SEC as i64] {
        let mut machine = stopped_and_read();
        machine.handle_died(died);
        machine.handle_state(at(80), false, true, true);
        assert_eq!(actions(&mut machine), [Action::Finish]);
        assert!(machine.tail_read());
    }
    // A later run's `die`, heard with the removal: the tail is unread.
    let mut machine = stopped_and_read();
    machine.handle_died(WALL + 70 * SEC as i64);
    machine.handle_state(at(80), false, true, true);
    assert_eq!(actions(&mut machine), [Action::Finish]);
    assert!(!machine.tail_read());
    // Without the removal: the log is read again, to its end.
    let mut machine = stopped_and_read();
    machine.handle_died(WALL + 70 * SEC as i64);
    machine.handle_state(at(80), false, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    assert!(!machine.read_to_end());
}

/// A container Docker said gone, while discovery still says running (its `destroy`
/// lost), never runs again: the look again finds it gone, and the tail the stream read
/// to the removal stays read.
#[test]
fn a_look_again_after_docker_said_gone_keeps_the_tail_read() {
    let mut machine = streaming(0);
    machine.handle_data(at(1), Some(3));
    machine.handle_stream_ended(at(10));
    machine.handle_inspected(at(10), WALL, Inspected::NotFound, 0.0);
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::Inspect, Action::ReleaseSlot]);
    assert!(machine.tail_read());
    assert_eq!(machine.poll_timeout(), Some(at(40)));
    machine.handle_timeout(at(40));
    machine.handle_slot_granted(at(40));
    machine.handle_open_failed(at(40), OpenFailure::NotFound, 0.0);
    assert_eq!(actions(&mut machine), [Action::TakeSlot, open_since(3), Action::ReleaseSlot]);
    // The reconcile finds it gone.
    machine.handle_state(at(300), true, true, true);
    assert_eq!(actions(&mut machine), [Action::Finish]);
    assert!(machine.tail_read());
}

#[test]
fn backoff_doubles_to_its_cap_and_data_resets_it() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), true, false, true);
    let mut now = at(0);
    let mut delays = Vec::new();
    for _ in 0..9 {
        machine.handle_slot_granted(now);
        machine.handle_open_failed(now, OpenFailure::Other, 0.0);
        let until = machine.poll_timeout().unwrap();
        delays.push((until - now).as_millis() as u64);
        machine.handle_timeout(until);
        now = until;
    }
    assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    // The jitter only shortens: at most 20%.
    machine.handle_slot_granted(now);
    machine.handle_open_failed(now, OpenFailure::Other, 0.999);
    let delay = machine.poll_timeout().unwrap() - now;
    assert!(delay > Duration::from_secs(24) && delay <= Duration::from_secs(30), "{delay:?}");
    // Data resets the count.
    let mut machine = streaming(0);
    machine.handle_data(at(1), None);
    machine.handle_stream_failed(at(2), 0.0);
    assert_eq!(machine.poll_timeout(), Some(at(2) + Duration::from_millis(500)));
}

#[test]
fn a_waiter_nudges_the_oldest_holder_at_three_quarters_of_slot_wait_max_then_every_quarter() {
    // slot_wait_max = 30 s: the first nudge at 22.5 s, then every 7.5 s.
    let ms = |ms: u64| at(0) + Duration::from_millis(ms);
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), true, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    assert_eq!(machine.poll_timeout(), Some(ms(22_500)));
    machine.handle_timeout(ms(22_499));
    assert_eq!(actions(&mut machine), []);
    machine.handle_timeout(ms(22_500));
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
    assert_eq!(machine.poll_timeout(), Some(at(30)));
    machine.handle_timeout(at(30));
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
    assert_eq!(machine.poll_timeout(), Some(ms(37_500)));
    machine.handle_slot_granted(at(31));
    assert_eq!(actions(&mut machine), [open_since(0)]);
}

#[test]
fn a_waiter_that_read_lines_before_probes_first_and_nudges_only_if_its_log_is_behind() {
    // slot_wait_max = 30 s. A holder that yielded after queueing lines waits again.
    let ms = |ms: u64| at(40) + Duration::from_millis(ms);
    let mut machine = streaming(0);
    machine.handle_data(at(5), Some(4));
    machine.handle_yield_requested(at(40));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Yield), Action::ReleaseSlot, Action::TakeSlot]);
    // At ¾ of the bound it asks Docker for its log's last entry instead of nudging.
    machine.handle_timeout(ms(22_500));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    // Read to the end: no holder is made to yield; it queues again at the back, its
    // wait starting afresh.
    machine.handle_probed(ms(22_600), true);
    assert_eq!(actions(&mut machine), [Action::ReleaseSlot, Action::TakeSlot]);
    assert_eq!(machine.poll_timeout(), Some(ms(45_100)));
    // Behind: it nudges, then every ¼ of the bound without asking again.
    machine.handle_timeout(ms(45_100));
    assert_eq!(actions(&mut machine), [Action::Probe]);
    machine.handle_probed(ms(45_200), false);
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
    assert_eq!(machine.poll_timeout(), Some(ms(52_600)));
    machine.handle_timeout(ms(52_600));
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
    machine.handle_slot_granted(ms(53_000));
    assert_eq!(actions(&mut machine), [open_since(4)]);
}

#[test]
fn a_waiter_that_never_queued_a_line_or_is_stopped_nudges_without_a_probe() {
    // Nothing read yet: nothing a probe could compare with.
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), true, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    machine.handle_timeout(Instant::from_nanos(22_500_000_000));
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
    // Stopped, its log not read to the end: read it whatever a probe would say.
    let mut machine = Machine::new(config(), FirstOpen::Since(0), Some(4));
    machine.handle_state(at(0), false, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
    machine.handle_timeout(Instant::from_nanos(22_500_000_000));
    assert_eq!(actions(&mut machine), [Action::NudgeHolder]);
}

#[test]
fn a_holder_asked_to_yield_drops_its_stream_and_queues_again() {
    let mut machine = streaming(0);
    machine.handle_yield_requested(at(40));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Yield), Action::ReleaseSlot, Action::TakeSlot]);
    // A removed container's stream drains to its end instead.
    let mut machine = streaming(0);
    machine.handle_state(at(5), false, true, true);
    machine.handle_yield_requested(at(40));
    assert_eq!(actions(&mut machine), []);
}

#[test]
fn removal_reads_an_open_stream_to_its_end_then_finishes() {
    let mut machine = streaming(0);
    machine.handle_state(at(5), false, true, true);
    assert_eq!(actions(&mut machine), []);
    machine.handle_data(at(6), Some(4));
    machine.handle_stream_ended(at(7));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Ended), Action::ReleaseSlot, Action::Finish]);
    assert!(machine.is_done());
    assert!(machine.tail_read());
    // A removed container's stream that stalls is given up: its tail counts as unread.
    let mut machine = streaming(0);
    machine.handle_state(at(5), false, true, true);
    machine.handle_timeout(at(120));
    assert_eq!(actions(&mut machine), [Action::DropStream(DropWhy::Stall), Action::ReleaseSlot, Action::Finish]);
    assert!(!machine.tail_read());
    // Also while waiting for a slot.
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), true, false, true);
    machine.handle_state(at(1), true, true, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot, Action::ReleaseSlot, Action::Finish]);
}

#[test]
fn an_excluded_container_takes_no_slot_until_a_rename_includes_it() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), true, false, false);
    assert_eq!(actions(&mut machine), []);
    machine.handle_state(at(1), true, false, true);
    assert_eq!(actions(&mut machine), [Action::TakeSlot]);
}

#[test]
fn a_gone_container_is_done_reading() {
    let mut machine = new_machine(FirstOpen::Since(0));
    machine.handle_state(at(0), false, false, true);
    machine.handle_slot_granted(at(0));
    machine.handle_open_failed(at(0), OpenFailure::NotFound, 0.0);
    assert_eq!(actions(&mut machine), [Action::TakeSlot, open_since(0), Action::ReleaseSlot]);
    assert!(machine.read_to_end());
    assert_eq!(machine.poll_timeout(), None);
}
