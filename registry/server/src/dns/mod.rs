//! DNS for the service catalog: `{service}.{namespace}.svc.{domain}` over
//! UDP and TCP on one address. Answers come from this node's own state
//! (a serializable read, as Consul's DNS does by default): any node
//! answers, even without a leader, at most a replication delay behind.

mod answer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use muster_catalog::keys;
use muster_store::Keyspace;
use muster_types::catalog::{DEFAULT_NAMESPACE, Instance};
use muster_types::kv::{KeyValue, RangeRequest};
use muster_types::limits::MAX_RANGE_LIMIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use answer::{CatalogView, Transport, Zone};

use crate::config::Config;
use crate::store::Store;

/// TCP connections served at once; more wait in the accept queue.
const MAX_TCP_CONNECTIONS: usize = 256;

/// A TCP connection with no query for this long is closed (RFC 7766
/// suggests seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds UDP and TCP on `config.listen_dns` (nothing when it is unset) and
/// serves in the background; fails when either cannot be bound.
pub async fn start(config: &Config, store: Arc<Store>) -> anyhow::Result<()> {
    let Some(address) = config.listen_dns else {
        return Ok(());
    };
    let zone = Arc::new(Zone::new(&config.dns_domain).map_err(anyhow::Error::msg)?);
    let udp = UdpSocket::bind(address)
        .await
        .with_context(|| format!("binding the DNS port {address}/udp"))?;
    // With port 0, TCP takes the port UDP was given.
    let bound = udp.local_addr()?;
    let tcp = TcpListener::bind(bound)
        .await
        .with_context(|| format!("binding the DNS port {bound}/tcp"))?;
    tracing::info!(address = %bound, domain = %config.dns_domain, "DNS listening on UDP and TCP");
    tokio::spawn(serve_udp(udp, zone.clone(), store.clone()));
    tokio::spawn(serve_tcp(tcp, zone, store));
    Ok(())
}

fn reply(store: &Store, zone: &Zone, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    store.read(|keyspace| answer::handle(packet, zone, &KeyspaceCatalog { keyspace }, transport))
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Zone>, store: Arc<Store>) {
    // Larger than any query we accept (EDNS_UDP_LIMIT); a longer datagram
    // is cut and then fails to parse.
    let mut buffer = vec![0u8; 4096];
    loop {
        let (len, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(%err, "DNS UDP receive failed");
                // Should the error persist, do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Answering is an in-memory read, cheap enough to do inline.
        if let Some(answer) = reply(&store, &zone, &buffer[..len], Transport::Udp)
            && let Err(err) = socket.send_to(&answer, peer).await
        {
            tracing::debug!(%err, %peer, "DNS UDP send failed");
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Zone>, store: Arc<Store>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(%err, "DNS TCP accept failed");
                // Typically out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (zone, store) = (zone.clone(), store.clone());
        tokio::spawn(async move {
            if let Err(err) = serve_tcp_connection(stream, &zone, &store).await {
                tracing::debug!(%err, %peer, "DNS TCP connection ended");
            }
            drop(slot);
        });
    }
}

/// Serves length-prefixed queries (RFC 1035 4.2.2) until the client closes,
/// idles, or sends something that is not a query.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    zone: &Zone,
    store: &Store,
) -> std::io::Result<()> {
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Err(_idle) => return Ok(()),
        }
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(length))];
        tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut packet))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Some(answer) = reply(store, zone, &packet, Transport::Tcp) else {
            // Unanswerable: the stream may be out of step, so end it.
            return Ok(());
        };
        // `encode` keeps a TCP answer within 65535 bytes.
        let length = u16::try_from(answer.len()).unwrap_or(u16::MAX);
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(&answer);
        stream.write_all(&framed).await?;
    }
}

/// The catalog as the keyspace holds it (the layout of `muster_catalog::keys`).
struct KeyspaceCatalog<'a> {
    keyspace: &'a Keyspace,
}

impl KeyspaceCatalog<'_> {
    /// Keys under `prefix`, at most `max` of them (0: all).
    fn scan(&self, prefix: &str, max: usize) -> Vec<KeyValue> {
        let mut kvs = Vec::new();
        let mut after = None;
        // Bounded: each page moves past the last key, and the keyspace is
        // finite and locked for reading meanwhile.
        loop {
            let request = RangeRequest {
                key: prefix.to_owned(),
                prefix: true,
                limit: if max == 0 { MAX_RANGE_LIMIT } else { max },
                after: after.take(),
                revision: None,
                keys_only: false,
            };
            let Ok(page) = self.keyspace.range(&request) else {
                return kvs;
            };
            kvs.extend(page.kvs);
            if !page.more || (max != 0 && kvs.len() >= max) {
                return kvs;
            }
            after = page.next;
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.keyspace
            .range(&RangeRequest {
                key: key.to_owned(),
                ..Default::default()
            })
            .is_ok_and(|page| !page.kvs.is_empty())
    }
}

impl CatalogView for KeyspaceCatalog<'_> {
    fn service(&self, namespace: &str, service: &str) -> Option<Vec<Instance>> {
        let kvs = self.scan(&keys::instances_prefix(namespace, service), 0);
        if kvs.is_empty() && !self.exists(&keys::service(namespace, service)) {
            return None;
        }
        let instances = kvs
            .iter()
            .filter_map(|kv| match serde_json::from_slice(kv.value.as_bytes()) {
                Ok(instance) => Some(instance),
                Err(err) => {
                    tracing::debug!(key = %kv.key, %err, "skipping an instance that does not decode");
                    None
                }
            })
            .collect();
        Some(instances)
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        namespace == DEFAULT_NAMESPACE
            || self.exists(&keys::namespace(namespace))
            || !self.scan(&keys::services_prefix(namespace), 1).is_empty()
            || !self
                .scan(&keys::namespace_instances_prefix(namespace), 1)
                .is_empty()
    }

    fn serial(&self) -> u32 {
        // SOA serials are compared modulo 2^32 (RFC 1982), so the low bits
        // of the revision serve.
        self.keyspace.revision() as u32
    }
}
