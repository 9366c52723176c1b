//! Where the Docker engine is and how to reach it: the unix socket, plain TCP, or TCP
//! with TLS and a client certificate.
//!
//! Pure: [`Endpoint::resolve`] takes the config's `[docker]` settings and a way to read
//! the environment, and reads nothing else. The rules, in order:
//! 1. `docker.host` in the config (`unix:///path`, `tcp://host:port`); TLS then comes
//!    only from `[docker.tls]` (`cert_path`, a directory with `ca.pem`, `cert.pem`,
//!    `key.pem`).
//! 2. `docker.socket` (a unix socket path; the key older configs have).
//! 3. `DOCKER_HOST`, as the docker CLI reads it; for `tcp://`, TLS is on when
//!    `DOCKER_TLS_VERIFY` is set to anything non-empty, with the files in
//!    `DOCKER_CERT_PATH` (default `~/.docker`).
//! 4. `unix:///var/run/docker.sock`.
//!
//! A `tcp://` address without a port gets Docker's: 2376 with TLS, 2375 without. TLS
//! always verifies the engine's certificate against `ca.pem` and presents the client
//! certificate; only file paths are ever shown, never their contents.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where `dockerd` listens unless told otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The three PEM files of a TLS connection, by the docker CLI's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir` (what `DOCKER_CERT_PATH` names).
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
    }
}

/// How to reach the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, with TLS files or plain.
    Tcp {
        address: String,
        tls: Option<TlsFiles>,
    },
}

/// Which setting an [`Endpoint`] came from (for the start-up log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointSource {
    ConfigHost,
    ConfigSocket,
    DockerHostEnv,
    Default,
}

impl fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointSource::ConfigHost => "docker.host",
            EndpointSource::ConfigSocket => "docker.socket",
            EndpointSource::DockerHostEnv => "DOCKER_HOST",
            EndpointSource::Default => "default",
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { address, tls: None } => write!(f, "tcp://{address}"),
            Endpoint::Tcp { address, tls: Some(_) } => write!(f, "tcp://{address} (TLS)"),
        }
    }
}

/// What the config says about the endpoint (`[docker]` host, socket and tls).
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointSettings<'a> {
    pub host: Option<&'a str>,
    pub socket: Option<&'a Path>,
    pub tls_cert_path: Option<&'a Path>,
}

impl Endpoint {
    /// The endpoint the settings and the environment (`env(name)`) name; see the module
    /// docs. The error names the setting to change.
    pub fn resolve(
        settings: EndpointSettings<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Endpoint, EndpointSource), String> {
        if let Some(host) = settings.host {
            let tls = settings.tls_cert_path.map(TlsFiles::in_dir);
            let endpoint = parse_host(host, tls).map_err(|problem| format!("docker.host: {problem}"))?;
            return Ok((endpoint, EndpointSource::ConfigHost));
        }
        if settings.tls_cert_path.is_some() {
            return Err("docker.tls: needs docker.host = \"tcp://...\"".into());
        }
        if let Some(socket) = settings.socket {
            return Ok((Endpoint::Unix(socket.to_owned()), EndpointSource::ConfigSocket));
        }
        if let Some(host) = env("DOCKER_HOST").filter(|host| !host.is_empty()) {
            let tls = env("DOCKER_TLS_VERIFY").filter(|verify| !verify.is_empty()).map(|_| {
                let dir = match env("DOCKER_CERT_PATH").filter(|path| !path.is_empty()) {
                    Some(path) => PathBuf::from(path),
                    None => PathBuf::from(env("HOME").unwrap_or_default()).join(".docker"),
                };
                TlsFiles::in_dir(&dir)
            });
            let endpoint = parse_host(&host, tls).map_err(|problem| format!("DOCKER_HOST: {problem}"))?;
            return Ok((endpoint, EndpointSource::DockerHostEnv));
        }
        Ok((parse_host(DEFAULT_HOST, None).expect("the default host parses"), EndpointSource::Default))
    }
}

/// `unix:///path` or `tcp://host[:port]`; `tls` applies to `tcp://` only.
pub fn parse_host(host: &str, tls: Option<TlsFiles>) -> Result<Endpoint, String> {
    if let Some(path) = host.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!("{host:?}: expected an absolute socket path, e.g. \"unix:///var/run/docker.sock\""));
        }
        if tls.is_some() {
            return Err(format!("{host:?}: TLS applies to tcp:// hosts only"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = host.strip_prefix("tcp://") {
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(format!("{host:?}: expected tcp://host:port, e.g. \"tcp://127.0.0.1:2376\""));
        }
        let has_port = match authority.rsplit_once(':') {
            // `[::1]` has colons but no port; `[::1]:2376` and `host:2376` have one.
            Some((before, port)) => !port.is_empty() && !before.ends_with(':') && !port.contains(']'),
            None => false,
        };
        let address = if has_port {
            let port = authority.rsplit_once(':').map(|(_, port)| port).unwrap_or_default();
            if port.parse::<u16>().is_err() {
                return Err(format!("{host:?}: invalid port {port:?}"));
            }
            authority.to_owned()
        } else {
            format!("{authority}:{}", if tls.is_some() { 2376 } else { 2375 })
        };
        return Ok(Endpoint::Tcp { address, tls });
    }
    Err(format!("{host:?}: unsupported scheme: expected unix:///path or tcp://host:port"))
}
