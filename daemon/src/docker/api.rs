//! The Docker Engine API's URLs and JSON shapes, and their mapping onto the port's types.
//!
//! Pure functions, no I/O: request paths in (with the pinned version prefix and
//! percent-encoded ids), response bodies out as [`ContainerInfo`] / [`ContainerEvent`] or
//! [`EngineError::Protocol`]. Only the fields the port needs are read; unknown fields and
//! `null` maps are tolerated, since Docker adds fields between versions.

use std::collections::BTreeMap;

use engine::model::ContainerId;
use engine::port::docker::{ContainerEvent, ContainerEventKind, ContainerInfo, EngineError, LogOptions};
use serde::Deserialize;

use super::API_VERSION;

// ---- paths ----------------------------------------------------------------------------

pub(super) fn ping_path() -> String {
    format!("/{API_VERSION}/_ping")
}

pub(super) fn version_path() -> String {
    format!("/{API_VERSION}/version")
}

pub(super) fn list_path() -> String {
    format!("/{API_VERSION}/containers/json?all=1")
}

pub(super) fn inspect_path(id: &ContainerId) -> String {
    format!("/{API_VERSION}/containers/{}/json", encode_component(id.as_str()))
}

/// `filters={"type":["container"]}`, percent-encoded.
pub(super) fn events_path() -> String {
    format!("/{API_VERSION}/events?filters={}", encode_component(r#"{"type":["container"]}"#))
}

pub(super) fn logs_path(id: &ContainerId, options: LogOptions) -> String {
    debug_assert!(options.since_secs >= 0, "since_secs is a Unix second: {}", options.since_secs);
    let mut path = format!(
        "/{API_VERSION}/containers/{}/logs?follow={}&stdout=1&stderr=1&timestamps=1&since={}",
        encode_component(id.as_str()),
        u8::from(options.follow),
        options.since_secs.max(0),
    );
    if let Some(tail) = options.tail {
        path.push_str(&format!("&tail={tail}"));
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(super) fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

// ---- JSON -----------------------------------------------------------------------------

fn protocol(what: &str, error: impl std::fmt::Display) -> EngineError {
    EngineError::Protocol(format!("{what}: {error}"))
}

/// One element of `GET /containers/json`.
#[derive(Deserialize)]
struct ListEntry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "State", default)]
    state: Option<String>,
}

pub(super) fn parse_list(body: &[u8]) -> Result<Vec<ContainerInfo>, EngineError> {
    let entries: Vec<ListEntry> = serde_json::from_slice(body).map_err(|error| protocol("container list", error))?;
    entries
        .into_iter()
        .map(|entry| {
            if entry.id.is_empty() {
                return Err(EngineError::Protocol("container list: empty Id".into()));
            }
            let name =
                entry.names.unwrap_or_default().first().map(|name| strip_slash(name).to_owned()).unwrap_or_default();
            Ok(ContainerInfo {
                id: ContainerId::new(entry.id),
                name,
                image: entry.image.unwrap_or_default(),
                labels: entry.labels.unwrap_or_default(),
                running: entry.state.as_deref() == Some("running"),
            })
        })
        .collect()
}

/// `GET /containers/{id}/json`.
#[derive(Deserialize)]
struct InspectBody {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Config", default)]
    config: Option<InspectConfig>,
    #[serde(rename = "State", default)]
    state: Option<InspectState>,
}

#[derive(Deserialize)]
struct InspectConfig {
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct InspectState {
    #[serde(rename = "Running", default)]
    running: bool,
}

pub(super) fn parse_inspect(body: &[u8]) -> Result<ContainerInfo, EngineError> {
    let inspect: InspectBody = serde_json::from_slice(body).map_err(|error| protocol("container inspect", error))?;
    if inspect.id.is_empty() {
        return Err(EngineError::Protocol("container inspect: empty Id".into()));
    }
    let (image, labels) = match inspect.config {
        Some(config) => (config.image.unwrap_or_default(), config.labels.unwrap_or_default()),
        None => (String::new(), BTreeMap::new()),
    };
    Ok(ContainerInfo {
        id: ContainerId::new(inspect.id),
        name: inspect.name.as_deref().map(strip_slash).unwrap_or_default().to_owned(),
        image,
        labels,
        running: inspect.state.map(|state| state.running).unwrap_or(false),
    })
}

fn strip_slash(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// One line of `GET /events`.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    /// Pre-1.22 name of `Action`, still sent.
    #[serde(default)]
    status: Option<String>,
    /// Pre-1.22 name of `Actor.ID`, still sent.
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<RawActor>,
}

#[derive(Deserialize)]
struct RawActor {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
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

/// One events line: `Ok(None)` for events the port does not carry.
pub(super) fn parse_event(line: &[u8]) -> Result<Option<ContainerEvent>, EngineError> {
    let raw: RawEvent = serde_json::from_slice(line).map_err(|error| protocol("event", error))?;
    if raw.kind.as_deref().is_some_and(|kind| kind != "container") {
        return Ok(None);
    }
    let Some(action) = raw.action.as_deref().or(raw.status.as_deref()) else {
        return Err(EngineError::Protocol("event without Action".into()));
    };
    let Some(kind) = event_kind(action) else {
        return Ok(None);
    };
    let (actor_id, attributes) = match raw.actor {
        Some(actor) => (actor.id, actor.attributes.unwrap_or_default()),
        None => (None, BTreeMap::new()),
    };
    let id = actor_id.filter(|id| !id.is_empty()).or(raw.id).unwrap_or_default();
    if id.is_empty() {
        return Err(EngineError::Protocol(format!("{action} event without a container id")));
    }
    Ok(Some(ContainerEvent { kind, id: ContainerId::new(id), attributes }))
}

/// What `GET /version` says about the engine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct EngineVersion {
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "ApiVersion", default)]
    pub api_version: String,
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: String,
}

pub(super) fn parse_version(body: &[u8]) -> Result<EngineVersion, EngineError> {
    serde_json::from_slice(body).map_err(|error| protocol("version", error))
}

/// The `message` of a Docker error body, or the body itself when it is not JSON.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => error.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}
