//! The versioned keyspace: keys, reads, writes, transactions.

use serde::{Deserialize, Serialize};

use crate::{Blob, LeaseId, Revision};

/// A key as stored at some revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Blob,
    /// Revision of the put that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last put to the key.
    pub mod_revision: Revision,
    /// Puts since creation, starting at 1; a delete resets it.
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
}

/// Write one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: String,
    pub value: Blob,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    /// Compare-and-swap: apply only if the key's `mod_revision` equals this
    /// (`0`: only if the key is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_revision: Option<Revision>,
    /// Return the previous key-value.
    #[serde(default)]
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub revision: Revision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KeyValue>,
}

/// Read one key or a range of keys sharing a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: String,
    /// Treat `key` as a prefix.
    #[serde(default)]
    pub prefix: bool,
    /// Most keys to return (prefix reads); 0 means the default limit.
    #[serde(default)]
    pub limit: usize,
    /// Continue a prefix listing after this key (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Read at this past revision instead of the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// Return only keys, with empty values.
    #[serde(default)]
    pub keys_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The revision the read was served at.
    pub revision: Revision,
    pub kvs: Vec<KeyValue>,
    /// More keys matched than were returned; continue with `after = next`.
    #[serde(default)]
    pub more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Delete one key or every key sharing a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub key: String,
    #[serde(default)]
    pub prefix: bool,
    #[serde(default)]
    pub prev_kv: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub revision: Revision,
    pub deleted: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_kvs: Vec<KeyValue>,
}

/// What a transaction compare looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    Value(Blob),
    Version(u64),
    CreateRevision(Revision),
    ModRevision(Revision),
    /// The key's lease id; 0 means "no lease".
    Lease(LeaseId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    #[serde(alias = "=", alias = "==")]
    Equal,
    #[serde(alias = "!=")]
    NotEqual,
    #[serde(alias = "<")]
    Less,
    #[serde(alias = ">")]
    Greater,
}

/// `key <op> target`. An absent key has value empty, version 0, revisions 0
/// and lease 0, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    Put(PutRequest),
    Get(RangeRequest),
    Delete(DeleteRequest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOpResponse {
    Put(PutResponse),
    Get(RangeResponse),
    Delete(DeleteResponse),
}

/// If every compare holds, run `success`, else `failure`; atomically, at one
/// revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    #[serde(default)]
    pub compare: Vec<Compare>,
    #[serde(default, alias = "then")]
    pub success: Vec<TxnOp>,
    #[serde(default, alias = "else")]
    pub failure: Vec<TxnOp>,
}

impl TxnRequest {
    pub fn op_count(&self) -> usize {
        self.compare.len() + self.success.len() + self.failure.len()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    pub succeeded: bool,
    pub revision: Revision,
    pub responses: Vec<TxnOpResponse>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactRequest {
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactResponse {
    /// The revision now compacted; reads and watches below it are refused.
    pub compacted_revision: Revision,
    pub revision: Revision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_json_shape() {
        let json = r#"{
            "compare": [{"key": "lock", "op": "=", "target": {"version": 0}}],
            "then": [{"put": {"key": "lock", "value": "bWU="}}],
            "else": [{"get": {"key": "lock"}}]
        }"#;
        let txn: TxnRequest = serde_json::from_str(json).unwrap();
        assert_eq!(txn.compare[0].op, CompareOp::Equal);
        assert_eq!(txn.compare[0].target, CompareTarget::Version(0));
        match &txn.success[0] {
            TxnOp::Put(put) => assert_eq!(put.value, Blob::from("me")),
            other => panic!("{other:?}"),
        }
        assert_eq!(txn.op_count(), 3);
    }
}
