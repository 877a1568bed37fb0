//! How a node is configured. The CLI builds this from flags and `MUSTER_*`
//! environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Stable, human-chosen node name (on Kubernetes: the pod name).
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: SocketAddr,
    pub listen_peer: SocketAddr,
    /// URL other nodes and clients use to reach the client port.
    pub advertise_client: String,
    /// URL other nodes use to reach the peer port.
    pub advertise_peer: String,
    /// `(name, peer URL)` of the nodes that form a new cluster. Ignored once
    /// the data directory belongs to a cluster.
    pub initial_cluster: Vec<(String, String)>,
    /// `existing` (etcd's `--initial-cluster-state existing`): never
    /// initialize a cluster; wait to be added to one by its leader.
    pub join_existing: bool,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// Take a snapshot (and purge the log before it) every this many entries.
    pub snapshot_every: u64,
    /// Keep this many revisions of history; older ones are compacted by the
    /// leader. 0 turns automatic compaction off.
    pub history_revisions: u64,
    /// Where DNS answers (UDP and TCP); None: no DNS.
    pub listen_dns: Option<SocketAddr>,
    /// The zone DNS answers for: `{service}.{namespace}.svc.{domain}`.
    pub dns_domain: String,
    /// Published versions kept per config item.
    pub config_history_limit: usize,
    /// TLS on both ports (and mutual TLS between members with a CA).
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Config {
    /// A single-node cluster on the default ports with data in `data_dir`.
    pub fn dev(data_dir: PathBuf) -> Self {
        let listen_client: SocketAddr = ([127, 0, 0, 1], 7001).into();
        let listen_peer: SocketAddr = ([127, 0, 0, 1], 7101).into();
        Config {
            name: "dev".into(),
            data_dir,
            listen_client,
            listen_peer,
            advertise_client: format!("http://{listen_client}"),
            advertise_peer: format!("http://{listen_peer}"),
            initial_cluster: vec![("dev".into(), format!("http://{listen_peer}"))],
            join_existing: false,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_every: 10_000,
            history_revisions: 100_000,
            listen_dns: None,
            dns_domain: "muster.".into(),
            config_history_limit: 100,
            tls: None,
        }
    }
}
