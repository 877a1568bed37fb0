//! `/v1/leases`: grant, keep alive, show, list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use muster_store::{Command, CommandResult};
use muster_types::LeaseId;
use muster_types::error::ErrorCode;
use muster_types::lease::{LeaseGrantRequest, LeaseInfo, LeaseKeepAliveResponse, LeaseList};
use muster_types::limits::{MAX_LEASE_TTL_SECS, MIN_LEASE_TTL_SECS};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::forward::Replay;
use super::kv::{body_of, consistent, json_of, propose_or_forward, respond};
use super::params::Params;

fn lease_id(text: &str) -> ApiResult<LeaseId> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            "id",
            format!("lease id must be a positive integer, not {text:?}"),
        )
    })
}

fn not_found(id: LeaseId) -> ApiError {
    ApiError(
        muster_types::error::ErrorBody::new(
            ErrorCode::LeaseNotFound,
            format!("lease {id} not found"),
        )
        .with_field("id"),
    )
}

pub async fn grant(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let body = body_of(body)?;
        let request: LeaseGrantRequest = json_of(&body)?;
        if !(MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS).contains(&request.ttl) {
            return Err(ApiError::invalid(
                "ttl",
                format!(
                    "ttl must be between {MIN_LEASE_TTL_SECS} and {MAX_LEASE_TTL_SECS} seconds"
                ),
            ));
        }
        if request.id == Some(0) {
            return Err(ApiError::invalid(
                "id",
                "lease id 0 means no lease; leave id out to get one",
            ));
        }
        // The proposer picks the id, so every replica stores the same one.
        let id = request
            .id
            .unwrap_or_else(|| (rand::random::<u64>() >> 1).max(1));
        let command = Command::LeaseGrant {
            id,
            ttl: request.ttl,
        };
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

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result: ApiResult<Result<CommandResult, Response>> = async {
        let id = lease_id(&id)?;
        let replay = Replay {
            method,
            uri,
            headers,
            body: Bytes::new(),
        };
        Ok(propose_or_forward(&state, Command::LeaseRevoke { id }, replay).await)
    }
    .await;
    respond(result)
}

/// Keep-alives are handled by the leader, which alone decides expiry.
pub async fn keep_alive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match lease_id(&id) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    if !state.node.is_leader() {
        let replay = Replay {
            method,
            uri,
            headers,
            body: Bytes::new(),
        };
        return state
            .forwarder
            .forward(state.node.leader().as_ref(), replay)
            .await;
    }
    match state.store.leases.keep_alive(id) {
        Some(ttl) => Json(LeaseKeepAliveResponse { id, ttl }).into_response(),
        None => not_found(id).into_response(),
    }
}

fn info(state: &AppState, id: LeaseId) -> Option<LeaseInfo> {
    let lease = state.store.read(|ks| ks.lease(id))?;
    Some(LeaseInfo {
        id,
        granted_ttl: lease.ttl,
        ttl: state.store.leases.remaining(id).unwrap_or(lease.ttl),
        keys: lease.keys,
    })
}

/// On a follower the remaining TTL is only a guess, so it asks the leader.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result: ApiResult<Response> = async {
        let id = lease_id(&id)?;
        let params = Params::parse(uri.query())?;
        if !state.node.is_leader() && params.text("consistency") != Some("serializable") {
            let replay = Replay {
                method,
                uri,
                headers,
                body: Bytes::new(),
            };
            return Ok(state
                .forwarder
                .forward(state.node.leader().as_ref(), replay)
                .await);
        }
        consistent(&state, &params).await?;
        info(&state, id)
            .map(|info| Json(info).into_response())
            .ok_or_else(|| not_found(id))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn list(State(state): State<AppState>, uri: Uri) -> Response {
    let result: ApiResult<Response> = async {
        let params = Params::parse(uri.query())?;
        consistent(&state, &params).await?;
        let ids: Vec<LeaseId> = state
            .store
            .read(|ks| ks.leases().iter().map(|l| l.id).collect());
        let leases = ids.into_iter().filter_map(|id| info(&state, id)).collect();
        Ok(Json(LeaseList { leases }).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
