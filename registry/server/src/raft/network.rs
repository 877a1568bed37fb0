//! Sends Raft RPCs to peers over HTTP: MessagePack bodies, each request
//! naming the cluster and the target node so a misrouted or stale message
//! (a wiped node's old address, another cluster) is refused.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftNetworkFactory;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode, encode};
use super::rpc::{self, RemoteFailure, SnapshotRequest};
use super::types::{NodeId, PeerNode, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::identity::SharedIdentity;

#[derive(Clone)]
pub struct NetworkFactory {
    http: reqwest::Client,
    identity: Arc<SharedIdentity>,
}

impl NetworkFactory {
    pub fn new(identity: Arc<SharedIdentity>, http: reqwest::Client) -> Self {
        NetworkFactory { http, identity }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerClient {
        PeerClient {
            http: self.http.clone(),
            identity: self.identity.clone(),
            target,
            base: node.peer_url.trim_end_matches('/').to_owned(),
        }
    }
}

pub struct PeerClient {
    http: reqwest::Client,
    identity: Arc<SharedIdentity>,
    target: NodeId,
    base: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerError(String);

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = encode(request).map_err(|err| RPCError::Network(NetworkError::new(&err)))?;
        let cluster = self.identity.cluster_id().unwrap_or_default();
        let response = self
            .http
            .post(format!("{}{}", self.base, path))
            .header(rpc::CLUSTER_HEADER, cluster)
            .header(rpc::TARGET_HEADER, self.target.to_string())
            .header(http::header::CONTENT_TYPE, rpc::CONTENT_TYPE)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|err| {
                if err.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&err))
                } else {
                    RPCError::Network(NetworkError::new(&err))
                }
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| RPCError::Network(NetworkError::new(&err)))?;
        if !status.is_success() {
            let failure: RemoteFailure = decode(&bytes).unwrap_or_else(|_| RemoteFailure {
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            // A refusal (wrong cluster or node, shutting down) will not heal
            // by retrying at once: back off.
            let err = PeerError(format!(
                "{} answered {status}: {}",
                self.base, failure.message
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        }
        decode(&bytes).map_err(|err| RPCError::Network(NetworkError::new(&err)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(rpc::APPEND, &request, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(rpc::VOTE, &request, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(rpc::PRE_VOTE, &request, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = SnapshotRequest {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        // A snapshot can be large: allow it far longer than an append.
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = self.call(rpc::SNAPSHOT, &request, timeout) => result.map_err(|err| match err {
                RPCError::Unreachable(err) => StreamingError::Unreachable(err),
                RPCError::Timeout(err) => StreamingError::Timeout(err),
                RPCError::Network(err) => StreamingError::Network(err),
                RPCError::RemoteError(err) => StreamingError::Network(NetworkError::new(&err)),
            }),
        }
    }

    async fn transfer_leader(
        &mut self,
        request: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(rpc::TRANSFER_LEADER, &request, option.hard_ttl())
            .await
    }
}
