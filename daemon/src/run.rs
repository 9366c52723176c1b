//! `log-capturer run`: build the runtime and the real ports, start the agent, wait for a
//! signal, shut down within `shutdown_timeout`.
//!
//! Order of start: signal handlers (so an early SIGTERM is not lost) → HTTP endpoints
//! (so `/health` and `/debug/tasks` answer while starting) → sink (secrets read here) →
//! checkpoint store (a corrupt file is moved aside as `.corrupt` and the previous
//! generation `.prev` is loaded; with none readable every container is read from the
//! beginning, loudly) → Docker adapter → `Agent::start`. `/ready` turns 200.
//!
//! Order of stop, after the first SIGTERM/SIGINT: `/ready` turns 503 → the second-signal
//! watcher is armed (exit 130 at once) → `Agent::shutdown(shutdown_timeout)` (stop
//! intake, drain, final commit) → HTTP server shut down and joined → watcher cancelled
//! and joined → exit 0. Every task the daemon spawned has been joined by then; the
//! report of the shutdown is logged.
//!
//! Exit status: 0 after a graceful shutdown (drained or not: what was not acknowledged
//! is read again at the next start), 1 when start fails, 130 on a second signal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::agent::{Agent, AgentPorts};
use engine::port::CheckpointStore;
use engine::rt::Rt;
use engine::task::Tasks;
use engine::telemetry::Telemetry;

use crate::checkpoint_file::FileCheckpointStore;
use crate::config::Config;
use crate::docker::{DockerConfig, DockerEngine, Endpoint, EndpointSource};
use crate::http::server::HttpServer;
use crate::http::HttpState;
use crate::labels::ConfigLabeler;
use crate::rt::TokioRt;
use crate::signals::Signals;

/// Run the daemon to completion; returns the process exit status.
pub fn run(config_path: Option<&Path>) -> i32 {
    let config = match config_path {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("log-capturer: {}: {error}", path.display());
                return 1;
            }
        },
        None => Config::default(),
    };
    let filter_source = match crate::logging::init(&config.log) {
        Ok(source) => source,
        Err(problem) => {
            eprintln!("log-capturer: {problem}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("log-capturer").build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("log-capturer: cannot start the tokio runtime: {error}");
            return 1;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config_path.map_or("(built-in defaults)".to_string(), |path| path.display().to_string()),
        log_filter_from = filter_source,
        "log-capturer starting"
    );
    for warning in config.warnings() {
        tracing::warn!(key = %warning.path, problem = %warning.problem, "config");
    }
    let status = runtime.block_on(async {
        match run_until_signal(config).await {
            Ok(status) => status,
            Err(error) => {
                tracing::error!("{error:#}");
                1
            }
        }
    });
    // Whatever a library left behind (reqwest's pooled connections) gets a moment to close.
    runtime.shutdown_timeout(Duration::from_secs(1));
    status
}

async fn run_until_signal(config: Config) -> anyhow::Result<i32> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let rt: Arc<dyn Rt> = Arc::new(TokioRt::new());
    let tasks = Tasks::new(rt.clone());
    let telemetry = Arc::new(Telemetry::default());

    let state = HttpState::new(telemetry.clone(), tasks.clone());
    let server = HttpServer::bind(&tasks, config.http.listen, crate::http::handler(state.clone()))
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
    tracing::info!(listen = %server.local_addr(), "http: /metrics /health /ready /debug/tasks");

    let started = start_agent(&config, &tasks, rt.clone(), telemetry.clone()).await;
    let agent = match started {
        Ok(agent) => agent,
        Err(error) => {
            server.shutdown().await;
            return Err(error);
        }
    };
    state.set_ready(true);
    tracing::info!("log-capturer running");

    let signal = signals.first().await;
    tracing::info!(signal, timeout = ?config.shutdown_timeout(), "shutting down");
    state.set_ready(false);
    let second_signal = signals.exit_on_second(&tasks);
    let report = agent.shutdown(config.shutdown_timeout()).await;
    if report.drained && report.committed {
        tracing::info!(elapsed = ?report.elapsed, "shutdown complete: every line acknowledged and committed");
    } else {
        tracing::warn!(
            drained = report.drained,
            committed = report.committed,
            lines_abandoned = report.lines_abandoned,
            elapsed = ?report.elapsed,
            "shutdown incomplete: unacknowledged lines will be read again at the next start"
        );
    }
    server.shutdown().await;
    let _ = second_signal.cancel_and_join().await;
    let registry = tasks.registry();
    if registry.alive_total() != 0 {
        tracing::warn!(alive = registry.alive_total(), "tasks still alive at exit: {:?}", registry.alive_by_site());
    }
    Ok(0)
}

async fn start_agent(
    config: &Config,
    tasks: &Tasks,
    rt: Arc<dyn Rt>,
    telemetry: Arc<Telemetry>,
) -> anyhow::Result<Agent> {
    let sink = crate::sink::build(&config.sink(), rt).context("cannot set up the sink")?;
    let checkpoints = open_checkpoints(&config.positions.path).await?;
    let (endpoint, source) = Endpoint::resolve(config.docker.endpoint_settings(), &|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    if source == EndpointSource::ConfigSocket {
        tracing::info!("docker.socket is kept for older configs; docker.host = \"unix://...\" says the same");
    }
    tracing::info!(%endpoint, from = %source, "docker endpoint");
    let docker = DockerEngine::new(tasks.clone(), DockerConfig::for_endpoint(endpoint.clone()));
    match docker.version().await {
        Ok(version) => tracing::info!(
            %endpoint,
            version = %version.version,
            api_version = %version.api_version,
            speaking = %docker.negotiated_version().map(|v| v.to_string()).unwrap_or_default(),
            "docker engine"
        ),
        // Not fatal: discovery retries with backoff and /health shows docker down.
        Err(error) => tracing::warn!(%endpoint, %error, "docker engine not reachable yet"),
    }
    let ports =
        AgentPorts { docker: Arc::new(docker), sink, checkpoints, labeler: Arc::new(ConfigLabeler::new(config)) };
    start_engine(tasks.clone(), config, ports, telemetry).await
}

/// The one call into the engine's `Agent::start`.
async fn start_engine(
    tasks: Tasks,
    config: &Config,
    ports: AgentPorts,
    telemetry: Arc<Telemetry>,
) -> anyhow::Result<Agent> {
    Agent::start(tasks, config.agent_config(), ports, telemetry)
        .await
        .map_err(|error| anyhow::anyhow!("cannot start the agent: {error}"))
}

/// The checkpoint store, after making sure it loads (an I/O error stops the start here,
/// naming the key). A corrupt generation is quarantined by the store itself, which falls
/// back to the previous one; the agent logs and counts what was found.
async fn open_checkpoints(path: &Path) -> anyhow::Result<Arc<dyn CheckpointStore>> {
    let store = FileCheckpointStore::new(path);
    let loaded = store.load_with_origin().await.map_err(|error| anyhow::anyhow!("positions.path: {error}"))?;
    tracing::info!(
        path = %path.display(),
        found = loaded.origin.as_str(),
        containers = loaded.checkpoint.containers.len(),
        "positions loaded"
    );
    Ok(Arc::new(store))
}
