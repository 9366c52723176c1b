//! A server of the tests' own (the Loki receiver, the fake Docker engine, the dockerd
//! proxy) on a thread of its own with a current-thread tokio runtime. Dropping the
//! handle tells the server to stop and joins the thread; the runtime ends with the
//! thread, and with it every connection task the server started. [`serve_http`] is the
//! accept loop of the HTTP ones (the Loki receiver, the fake engine).

use std::convert::Infallible;
use std::future::Future;
use std::thread::JoinHandle;

use anyhow::Result;
use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

pub struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(stop)` on a new thread named `name`; `serve` must return once `stop`
    /// fires.
    pub fn start<Serve, Served>(name: &str, serve: Serve) -> Result<ServerThread>
    where
        Serve: FnOnce(oneshot::Receiver<()>) -> Served + Send + 'static,
        Served: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || runtime.block_on(serve(stopped)))?;
        Ok(ServerThread { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accept HTTP/1 connections on `listener` until `stop` fires, each served on a task of
/// this thread's runtime by `handle` (one response per request).
pub async fn serve_http<Handle, Handled, ResponseBody>(
    listener: std::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
    handle: Handle,
) where
    Handle: Fn(Request<Incoming>) -> Handled + Clone + Send + 'static,
    Handled: Future<Output = Response<ResponseBody>> + Send + 'static,
    ResponseBody: Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let listener = tokio::net::TcpListener::from_std(listener).expect("a non-blocking listener");
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let handled = handle(request);
                        async move { Ok::<_, Infallible>(handled.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}
