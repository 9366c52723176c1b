//! A Unix-socket proxy between the daemon and dockerd that can stall log streams: the
//! real engine's way to produce a follow that stays open and delivers nothing while
//! its container keeps printing (moby #37646 in the field, where a json-file rotation
//! can hang `logs -f`).
//!
//! - Every connection accepted on [`DockerProxy::path`] is forwarded, both ways, to the
//!   real socket. The first bytes the client sends name the request; a
//!   `GET …/containers/<id>/logs?…` connection is remembered as a log stream of `<id>`.
//! - [`DockerProxy::stall_log_streams`] stops forwarding dockerd's bytes on the log
//!   streams of a container that are open at that moment: the connection stays open,
//!   nothing more arrives, nothing is closed. Streams opened afterwards (a reopen) are
//!   forwarded normally, so only a client that reopens a stalled stream recovers.
//! - It runs on its own thread with its own single-threaded tokio runtime (like
//!   `loki_receiver`); dropping the proxy stops it, closes every connection and joins
//!   the thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::server_thread::ServerThread;

#[derive(Default)]
struct State {
    next_connection: u64,
    /// Open log-stream connections: container id as the request named it, stall flag.
    log_streams: BTreeMap<u64, (String, Arc<AtomicBool>)>,
    /// Log-stream connections opened so far, by container id.
    opened: BTreeMap<String, u64>,
}

pub struct DockerProxy {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    /// Taken in `drop`, so the server stops before its socket file is removed.
    server: Option<ServerThread>,
}

impl DockerProxy {
    /// Listens on `<dir>/docker-proxy.sock`, forwarding to `upstream`.
    pub fn start(dir: &Path, upstream: PathBuf) -> Result<DockerProxy> {
        let path = dir.join("docker-proxy.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .with_context(|| format!("binding the docker proxy at {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let server = ServerThread::start("docker-proxy", move |stop| serve(listener, upstream, served, stop))?;
        Ok(DockerProxy { path, state, server: Some(server) })
    }

    /// The socket to give the daemon as `docker.socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stalls every log stream of `container_id` open now; returns how many.
    pub fn stall_log_streams(&self, container_id: &str) -> usize {
        let state = self.lock();
        let mut stalled = 0;
        for (id, flag) in state.log_streams.values() {
            if same_container(id, container_id) && !flag.swap(true, Ordering::SeqCst) {
                stalled += 1;
            }
        }
        stalled
    }

    /// Log streams of `container_id` open now (stalled or not).
    pub fn open_log_streams(&self, container_id: &str) -> usize {
        self.lock().log_streams.values().filter(|(id, _)| same_container(id, container_id)).count()
    }

    /// Log streams of `container_id` opened since the proxy started.
    pub fn log_streams_opened(&self, container_id: &str) -> u64 {
        self.lock().opened.iter().filter(|(id, _)| same_container(id, container_id)).map(|(_, n)| *n).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Ids match when one is a prefix of the other (short and full ids).
fn same_container(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

/// `<id>` of a `…/containers/<id>/logs…` request line.
fn log_request_container(first_bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(first_bytes);
    let request_line = text.lines().next()?;
    let after = request_line.split("/containers/").nth(1)?;
    let (id, rest) = after.split_once('/')?;
    rest.starts_with("logs").then(|| id.to_owned())
}

async fn serve(
    listener: std::os::unix::net::UnixListener,
    upstream: PathBuf,
    state: Arc<Mutex<State>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = UnixListener::from_std(listener).expect("a non-blocking listener");
    // Connections are tasks of this runtime: dropping it at the end of the thread
    // drops them all.
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let state = state.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = UnixStream::connect(&upstream).await {
                        forward(client, server, state).await;
                    }
                });
            }
        }
    }
}

async fn forward(client: UnixStream, server: UnixStream, state: Arc<Mutex<State>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut first = vec![0u8; 8192];
    let Ok(read) = client_read.read(&mut first).await else { return };
    first.truncate(read);
    let stalled = Arc::new(AtomicBool::new(false));
    let connection = {
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.next_connection += 1;
        let connection = state.next_connection;
        if let Some(id) = log_request_container(&first) {
            *state.opened.entry(id.clone()).or_default() += 1;
            state.log_streams.insert(connection, (id, stalled.clone()));
        }
        connection
    };
    if server_write.write_all(&first).await.is_ok() {
        let upward = tokio::io::copy(&mut client_read, &mut server_write);
        let downward = async {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                if stalled.load(Ordering::SeqCst) {
                    // Open, silent, for as long as the client keeps it.
                    std::future::pending::<()>().await;
                }
                match server_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => {
                        if stalled.load(Ordering::SeqCst) {
                            std::future::pending::<()>().await;
                        }
                        if client_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        // Either side closing ends the connection.
        tokio::select! {
            _ = upward => {}
            _ = downward => {}
        }
    }
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).log_streams.remove(&connection);
}
