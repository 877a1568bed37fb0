//! The running Raft node as the rest of the server sees it: propose a
//! command, make a read linearizable, inspect status. No openraft type
//! leaves this module tree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use muster_store::{Command, CommandResult};
use muster_types::cluster::NodeRole;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{ReadPolicy, ServerState, SnapshotPolicy};

use super::log_store::LogStore;
use super::network::NetworkFactory;
use super::rpc::{self, PeerState, ReadIndex};
use super::state_machine::StateMachine;
use super::types::{NodeId, PeerNode, Raft};
use crate::config::Config;
use crate::identity::{IdentityFile, SharedIdentity};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tls::Tls;

pub struct RaftNode {
    pub(super) raft: Raft,
    pub(super) identity: Arc<SharedIdentity>,
    pub(super) store: Arc<Store>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) config: Config,
    pub(super) http: reqwest::Client,
    /// Serializes membership changes made through this node.
    pub(super) membership_lock: tokio::sync::Mutex<()>,
}

/// Where this node believes the leader is.
#[derive(Clone, Debug)]
pub struct LeaderInfo {
    pub id: NodeId,
    pub name: String,
    pub client_url: String,
}

impl From<(NodeId, &PeerNode)> for LeaderInfo {
    fn from((id, node): (NodeId, &PeerNode)) -> Self {
        LeaderInfo {
            id,
            name: node.name.clone(),
            client_url: node.client_url.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<LeaderInfo> },
    #[error("{0}")]
    Unavailable(String),
}

/// A snapshot of the node's Raft state.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub id: NodeId,
    pub name: String,
    pub cluster_id: String,
    pub role: NodeRole,
    pub leader: Option<LeaderInfo>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: Option<u64>,
}

fn role_of(state: ServerState) -> NodeRole {
    match state {
        ServerState::Leader => NodeRole::Leader,
        ServerState::Follower => NodeRole::Follower,
        ServerState::Candidate => NodeRole::Candidate,
        ServerState::Learner => NodeRole::Learner,
        ServerState::Shutdown => NodeRole::Shutdown,
    }
}

impl RaftNode {
    /// Opens the node's storage and starts Raft. Bootstrap and the leader's
    /// duties run in background tasks started here.
    pub async fn start(
        config: &Config,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        tls: Option<&Tls>,
    ) -> anyhow::Result<Arc<RaftNode>> {
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let identity_file = IdentityFile::new(data_dir);
        let (identity, created) =
            identity_file.load_or_create(&config.name, &config.initial_cluster)?;
        if created {
            tracing::info!(id = identity.node_id, name = %identity.name, "new node identity");
        } else {
            tracing::info!(
                id = identity.node_id,
                name = %identity.name,
                cluster = ?identity.cluster_id,
                "resuming from the data directory"
            );
        }
        let identity = Arc::new(SharedIdentity::new(identity_file, identity));
        let log = LogStore::open(&data_dir.join("raft"), Some(metrics.clone()))
            .context("opening the Raft log")?;
        let state_machine = StateMachine::new(store.clone(), &data_dir.join("snapshots"))
            .context("opening the snapshot directory")?;
        let election_ms = config.election_timeout.as_millis() as u64;
        let raft_config = openraft::Config {
            cluster_name: "muster".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            // Keep a little log after a snapshot so a briefly lagging
            // follower catches up from the log, not a whole snapshot.
            max_in_snapshot_log_to_keep: config.snapshot_every / 4,
            install_snapshot_timeout: 60_000,
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .context("Raft settings")?;
        let raft_http = crate::tls::http_client(tls, Duration::from_secs(2), None)?;
        let raft = Raft::new(
            identity.node_id(),
            Arc::new(raft_config),
            NetworkFactory::new(identity.clone(), raft_http),
            log,
            state_machine,
        )
        .await
        .context("starting Raft")?;
        let http =
            crate::tls::http_client(tls, Duration::from_secs(2), Some(Duration::from_secs(10)))?;
        let node = Arc::new(RaftNode {
            raft,
            identity,
            store,
            metrics,
            config: config.clone(),
            http,
            membership_lock: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(node.clone().bootstrap());
        tokio::spawn(node.clone().track_state());
        tokio::spawn(node.clone().expire_leases());
        tokio::spawn(node.clone().compact_history());
        tokio::spawn(node.clone().reconcile_initial_members());
        Ok(node)
    }

    /// The router for the peer port.
    pub fn peer_router(&self) -> axum::Router {
        rpc::router(PeerState {
            raft: self.raft.clone(),
            identity: self.identity.clone(),
            client_url: self.config.advertise_client.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn election_timeout(&self) -> Duration {
        self.config.election_timeout
    }

    /// Published versions the config center keeps per item.
    pub fn config_history_limit(&self) -> usize {
        self.config.config_history_limit
    }

    /// This node's own peer description.
    pub(super) fn self_node(&self) -> PeerNode {
        PeerNode {
            name: self.config.name.clone(),
            peer_url: self.config.advertise_peer.clone(),
            client_url: self.config.advertise_client.clone(),
        }
    }

    /// Initializes a new cluster when this node is the first of
    /// `--initial-cluster`, its data directory is new, and no other listed
    /// node already belongs to a cluster. Every other node waits to be
    /// added by the leader.
    async fn bootstrap(self: Arc<Self>) {
        let identity = self.identity.get();
        if identity.cluster_id.is_some() || self.raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        if self.config.join_existing {
            tracing::info!("joining an existing cluster: waiting to be added by its leader");
            return;
        }
        let Some((first, _)) = identity.initial_cluster.first() else {
            return;
        };
        if first != &identity.name {
            tracing::info!(initializer = %first, "waiting to be added to the cluster");
            return;
        }
        for (name, peer_url) in identity.initial_cluster.iter().skip(1) {
            if let Ok(peer) = self.peer_identity(peer_url).await
                && let Some(cluster) = peer.cluster_id
            {
                tracing::warn!(
                    peer = %name,
                    %cluster,
                    "a listed peer already belongs to a cluster: not initializing a new one; \
                     this node waits to be added as a new member"
                );
                return;
            }
        }
        let cluster_id = crate::identity::new_cluster_id();
        if let Err(err) = self.identity.adopt_cluster(&cluster_id) {
            tracing::error!(%err, "could not record the new cluster id");
            return;
        }
        let members = BTreeMap::from([(self.node_id(), self.self_node())]);
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!(cluster = %cluster_id, "initialized a new cluster"),
            Err(err) => tracing::error!(%err, "initializing the cluster failed"),
        }
    }

    /// Mirrors Raft state into metrics and, on winning an election, gives
    /// every lease a fresh TTL.
    async fn track_state(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        let mut was_leader = false;
        let mut last_leader = None;
        loop {
            let snapshot = metrics.borrow_watched().clone();
            let gauges = &self.metrics;
            gauges.raft_term.set(snapshot.current_term as i64);
            gauges
                .raft_commit_index
                .set(snapshot.local_committed.as_ref().map_or(0, |id| id.index) as i64);
            gauges
                .raft_applied_index
                .set(snapshot.last_applied.as_ref().map_or(0, |id| id.index) as i64);
            gauges
                .raft_last_log_index
                .set(snapshot.last_log_index.unwrap_or(0) as i64);
            for role in ["leader", "follower", "candidate", "learner", "shutdown"] {
                gauges.raft_state.with_label_values(&[role]).set(0);
            }
            let role = match snapshot.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            };
            gauges.raft_state.with_label_values(&[role]).set(1);
            if snapshot.current_leader != last_leader {
                last_leader = snapshot.current_leader;
                if let Some(leader) = last_leader {
                    gauges
                        .raft_leader_changes
                        .with_label_values(&[&leader.to_string()])
                        .inc();
                }
            }
            let is_leader = snapshot.state == ServerState::Leader;
            if is_leader && !was_leader {
                self.store.leases.refresh_all();
                tracing::info!(term = snapshot.current_term, "became leader");
            }
            was_leader = is_leader;
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// The leader revokes leases whose holders stopped renewing them, through
    /// the log, so every replica deletes the same keys at the same revision.
    async fn expire_leases(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if !self.raft.is_leader() {
                continue;
            }
            for id in self.store.leases.take_expired() {
                match self.propose(Command::LeaseRevoke { id }).await {
                    Ok(_) => tracing::info!(lease = id, "lease expired"),
                    Err(err) => tracing::debug!(lease = id, %err, "lease expiry not proposed"),
                }
            }
        }
    }

    /// The leader keeps `history_revisions` of history and compacts the rest.
    async fn compact_history(self: Arc<Self>) {
        let keep = self.config.history_revisions;
        if keep == 0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if !self.raft.is_leader() {
                continue;
            }
            let (revision, compacted) = self
                .store
                .read(|ks| (ks.revision(), ks.compacted_revision()));
            // Compact in steps of a tenth of the history, not on every write.
            if revision > compacted + keep + keep / 10 {
                let target = revision - keep;
                if let Err(err) = self.propose(Command::Compact { revision: target }).await {
                    tracing::debug!(%err, "automatic compaction not proposed");
                }
            }
        }
    }

    /// Proposes a command through the log; it returns once applied here.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        let result = self.raft.client_write(command).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => "not_leader",
            Err(_) => "failed",
        };
        self.metrics
            .raft_proposals
            .with_label_values(&[outcome])
            .inc();
        match result {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(ProposeError::NotLeader {
                    leader: forward
                        .leader_id
                        .zip(forward.leader_node.as_ref())
                        .map(LeaderInfo::from),
                })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                Err(ProposeError::Unavailable(
                    "leadership changed while the write was in flight; it may or may not have \
                     been applied"
                        .into(),
                ))
            }
            Err(err) => Err(ProposeError::Unavailable(err.to_string())),
        }
    }

    /// Waits until this node's state reflects everything committed before
    /// the call (read index through the leader).
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        let forward = match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => return Ok(()),
            Err(err) => match err.forward_to_leader() {
                Some(forward) => forward.clone(),
                None => return Err(ProposeError::Unavailable(err.to_string())),
            },
        };
        let (Some(leader_id), Some(leader)) = (forward.leader_id, forward.leader_node) else {
            return Err(ProposeError::Unavailable("no leader is known".into()));
        };
        let response = self
            .http
            .post(format!(
                "{}{}",
                leader.peer_url.trim_end_matches('/'),
                rpc::READ_INDEX
            ))
            .header(
                rpc::CLUSTER_HEADER,
                self.identity.cluster_id().unwrap_or_default(),
            )
            .header(rpc::TARGET_HEADER, leader_id.to_string())
            .send()
            .await
            .map_err(|err| ProposeError::Unavailable(format!("asking the leader: {err}")))?;
        if !response.status().is_success() {
            return Err(ProposeError::Unavailable(format!(
                "the leader refused the read index: {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ProposeError::Unavailable(err.to_string()))?;
        let ReadIndex { index } = super::codec::decode(&bytes)
            .map_err(|err| ProposeError::Unavailable(err.to_string()))?;
        self.raft
            .wait(Some(self.config.election_timeout * 5))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|err| {
                ProposeError::Unavailable(format!("catching up to the leader: {err}"))
            })?;
        Ok(())
    }

    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<LeaderInfo> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.get_node(&leader)?;
        Some(LeaderInfo::from((leader, node)))
    }

    pub fn status(&self) -> NodeStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .get_node(&id)
                .map(|node| LeaderInfo::from((id, node)))
        });
        NodeStatus {
            id: self.node_id(),
            name: self.config.name.clone(),
            cluster_id: self.identity.cluster_id().unwrap_or_default(),
            role: role_of(metrics.state),
            leader,
            term: metrics.current_term,
            commit_index: metrics.local_committed.as_ref().map_or(0, |id| id.index),
            applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            snapshot_index: metrics.snapshot.as_ref().map(|id| id.index),
        }
    }

    /// Ready means: a leader is known and this node has applied what it
    /// knows to be committed.
    pub async fn readiness(&self) -> Result<(), String> {
        let status = self.status();
        let Some(leader) = status.leader else {
            return Err("no leader is known".into());
        };
        if status.applied_index < status.commit_index {
            return Err(format!(
                "applied index {} is behind the commit index {}",
                status.applied_index, status.commit_index
            ));
        }
        if leader.id != status.id {
            // A follower's commit index can lag the leader's; compare with
            // the leader's read index so "ready" means "caught up".
            self.linearize()
                .await
                .map_err(|err| format!("not caught up with leader {}: {err}", leader.name))?;
        }
        Ok(())
    }

    pub async fn shutdown(&self) {
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(%err, "Raft did not shut down cleanly");
        }
    }
}
