//! The peer port: receives the Raft RPCs that `network.rs` sends, plus the
//! small join handshake and the read-index query followers use.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::ReadPolicy;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::types::{Raft, SnapshotMeta, TypeConfig, Vote};
use crate::identity::SharedIdentity;

pub const CLUSTER_HEADER: &str = "x-muster-cluster";
pub const TARGET_HEADER: &str = "x-muster-target";
pub const CONTENT_TYPE: &str = "application/msgpack";

pub const APPEND: &str = "/raft/append";
pub const VOTE: &str = "/raft/vote";
pub const PRE_VOTE: &str = "/raft/pre-vote";
pub const SNAPSHOT: &str = "/raft/snapshot";
pub const TRANSFER_LEADER: &str = "/raft/transfer-leader";
pub const IDENTITY: &str = "/raft/identity";
pub const JOIN: &str = "/raft/join";
pub const READ_INDEX: &str = "/raft/read-index";

#[derive(Serialize, Deserialize)]
pub struct SnapshotRequest {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// The body of a refused or failed RPC.
#[derive(Serialize, Deserialize)]
pub struct RemoteFailure {
    pub message: String,
}

/// What a node says about itself on the peer port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerIdentity {
    pub id: u64,
    pub name: String,
    pub cluster_id: Option<String>,
    pub client_url: String,
}

#[derive(Serialize, Deserialize)]
pub struct JoinRequest {
    pub cluster_id: String,
}

#[derive(Serialize, Deserialize)]
pub struct ReadIndex {
    pub index: u64,
}

#[derive(Clone)]
pub struct PeerState {
    pub raft: Raft,
    pub identity: Arc<SharedIdentity>,
    pub client_url: String,
}

pub fn router(state: PeerState) -> Router {
    Router::new()
        .route(APPEND, post(append))
        .route(VOTE, post(vote))
        .route(PRE_VOTE, post(pre_vote))
        .route(SNAPSHOT, post(snapshot))
        .route(TRANSFER_LEADER, post(transfer_leader))
        .route(READ_INDEX, post(read_index))
        .route(IDENTITY, get(identity))
        .route(JOIN, post(join))
        // Snapshots carry the whole keyspace.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    let body = encode(&RemoteFailure {
        message: message.into(),
    })
    .unwrap_or_default();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        body,
    )
        .into_response()
}

fn reply<T: Serialize>(value: &T) -> Response {
    match encode(value) {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(err) => failure(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

/// Refuses messages meant for another cluster or another node id (e.g. a
/// wiped node now listening at an old member's address).
fn refusal(state: &PeerState, headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // Every Raft RPC passes here: compare without copying the identity.
    let node_id = state.identity.node_id();
    let target = header(TARGET_HEADER);
    if target.parse::<u64>().ok() != Some(node_id) {
        return Some(failure(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this is node {node_id} ({}), not node {target}",
                state.identity.get().name
            ),
        ));
    }
    let cluster = header(CLUSTER_HEADER);
    match state.identity.cluster_id().as_deref() {
        Some(ours) if ours == cluster => None,
        Some(ours) => Some(failure(
            StatusCode::CONFLICT,
            format!("this node belongs to cluster {ours}, not {cluster:?}"),
        )),
        None => Some(failure(
            StatusCode::CONFLICT,
            "this node has not joined a cluster yet",
        )),
    }
}

/// Checks the addressee, decodes the request, hands it to Raft, encodes
/// the answer.
async fn serve<Req, Resp, Fut, E>(
    state: &PeerState,
    headers: &HeaderMap,
    body: &Bytes,
    call: impl FnOnce(Raft, Req) -> Fut,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Result<Resp, E>>,
    E: std::fmt::Display,
{
    if let Some(refusal) = refusal(state, headers) {
        return refusal;
    }
    let request: Req = match decode(body) {
        Ok(request) => request,
        Err(err) => return failure(StatusCode::BAD_REQUEST, format!("bad RPC body: {err}")),
    };
    match call(state.raft.clone(), request).await {
        Ok(response) => reply(&response),
        Err(err) => failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

async fn append(State(state): State<PeerState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(
        &state,
        &headers,
        &body,
        |raft, request: AppendEntriesRequest<TypeConfig>| async move {
            raft.append_entries(request).await
        },
    )
    .await
}

async fn vote(State(state): State<PeerState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(
        &state,
        &headers,
        &body,
        |raft, request: VoteRequest<TypeConfig>| async move { raft.vote(request).await },
    )
    .await
}

async fn pre_vote(State(state): State<PeerState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(
        &state,
        &headers,
        &body,
        |raft, request: VoteRequest<TypeConfig>| async move { raft.pre_vote(request).await },
    )
    .await
}

async fn snapshot(State(state): State<PeerState>, headers: HeaderMap, body: Bytes) -> Response {
    serve(
        &state,
        &headers,
        &body,
        |raft, request: SnapshotRequest| async move {
            let snapshot = super::types::Snapshot {
                meta: request.meta,
                snapshot: request.data,
            };
            raft.install_full_snapshot(request.vote, snapshot).await
        },
    )
    .await
}

async fn transfer_leader(
    State(state): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &state,
        &headers,
        &body,
        |raft, request: TransferLeaderRequest<TypeConfig>| async move {
            raft.handle_transfer_leader(request).await
        },
    )
    .await
}

/// A follower's linearizable read asks the leader for the index its state
/// must reach; the leader confirms its leadership with a quorum first.
async fn read_index(State(state): State<PeerState>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refusal(&state, &headers) {
        return refusal;
    }
    match state.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(read_log_id) => reply(&ReadIndex {
            index: read_log_id.log_id().index,
        }),
        Err(err) => failure(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

fn identity_of(state: &PeerState) -> PeerIdentity {
    let identity = state.identity.get();
    PeerIdentity {
        id: identity.node_id,
        name: identity.name,
        cluster_id: identity.cluster_id,
        client_url: state.client_url.clone(),
    }
}

async fn identity(State(state): State<PeerState>) -> Json<PeerIdentity> {
    Json(identity_of(&state))
}

/// The first contact from a cluster's leader: the node adopts the cluster
/// id (once) and answers with its id so the leader can add it.
async fn join(State(state): State<PeerState>, Json(request): Json<JoinRequest>) -> Response {
    match state.identity.adopt_cluster(&request.cluster_id) {
        Ok(()) => Json(identity_of(&state)).into_response(),
        Err(err) => (StatusCode::CONFLICT, err.to_string()).into_response(),
    }
}
