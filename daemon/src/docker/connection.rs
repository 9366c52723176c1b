//! One HTTP/1.1 connection per request, driven by a task we spawned and own.
//!
//! [`Request::whole`] and [`Request::streaming`] connect to the unix socket, hand the
//! socket to `hyper::client::conn::http1`, spawn the connection driver through
//! [`Tasks::spawn`] as [`TaskKind::Connection`] (never `tokio::spawn`), send one `GET`
//! and check the status. The driver's [`TaskHandle`] lives in a [`Connection`] guard:
//! - [`Connection::close`] cancels the driver and waits until its future (and with it the
//!   socket) has been dropped; non-streaming requests and every error path use it, so
//!   they return with no task and no file descriptor left behind;
//! - dropping a [`Connection`] cancels the driver without waiting (a `Drop` cannot
//!   await); the runtime drops the driver, and the socket, at its next poll.
//!
//! The `SendRequest` half is dropped as soon as the response headers are in: a
//! connection carries exactly one request, so once its body is finished or dropped the
//! driver has nothing left to do even before it is cancelled.

use bytes::{Bytes, BytesMut};
use engine::model::ContainerId;
use engine::port::docker::EngineError;
use engine::task::{TaskHandle, TaskKind, Tasks};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::time::{timeout_at, Instant};

use super::{api, DockerConfig};

/// How much of an error response body is read for its message.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// Owns the task that drives one connection. See the module docs.
pub(super) struct Connection {
    driver: Option<TaskHandle<()>>,
}

impl Connection {
    /// Cancel the driver and wait until it, and the socket it owns, are gone.
    pub(super) async fn close(mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = driver.cancel_and_join().await;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.cancel();
        }
    }
}

/// One `GET` on its own connection.
pub(super) struct Request<'a> {
    pub(super) tasks: &'a Tasks,
    pub(super) config: &'a DockerConfig,
    pub(super) path_and_query: String,
    /// The container the request is about: a 404 is then [`EngineError::NotFound`] for it.
    pub(super) container: Option<ContainerId>,
}

impl Request<'_> {
    /// The whole response body (at most `response_bytes_max`); the connection is joined
    /// before this returns. The caller bounds the total time.
    pub(super) async fn whole(self) -> Result<Bytes, EngineError> {
        let bytes_max = self.config.response_bytes_max;
        let (response, connection) = self.open().await?;
        let result = collect(response.into_body(), bytes_max).await;
        connection.close().await;
        result
    }

    /// The response body as it arrives, with the connection that carries it. Only the
    /// way to the response headers is bounded (by `header_timeout`).
    pub(super) async fn streaming(self) -> Result<(Incoming, Connection), EngineError> {
        let (response, connection) = self.open().await?;
        Ok((response.into_body(), connection))
    }

    /// Connect, spawn the driver, send, and check the status of the answer.
    async fn open(&self) -> Result<(Response<Incoming>, Connection), EngineError> {
        let deadline = Instant::now() + self.config.header_timeout;
        let socket = &self.config.socket_path;
        let stream = match timeout_at(deadline, UnixStream::connect(socket)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(EngineError::Unavailable(format!("connect to {}: {error}", socket.display())))
            }
            Err(_elapsed) => return Err(self.timed_out()),
        };
        let (mut sender, driver) =
            match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(error) => return Err(EngineError::Unavailable(format!("HTTP handshake: {error}"))),
            };
        let connection = Connection {
            driver: Some(self.tasks.spawn(TaskKind::Connection, async move {
                // Its error, if any, reaches the request or the body; nothing to add here.
                let _ = driver.await;
            })),
        };

        let request = hyper::Request::get(self.path_and_query.as_str())
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|error| EngineError::Protocol(format!("building request: {error}")));
        let response = match request {
            Ok(request) => match timeout_at(deadline, sender.send_request(request)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(EngineError::Unavailable(format!("GET {}: {error}", self.path_and_query))),
                Err(_elapsed) => Err(self.timed_out()),
            },
            Err(error) => Err(error),
        };
        drop(sender);
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                connection.close().await;
                return Err(error);
            }
        };

        let status = response.status();
        if status.is_success() {
            return Ok((response, connection));
        }
        let body = match timeout_at(deadline, collect(response.into_body(), ERROR_BODY_BYTES_MAX)).await {
            Ok(Ok(body)) => api::error_message(&body),
            Ok(Err(error)) => format!("(error body unreadable: {error})"),
            Err(_elapsed) => "(error body timed out)".to_owned(),
        };
        connection.close().await;
        Err(self.status_error(status, body))
    }

    fn timed_out(&self) -> EngineError {
        EngineError::Unavailable(format!(
            "GET {}: no response headers within {:?}",
            self.path_and_query, self.config.header_timeout
        ))
    }

    fn status_error(&self, status: StatusCode, message: String) -> EngineError {
        match (&self.container, status) {
            (Some(id), StatusCode::NOT_FOUND) => EngineError::NotFound(id.to_string()),
            (_, status) if status.is_server_error() => {
                EngineError::Unavailable(format!("GET {}: {status}: {message}", self.path_and_query))
            }
            (_, status) => EngineError::Protocol(format!("GET {}: {status}: {message}", self.path_and_query)),
        }
    }
}

/// Reads a body to its end, refusing more than `bytes_max`.
async fn collect(mut body: Incoming, bytes_max: usize) -> Result<Bytes, EngineError> {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| EngineError::Unavailable(format!("reading response: {error}")))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > bytes_max {
                return Err(EngineError::Protocol(format!("response body larger than {bytes_max} bytes")));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}
