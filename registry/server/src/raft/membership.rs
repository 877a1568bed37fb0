//! Membership changes: add a learner, promote it, remove a member, hand
//! over leadership; and the leader's loop that brings the nodes of
//! `--initial-cluster` in (including a listed node whose data was wiped,
//! which returns under a new id and replaces its old self).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use muster_types::cluster::{AddMemberRequest, Member, MemberList, MemberRole};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Precondition};

use super::node::{LeaderInfo, RaftNode};
use super::rpc::{self, JoinRequest, PeerIdentity};
use super::types::{NodeId, PeerNode, StoredMembership};

/// A learner this many entries behind the leader, or closer, counts as
/// caught up and may be promoted.
pub const CAUGHT_UP_LAG: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<LeaderInfo> },
    #[error("no member is named {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

fn write_error(
    err: RaftError<super::types::TypeConfig, ClientWriteError<super::types::TypeConfig>>,
) -> MembershipError {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            MembershipError::NotLeader {
                leader: forward
                    .leader_id
                    .zip(forward.leader_node.as_ref())
                    .map(LeaderInfo::from),
            }
        }
        RaftError::APIError(ClientWriteError::PreconditionFailed(failed)) => {
            MembershipError::Conflict(format!("the membership changed meanwhile: {failed}"))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(err)) => {
            MembershipError::Conflict(err.to_string())
        }
        other => MembershipError::Unavailable(other.to_string()),
    }
}

/// Members called `name`, with whether each votes.
fn named(membership: &StoredMembership, name: &str) -> Vec<(NodeId, bool)> {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .filter(|(_, node)| node.name == name)
        .map(|(id, _)| (*id, voters.contains(id)))
        .collect()
}

impl RaftNode {
    fn membership(
        &self,
    ) -> (
        StoredMembership,
        Option<BTreeMap<NodeId, u64>>,
        u64,
        Option<NodeId>,
    ) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        let lags = metrics.replication.as_ref().map(|replication| {
            replication
                .iter()
                .map(|(id, matched)| {
                    let matched = matched.as_ref().map_or(0, |log_id| log_id.index);
                    (*id, last.saturating_sub(matched))
                })
                .collect()
        });
        (
            (*metrics.membership_config).clone(),
            lags,
            last,
            metrics.current_leader,
        )
    }

    pub fn members(&self) -> MemberList {
        let (membership, lags, _, leader) = self.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                name: node.name.clone(),
                id: *id,
                peer_url: node.peer_url.clone(),
                client_url: node.client_url.clone(),
                role: if voters.contains(id) {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
                is_leader: leader == Some(*id),
                lag: lags.as_ref().map(|lags| lags.get(id).copied().unwrap_or(0)),
            })
            .collect();
        MemberList {
            members,
            membership_id: membership.log_id().as_ref().map_or(0, |id| id.index),
        }
    }

    /// Checks `expect` against the current membership; returns the
    /// precondition that makes openraft re-check it atomically.
    fn expect_membership(
        &self,
        membership: &StoredMembership,
        expect: Option<u64>,
    ) -> Result<Vec<Precondition<super::types::TypeConfig>>, MembershipError> {
        let Some(expect) = expect else {
            return Ok(Vec::new());
        };
        let current = membership.log_id().as_ref().map_or(0, |id| id.index);
        if current != expect {
            return Err(MembershipError::Conflict(format!(
                "expected membership {expect}, but the current one is {current}"
            )));
        }
        Ok(vec![Precondition::LastMembershipLogId {
            last_membership_log_id: *membership.log_id(),
        }])
    }

    fn ensure_leader(&self) -> Result<(), MembershipError> {
        if self.raft.is_leader() {
            Ok(())
        } else {
            Err(MembershipError::NotLeader {
                leader: self.leader(),
            })
        }
    }

    pub(super) async fn peer_identity(&self, peer_url: &str) -> anyhow::Result<PeerIdentity> {
        let url = format!("{}{}", peer_url.trim_end_matches('/'), rpc::IDENTITY);
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    async fn join_peer(&self, peer_url: &str) -> Result<PeerIdentity, MembershipError> {
        let cluster_id = self
            .identity
            .cluster_id()
            .ok_or_else(|| MembershipError::Unavailable("this node has no cluster yet".into()))?;
        let url = format!("{}{}", peer_url.trim_end_matches('/'), rpc::JOIN);
        let response = self
            .http
            .post(url)
            .json(&JoinRequest { cluster_id })
            .send()
            .await
            .map_err(|err| {
                MembershipError::Unavailable(format!("cannot reach {peer_url}: {err}"))
            })?;
        if !response.status().is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(MembershipError::Conflict(format!(
                "{peer_url} refused to join: {text}"
            )));
        }
        response.json().await.map_err(|err| {
            MembershipError::Unavailable(format!("bad answer from {peer_url}: {err}"))
        })
    }

    /// Adds a node as a learner. The node is asked for its id at its peer
    /// URL, and adopts this cluster's id.
    pub async fn add_member(&self, request: AddMemberRequest) -> Result<Member, MembershipError> {
        self.ensure_leader()?;
        if request.name.trim().is_empty() {
            return Err(MembershipError::Invalid("name must not be empty".into()));
        }
        if !(request.peer_url.starts_with("http://") || request.peer_url.starts_with("https://")) {
            return Err(MembershipError::Invalid(format!(
                "peer_url {:?} must start with http:// or https://",
                request.peer_url
            )));
        }
        let _guard = self.membership_lock.lock().await;
        let (membership, _, _, _) = self.membership();
        let preconditions = self.expect_membership(&membership, request.expect_membership)?;
        let namesakes = named(&membership, &request.name);
        let replacing_one = request.replace && namesakes.len() == 1;
        if !(namesakes.is_empty() || replacing_one) {
            return Err(MembershipError::Conflict(format!(
                "a member named {:?} exists; remove it first, or add with replace=true when \
                 this node takes its place (its data was lost)",
                request.name
            )));
        }
        let peer = self.join_peer(&request.peer_url).await?;
        if peer.name != request.name {
            return Err(MembershipError::Conflict(format!(
                "the node at {} is named {:?}, not {:?}",
                request.peer_url, peer.name, request.name
            )));
        }
        if membership.get_node(&peer.id).is_some() {
            return Err(MembershipError::Conflict(format!(
                "node id {} is a member already",
                peer.id
            )));
        }
        let node = PeerNode {
            name: request.name.clone(),
            peer_url: request.peer_url.clone(),
            client_url: request.client_url.clone().unwrap_or(peer.client_url),
        };
        self.raft
            .change_membership_if(
                ChangeMembers::AddNodes(BTreeMap::from([(peer.id, node.clone())])),
                true,
                preconditions,
            )
            .await
            .map_err(write_error)?;
        tracing::info!(name = %node.name, id = peer.id, "added learner");
        Ok(Member {
            name: node.name,
            id: peer.id,
            peer_url: node.peer_url,
            client_url: node.client_url,
            role: MemberRole::Learner,
            is_leader: false,
            lag: None,
        })
    }

    /// The one member called `name`; with `id`, the one of that name with
    /// that id (a replacement and the member it replaces share a name).
    fn find(
        &self,
        membership: &StoredMembership,
        name: &str,
        id: Option<NodeId>,
    ) -> Result<(NodeId, bool), MembershipError> {
        let namesakes = named(membership, name);
        match (namesakes.as_slice(), id) {
            ([], _) => Err(MembershipError::NotFound(name.to_owned())),
            ([only], None) => Ok(*only),
            (_, Some(id)) => namesakes
                .iter()
                .find(|(member, _)| *member == id)
                .copied()
                .ok_or_else(|| MembershipError::NotFound(format!("{name} with id {id}"))),
            (many, None) => Err(MembershipError::Conflict(format!(
                "{} members are named {name} (ids {}); name one with id",
                many.len(),
                many.iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Makes a caught-up learner a voter.
    pub async fn promote_member(
        &self,
        name: &str,
        expect: Option<u64>,
    ) -> Result<MemberList, MembershipError> {
        self.ensure_leader()?;
        let _guard = self.membership_lock.lock().await;
        let (membership, lags, _, _) = self.membership();
        let preconditions = self.expect_membership(&membership, expect)?;
        // The learner of that name; any other member of the same name is
        // the one it replaces.
        let namesakes = named(&membership, name);
        let Some(&(id, _)) = namesakes.iter().find(|(_, is_voter)| !is_voter) else {
            return match namesakes.is_empty() {
                true => Err(MembershipError::NotFound(name.to_owned())),
                false => Err(MembershipError::Conflict(format!(
                    "{name} is a voter already"
                ))),
            };
        };
        let replaced: BTreeSet<NodeId> = namesakes
            .iter()
            .map(|(member, _)| *member)
            .filter(|member| *member != id)
            .collect();
        let lag = lags
            .and_then(|lags| lags.get(&id).copied())
            .unwrap_or(u64::MAX);
        if lag > CAUGHT_UP_LAG {
            return Err(MembershipError::Conflict(format!(
                "learner {name} is not caught up ({} entries behind; promote at {CAUGHT_UP_LAG} or fewer)",
                if lag == u64::MAX {
                    "unknown number of".to_string()
                } else {
                    lag.to_string()
                }
            )));
        }
        if replaced.is_empty() {
            self.raft
                .change_membership_if(
                    ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                    false,
                    preconditions,
                )
                .await
                .map_err(write_error)?;
            tracing::info!(%name, id, "promoted to voter");
        } else {
            // One joint change swaps the replaced voter for its successor.
            let mut voters: BTreeSet<NodeId> = membership
                .voter_ids()
                .filter(|voter| !replaced.contains(voter))
                .collect();
            voters.insert(id);
            self.raft
                .change_membership_if(
                    ChangeMembers::ReplaceAllVoters(voters),
                    false,
                    preconditions,
                )
                .await
                .map_err(write_error)?;
            let (membership, _, _, _) = self.membership();
            let leftovers: BTreeSet<NodeId> = replaced
                .iter()
                .copied()
                .filter(|old| membership.get_node(old).is_some())
                .collect();
            if !leftovers.is_empty() {
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(leftovers), false)
                    .await
                    .map_err(write_error)?;
            }
            tracing::info!(%name, id, ?replaced, "promoted to voter, replacing its namesake");
        }
        Ok(self.members())
    }

    /// Removes a member (voter or learner) from the cluster.
    pub async fn remove_member(
        &self,
        name: &str,
        id: Option<NodeId>,
        expect: Option<u64>,
    ) -> Result<MemberList, MembershipError> {
        self.ensure_leader()?;
        let _guard = self.membership_lock.lock().await;
        let (membership, _, _, _) = self.membership();
        let preconditions = self.expect_membership(&membership, expect)?;
        let (id, is_voter) = self.find(&membership, name, id)?;
        let change = if is_voter {
            if membership.voter_ids().count() == 1 {
                return Err(MembershipError::Conflict(format!(
                    "{name} is the only voter; a cluster cannot remove its last voter"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership_if(change, false, preconditions)
            .await
            .map_err(write_error)?;
        tracing::info!(%name, id, "removed member");
        Ok(self.members())
    }

    /// Hands leadership to a voter and waits (a few election timeouts at
    /// most) until it has taken over.
    pub async fn transfer_leader(&self, to: &str) -> Result<MemberList, MembershipError> {
        self.ensure_leader()?;
        let (membership, _, _, _) = self.membership();
        let namesakes = named(&membership, to);
        let Some(&(id, is_voter)) = namesakes
            .iter()
            .find(|(_, voter)| *voter)
            .or(namesakes.first())
        else {
            return Err(MembershipError::NotFound(to.to_owned()));
        };
        if !is_voter {
            return Err(MembershipError::Conflict(format!(
                "{to} is a learner; only a voter can lead"
            )));
        }
        if id == self.node_id() {
            return Ok(self.members());
        }
        self.raft
            .trigger()
            .transfer_leader(id)
            .await
            .map_err(|err| MembershipError::Unavailable(err.to_string()))?;
        let wait = self.election_timeout() * 5;
        self.raft
            .wait(Some(wait))
            .metrics(|m| m.current_leader == Some(id), "leader transfer")
            .await
            .map_err(|err| {
                MembershipError::Unavailable(format!("{to} did not take over: {err}"))
            })?;
        Ok(self.members())
    }

    /// On the leader: adds the nodes of `--initial-cluster` that are not
    /// members yet (fresh nodes only: a node that already belongs to a
    /// cluster is never pulled in), and promotes them once caught up. A
    /// listed name that comes back under a new id (its data was wiped)
    /// replaces the old member once the new one is caught up.
    pub(super) async fn reconcile_initial_members(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if !self.raft.is_leader() {
                continue;
            }
            if let Err(err) = self.reconcile_once().await {
                tracing::debug!(%err, "initial-cluster reconcile");
            }
        }
    }

    async fn reconcile_once(&self) -> Result<(), MembershipError> {
        let initial = self.identity.get().initial_cluster;
        let listed: BTreeSet<&str> = initial.iter().map(|(name, _)| name.as_str()).collect();
        let (membership, lags, _, _) = self.membership();
        // Promote caught-up learners that were listed.
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        for (id, node) in membership.nodes() {
            if voters.contains(id) || !listed.contains(node.name.as_str()) {
                continue;
            }
            let lag = lags.as_ref().and_then(|lags| lags.get(id).copied());
            if lag.is_none_or(|lag| lag > CAUGHT_UP_LAG) {
                continue;
            }
            let stale: Vec<NodeId> = membership
                .nodes()
                .filter(|(other, n)| *other != id && n.name == node.name)
                .map(|(other, _)| *other)
                .collect();
            let _guard = self.membership_lock.lock().await;
            let mut new_voters: BTreeSet<NodeId> = voters
                .iter()
                .filter(|v| !stale.contains(v))
                .copied()
                .collect();
            new_voters.insert(*id);
            self.raft
                .change_membership(ChangeMembers::ReplaceAllVoters(new_voters), false)
                .await
                .map_err(write_error)?;
            if !stale.is_empty() {
                // Stale learners are not covered by ReplaceAllVoters.
                let (membership, _, _, _) = self.membership();
                let leftovers: BTreeSet<NodeId> = stale
                    .into_iter()
                    .filter(|id| membership.get_node(id).is_some())
                    .collect();
                if !leftovers.is_empty() {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(leftovers), false)
                        .await
                        .map_err(write_error)?;
                }
            }
            tracing::info!(name = %node.name, id, "listed node promoted to voter");
            return Ok(());
        }
        // Add listed nodes that are fresh.
        for (name, peer_url) in &initial {
            if name == self.name() {
                continue;
            }
            let Ok(peer) = self.peer_identity(peer_url).await else {
                continue;
            };
            if peer.cluster_id.is_some() || membership.get_node(&peer.id).is_some() {
                continue;
            }
            let _guard = self.membership_lock.lock().await;
            let joined = self.join_peer(peer_url).await?;
            let node = PeerNode {
                name: name.clone(),
                peer_url: peer_url.clone(),
                client_url: joined.client_url,
            };
            self.raft
                .change_membership(
                    ChangeMembers::AddNodes(BTreeMap::from([(joined.id, node)])),
                    true,
                )
                .await
                .map_err(write_error)?;
            tracing::info!(%name, id = joined.id, "listed node added as learner");
        }
        Ok(())
    }
}
