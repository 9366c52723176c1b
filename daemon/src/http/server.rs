//! A small HTTP/1 server on one TCP listener, every task of it owned and joined.
//!
//! Owns: the accept loop and one task per connection, all spawned through
//! [`engine::task::Tasks`] as [`TaskKind::Http`] (so they show in
//! `log_capturer_tasks_alive{kind="http"}` and `/debug/tasks`). Promises:
//! - [`HttpServer::shutdown`] returns only after the accept loop and every connection
//!   task have finished: connections get a graceful close and [`CONNECTION_CLOSE_GRACE`]
//!   to finish their request, then are dropped.
//! - Dropping an [`HttpServer`] without `shutdown` still tells every task to stop (the
//!   shutdown channel closes), it just does not wait.
//! - Bounds: at most [`CONNECTIONS_MAX`] connections at once (the accept loop waits for
//!   one to end before accepting more); request headers must arrive within
//!   [`HEADER_READ_TIMEOUT`].
//!
//! The handler is a plain function from request to response; bodies are small and
//! whole (`Full<Bytes>`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engine::rt::BoxFuture;
use engine::task::{TaskHandle, TaskKind, Tasks};
use futures::stream::{FuturesUnordered, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const CONNECTIONS_MAX: usize = 64;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_CLOSE_GRACE: Duration = Duration::from_secs(2);

pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<Full<Bytes>>> + Send + Sync>;

pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: TaskHandle<()>,
}

impl HttpServer {
    /// Bind `addr` (port 0 picks a free port).
    pub async fn bind(tasks: &Tasks, addr: SocketAddr, handler: Handler) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(HttpServer::start(tasks, listener, handler))
    }

    pub fn start(tasks: &Tasks, listener: TcpListener, handler: Handler) -> HttpServer {
        let local_addr = listener.local_addr().expect("a bound listener has an address");
        let (stop, stop_rx) = watch::channel(false);
        let accept = tasks.spawn(TaskKind::Http, accept_loop(tasks.clone(), listener, handler, stop_rx));
        HttpServer { local_addr, stop, accept }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, close connections gracefully, and wait for every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.join().await;
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Ends when `true` is sent or the sender is gone.
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn accept_loop(tasks: Tasks, listener: TcpListener, handler: Handler, mut stop: watch::Receiver<bool>) {
    let mut connections = FuturesUnordered::new();
    loop {
        let at_capacity = connections.len() >= CONNECTIONS_MAX;
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            Some(_) = connections.next(), if !connections.is_empty() => {}
            accepted = listener.accept(), if !at_capacity => match accepted {
                Ok((stream, _peer)) => {
                    let connection = serve_connection(stream, handler.clone(), stop.clone());
                    connections.push(tasks.spawn(TaskKind::Http, connection).join());
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while connections.next().await.is_some() {}
}

async fn serve_connection(stream: tokio::net::TcpStream, handler: Handler, mut stop: watch::Receiver<bool>) {
    let service = hyper::service::service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        biased;
        _ = connection.as_mut() => return,
        _ = stopped(&mut stop) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CONNECTION_CLOSE_GRACE, connection).await;
}

/// A response with a body and content type.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static status and header are valid")
}
