//! bollard's typed models onto the port's types, and bollard's errors onto the port's
//! error classes.
//!
//! Pure functions, no I/O. Only the fields the port needs are read; every field is
//! optional in bollard's models, and a missing one gets the port's neutral value except
//! a container's id (a protocol error). Labels become `BTreeMap`s, so their order is the
//! same in every process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum, EventMessage};
use bollard::models::{EventMessageTypeEnum, SystemVersion};
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use engine::model::ContainerId;
use engine::port::docker::{ContainerEvent, ContainerEventKind, ContainerInfo, EngineError, LogOptions};

/// `GET /containers/json?all=true`.
pub(super) fn list_options() -> ListContainersOptions {
    ListContainersOptions { all: true, ..Default::default() }
}

/// `GET /events?since=<unix seconds.nanos>&filters={"type":["container"]}`.
pub(super) fn events_options(since: std::time::Duration) -> EventsOptions {
    let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    let since = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
    EventsOptions { since: Some(since), filters: Some(filters), ..Default::default() }
}

/// `GET /containers/{id}/logs?stdout&stderr&timestamps` with the port's options.
pub(super) fn logs_options(options: LogOptions) -> LogsOptions {
    debug_assert!(options.since_secs >= 0, "since_secs is a Unix second: {}", options.since_secs);
    LogsOptions {
        follow: options.follow,
        stdout: true,
        stderr: true,
        // bollard's field is an i32 (good until 2038); the port's is an i64.
        since: options.since_secs.clamp(0, i64::from(i32::MAX)) as i32,
        until: 0,
        timestamps: true,
        tail: options.tail.map_or_else(|| "all".to_owned(), |tail| tail.to_string()),
    }
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

fn strip_slash(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// One element of the list, without `tty` (the list does not say; see `mod.rs`).
pub(super) fn from_summary(summary: ContainerSummary) -> Result<ContainerInfo, EngineError> {
    let id = summary.id.filter(|id| !id.is_empty()).ok_or_else(|| protocol("container list", "empty Id"))?;
    let name: Arc<str> = summary.names.unwrap_or_default().first().map_or("", |name| strip_slash(name)).into();
    Ok(ContainerInfo {
        id: ContainerId::new(id),
        name,
        image: summary.image.unwrap_or_default().into(),
        labels: Arc::new(sorted(summary.labels)),
        // A paused container runs (inspect says `Running` and `Paused`; the list says
        // `paused`): its follow stream stays open, and an `unpause` brings no event the
        // port carries, so taking it for stopped would leave its output unread until a
        // reconcile after the unpause.
        running: matches!(summary.state, Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)),
        tty: false,
    })
}

pub(super) fn from_inspect(inspect: ContainerInspectResponse) -> Result<ContainerInfo, EngineError> {
    let id = inspect.id.filter(|id| !id.is_empty()).ok_or_else(|| protocol("container inspect", "empty Id"))?;
    let (image, labels, tty) = match inspect.config {
        Some(config) => (config.image.unwrap_or_default(), sorted(config.labels), config.tty.unwrap_or(false)),
        None => (String::new(), BTreeMap::new(), false),
    };
    Ok(ContainerInfo {
        id: ContainerId::new(id),
        name: inspect.name.as_deref().map(strip_slash).unwrap_or_default().into(),
        image: image.into(),
        labels: Arc::new(labels),
        running: inspect.state.and_then(|state| state.running).unwrap_or(false),
        tty,
    })
}

/// The container actions the port knows; every other action (`exec_start: ...`, `kill`,
/// `attach`, `health_status: ...`, ...) is not an event the engine acts on.
fn event_kind(action: &str) -> Option<ContainerEventKind> {
    Some(match action {
        "create" => ContainerEventKind::Create,
        "start" => ContainerEventKind::Start,
        "die" => ContainerEventKind::Die,
        "stop" => ContainerEventKind::Stop,
        "restart" => ContainerEventKind::Restart,
        "destroy" => ContainerEventKind::Destroy,
        "rename" => ContainerEventKind::Rename,
        _ => return None,
    })
}

/// One event: `Ok(None)` for events the port does not carry.
pub(super) fn from_event(event: EventMessage) -> Result<Option<ContainerEvent>, EngineError> {
    if event.typ.is_some_and(|typ| typ != EventMessageTypeEnum::CONTAINER && typ != EventMessageTypeEnum::EMPTY) {
        return Ok(None);
    }
    let Some(action) = event.action.as_deref() else {
        return Err(protocol("event", "no Action"));
    };
    let Some(kind) = event_kind(action) else {
        return Ok(None);
    };
    let (id, attributes) = match event.actor {
        Some(actor) => (actor.id.unwrap_or_default(), sorted(actor.attributes)),
        None => (String::new(), BTreeMap::new()),
    };
    if id.is_empty() {
        return Err(protocol("event", format!("{action} event without a container id")));
    }
    Ok(Some(ContainerEvent { kind, id: ContainerId::new(id), attributes, time: event.time_nano }))
}

/// What `GET /version` says about the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineVersion {
    /// The engine's release, e.g. `20.10.24`.
    pub version: String,
    /// The newest API it speaks.
    pub api_version: String,
    /// The oldest API it accepts (empty on engines that do not say).
    pub min_api_version: String,
}

pub(super) fn from_version(version: SystemVersion) -> EngineVersion {
    EngineVersion {
        version: version.version.unwrap_or_default(),
        api_version: version.api_version.unwrap_or_default(),
        min_api_version: version.min_api_version.unwrap_or_default(),
    }
}

fn protocol(what: &str, error: impl std::fmt::Display) -> EngineError {
    EngineError::Protocol(format!("{what}: {error}"))
}

/// A bollard error, sorted by what the caller must do. `container`: the container the
/// request was about (a 404 is then [`EngineError::NotFound`] for it); `what`: the
/// request, for the message.
pub(super) fn engine_error(error: BollardError, what: &str, container: Option<&ContainerId>) -> EngineError {
    match error {
        BollardError::DockerResponseServerError { status_code, message } => match (container, status_code) {
            (Some(id), 404) => EngineError::NotFound(id.to_string()),
            (_, status) if status >= 500 => EngineError::Unavailable(format!("{what}: {status}: {message}")),
            (_, status) => EngineError::Protocol(format!("{what}: {status}: {message}")),
        },
        BollardError::JsonDataError { message, column, .. } => {
            EngineError::Protocol(format!("{what}: unexpected JSON (column {column}): {message}"))
        }
        BollardError::JsonSerdeError { err } => EngineError::Protocol(format!("{what}: unexpected JSON: {err}")),
        BollardError::RequestTimeoutError => EngineError::Unavailable(format!("{what}: no response headers in time")),
        // Connecting, the socket, TLS, HTTP: the engine is not there (or went away).
        other => EngineError::Unavailable(format!("{what}: {other}")),
    }
}

/// Whether `error` means the engine is not there (or went away): the class
/// [`engine_error`] maps to [`EngineError::Unavailable`].
pub(super) fn is_unavailable(error: &BollardError) -> bool {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        BollardError::JsonDataError { .. } | BollardError::JsonSerdeError { .. } => false,
        _ => true,
    }
}

/// Whether Docker refused the API version a request was made with (the engine was
/// replaced by one with other versions since the last negotiation).
pub(super) fn is_version_refusal(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError { status_code: 400, message }
            if message.starts_with("client version ")
    )
}
