//! What the replicated log carries, and what applying it returns.

use muster_types::kv::{
    CompactResponse, DeleteRequest, DeleteResponse, PutRequest, PutResponse, TxnRequest,
    TxnResponse,
};
use muster_types::lease::{LeaseGrantResponse, LeaseRevokeResponse};
use muster_types::{LeaseId, Revision};
use serde::{Deserialize, Serialize};

/// A mutation of the keyspace, proposed through Raft and applied in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    Delete(DeleteRequest),
    Txn(TxnRequest),
    /// Drop history older than `revision`.
    Compact {
        revision: Revision,
    },
    /// Create a lease. The id is chosen by the proposer (the leader), so
    /// every replica stores the same one.
    LeaseGrant {
        id: LeaseId,
        ttl: i64,
    },
    /// Revoke (or expire: the leader decided) a lease and delete its keys.
    LeaseRevoke {
        id: LeaseId,
    },
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Put(put) => write!(f, "put {}", put.key),
            Command::Delete(del) if del.prefix => write!(f, "delete prefix {}", del.key),
            Command::Delete(del) => write!(f, "delete {}", del.key),
            Command::Txn(txn) => write!(f, "txn of {} ops", txn.op_count()),
            Command::Compact { revision } => write!(f, "compact {revision}"),
            Command::LeaseGrant { id, ttl } => write!(f, "lease grant {id} ttl {ttl}s"),
            Command::LeaseRevoke { id } => write!(f, "lease revoke {id}"),
        }
    }
}

/// Why a command was refused when applied. Refusals are deterministic and
/// change nothing, so every replica refuses the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("compare failed on {key}: its mod_revision is {current_revision}")]
    CompareFailed {
        key: String,
        current_revision: Revision,
    },
    #[error("lease {id} not found")]
    LeaseNotFound { id: LeaseId },
    #[error("lease {id} already exists")]
    LeaseExists { id: LeaseId },
    #[error("revision {requested} is compacted; the oldest available is {compacted_revision}")]
    Compacted {
        requested: Revision,
        compacted_revision: Revision,
    },
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// The outcome of applying one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Put(PutResponse),
    Delete(DeleteResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Rejected(Rejection),
    /// Entries that carry no command (Raft's blank and membership entries).
    Empty,
}
