//! A remote engine: the `log-capturer` binary reaches this machine's engine over TCP on
//! loopback, through an in-test proxy to the unix socket: once plain
//! (`docker.host = "tcp://127.0.0.1:PORT"`), once with TLS and a client certificate
//! (`[docker.tls] cert_path`), the CA and both certificates made in the test with rcgen.
//! The proxy terminates TLS with rustls and refuses a client without a certificate
//! signed by the test CA. Every line arrives, and the daemon's log holds no byte of the
//! key or the certificates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::task::TaskHandle;
use tokio::net::{TcpListener, UnixStream};

use super::*;

/// The files of a TLS set-up made in the test: `ca.pem`, `cert.pem`, `key.pem` (the
/// client's, as `DOCKER_CERT_PATH` holds them) and the proxy's server side.
struct TestPki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "log-capturer test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.distinguished_name.push(DnType::CommonName, "log-capturer");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), client_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
        let server_key_der = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert.der().clone()], server_key_der)
            .unwrap();
        TestPki { dir, server: Arc::new(server) }
    }

    fn cert_path(&self) -> &Path {
        self.dir.path()
    }

    /// Every secret-bearing file's body (PEM without its armour lines).
    fn secret_bodies(&self) -> Vec<String> {
        ["ca.pem", "cert.pem", "key.pem"]
            .iter()
            .flat_map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap();
                text.lines()
                    .filter(|line| !line.starts_with("-----") && line.len() > 20)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A TCP listener on 127.0.0.1 that forwards every connection to the engine's unix
/// socket, optionally behind TLS. Its tasks run on its own runtime and registry, and
/// stop when it is dropped.
struct DockerProxy {
    address: SocketAddr,
    /// Connections forwarded to the engine (after the TLS handshake, with TLS).
    forwarded: Arc<AtomicUsize>,
    /// TLS handshakes refused (no or a wrong client certificate).
    refused: Arc<AtomicUsize>,
    server: Option<TaskHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DockerProxy {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> DockerProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _context = runtime.enter();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let address = listener.local_addr().unwrap();
        let socket_path = docker_socket_path();
        let (forwarded, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = Tasks::new(Arc::new(rt::TokioRt::new()));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let server = tasks.clone().spawn(TaskKind::Control, {
            let (forwarded, refused) = (forwarded.clone(), refused.clone());
            async move {
                let mut connections = Vec::new();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { return };
                    let (acceptor, socket_path) = (acceptor.clone(), socket_path.clone());
                    let (forwarded, refused) = (forwarded.clone(), refused.clone());
                    connections.push(tasks.spawn(TaskKind::Connection, async move {
                        let Ok(mut engine) = UnixStream::connect(&socket_path).await else { return };
                        match acceptor {
                            None => {
                                forwarded.fetch_add(1, Ordering::SeqCst);
                                let mut tcp = tcp;
                                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut engine).await;
                            }
                            Some(acceptor) => match acceptor.accept(tcp).await {
                                Ok(mut tls) => {
                                    forwarded.fetch_add(1, Ordering::SeqCst);
                                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut engine).await;
                                }
                                Err(_) => {
                                    refused.fetch_add(1, Ordering::SeqCst);
                                }
                            },
                        }
                    }));
                }
            }
        });
        DockerProxy { address, forwarded, refused, server: Some(server), runtime: Some(runtime) }
    }

    fn host(&self) -> String {
        format!("tcp://{}", self.address)
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let _context = runtime.enter();
            drop(self.server.take());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The daemon collects three printers through `proxy`; every line arrives exactly once.
fn every_line_through(test: &'static str, proxy: &DockerProxy, tls_dir: Option<&Path>) -> Daemon {
    let mut phases = Phases::new(test);
    let run_id = capture_tests::daemon::new_run_id(test);
    let mut spec = DaemonSpec::new(&run_id, SinkSpec::File);
    spec.docker_host = Some(proxy.host());
    spec.docker_tls_dir = tls_dir.map(Path::to_path_buf);
    let mut daemon = Daemon::start(spec.clone()).unwrap();
    daemon.wait_ready(READY_TIMEOUT).unwrap();
    let printers = three_printers();
    let containers: Vec<TestContainer> =
        printers.iter().map(|printer| run_in(&spec, &printer.prefix, &printer.script())).collect();
    let expected: BTreeMap<StreamKey, Vec<String>> =
        containers.iter().zip(&printers).flat_map(|(container, printer)| expected_of(container, printer)).collect();
    let total: usize = expected.values().map(Vec::len).sum();
    wait_lines_out(&daemon, total as u64, DELIVERY_TIMEOUT);
    wait_delivered(&daemon, &expected, || read_file_sink(&daemon.sink_path()).unwrap());
    assert_nothing_dropped(&daemon);
    terminate_cleanly(&mut daemon);
    let delivered = read_file_sink(&daemon.sink_path()).unwrap();
    compare_streams(&expected, &texts_by_stream(&delivered)).unwrap();
    assert_eq!(delivered.len(), total);
    let log = daemon.log();
    assert!(log.contains(&proxy.host()), "the daemon names its endpoint:\n{}", daemon.log_tail(40));
    assert!(log.contains("API version negotiated"), "{}", daemon.log_tail(40));
    eprintln!(
        "[{test}] {total} lines exactly once through {} ({} connections forwarded)",
        proxy.host(),
        proxy.forwarded.load(Ordering::SeqCst)
    );
    drop(containers);
    phases.done("every line through the proxy");
    daemon
}

#[test]
fn daemon_collects_from_a_remote_engine_over_plain_tcp() {
    let test = "daemon_collects_from_a_remote_engine_over_plain_tcp";
    let Some(_image) = require_docker_and_image(test) else { return };
    let _serial = one_docker_test_at_a_time_blocking();
    let proxy = DockerProxy::start(None);
    every_line_through(test, &proxy, None);
    assert!(proxy.forwarded.load(Ordering::SeqCst) >= 3, "the daemon went through the proxy");
}

#[test]
fn daemon_collects_from_a_remote_engine_over_tls_with_a_client_certificate() {
    let test = "daemon_collects_from_a_remote_engine_over_tls_with_a_client_certificate";
    let Some(_image) = require_docker_and_image(test) else { return };
    let _serial = one_docker_test_at_a_time_blocking();
    let pki = TestPki::new();
    let proxy = DockerProxy::start(Some(pki.server.clone()));

    // The proxy really checks: a client without TLS and a certificate is refused.
    let without_certificate = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 3<>/dev/tcp/127.0.0.1/{}; printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' >&3; timeout 5 cat <&3",
            proxy.address.port()
        ))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&without_certificate.stdout).contains("OK"));
    wait_until("the plain-text client refused", Duration::from_secs(10), || {
        Ok(proxy.refused.load(Ordering::SeqCst) >= 1)
    })
    .unwrap();

    let daemon = every_line_through(test, &proxy, Some(pki.cert_path()));
    assert!(proxy.forwarded.load(Ordering::SeqCst) >= 3, "the daemon went through the TLS proxy");
    let log = daemon.log();
    for body in pki.secret_bodies() {
        assert!(!log.contains(&body), "the daemon's log contains certificate or key material");
    }
}
