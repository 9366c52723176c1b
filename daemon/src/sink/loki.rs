//! `LokiTransport`: the [`SinkTransport`] that pushes batches to Loki over HTTP(S).
//!
//! One `POST {url}/loki/api/v1/push` per batch (a `url` already ending in `/push` is used
//! as is), body protobuf + snappy (`application/x-protobuf`) or JSON, with
//! `X-Scope-OrgID` when a tenant is set and basic or bearer auth when configured.
//!
//! The answer becomes a [`SendOutcome`]; this transport never retries by itself:
//! - 2xx → `Ok`
//! - 429 → `Retry` after `Retry-After` (delta seconds or an HTTP date, capped at
//!   [`RETRY_AFTER_MAX`]); 5xx, timeouts and connection errors → `Retry`
//! - 413 → `TooLarge` (the sink worker splits the batch)
//! - 401, 403, 404 → `Retry`: a rotated credential or a wrong URL is a configuration
//!   outage, not bad data. Nothing is dropped, the sink shows unhealthy, the batch waits
//!   (backpressure) until the credential or URL is fixed; logged once per burst with the
//!   status and what to check.
//! - 400 → `Partial`: Loki stored the valid entries of the request and refused the rest,
//!   so the batch is never resent; [`refused::refused_lines`] reads the body (at most
//!   [`BODY_READ_BYTES_MAX`]) to count the refused lines by Loki's reason. A 400 whose
//!   body cannot be read, or is not one of Loki's per-entry messages, is the whole batch
//!   `Reject`ed (every line counted as `sink_rejected`) with the body in the detail.
//! - any other status → `Reject { reason: "http_<code>" }`.
//!
//! Every 400 and rejection logs the response body (truncated to [`BODY_LOG_BYTES_MAX`])
//! once per burst.
//!
//! Secrets: the password/token is a [`Secret`] until reqwest puts it in a header marked
//! sensitive; nothing here logs a request's headers. Redirects are not followed (a push
//! must not silently become a GET elsewhere): a 3xx is a rejection.
//!
//! Tasks: reqwest (hyper-util's pooled client) drives each connection in a task of its
//! own that our registry does not see; `runtime_tasks_alive` does. The pool is bounded:
//! [`POOL_IDLE_PER_HOST_MAX`] idle connections, closed after [`POOL_IDLE_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use engine::model::Batch;
use engine::port::{SendOutcome, SinkTransport};
use engine::rt::{BoxFuture, Rt};
use engine::telemetry::BurstLog;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{StatusCode, Url};

use crate::config::{Auth, Encoding, LokiSink};

pub mod refused;

pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
pub const BODY_LOG_BYTES_MAX: usize = 512;
/// A 400's body is read up to this many bytes (Loki lists at most `max_returned_errors`
/// refused entries, 10 by default: a few KiB).
pub const BODY_READ_BYTES_MAX: usize = 64 * 1024;
pub const POOL_IDLE_PER_HOST_MAX: usize = 2;
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LokiTransport {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    push_url: Url,
    encoding: Encoding,
    tenant: Option<HeaderValue>,
    auth: Option<Auth>,
    rt: Arc<dyn Rt>,
    reject_log: BurstLog,
    retry_log: BurstLog,
    outage_log: BurstLog,
}

/// `{url}/loki/api/v1/push`, or `url` itself when it already ends in `/push`.
pub fn push_url(base: &str) -> Result<Url, String> {
    let trimmed = base.trim_end_matches('/');
    let full = if trimmed.ends_with("/push") { trimmed.to_string() } else { format!("{trimmed}/loki/api/v1/push") };
    Url::parse(&full).map_err(|error| format!("invalid URL {base:?}: {error}"))
}

impl LokiTransport {
    /// Build the client. `auth` is the already-read secret (see `AuthConfig::resolve`).
    pub fn new(config: &LokiSink, auth: Option<Auth>, rt: Arc<dyn Rt>) -> anyhow::Result<LokiTransport> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(60));
        if let Some(ca_file) = &config.tls.ca_file {
            let pem = std::fs::read(ca_file).map_err(|error| {
                anyhow::anyhow!("sinks.loki.tls.ca_file: cannot read {}: {error}", ca_file.display())
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| anyhow::anyhow!("sinks.loki.tls.ca_file: {}: {error}", ca_file.display()))?;
            if certificates.is_empty() {
                anyhow::bail!("sinks.loki.tls.ca_file: {} holds no PEM certificate", ca_file.display());
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if config.tls.insecure_skip_verify {
            tracing::warn!("sinks.loki.tls.insecure_skip_verify is set: Loki's certificate is not checked");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|error| anyhow::anyhow!("cannot build the HTTP client: {error}"))?;
        let push_url = push_url(&config.url).map_err(|problem| anyhow::anyhow!("sinks.loki.url: {problem}"))?;
        let tenant = match &config.tenant {
            Some(tenant) => Some(
                HeaderValue::from_str(tenant)
                    .map_err(|_| anyhow::anyhow!("sinks.loki.tenant: not a valid header value"))?,
            ),
            None => None,
        };
        let inner = Inner {
            client,
            push_url,
            encoding: config.encoding,
            tenant,
            auth,
            rt,
            reject_log: BurstLog::new(Duration::from_secs(10)),
            retry_log: BurstLog::new(Duration::from_secs(10)),
            outage_log: BurstLog::new(Duration::from_secs(60)),
        };
        Ok(LokiTransport { inner: Arc::new(inner) })
    }

    pub fn push_url(&self) -> &Url {
        &self.inner.push_url
    }
}

impl SinkTransport for LokiTransport {
    fn send(&self, batch: Arc<Batch>) -> BoxFuture<SendOutcome> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(&batch).await })
    }
}

impl Inner {
    async fn send(&self, batch: &Batch) -> SendOutcome {
        let (body, content_type) = match self.encoding {
            Encoding::Protobuf => {
                (engine::loki::protobuf::encode_batch_snappy(batch), engine::loki::protobuf::CONTENT_TYPE)
            }
            Encoding::Json => (engine::loki::json::encode_batch_json(batch), engine::loki::json::CONTENT_TYPE),
        };
        let mut request = self
            .client
            .post(self.push_url.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("log-capturer/", env!("CARGO_PKG_VERSION")))
            .body(body);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Scope-OrgID", tenant.clone());
        }
        request = match &self.auth {
            None => request,
            Some(Auth::Basic { username, password }) => request.basic_auth(username, Some(password.expose())),
            Some(Auth::Bearer { token }) => request.bearer_auth(token.expose()),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                self.log_retry(reason, &error);
                return SendOutcome::Retry { after: None, reason: reason.to_string() };
            }
        };
        let status = response.status();
        if status.is_success() {
            return SendOutcome::Ok;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        let reason = format!("http_{}", status.as_u16());
        match classify(status) {
            // The sink worker logs retries with this reason; nothing to add here.
            Class::Retry => SendOutcome::Retry { after: retry_after, reason },
            Class::TooLarge => SendOutcome::TooLarge,
            Class::Outage => {
                if let Some(suppressed) = self.outage_log.should_log(self.rt.now()) {
                    let check = match status.as_u16() {
                        404 => "sinks.loki.url",
                        _ => "sinks.loki.auth and sinks.loki.tenant",
                    };
                    tracing::error!(
                        status = status.as_u16(),
                        check,
                        suppressed,
                        url = %self.push_url,
                        "loki refuses the push (configuration outage): nothing is dropped, \
                         lines wait until it accepts again"
                    );
                }
                SendOutcome::Retry { after: retry_after, reason }
            }
            Class::PerEntry => {
                let body = read_capped(response, BODY_READ_BYTES_MAX).await;
                let detail = match &body {
                    Ok(body) => format!("{reason}: {}", truncate_for_log(body)),
                    Err(error) => format!("{reason}: body unreadable: {error}"),
                };
                self.log_rejection(status, &detail);
                let text = body.ok().map(|body| String::from_utf8_lossy(&body).into_owned());
                match text.as_deref().and_then(|text| refused::refused_lines(text, batch)) {
                    Some(refused) => SendOutcome::Partial { refused, detail },
                    None => SendOutcome::Reject { reason: detail },
                }
            }
            Class::Reject => {
                let body = read_capped(response, BODY_LOG_BYTES_MAX).await.unwrap_or_default();
                self.log_rejection(status, &truncate_for_log(&body));
                SendOutcome::Reject { reason }
            }
        }
    }

    fn log_rejection(&self, status: StatusCode, body: &str) {
        if let Some(suppressed) = self.reject_log.should_log(self.rt.now()) {
            tracing::warn!(
                status = status.as_u16(),
                body,
                suppressed,
                url = %self.push_url,
                "loki refused lines; they are dropped and counted by reason"
            );
        }
    }

    /// A transport error's detail (DNS, TLS, refused...) that the short `reason` the sink
    /// worker logs does not carry; once per burst.
    fn log_retry(&self, reason: &str, detail: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.retry_log.should_log(self.rt.now()) {
            tracing::warn!(reason, %detail, suppressed, url = %self.push_url, "loki request failed");
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    Retry,
    TooLarge,
    /// Not the batch's fault: credentials or URL (401, 403, 404).
    Outage,
    /// Loki's per-entry validation (400).
    PerEntry,
    Reject,
}

fn classify(status: StatusCode) -> Class {
    match status.as_u16() {
        429 => Class::Retry,
        413 => Class::TooLarge,
        500..=599 => Class::Retry,
        401 | 403 | 404 => Class::Outage,
        400 => Class::PerEntry,
        _ => Class::Reject,
    }
}

/// The response body, at most `limit` bytes of it (the rest is not read).
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// `Retry-After` as delta seconds or an HTTP date, relative to `now`, capped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let after = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(RETRY_AFTER_MAX))
}

fn truncate_for_log(body: &[u8]) -> String {
    let shown = &body[..body.len().min(BODY_LOG_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(shown).replace(['\n', '\r'], " ");
    if body.len() > BODY_LOG_BYTES_MAX {
        text.push_str(&format!("… ({} bytes)", body.len()));
    }
    text
}

#[cfg(test)]
mod tests;
