//! `/v1/kv`, `/v1/txn`, `/v1/compact`.

use axum::Json;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use muster_store::{Command, CommandResult};
use muster_types::error::ErrorCode;
use muster_types::kv::{
    CompactRequest, DeleteRequest, PutRequest, RangeRequest, TxnOp, TxnRequest,
};
use muster_types::limits::{self, MAX_TXN_OPS};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::forward::Replay;
use super::params::{Params, percent_decode};
use crate::raft::ProposeError;

const KV_PREFIX: &str = "/v1/kv/";

/// The key named by the path, percent-decoded; it must be UTF-8.
fn key_of(uri: &Uri) -> ApiResult<String> {
    let raw = uri.path().strip_prefix(KV_PREFIX).unwrap_or("");
    percent_decode(raw, false)
        .ok_or_else(|| ApiError::invalid("key", "key must be valid UTF-8 after percent-decoding"))
}

/// The KV API does not write the catalog's and config center's keys.
fn check_writable(key: &str, prefix: bool, field: &str) -> ApiResult<()> {
    if limits::touches_reserved(key, prefix) {
        return Err(ApiError::invalid(
            field,
            format!(
                "keys under {:?} belong to the service catalog and config center; use their APIs",
                limits::RESERVED_PREFIX
            ),
        ));
    }
    Ok(())
}

fn check_txn_writable(txn: &TxnRequest) -> ApiResult<()> {
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            TxnOp::Put(put) => check_writable(&put.key, false, "txn")?,
            TxnOp::Delete(delete) => check_writable(&delete.key, delete.prefix, "txn")?,
            TxnOp::Get(_) => {}
        }
    }
    Ok(())
}

/// Parses a JSON body; the error says where it is malformed.
pub fn json_of<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|err| {
        let field = match err.classify() {
            serde_json::error::Category::Data => "body",
            _ => "json",
        };
        ApiError::invalid(field, format!("malformed JSON: {err}"))
    })
}

/// Proposes a write; on a follower, replays the request on the leader.
pub async fn propose_or_forward(
    state: &AppState,
    command: Command,
    replay: Replay,
) -> Result<CommandResult, Response> {
    match state.node.propose(command).await {
        Ok(result) => Ok(result),
        Err(ProposeError::NotLeader { leader }) => {
            Err(state.forwarder.forward(leader.as_ref(), replay).await)
        }
        Err(err) => Err(ApiError::from(err).into_response()),
    }
}

/// Serves a read: linearizable unless `consistency=serializable`.
pub async fn consistent(state: &AppState, params: &Params) -> ApiResult<()> {
    match params.text("consistency") {
        None | Some("linearizable") => state.node.linearize().await.map_err(ApiError::from),
        Some("serializable") => Ok(()),
        Some(other) => Err(ApiError::invalid(
            "consistency",
            format!("consistency must be linearizable or serializable, not {other:?}"),
        )),
    }
}

fn range_request(key: String, params: &Params) -> ApiResult<RangeRequest> {
    let prefix = params.flag("prefix")?;
    if !prefix {
        limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
    }
    let limit = params.number::<usize>("limit")?.unwrap_or(0);
    if limit > limits::MAX_RANGE_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("limit is at most {}", limits::MAX_RANGE_LIMIT),
        ));
    }
    Ok(RangeRequest {
        key,
        prefix,
        limit,
        after: params.text("after").map(str::to_owned),
        revision: params.number("revision")?,
        keys_only: params.flag("keys_only")?,
    })
}

pub async fn get_root(State(state): State<AppState>, uri: Uri) -> Response {
    read(state, String::new(), uri).await
}

pub async fn get(State(state): State<AppState>, uri: Uri) -> Response {
    match key_of(&uri) {
        Ok(key) => read(state, key, uri).await,
        Err(err) => err.into_response(),
    }
}

async fn read(state: AppState, key: String, uri: Uri) -> Response {
    let result: ApiResult<Response> = async {
        let params = Params::parse(uri.query())?;
        let request = range_request(key, &params)?;
        if request.key.is_empty() && !request.prefix {
            return Err(ApiError::invalid(
                "key",
                "key must not be empty (use ?prefix to list)",
            ));
        }
        consistent(&state, &params).await?;
        let raw = params.flag("raw")?;
        let response = state.store.read(|ks| ks.range(&request))?;
        if request.prefix {
            return Ok(Json(response).into_response());
        }
        let Some(kv) = response.kvs.into_iter().next() else {
            return Err(ApiError::new(
                ErrorCode::KeyNotFound,
                format!("key not found: {}", request.key),
            ));
        };
        if raw {
            Ok((
                [(header::CONTENT_TYPE, "application/octet-stream")],
                kv.value.into_vec(),
            )
                .into_response())
        } else {
            Ok(Json(kv).into_response())
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn put(State(state): State<AppState>, replay: Replay) -> Response {
    let command = (|| {
        let key = key_of(&replay.uri)?;
        limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
        check_writable(&key, false, "key")?;
        limits::check_value(&replay.body).map_err(|message| {
            ApiError(
                muster_types::error::ErrorBody::new(ErrorCode::TooLarge, message)
                    .with_field("value"),
            )
        })?;
        let params = Params::parse(replay.uri.query())?;
        Ok(Command::Put(PutRequest {
            key,
            value: replay.body.to_vec().into(),
            lease: params.number("lease")?,
            prev_revision: params.number("prev_revision")?,
            prev_kv: params.flag("prev_kv")?,
        }))
    })();
    submit(&state, command, replay).await
}

/// Proposes the command made of a request (or answers why it could not be
/// made), and answers with its outcome.
pub async fn submit(state: &AppState, command: ApiResult<Command>, replay: Replay) -> Response {
    match command {
        Ok(command) => respond(propose_or_forward(state, command, replay).await),
        Err(err) => err.into_response(),
    }
}

/// Turns a command's outcome (or the leader's answer) into the answer.
fn respond(result: Result<CommandResult, Response>) -> Response {
    match result {
        Err(forwarded) => forwarded,
        Ok(outcome) => match outcome {
            CommandResult::Put(response) => Json(response).into_response(),
            CommandResult::Delete(response) => Json(response).into_response(),
            CommandResult::Txn(response) => Json(response).into_response(),
            CommandResult::Compact(response) => Json(response).into_response(),
            CommandResult::LeaseGrant(response) => Json(response).into_response(),
            CommandResult::LeaseRevoke(response) => Json(response).into_response(),
            CommandResult::Rejected(rejection) => ApiError::from(rejection).into_response(),
            CommandResult::Empty => {
                ApiError::new(ErrorCode::Internal, "the command produced no result").into_response()
            }
        },
    }
}

pub async fn delete_root(State(state): State<AppState>, replay: Replay) -> Response {
    let command = delete_command(String::new(), &replay.uri);
    submit(&state, command, replay).await
}

pub async fn delete(State(state): State<AppState>, replay: Replay) -> Response {
    let command = key_of(&replay.uri).and_then(|key| delete_command(key, &replay.uri));
    submit(&state, command, replay).await
}

fn delete_command(key: String, uri: &Uri) -> ApiResult<Command> {
    let params = Params::parse(uri.query())?;
    let prefix = params.flag("prefix")?;
    if !prefix {
        limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
    }
    check_writable(&key, prefix, "key")?;
    Ok(Command::Delete(DeleteRequest {
        key,
        prefix,
        prev_kv: params.flag("prev_kv")?,
    }))
}

pub async fn txn(State(state): State<AppState>, replay: Replay) -> Response {
    let command = (|| {
        let request: TxnRequest = json_of(&replay.body)?;
        check_txn_writable(&request)?;
        if request.op_count() > MAX_TXN_OPS {
            return Err(ApiError::invalid(
                "txn",
                format!(
                    "a transaction has at most {MAX_TXN_OPS} compares and operations; this one has {}",
                    request.op_count()
                ),
            ));
        }
        Ok(Command::Txn(request))
    })();
    submit(&state, command, replay).await
}

pub async fn compact(State(state): State<AppState>, replay: Replay) -> Response {
    let command = json_of::<CompactRequest>(&replay.body).map(|request| Command::Compact {
        revision: request.revision,
    });
    submit(&state, command, replay).await
}
