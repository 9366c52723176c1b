//! Config tests. Error messages are pinned by insta snapshots (in `snapshots/`): one
//! table of `case → message`, so a wording change shows up as one reviewable diff.

use std::path::PathBuf;
use std::time::Duration;

use engine::container::FirstSight;

use super::*;

/// The error a person sees for `text`, or `OK`.
fn check(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => "OK".to_string(),
        Err(error) => error.to_string(),
    }
}

const ERROR_CASES: &[(&str, &str)] = &[
    ("bad duration", "[docker]\nrotate_every = \"5 mins\"\n"),
    ("duration without unit", "[docker]\nstall_timeout = 30\n"),
    ("duration too short", "[docker]\nrotate_every = \"10ms\"\n"),
    ("loki url missing", "[sinks.loki]\ntenant = \"a\"\n"),
    ("loki url not http", "[sinks.loki]\nurl = \"ftp://loki:3100\"\n"),
    ("loki url unparsable", "[sinks.loki]\nurl = \"loki:3100 x\"\n"),
    ("unknown top-level key", "shutdown_timout = \"5s\"\n"),
    ("unknown key in table", "[docker]\nsocket = \"/run/docker.sock\"\nstreams = 5\n"),
    ("unknown section", "[dockerd]\nsocket = \"/x\"\n"),
    ("unknown sink", "[sinks.kafka]\nbrokers = []\n"),
    ("two sinks", "[sinks.file]\n[sinks.stdout]\n"),
    ("bad encoding", "[sinks.loki]\nurl = \"http://loki:3100\"\nencoding = \"xml\"\n"),
    ("bad size", "[limits]\nqueue_bytes_max = \"64 MB\"\n"),
    ("negative size", "[limits]\nqueue_bytes_max = -1\n"),
    ("line not below queue", "[limits]\nline_bytes_max = \"1MiB\"\nqueue_bytes_max = \"1MiB\"\n"),
    (
        "batch above queue",
        "[limits]\nqueue_bytes_max = \"4MiB\"\n[sinks.loki]\nurl = \"http://loki:3100\"\nbatch_bytes = \"8MiB\"\n",
    ),
    ("basic auth without secret", "[sinks.loki]\nurl = \"http://l\"\n[sinks.loki.auth.basic]\nusername = \"u\"\n"),
    (
        "basic auth with two secrets",
        "[sinks.loki]\nurl = \"http://l\"\n[sinks.loki.auth.basic]\nusername = \"u\"\npassword_file = \"/p\"\npassword_env = \"P\"\n",
    ),
    ("basic auth password inline", "[sinks.loki]\nurl = \"http://l\"\n[sinks.loki.auth.basic]\nusername = \"u\"\npassword = \"hunter2\"\n"),
    ("unknown auth kind", "[sinks.loki]\nurl = \"http://l\"\n[sinks.loki.auth.digest]\nusername = \"u\"\n"),
    ("retry max below min", "[sinks.loki]\nurl = \"http://l\"\nretry = { min = \"5s\", max = \"1s\" }\n"),
    ("bad first_sight", "[docker]\nfirst_sight = \"yesterday\"\n"),
    ("bad first_sight table", "[docker]\nfirst_sight = { head = 5 }\n"),
    ("bad name regex", "[docker.include]\nnames = [\"app-(\"]\n"),
    ("bad label rule", "[docker.exclude]\nlabels = [\"=x\"]\n"),
    ("invalid static label name", "[labels]\nstatic = { \"team.name\" = \"a\" }\n"),
    ("reserved static label", "[labels]\nstatic = { container = \"a\" }\n"),
    ("colliding container label", "[labels]\ncontainer_labels = [\"stream\"]\n"),
    ("bad listen", "[http]\nlisten = \"localhost\"\n"),
    ("bad log level", "[log]\nlevel = \"loud\"\n"),
    ("bad log format", "[log]\nformat = \"xml\"\n"),
    ("zero streams", "[docker]\nstreams_max = 0\n"),
    ("slot wait too short", "[docker]\nslot_wait_max = \"10ms\"\n"),
    ("wrong type", "[docker]\nstreams_max = \"many\"\n"),
    ("toml syntax", "[docker\nsocket = 1\n"),
    ("docker host and socket", "[docker]\nhost = \"unix:///a.sock\"\nsocket = \"/b.sock\"\n"),
    ("docker host bad scheme", "[docker]\nhost = \"ssh://me@box\"\n"),
    ("docker host bad port", "[docker]\nhost = \"tcp://127.0.0.1:http\"\n"),
    ("docker tls on unix host", "[docker]\nhost = \"unix:///a.sock\"\n[docker.tls]\ncert_path = \"/c\"\n"),
    ("docker tls without host", "[docker.tls]\ncert_path = \"/c\"\n"),
];

#[test]
fn error_messages() {
    let mut table = String::new();
    for (name, text) in ERROR_CASES {
        let message = check(text);
        assert_ne!(message, "OK", "case {name:?} should fail");
        table.push_str(&format!("{name}:\n    {message}\n"));
    }
    insta::assert_snapshot!("error_messages", table);
}

#[test]
fn empty_file_is_all_defaults_with_the_file_sink() {
    let config = Config::parse("").unwrap();
    assert_eq!((config.docker.host.as_deref(), config.docker.socket.as_deref()), (None, None));
    assert_eq!(config.docker.rotate_every.0, Duration::from_secs(300));
    assert_eq!(config.docker.streams_max, 50);
    assert_eq!(config.docker.first_sight.0, FirstSight::Now);
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8001");
    assert_eq!(config.shutdown_timeout(), Duration::from_secs(10));
    assert_eq!(config.limits.line_bytes_max.0, LINE_BYTES_MAX_DEFAULT);
    assert_eq!(config.limits.queue_bytes_max.0, 64 << 20);
    assert_eq!(config.positions.path, PathBuf::from("./capture-out/positions.json"));
    match config.sink() {
        SinkChoice::File(file) => assert_eq!(file.dir, PathBuf::from("./capture-out")),
        other => panic!("expected the file sink, got {other:?}"),
    }
}

#[test]
fn full_example_parses_and_maps_to_the_engine() {
    let text = r#"
shutdown_timeout = "20s"

[docker]
host = "tcp://docker.example:2376"
rotate_every = "10m"
streams_max = 80
stall_timeout = "90s"
slot_wait_max = "45s"
first_sight = { tail = 100 }

[docker.tls]
cert_path = "/etc/log-capturer/docker-certs"

[docker.include]
names = ["app-.*"]
labels = ["com.example.logs=true"]

[docker.exclude]
names = ["log-capturer"]

[sinks.loki]
url = "https://loki.example:3100"
tenant = "team-a"
encoding = "json"
batch_bytes = "512KiB"
batch_lines = 2000
batch_wait = "250ms"
timeout = "5s"
retry = { min = "1s", max = "1m" }

[sinks.loki.auth.bearer]
token_env = "LOKI_TOKEN"

[sinks.loki.tls]
ca_file = "/etc/ssl/loki-ca.pem"

[labels]
static = { job = "docker", host = "web-1" }
container_labels = ["com.example.team"]

[limits]
line_bytes_max = "128KiB"
queue_bytes_max = "32MiB"

[positions]
path = "/var/lib/log-capturer/positions.json"
commit_every = "2s"

[http]
listen = "0.0.0.0:9080"

[log]
level = "debug"
format = "json"
"#;
    let config = Config::parse(text).unwrap();
    let (endpoint, source) = crate::docker::Endpoint::resolve(config.docker.endpoint_settings(), &|_| None).unwrap();
    assert_eq!(source, crate::docker::EndpointSource::ConfigHost);
    assert_eq!(
        endpoint,
        crate::docker::Endpoint::Tcp {
            address: "docker.example:2376".into(),
            tls: Some(crate::docker::TlsFiles::in_dir(std::path::Path::new("/etc/log-capturer/docker-certs"))),
        }
    );
    let agent = config.agent_config();
    assert_eq!(agent.monitor.rotate_every, Duration::from_secs(600));
    assert_eq!(agent.monitor.streams_max, 80);
    assert_eq!(agent.monitor.stall_timeout, Duration::from_secs(90));
    assert_eq!(agent.monitor.slot_wait_max, Duration::from_secs(45));
    assert_eq!(agent.monitor.first_sight, FirstSight::Tail(100));
    assert_eq!(agent.monitor.line_bytes_max, 128 << 10);
    assert_eq!(agent.pipeline.queue_bytes_max, 32 << 20);
    assert_eq!(agent.pipeline.batch_bytes_max, 512 << 10);
    assert_eq!(agent.pipeline.batch_lines_max, 2000);
    assert_eq!(agent.pipeline.batch_wait, Duration::from_millis(250));
    assert_eq!(agent.pipeline.retry.backoff_min, Duration::from_secs(1));
    assert_eq!(agent.pipeline.retry.backoff_max, Duration::from_secs(60));
    assert_eq!(agent.checkpoint.commit_every, Duration::from_secs(2));
    assert_eq!(config.shutdown_timeout(), Duration::from_secs(20));
    let SinkChoice::Loki(loki) = config.sink() else { panic!("expected loki") };
    assert_eq!(loki.encoding, Encoding::Json);
    assert_eq!(loki.tenant.as_deref(), Some("team-a"));
    assert_eq!(loki.auth.unwrap().secret_source(), SecretSource::Env("LOKI_TOKEN".to_string()));
}

#[test]
fn first_sight_forms() {
    let parse =
        |value: &str| Config::parse(&format!("[docker]\nfirst_sight = {value}\n")).unwrap().docker.first_sight.0;
    assert_eq!(parse("\"now\""), FirstSight::Now);
    assert_eq!(parse("\"beginning\""), FirstSight::Beginning);
    assert_eq!(parse("{ tail = 0 }"), FirstSight::Tail(0));
}

#[test]
fn secrets_are_read_at_start_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let text = format!(
        "[sinks.loki]\nurl = \"http://loki:3100\"\n[sinks.loki.auth.basic]\nusername = \"bob\"\npassword_file = {:?}\n",
        password_file.display().to_string()
    );
    let config = Config::parse(&text).unwrap();
    let SinkChoice::Loki(loki) = config.sink() else { panic!("expected loki") };
    let auth = loki.auth.unwrap().resolve().unwrap();
    let Auth::Basic { username, password } = &auth else { panic!("expected basic") };
    assert_eq!(username, "bob");
    assert_eq!(password.expose(), "s3cret");
    let printed = format!("{auth:?}");
    assert!(!printed.contains("s3cret") && printed.contains("***"), "{printed}");

    std::fs::remove_file(&password_file).unwrap();
    let SinkChoice::Loki(loki) = Config::parse(&text).unwrap().sink() else { unreachable!() };
    let error = loki.auth.unwrap().resolve().unwrap_err().to_string();
    assert!(error.starts_with("sinks.loki.auth.basic: cannot read secret file"), "{error}");
}

#[test]
fn sizes_accept_integers() {
    let config = Config::parse("[limits]\nline_bytes_max = 1024\nqueue_bytes_max = 1048576\n").unwrap();
    assert_eq!(config.limits.line_bytes_max.0, 1024);
    assert_eq!(config.limits.queue_bytes_max.0, 1 << 20);
}

#[test]
fn example_file_is_the_defaults() {
    let example = Config::parse(include_str!("../../config.example.toml")).unwrap();
    let defaults = Config::default();
    assert_eq!(example.agent_config(), defaults.agent_config());
    assert_eq!(
        format!("{example:?}"),
        format!("{defaults:?}").replace("file: None", "file: Some(FileSink { dir: \"./capture-out\" })")
    );
}

#[test]
fn loki_urls_with_credentials_are_refused_without_echoing_them() {
    let cases = [
        ("user and password", "http://bob:hunter2@loki:3100"),
        ("user only", "https://bob@loki"),
        ("password with a space (unparsable)", "http://bob:hunter 2@loki:3100"),
        ("no scheme", "bob:hunter2@loki:3100"),
    ];
    let mut table = String::new();
    for (name, url) in cases {
        let message = check(&format!("[sinks.loki]\nurl = \"{url}\"\n"));
        assert!(!message.contains("hunter"), "{name}: the password is echoed: {message}");
        table.push_str(&format!("{name}:\n    {message}\n"));
    }
    insta::assert_snapshot!("url_credentials", table);
    // An `@` after the authority is not a credential.
    assert_eq!(check("[sinks.loki]\nurl = \"http://loki:3100/a@b\"\n"), "OK");
}

#[test]
fn default_line_bytes_max_fits_loki_with_the_marker_and_larger_ones_warn() {
    let marker = engine::parse::assemble::TRUNCATION_MARKER.len() as u64;
    assert_eq!(LINE_BYTES_MAX_DEFAULT + marker, 262_144, "Loki's default max_line_size");
    let config = Config::parse("[sinks.loki]\nurl = \"http://loki:3100\"\n").unwrap();
    assert_eq!(config.limits.line_bytes_max.0, LINE_BYTES_MAX_DEFAULT);
    assert_eq!(config.agent_config().monitor.line_bytes_max as u64, LINE_BYTES_MAX_DEFAULT);
    assert!(config.warnings().is_empty());
    let larger =
        Config::parse("[sinks.loki]\nurl = \"http://loki:3100\"\n[limits]\nline_bytes_max = \"256KiB\"\n").unwrap();
    let warnings: Vec<String> = larger.warnings().iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("line_bytes_max_over_loki", warnings.join("\n"));
    // Not a Loki sink: nothing to warn about.
    assert!(Config::parse("[limits]\nline_bytes_max = \"1MiB\"\n").unwrap().warnings().is_empty());
    assert_eq!(engine::container::MonitorConfig::default().line_bytes_max as u64, LINE_BYTES_MAX_DEFAULT);
}
