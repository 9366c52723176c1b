//! A server of the tests' own (the Loki receiver, the fake Docker engine, the dockerd
//! proxy) on a thread of its own with a current-thread tokio runtime. Dropping the
//! handle tells the server to stop and joins the thread; the runtime ends with the
//! thread, and with it every connection task the server started.

use std::future::Future;
use std::thread::JoinHandle;

use anyhow::Result;
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
