//! `/v1/kv`, `/v1/txn`, `/v1/compact`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, Uri, header};
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

pub fn body_of(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                muster_types::error::ErrorBody::new(
                    ErrorCode::TooLarge,
                    format!(
                        "request body is larger than {} bytes",
                        limits::MAX_REQUEST_BYTES
                    ),
                )
                .with_field("body"),
            )
        } else {
            ApiError::invalid("body", rejection.body_text())
        }
    })
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

pub async fn put(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let key = key_of(&uri)?;
        limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
        check_writable(&key, false, "key")?;
        let body = body_of(body)?;
        limits::check_value(&body).map_err(|message| {
            ApiError(
                muster_types::error::ErrorBody::new(ErrorCode::TooLarge, message)
                    .with_field("value"),
            )
        })?;
        let params = Params::parse(uri.query())?;
        let command = Command::Put(PutRequest {
            key,
            value: body.to_vec().into(),
            lease: params.number("lease")?,
            prev_revision: params.number("prev_revision")?,
            prev_kv: params.flag("prev_kv")?,
        });
        let replay = Replay {
            method,
            uri,
            headers,
            body,
        };
        Ok(propose_or_forward(&state, command, replay).await)
    }
    .await;
    respond(result)
}

/// Turns a command's outcome into the answer.
pub fn respond(result: ApiResult<Result<CommandResult, Response>>) -> Response {
    match result {
        Err(err) => err.into_response(),
        Ok(Err(forwarded)) => forwarded,
        Ok(Ok(outcome)) => match outcome {
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

pub async fn delete_root(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    remove(state, String::new(), method, uri, headers).await
}

pub async fn delete(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match key_of(&uri) {
        Ok(key) => remove(state, key, method, uri, headers).await,
        Err(err) => err.into_response(),
    }
}

async fn remove(
    state: AppState,
    key: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let params = Params::parse(uri.query())?;
        let prefix = params.flag("prefix")?;
        if !prefix {
            limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
        }
        check_writable(&key, prefix, "key")?;
        let command = Command::Delete(DeleteRequest {
            key,
            prefix,
            prev_kv: params.flag("prev_kv")?,
        });
        let replay = Replay {
            method,
            uri,
            headers,
            body: Bytes::new(),
        };
        Ok(propose_or_forward(&state, command, replay).await)
    }
    .await;
    respond(result)
}

pub async fn txn(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let body = body_of(body)?;
        let request: TxnRequest = json_of(&body)?;
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
        let replay = Replay { method, uri, headers, body };
        Ok(propose_or_forward(&state, Command::Txn(request), replay).await)
    }
    .await;
    respond(result)
}

pub async fn compact(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let body = body_of(body)?;
        let request: CompactRequest = json_of(&body)?;
        let replay = Replay {
            method,
            uri,
            headers,
            body,
        };
        Ok(propose_or_forward(
            &state,
            Command::Compact {
                revision: request.revision,
            },
            replay,
        )
        .await)
    }
    .await;
    respond(result)
}
