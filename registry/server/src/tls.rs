//! TLS for both ports, with rustls and the ring provider.
//!
//! One certificate and key serve the client port (HTTPS) and the peer port;
//! with a trusted CA the peer port also requires client certificates signed
//! by it (mutual TLS between members), and outgoing requests (Raft RPCs,
//! forwarded writes) present the same certificate and trust only that CA.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the PEM files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle that signs the members' certificates.
    pub trusted_ca: Option<PathBuf>,
}

/// The loaded TLS settings of a node.
#[derive(Clone)]
pub struct Tls {
    client_port: Arc<rustls::ServerConfig>,
    peer_port: Arc<rustls::ServerConfig>,
    outgoing: rustls::ClientConfig,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading a PEM private key from {}", path.display()))
}

fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(path)? {
        store
            .add(cert)
            .with_context(|| format!("adding a CA certificate from {}", path.display()))?;
    }
    Ok(store)
}

impl Tls {
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let certs = read_certs(&files.cert)?;
        let key = read_key(&files.key)?;
        let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let mut client_port = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .context("the certificate does not match the key")?;
        client_port.alpn_protocols = alpn.clone();

        let peer_builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let mut peer_port = match &files.trusted_ca {
            Some(ca) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                        .build()
                        .context("building the peer certificate verifier")?;
                peer_builder
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(certs.clone(), key.clone_key())?
            }
            None => peer_builder
                .with_no_client_auth()
                .with_single_cert(certs.clone(), key.clone_key())?,
        };
        peer_port.alpn_protocols = alpn;

        let outgoing_roots = match &files.trusted_ca {
            Some(ca) => roots(ca)?,
            None => RootCertStore::empty(),
        };
        let outgoing = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(outgoing_roots)
            .with_client_auth_cert(certs, key)
            .context("using the certificate as a client certificate")?;
        Ok(Tls {
            client_port: Arc::new(client_port),
            peer_port: Arc::new(peer_port),
            outgoing,
        })
    }
}

/// Builds the HTTP client a node uses to talk to other members.
pub fn http_client(
    tls: Option<&Tls>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    let config = match tls {
        Some(tls) => tls.outgoing.clone(),
        // reqwest wants TLS settings even for plain HTTP; ours keep it from
        // needing a process-wide crypto provider.
        None => rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    };
    builder
        .use_preconfigured_tls(config)
        .build()
        .context("building an HTTP client")
}

/// Which of the node's ports a listener serves.
#[derive(Clone, Copy)]
pub enum Port {
    Client,
    Peer,
}

/// A TCP listener that hands out TLS streams. Handshakes run in their own
/// tasks, so a slow or hostile client never stalls accepting others.
pub struct TlsListener {
    streams: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: &Tls, port: Port) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let config = match port {
            Port::Client => tls.client_port.clone(),
            Port::Peer => tls.peer_port.clone(),
        };
        let acceptor = TlsAcceptor::from(config);
        let (tx, streams) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handshaken = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            let _ = handshaken.send((stream, addr)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%addr, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { streams, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.streams.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends with the listener; park forever so
            // graceful shutdown decides when serving stops.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
