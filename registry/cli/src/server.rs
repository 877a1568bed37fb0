//! `muster server`: flags (and `MUSTER_*` variables) to a node's config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use muster_server::Config;

const DEV_DATA_DIR: &str = "./muster-data";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// This node's name, unique in the cluster [default with --dev: dev].
    #[arg(long, env = "MUSTER_NAME")]
    name: Option<String>,
    /// Where the node keeps its log and snapshots.
    #[arg(long, env = "MUSTER_DATA_DIR", default_value = DEV_DATA_DIR)]
    data_dir: PathBuf,
    /// Address of the client API.
    #[arg(long, env = "MUSTER_LISTEN_CLIENT", default_value = "127.0.0.1:7001")]
    listen_client: SocketAddr,
    /// Address of the Raft peer API.
    #[arg(long, env = "MUSTER_LISTEN_PEER", default_value = "127.0.0.1:7101")]
    listen_peer: SocketAddr,
    /// Client URL other nodes and clients use [default: http://<listen-client>].
    #[arg(long, env = "MUSTER_ADVERTISE_CLIENT")]
    advertise_client: Option<String>,
    /// Peer URL other nodes use [default: http://<listen-peer>].
    #[arg(long, env = "MUSTER_ADVERTISE_PEER")]
    advertise_peer: Option<String>,
    /// Members of a new cluster: name1=http://host:port,name2=... [default: this node alone].
    #[arg(long, env = "MUSTER_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// `new` forms a cluster from --initial-cluster (its first node
    /// initializes it); `existing` waits to be added by a running cluster's
    /// leader (`muster member add`).
    #[arg(long, env = "MUSTER_INITIAL_CLUSTER_STATE", value_enum, default_value_t = ClusterState::New)]
    initial_cluster_state: ClusterState,
    #[arg(long, env = "MUSTER_HEARTBEAT_INTERVAL_MS", default_value_t = 100)]
    heartbeat_interval_ms: u64,
    #[arg(long, env = "MUSTER_ELECTION_TIMEOUT_MS", default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Snapshot (and truncate the log) every this many entries.
    #[arg(long, env = "MUSTER_SNAPSHOT_EVERY", default_value_t = 10_000)]
    snapshot_every: u64,
    /// Revisions of history kept before automatic compaction; 0: keep all.
    #[arg(long, env = "MUSTER_HISTORY_REVISIONS", default_value_t = 100_000)]
    history_revisions: u64,
    /// Answer DNS (UDP and TCP) for the service catalog on this address.
    #[arg(long, env = "MUSTER_LISTEN_DNS")]
    listen_dns: Option<SocketAddr>,
    /// The zone DNS answers for: {service}.{namespace}.svc.{domain}.
    #[arg(long, env = "MUSTER_DNS_DOMAIN", default_value = "muster.")]
    dns_domain: String,
    /// Published versions kept per config item.
    #[arg(long, env = "MUSTER_CONFIG_HISTORY_LIMIT", default_value_t = 100)]
    config_history_limit: usize,
    /// Serve both ports over TLS with this certificate (PEM); its names must
    /// cover the advertised hosts.
    #[arg(long, env = "MUSTER_CERT_FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "MUSTER_KEY_FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// CA bundle (PEM) that signs the members' certificates: members then
    /// require each other's certificates (mutual TLS on the peer port).
    #[arg(long, env = "MUSTER_TRUSTED_CA_FILE", requires = "cert_file")]
    trusted_ca_file: Option<PathBuf>,
    /// A single-node development cluster: the defaults need no flags.
    #[arg(long, env = "MUSTER_DEV")]
    dev: bool,
}

impl ServerArgs {
    pub fn into_config(self) -> anyhow::Result<Config> {
        let Self {
            name,
            data_dir,
            listen_client,
            listen_peer,
            advertise_client,
            advertise_peer,
            initial_cluster,
            initial_cluster_state,
            heartbeat_interval_ms,
            election_timeout_ms,
            snapshot_every,
            history_revisions,
            listen_dns,
            dns_domain,
            config_history_limit,
            cert_file,
            key_file,
            trusted_ca_file,
            dev,
        } = self;
        let name = match (name, dev) {
            (Some(name), _) => name,
            (None, true) => "dev".to_string(),
            (None, false) => bail!("--name is required (or use --dev for a single dev node)"),
        };
        if name.is_empty() || name.contains(['=', ',']) || name.chars().any(char::is_whitespace) {
            bail!("--name: '{name}' must be non-empty without '=', ',' or spaces");
        }
        let tls = match (cert_file, key_file) {
            (Some(cert), Some(key)) => Some(muster_server::TlsFiles {
                cert,
                key,
                trusted_ca: trusted_ca_file,
            }),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let advertise_client = advertise(
            advertise_client,
            listen_client,
            scheme,
            "--advertise-client",
        )?;
        let advertise_peer = advertise(advertise_peer, listen_peer, scheme, "--advertise-peer")?;
        let initial_cluster = match initial_cluster {
            Some(text) => {
                let members = parse_initial_cluster(&text)?;
                if !members.iter().any(|(member, _)| *member == name) {
                    bail!("--initial-cluster does not list this node's name '{name}'");
                }
                members
            }
            None => vec![(name.clone(), advertise_peer.clone())],
        };
        if heartbeat_interval_ms == 0 {
            bail!("--heartbeat-interval-ms must be positive");
        }
        if election_timeout_ms <= heartbeat_interval_ms {
            bail!(
                "--election-timeout-ms ({election_timeout_ms}) must exceed \
                 --heartbeat-interval-ms ({heartbeat_interval_ms})"
            );
        }
        if config_history_limit == 0 {
            bail!("--config-history-limit must be positive");
        }
        if snapshot_every == 0 {
            bail!("--snapshot-every must be positive");
        }
        Ok(Config {
            name,
            data_dir,
            listen_client,
            listen_peer,
            advertise_client,
            advertise_peer,
            initial_cluster,
            join_existing: initial_cluster_state == ClusterState::Existing,
            heartbeat_interval: Duration::from_millis(heartbeat_interval_ms),
            election_timeout: Duration::from_millis(election_timeout_ms),
            snapshot_every,
            history_revisions,
            listen_dns,
            dns_domain: absolute_domain(&dns_domain)?,
            config_history_limit,
            tls,
        })
    }
}

/// A DNS zone name, made absolute (`muster` → `muster.`).
fn absolute_domain(domain: &str) -> anyhow::Result<String> {
    let trimmed = domain.trim_end_matches('.');
    if trimmed.is_empty()
        || trimmed.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        bail!("--dns-domain: '{domain}' is not a DNS name like muster. or cluster.example.");
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// The given URL, checked, or one built from the listen address, which must
/// then be a concrete one (others could not dial 0.0.0.0).
fn advertise(
    given: Option<String>,
    listen: SocketAddr,
    scheme: &str,
    flag: &str,
) -> anyhow::Result<String> {
    match given {
        Some(url) => {
            let url = check_url(&url).with_context(|| format!("{flag}: '{url}'"))?;
            if !url.starts_with(&format!("{scheme}://")) {
                bail!(
                    "{flag}: '{url}' must be {scheme}:// (TLS is {})",
                    if scheme == "https" { "on" } else { "off" }
                );
            }
            Ok(url)
        }
        None if listen.ip().is_unspecified() => {
            bail!("{flag} is required when listening on {listen}")
        }
        None => Ok(format!("{scheme}://{listen}")),
    }
}

/// `name1=http://host:port,name2=...` (etcd's format).
pub fn parse_initial_cluster(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut members: Vec<(String, String)> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, url)) = entry.split_once('=') else {
            bail!("--initial-cluster: entry '{entry}' is not name=url");
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() {
            bail!("--initial-cluster: entry '{entry}' has no name");
        }
        let url = check_url(url)
            .with_context(|| format!("--initial-cluster: entry '{entry}' has a bad URL"))?;
        if members.iter().any(|(other, _)| other == name) {
            bail!("--initial-cluster: '{name}' is listed twice");
        }
        members.push((name.to_string(), url));
    }
    if members.is_empty() {
        bail!("--initial-cluster is empty");
    }
    Ok(members)
}

/// Peer and client URLs are `http://host:port` or `https://host:port`.
fn check_url(url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        ("https", rest)
    } else {
        bail!("it must start with http:// or https://");
    };
    let authority = rest.trim_end_matches('/');
    let Some((host, port)) = authority.rsplit_once(':') else {
        bail!("it must name a port");
    };
    if host.is_empty() || host.contains('/') {
        bail!("it must be http://host:port");
    }
    port.parse::<u16>()
        .map_err(|_| anyhow::anyhow!("port '{port}' is not a number"))?;
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn config(flags: &[&str]) -> anyhow::Result<Config> {
        let argv = std::iter::once("server").chain(flags.iter().copied());
        Wrapper::try_parse_from(argv)?.args.into_config()
    }

    #[test]
    fn dev_is_the_dev_config() {
        let config = config(&["--dev"]).unwrap();
        let expected = Config::dev(DEV_DATA_DIR.into());
        // Config has no PartialEq; Debug shows every field.
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
    }

    #[test]
    fn dev_flags_can_be_overridden() {
        let config = config(&["--dev", "--data-dir", "/tmp/x", "--name", "n1"]).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.name, "n1");
        assert_eq!(
            config.initial_cluster,
            [("n1".to_string(), "http://127.0.0.1:7101".to_string())]
        );
    }

    #[test]
    fn name_is_required_without_dev() {
        let err = config(&[]).unwrap_err();
        assert!(err.to_string().contains("--name is required"), "{err}");
    }

    #[test]
    fn defaults_follow_the_listen_addresses() {
        let config = config(&[
            "--name",
            "a",
            "--listen-client",
            "10.0.0.5:8001",
            "--listen-peer",
            "10.0.0.5:8101",
        ])
        .unwrap();
        assert_eq!(config.advertise_client, "http://10.0.0.5:8001");
        assert_eq!(config.advertise_peer, "http://10.0.0.5:8101");
        assert_eq!(
            config.initial_cluster,
            [("a".to_string(), "http://10.0.0.5:8101".to_string())]
        );
        assert_eq!(config.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(config.election_timeout, Duration::from_millis(1000));
        assert_eq!(config.snapshot_every, 10_000);
        assert_eq!(config.history_revisions, 100_000);
    }

    #[test]
    fn unspecified_listen_needs_an_advertised_url() {
        let err = config(&["--name", "a", "--listen-client", "0.0.0.0:7001"]).unwrap_err();
        assert!(
            err.to_string().contains("--advertise-client is required"),
            "{err}"
        );
        let ok = config(&[
            "--name",
            "a",
            "--listen-client",
            "0.0.0.0:7001",
            "--advertise-client",
            "http://a.svc:7001/",
        ])
        .unwrap();
        assert_eq!(ok.advertise_client, "http://a.svc:7001");
    }

    #[test]
    fn initial_cluster_is_parsed_etcd_style() {
        let members = parse_initial_cluster(
            "a=http://10.0.0.1:7101, b=http://b.svc:7101/,c=http://[::1]:7101",
        )
        .unwrap();
        assert_eq!(
            members,
            [
                ("a".to_string(), "http://10.0.0.1:7101".to_string()),
                ("b".to_string(), "http://b.svc:7101".to_string()),
                ("c".to_string(), "http://[::1]:7101".to_string()),
            ]
        );
    }

    #[test]
    fn initial_cluster_errors_are_specific() {
        let err = |text: &str| format!("{:#}", parse_initial_cluster(text).unwrap_err());
        assert_eq!(err("x"), "--initial-cluster: entry 'x' is not name=url");
        assert!(err("=http://h:1").contains("has no name"));
        assert!(
            err("a=h:1").contains("must start with http://"),
            "{}",
            err("a=h:1")
        );
        assert!(err("a=http://h").contains("must name a port"));
        assert!(err("a=http://h:port").contains("'port' is not a number"));
        assert!(err("a=http://h:1,a=http://h:2").contains("listed twice"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn own_name_must_be_in_initial_cluster() {
        let err = config(&[
            "--name",
            "c",
            "--initial-cluster",
            "a=http://h:1,b=http://h:2",
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("does not list this node's name 'c'"),
            "{err}"
        );
        let ok = config(&[
            "--name",
            "b",
            "--initial-cluster",
            "a=http://h:1,b=http://h:2",
        ])
        .unwrap();
        assert_eq!(ok.initial_cluster.len(), 2);
    }

    #[test]
    fn timing_flags_are_checked() {
        let err = config(&["--dev", "--election-timeout-ms", "100"]).unwrap_err();
        assert!(err.to_string().contains("must exceed"), "{err}");
        let ok = config(&[
            "--dev",
            "--heartbeat-interval-ms",
            "50",
            "--election-timeout-ms",
            "500",
        ])
        .unwrap();
        assert_eq!(ok.heartbeat_interval, Duration::from_millis(50));
        assert_eq!(ok.election_timeout, Duration::from_millis(500));
        assert!(config(&["--dev", "--snapshot-every", "x"]).is_err());
    }
}
