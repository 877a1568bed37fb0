//! Cluster membership and node status.

use serde::{Deserialize, Serialize};

use crate::Revision;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Voter,
    Learner,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// The Raft id: generated on the node's first start, never reused.
    pub id: u64,
    pub peer_url: String,
    pub client_url: String,
    pub role: MemberRole,
    pub is_leader: bool,
    /// Log entries the member is behind the leader's last entry, as the
    /// leader sees it (absent when this node is not the leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub members: Vec<Member>,
    /// Identifies the current membership (the log index that committed it);
    /// pass it as `expect_membership` to make a change conditional.
    pub membership_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMemberRequest {
    pub name: String,
    /// Where the new node listens for Raft traffic; it is asked for its id.
    pub peer_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    /// Refuse the change unless the membership is still this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_membership: Option<u64>,
    /// The node takes the place of the member of the same name (whose data
    /// was lost, so it came back under a new id): it joins as a learner
    /// next to it, and promoting it removes the old member in the same
    /// membership change, so the cluster never runs a voter short.
    #[serde(default)]
    pub replace: bool,
}

/// Body of promote, remove and leader-transfer requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_membership: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderTransferRequest {
    /// The member to hand leadership to.
    pub to: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub id: u64,
    pub cluster_id: String,
    pub role: NodeRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    pub term: u64,
    pub revision: Revision,
    pub compacted_revision: Revision,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_index: Option<u64>,
    pub keys: u64,
    pub version: String,
}
