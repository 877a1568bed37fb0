//! Leases: a TTL granted by the leader and kept alive by its holder; keys
//! attached to a lease are deleted when it expires or is revoked.

use serde::{Deserialize, Serialize};

use crate::{LeaseId, Revision};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    /// Seconds the lease lives without a keep-alive.
    pub ttl: i64,
    /// Ask for a specific id; by default the leader picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<LeaseId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    pub id: LeaseId,
    pub ttl: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    pub id: LeaseId,
    /// The TTL the lease was renewed to.
    pub ttl: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub id: LeaseId,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Seconds left before the leader expires it.
    pub ttl: i64,
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    pub revision: Revision,
    /// Keys deleted with the lease.
    pub deleted: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseList {
    pub leases: Vec<LeaseInfo>,
}
