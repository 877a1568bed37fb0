//! What the typed layers (service catalog, config center) share: they run
//! their read-modify-write on the leader, and write through the log with
//! compare-and-swap transactions on the keys they read.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use muster_catalog::{keys, names};
use muster_store::{Command, CommandResult};
use muster_types::catalog::DEFAULT_NAMESPACE;
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::{
    Compare, CompareOp, CompareTarget, KeyValue, RangeRequest, TxnOp, TxnRequest,
};
use serde::de::DeserializeOwned;

use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::raft::ProposeError;

/// How often a compare-and-swap is retried when another writer got there
/// first.
pub const CAS_ATTEMPTS: usize = 8;

/// Runs `work` here if this node leads, else replays the request on the
/// leader, so each read-modify-write sees the latest state.
pub async fn on_leader<Fut>(
    state: &AppState,
    replay: Replay,
    work: impl FnOnce() -> Fut,
) -> Response
where
    Fut: Future<Output = Response>,
{
    if !state.node.is_leader() {
        return state
            .forwarder
            .forward(state.node.leader().as_ref(), replay)
            .await;
    }
    work().await
}

/// Wall-clock milliseconds since the Unix epoch (the leader's clock; stored
/// values carry it so every replica reports the same time).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Proposes a command; a refusal becomes the matching API error.
pub async fn propose(state: &AppState, command: Command) -> ApiResult<CommandResult> {
    match state.node.propose(command).await {
        Ok(CommandResult::Rejected(rejection)) => Err(rejection.into()),
        Ok(result) => Ok(result),
        Err(ProposeError::NotLeader { leader }) => Err(ApiError::not_leader(leader.as_ref())),
        Err(err) => Err(err.into()),
    }
}

/// Reads one key from this node's state.
pub fn read_key(state: &AppState, key: &str) -> Option<KeyValue> {
    state
        .store
        .read(|ks| {
            ks.range(&RangeRequest {
                key: key.to_owned(),
                ..Default::default()
            })
        })
        .ok()
        .and_then(|response| response.kvs.into_iter().next())
}

/// Decodes a stored JSON value; a value that does not decode is an internal
/// error (only the typed layer writes these keys).
pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> ApiResult<T> {
    serde_json::from_slice(kv.value.as_bytes()).map_err(|err| {
        ApiError::new(
            ErrorCode::Internal,
            format!("stored value of {} does not decode: {err}", kv.key),
        )
    })
}

/// Reads and decodes one key.
pub fn read_json<T: DeserializeOwned>(
    state: &AppState,
    key: &str,
) -> ApiResult<Option<(T, KeyValue)>> {
    match read_key(state, key) {
        Some(kv) => Ok(Some((decode(&kv)?, kv))),
        None => Ok(None),
    }
}

/// Every key under a prefix at the current revision, in key order, with
/// the revision read at.
pub fn read_prefix(state: &AppState, prefix: &str) -> ApiResult<(Vec<KeyValue>, u64)> {
    let mut kvs = Vec::new();
    let mut after = None;
    let mut at_revision = None;
    loop {
        let page = state.store.read(|ks| {
            ks.range(&RangeRequest {
                key: prefix.to_owned(),
                prefix: true,
                limit: muster_types::limits::MAX_RANGE_LIMIT,
                after: after.clone(),
                revision: at_revision,
                keys_only: false,
            })
        })?;
        at_revision = Some(page.revision);
        kvs.extend(page.kvs);
        if !page.more {
            return Ok((kvs, page.revision));
        }
        after = page.next;
    }
}

/// A compare that holds while `key` is as it was read: unchanged since
/// `read` (or still absent when `read` is None).
pub fn unchanged(key: &str, read: Option<&KeyValue>) -> Compare {
    Compare {
        key: key.to_owned(),
        op: CompareOp::Equal,
        target: CompareTarget::ModRevision(read.map_or(0, |kv| kv.mod_revision)),
    }
}

/// Runs a compare-and-swap transaction; Ok(None) when a compare failed
/// (someone else wrote first: read again and retry).
pub async fn cas(
    state: &AppState,
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
) -> ApiResult<Option<muster_types::kv::TxnResponse>> {
    let txn = TxnRequest {
        compare,
        success,
        failure: Vec::new(),
    };
    match propose(state, Command::Txn(txn)).await? {
        CommandResult::Txn(response) if response.succeeded => Ok(Some(response)),
        CommandResult::Txn(_) => Ok(None),
        other => Err(ApiError::new(
            ErrorCode::Internal,
            format!("a transaction returned {other:?}"),
        )),
    }
}

/// The error when every compare-and-swap attempt lost a race.
pub fn contended(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("{what} kept changing under concurrent writers; retry"),
    )
}

/// Registrations, service settings and config publishes take this shared; deleting a
/// namespace takes it exclusively. A transaction cannot compare "no key
/// under this prefix", so without it a registration could slip in between
/// the emptiness check and the delete. Writes all run on the leader, so a
/// process-wide lock covers them (a leader change fails in-flight proposals).
pub static NAMESPACE_CHANGES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The namespace's key-value; `Ok(None)` for `default`, which always
/// exists without one; 404 when the namespace does not exist.
pub fn require_namespace(state: &AppState, ns: &str) -> ApiResult<Option<KeyValue>> {
    names::check_name("namespace", ns)
        .map_err(|message| ApiError::invalid("namespace", message))?;
    if ns == DEFAULT_NAMESPACE {
        return Ok(None);
    }
    match read_key(state, &keys::namespace(ns)) {
        Some(kv) => Ok(Some(kv)),
        None => Err(ApiError(
            ErrorBody::new(
                ErrorCode::KeyNotFound,
                format!("namespace {ns:?} does not exist; create it with POST /v1/namespaces"),
            )
            .with_field("namespace"),
        )),
    }
}
