//! Engine API version negotiation, as pure functions.
//!
//! The adapter asks `GET /version` without a version prefix (every engine answers an
//! unversioned request with its own maximum) and then speaks
//! [`choose`]`(server)`: the highest version both sides speak, i.e. the lower of the
//! engine's `ApiVersion` and [`CLIENT_MAX`], refused when it is below [`CLIENT_MIN`]
//! or below the engine's own `MinAPIVersion`. Docker 20.10 gives 1.41; Docker 29
//! (maximum 1.52, minimum 1.44) gives 1.52.
//!
//! [`CLIENT_MIN`] is 1.24 (Docker 1.12): every endpoint and field the adapter reads
//! (`/containers/json`, `/containers/{id}/json` with `Config.Tty`, `/events` with
//! `Actor` and `filters`, `/containers/{id}/logs` with `since` and `timestamps`) is
//! there since then.

use std::fmt;

/// An Engine API version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// `"1.41"`; anything else (a patch part, a `v` prefix, garbage) is `None`.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.trim().split_once('.')?;
        Some(ApiVersion { major: major.parse().ok()?, minor: minor.parse().ok()? })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest API the adapter can work with (see the module docs).
pub const CLIENT_MIN: ApiVersion = ApiVersion::new(1, 24);

/// The newest API the adapter speaks: the one bollard's models are generated from.
pub const CLIENT_MAX: ApiVersion = ApiVersion::new(
    bollard::API_DEFAULT_VERSION.major_version as u16,
    bollard::API_DEFAULT_VERSION.minor_version as u16,
);

/// Why no version can be spoken with an engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionError {
    /// `/version` had no readable `ApiVersion`.
    Unreadable(String),
    /// The engine's maximum is below what the adapter needs.
    EngineTooOld { engine_max: ApiVersion },
    /// The engine refuses every version the adapter speaks.
    EngineTooNew { engine_min: ApiVersion },
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::Unreadable(text) => write!(f, "the engine's /version has no readable ApiVersion ({text:?})"),
            VersionError::EngineTooOld { engine_max } => write!(
                f,
                "the Docker engine speaks Engine API {engine_max} at most; log-capturer needs {CLIENT_MIN} or newer \
                 (Docker 1.12+): upgrade the engine"
            ),
            VersionError::EngineTooNew { engine_min } => write!(
                f,
                "the Docker engine requires Engine API {engine_min} or newer; log-capturer speaks {CLIENT_MAX} at most: \
                 upgrade log-capturer"
            ),
        }
    }
}

/// The version to speak with an engine whose `/version` says `api_version` (its
/// maximum) and `min_api_version` (absent on old engines).
pub fn choose(api_version: Option<&str>, min_api_version: Option<&str>) -> Result<ApiVersion, VersionError> {
    let text = api_version.unwrap_or_default();
    let engine_max = ApiVersion::parse(text).ok_or_else(|| VersionError::Unreadable(text.to_owned()))?;
    let chosen = engine_max.min(CLIENT_MAX);
    if chosen < CLIENT_MIN {
        return Err(VersionError::EngineTooOld { engine_max });
    }
    if let Some(engine_min) = min_api_version.and_then(ApiVersion::parse) {
        if chosen < engine_min {
            return Err(VersionError::EngineTooNew { engine_min });
        }
    }
    Ok(chosen)
}

/// `path_and_query` with its `/vX.Y` prefix (if any) replaced by `/v{version}`, or
/// removed when `version` is `None` (an unversioned request).
pub fn with_version(path_and_query: &str, version: Option<ApiVersion>) -> String {
    let rest = strip_version(path_and_query);
    match version {
        Some(version) => format!("/v{version}{rest}"),
        None => rest.to_owned(),
    }
}

fn strip_version(path_and_query: &str) -> &str {
    let Some(after_v) = path_and_query.strip_prefix("/v") else { return path_and_query };
    let end = after_v.find(['/', '?']).unwrap_or(after_v.len());
    if ApiVersion::parse(&after_v[..end]).is_some() {
        let rest = &after_v[end..];
        if rest.is_empty() || rest.starts_with('?') {
            // `/v1.41` alone is not a route; keep it as it was.
            return path_and_query;
        }
        rest
    } else {
        path_and_query
    }
}
