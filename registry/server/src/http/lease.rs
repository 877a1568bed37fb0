//! `/v1/leases`: grant, keep alive, show, list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use muster_store::Command;
use muster_types::LeaseId;
use muster_types::error::ErrorCode;
use muster_types::lease::{LeaseGrantRequest, LeaseInfo, LeaseKeepAliveResponse, LeaseList};
use muster_types::limits::{MAX_LEASE_TTL_SECS, MIN_LEASE_TTL_SECS};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::forward::Replay;
use super::kv::{consistent, json_of, submit};
use super::params::Params;
use crate::typed::on_leader;

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

pub async fn grant(State(state): State<AppState>, replay: Replay) -> Response {
    let command = (|| {
        let request: LeaseGrantRequest = json_of(&replay.body)?;
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
        Ok(Command::LeaseGrant {
            id,
            ttl: request.ttl,
        })
    })();
    submit(&state, command, replay).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    replay: Replay,
) -> Response {
    let command = lease_id(&id).map(|id| Command::LeaseRevoke { id });
    submit(&state, command, replay).await
}

/// Keep-alives are handled by the leader, which alone decides expiry.
pub async fn keep_alive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    replay: Replay,
) -> Response {
    let id = match lease_id(&id) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        match state.store.leases.keep_alive(id) {
            Some(ttl) => Json(LeaseKeepAliveResponse { id, ttl }).into_response(),
            None => not_found(id).into_response(),
        }
    })
    .await
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

/// On a follower the remaining TTL is only a guess, so it asks the leader
/// (unless a serializable read was asked for).
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    replay: Replay,
) -> Response {
    let parsed = lease_id(&id).and_then(|id| Ok((id, Params::parse(replay.uri.query())?)));
    let (id, params) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let read = || async {
        let result: ApiResult<Response> = async {
            consistent(&state, &params).await?;
            info(&state, id)
                .map(|info| Json(info).into_response())
                .ok_or_else(|| not_found(id))
        }
        .await;
        result.unwrap_or_else(IntoResponse::into_response)
    };
    if params.text("consistency") == Some("serializable") {
        read().await
    } else {
        on_leader(&state, replay, read).await
    }
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
