//! TLS for both ports, with rustls and the ring provider.
//!
//! One certificate and key serve the client port (HTTPS) and the peer port;
//! with a trusted CA the peer port also requires client certificates signed
//! by it (mutual TLS between members), and outgoing requests (Raft RPCs,
//! forwarded writes) present the same certificate and trust only that CA.
//!
//! The certificate and key are read again when their files change (checked
//! at most once a second, at a handshake), so a renewed certificate — the
//! operator renews them before they expire — is used without a restart.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
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

/// The node's certificate and key, read again when their files change.
#[derive(Debug)]
struct ReloadingKey {
    cert: PathBuf,
    key: PathBuf,
    /// How often the files' modification times are looked at.
    recheck: Duration,
    state: std::sync::Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
    checked: std::time::Instant,
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let certified = CertifiedKey::from_der(read_certs(cert)?, read_key(key)?, &provider())
        .with_context(|| {
            format!(
                "the certificate in {} does not match the key in {}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(certified))
}

impl ReloadingKey {
    fn load(cert: &Path, key: &Path, recheck: Duration) -> anyhow::Result<Self> {
        let loaded = Loaded {
            key: certified_key(cert, key)?,
            modified: (modified(cert), modified(key)),
            checked: std::time::Instant::now(),
        };
        Ok(ReloadingKey {
            cert: cert.to_owned(),
            key: key.to_owned(),
            recheck,
            state: std::sync::Mutex::new(loaded),
        })
    }

    /// The current key; reloads it first if the files changed. A reload
    /// that fails (a half-written file) keeps the previous key.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= self.recheck {
            state.checked = std::time::Instant::now();
            let now = (modified(&self.cert), modified(&self.key));
            if now != state.modified {
                // Either way this version of the files has been looked at;
                // the next change is tried again.
                state.modified = now;
                match certified_key(&self.cert, &self.key) {
                    Ok(key) => {
                        tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
                        state.key = key;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "the changed TLS certificate does not load; keeping the previous one");
                    }
                }
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for ReloadingKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl Tls {
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let key = Arc::new(ReloadingKey::load(
            &files.cert,
            &files.key,
            Duration::from_secs(1),
        )?);
        let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let mut client_port = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(key.clone());
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
                    .with_cert_resolver(key.clone())
            }
            None => peer_builder
                .with_no_client_auth()
                .with_cert_resolver(key.clone()),
        };
        peer_port.alpn_protocols = alpn;

        let outgoing_roots = match &files.trusted_ca {
            Some(ca) => roots(ca)?,
            None => RootCertStore::empty(),
        };
        let outgoing = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(outgoing_roots)
            .with_client_cert_resolver(key);
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

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn write_pair(dir: &Path, name: &str) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_picked_up_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), "first.example");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let reloading = ReloadingKey::load(&cert, &key, Duration::ZERO).unwrap();
        assert_eq!(reloading.current().cert[0].as_ref(), first.as_slice());

        // Some filesystems keep whole-second modification times.
        std::thread::sleep(Duration::from_millis(1100));
        let second = write_pair(dir.path(), "second.example");
        assert_eq!(reloading.current().cert[0].as_ref(), second.as_slice());

        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&key, "not a key").unwrap();
        assert_eq!(
            reloading.current().cert[0].as_ref(),
            second.as_slice(),
            "a change that does not load keeps the previous certificate"
        );
    }

    #[test]
    fn a_certificate_that_does_not_match_its_key_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "a.example");
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("key.pem"), other.serialize_pem()).unwrap();
        let err = ReloadingKey::load(
            &dir.path().join("cert.pem"),
            &dir.path().join("key.pem"),
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
