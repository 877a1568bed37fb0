//! Helpers shared by the keyspace tests.

use muster_store::{Command, CommandResult, Keyspace, Rejection};
use muster_types::kv::{
    DeleteRequest, DeleteResponse, KeyValue, PutRequest, PutResponse, RangeRequest, TxnOp,
    TxnResponse,
};
use muster_types::watch::Event;
use muster_types::{Blob, LeaseId, Revision};

pub fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: Blob::from(value),
        lease: None,
        prev_revision: None,
        prev_kv: false,
    }
}

pub fn delete_req(key: &str, prefix: bool) -> DeleteRequest {
    DeleteRequest {
        key: key.into(),
        prefix,
        prev_kv: true,
    }
}

pub fn get_req(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..RangeRequest::default()
    }
}

pub fn prefix_req(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: prefix.into(),
        prefix: true,
        ..RangeRequest::default()
    }
}

pub fn op_put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put(put_req(key, value))
}

pub fn op_get(key: &str) -> TxnOp {
    TxnOp::Get(get_req(key))
}

pub fn put(ks: &mut Keyspace, key: &str, value: &str) -> PutResponse {
    put_with(ks, put_req(key, value))
}

pub fn put_with(ks: &mut Keyspace, req: PutRequest) -> PutResponse {
    match ks.apply(&Command::Put(req)) {
        (CommandResult::Put(resp), events) => {
            assert_eq!(events.len(), 1);
            resp
        }
        other => panic!("put failed: {other:?}"),
    }
}

pub fn put_on_lease(ks: &mut Keyspace, key: &str, value: &str, lease: LeaseId) -> PutResponse {
    put_with(
        ks,
        PutRequest {
            lease: Some(lease),
            ..put_req(key, value)
        },
    )
}

pub fn delete(ks: &mut Keyspace, key: &str, prefix: bool) -> (DeleteResponse, Vec<Event>) {
    match ks.apply(&Command::Delete(delete_req(key, prefix))) {
        (CommandResult::Delete(resp), events) => (resp, events),
        other => panic!("delete failed: {other:?}"),
    }
}

pub fn txn(ks: &mut Keyspace, cmd: Command) -> (TxnResponse, Vec<Event>) {
    match ks.apply(&cmd) {
        (CommandResult::Txn(resp), events) => (resp, events),
        other => panic!("txn failed: {other:?}"),
    }
}

pub fn grant(ks: &mut Keyspace, id: LeaseId) {
    let (result, events) = ks.apply(&Command::LeaseGrant { id, ttl: 10 });
    assert!(matches!(result, CommandResult::LeaseGrant(_)), "{result:?}");
    assert!(events.is_empty());
}

/// Applies a command that must be refused, checking it changed nothing.
pub fn rejection(ks: &mut Keyspace, cmd: Command) -> Rejection {
    let before = ks.clone();
    let (result, events) = ks.apply(&cmd);
    assert!(events.is_empty(), "a refused command produced {events:?}");
    assert_eq!(*ks, before, "a refused command changed the keyspace");
    match result {
        CommandResult::Rejected(rejection) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub fn get(ks: &Keyspace, key: &str) -> Option<KeyValue> {
    get_at(ks, key, None)
}

pub fn get_at(ks: &Keyspace, key: &str, revision: Option<Revision>) -> Option<KeyValue> {
    let resp = ks
        .range(&RangeRequest {
            revision,
            ..get_req(key)
        })
        .unwrap();
    assert!(resp.kvs.len() <= 1);
    assert!(!resp.more);
    resp.kvs.into_iter().next()
}

pub fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

pub fn kv(key: &str, value: &str, create: Revision, modified: Revision, version: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Blob::from(value),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: None,
    }
}

/// What a delete event carries as its key-value.
pub fn tombstone(key: &str, revision: Revision) -> KeyValue {
    kv(key, "", 0, revision, 0)
}

pub fn invalid_field(rejection: &Rejection) -> &str {
    match rejection {
        Rejection::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}
