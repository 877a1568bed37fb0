//! `/v1/cluster/*`, `/v1/status`, `/readyz`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_types::cluster::{AddMemberRequest, LeaderTransferRequest, MembershipChange, Status};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::forward::Replay;
use super::kv::json_of;
use super::params::{Params, percent_decode};
use crate::raft::MembershipError;

pub async fn members(State(state): State<AppState>) -> Response {
    Json(state.node.members()).into_response()
}

/// Runs a membership change here if this node leads, else on the leader.
async fn on_leader<T: serde::Serialize>(
    state: &AppState,
    replay: Replay,
    change: impl Future<Output = Result<T, MembershipError>>,
    created: bool,
) -> Response {
    match change.await {
        Ok(value) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(value)).into_response()
        }
        Err(MembershipError::NotLeader { leader }) => {
            state.forwarder.forward(leader.as_ref(), replay).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json_of(body)
    }
}

fn member_name(name: &str) -> ApiResult<String> {
    percent_decode(name, false)
        .ok_or_else(|| ApiError::invalid("name", "member name must be UTF-8"))
}

pub async fn add_member(State(state): State<AppState>, replay: Replay) -> Response {
    match json_of::<AddMemberRequest>(&replay.body) {
        Ok(request) => on_leader(&state, replay, state.node.add_member(request), true).await,
        Err(err) => err.into_response(),
    }
}

pub async fn promote_member(
    State(state): State<AppState>,
    Path(name): Path<String>,
    replay: Replay,
) -> Response {
    let parsed = member_name(&name)
        .and_then(|name| Ok((name, optional_json::<MembershipChange>(&replay.body)?)));
    match parsed {
        Ok((name, change)) => {
            let change = state.node.promote_member(&name, change.expect_membership);
            on_leader(&state, replay, change, false).await
        }
        Err(err) => err.into_response(),
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    Path(name): Path<String>,
    replay: Replay,
) -> Response {
    let parsed = (|| {
        let params = Params::parse(replay.uri.query())?;
        Ok::<_, ApiError>((
            member_name(&name)?,
            params.number("id")?,
            params.number("expect_membership")?,
        ))
    })();
    match parsed {
        Ok((name, id, expect)) => {
            let change = state.node.remove_member(&name, id, expect);
            on_leader(&state, replay, change, false).await
        }
        Err(err) => err.into_response(),
    }
}

pub async fn transfer_leader(State(state): State<AppState>, replay: Replay) -> Response {
    match json_of::<LeaderTransferRequest>(&replay.body) {
        Ok(request) => {
            let change = state.node.transfer_leader(&request.to);
            on_leader(&state, replay, change, false).await
        }
        Err(err) => err.into_response(),
    }
}

pub async fn status(State(state): State<AppState>) -> Json<Status> {
    let node = state.node.status();
    let (revision, compacted_revision, keys) = state.store.read(|ks| {
        (
            ks.revision(),
            ks.compacted_revision(),
            ks.key_count() as u64,
        )
    });
    Json(Status {
        name: node.name,
        id: node.id,
        cluster_id: node.cluster_id,
        role: node.role,
        leader: node.leader.as_ref().map(|l| l.name.clone()),
        leader_id: node.leader.as_ref().map(|l| l.id),
        term: node.term,
        revision,
        compacted_revision,
        commit_index: node.commit_index,
        applied_index: node.applied_index,
        last_log_index: node.last_log_index,
        snapshot_index: node.snapshot_index,
        keys,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.node.readiness().await {
        Ok(()) => "ok".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}
