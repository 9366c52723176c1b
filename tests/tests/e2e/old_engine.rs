//! A Docker engine too old for the adapter, through the running daemon (issue 8, item 2):
//! the `log-capturer` binary pointed at an in-test fake engine on loopback
//! (`capture_tests::fake_engine`, `docker.host = "tcp://127.0.0.1:PORT"`) whose `/version`
//! says API 1.20 at most (Docker 1.8; the adapter needs 1.24). `/health` answers 503 with docker's error naming both versions,
//! the daemon keeps asking `/version` (the fake counts the requests), and once the fake
//! answers like a good engine (Docker 20.10, API 1.41) the daemon becomes healthy on its
//! own. The real engine is not used: nothing here needs Docker.

use capture_tests::fake_engine::{EngineVersions, FakeEngine};

use super::*;

#[test]
fn daemon_with_a_too_old_engine_says_so_on_health_keeps_retrying_and_recovers_on_a_good_one() {
    let mut phases = Phases::new("old-engine");
    let fake = FakeEngine::start(EngineVersions::new("1.8.3", "1.20", "1.12")).unwrap();
    let mut spec = DaemonSpec::new(&capture_tests::daemon::new_run_id("oldengine"), SinkSpec::File);
    spec.docker_host = Some(fake.host());
    let mut daemon = Daemon::start(spec).unwrap();
    daemon.wait_ready(READY_TIMEOUT).unwrap();

    // Down, saying why, and asking again over time: at start the daemon asks a few times
    // at once (its startup probe, discovery's events and list), so the proof of retrying
    // is more /version requests after docker has been failing for 2 s than before
    // (discovery's retries back off from 0.5 s; the bound is generous).
    let mut last = serde_json::Value::Null;
    let mut asked_at_first = None;
    wait_until("/health 503 naming both versions for 2 s, /version asked again", Duration::from_secs(60), || {
        let (status, health) = daemon.health()?;
        let asked = fake.version_requests();
        let docker = &health["components"]["docker"];
        anyhow::ensure!(
            status == 503 && docker["healthy"] == false,
            "docker healthy with an API 1.20 engine? {status} {health}"
        );
        let explained = docker["last_error"].is_string();
        let failing_for = docker["failing_for_seconds"].as_f64().unwrap_or(0.0);
        last = health;
        let first = *asked_at_first.get_or_insert(asked);
        Ok(explained && failing_for >= 2.0 && asked >= first + 2)
    })
    .unwrap_or_else(|error| panic!("{error:#}: {last}\n{}", daemon.log_tail(30)));
    let error = last["components"]["docker"]["last_error"].as_str().unwrap().to_owned();
    assert!(error.contains("1.20"), "the error names the engine's version: {error:?}");
    assert!(error.contains(&capture_daemon::docker::version::CLIENT_MIN.to_string()), "and ours: {error:?}");
    assert!(error.contains("upgrade the engine"), "and what to do: {error:?}");
    assert!(daemon.is_running(), "the daemon exited on an old engine:\n{}", daemon.log_tail(30));
    assert_eq!(last["components"]["sink"]["healthy"], true, "{last}");
    let metrics = daemon.metrics().unwrap();
    assert_eq!(metrics.get("component_health{component=\"docker\"}"), 0.0);
    assert_eq!(metrics.count("containers_monitored"), 0);
    phases.done("old engine: /health 503 naming 1.20 and our minimum, retrying");

    // The engine is upgraded in place: the next retry negotiates 1.41 and lists.
    let asked_before = fake.version_requests();
    fake.set_versions(EngineVersions::new("20.10.24", "1.41", "1.12"));
    wait_until("/health 200 once the engine speaks 1.41", Duration::from_secs(60), || Ok(daemon.health()?.0 == 200))
        .unwrap_or_else(|error| panic!("{error:#}: {:?}\n{}", daemon.health().ok(), daemon.log_tail(30)));
    assert!(fake.version_requests() > asked_before, "healthy without negotiating again?");
    assert_eq!(daemon.metrics().unwrap().get("component_health{component=\"docker\"}"), 1.0);
    assert!(daemon.log().contains("API version negotiated"), "{}", daemon.log_tail(30));
    phases.done("good engine: healthy");
    terminate_cleanly(&mut daemon);
    phases.done("terminated cleanly");
}
