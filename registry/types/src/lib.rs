//! Types shared by the Muster server, its client and its CLI.
//!
//! They describe the versioned keyspace (keys, revisions, transactions),
//! leases, watch events and cluster membership. Nothing here knows HTTP,
//! Raft or Kubernetes: the server maps them onto its API, the client onto
//! requests.

mod blob;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod error;
pub mod kv;
pub mod lease;
pub mod limits;
pub mod watch;

pub use blob::Blob;

/// Every committed mutation of the keyspace takes the next revision.
pub type Revision = u64;

/// Identifies a lease for its whole life; never reused.
pub type LeaseId = u64;

/// Response headers every API answer carries.
pub mod headers {
    /// The keyspace revision the node had when it answered.
    pub const REVISION: &str = "x-muster-revision";
    /// The name of the leader as this node knows it (absent when unknown).
    pub const LEADER: &str = "x-muster-leader";
    /// The client URL of the leader, so a client can retry a write there.
    pub const LEADER_URL: &str = "x-muster-leader-url";
    /// The name of the node that answered.
    pub const NODE: &str = "x-muster-node";
}
