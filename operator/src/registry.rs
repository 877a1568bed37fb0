//! Talking to a cluster's members through the registry's own membership and
//! status API. The reconciler depends on the [`Registry`] trait so its tests
//! can script the answers and record the calls in order with the
//! Kubernetes API calls; [`HttpRegistry`] is the real thing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use muster_client::{Client, ClientError};
use muster_types::cluster::{AddMemberRequest, Member, MemberList, Status};
use muster_types::error::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The cluster refused the change as it stands (e.g. a learner is not
    /// caught up yet): try again later, it is not a failure.
    #[error("the registry refused: {0}")]
    Refused(String),
    #[error("registry: {0}")]
    Failed(String),
}

impl From<ClientError> for RegistryError {
    fn from(err: ClientError) -> Self {
        match err.code() {
            Some(ErrorCode::Conflict | ErrorCode::MemberNotFound) => {
                RegistryError::Refused(err.to_string())
            }
            _ => RegistryError::Failed(err.to_string()),
        }
    }
}

/// The calls the operator makes. `endpoints` are client URLs of any
/// members; membership changes are forwarded to the leader by the registry.
pub trait Registry: Send + Sync + 'static {
    /// The membership, with each member's lag when the leader answered.
    fn members(
        &self,
        endpoints: &[String],
    ) -> impl Future<Output = Result<MemberList, RegistryError>> + Send;

    fn add_learner(
        &self,
        endpoints: &[String],
        request: AddMemberRequest,
    ) -> impl Future<Output = Result<Member, RegistryError>> + Send;

    fn promote(
        &self,
        endpoints: &[String],
        name: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    fn remove(
        &self,
        endpoints: &[String],
        name: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    fn transfer_leader(
        &self,
        endpoints: &[String],
        to: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// What one node says of itself (its Raft id, version, role), whether
    /// or not it is a member yet.
    fn node_status(
        &self,
        endpoint: &str,
    ) -> impl Future<Output = Result<Status, RegistryError>> + Send;
}

/// Over HTTP, with `muster-client`. Clients are cached per endpoint list.
pub struct HttpRegistry {
    clients: Mutex<HashMap<Vec<String>, Client>>,
    timeout: Duration,
}

impl HttpRegistry {
    pub fn new(timeout: Duration) -> Self {
        HttpRegistry {
            clients: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn client(&self, endpoints: &[String]) -> Result<Client, RegistryError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(endpoints) {
            return Ok(client.clone());
        }
        let client = Client::builder(endpoints.iter().cloned())
            .request_timeout(self.timeout)
            .connect_timeout(self.timeout)
            .build()?;
        // Endpoint lists change only with scaling; keep the cache small anyway.
        if clients.len() > 64 {
            clients.clear();
        }
        clients.insert(endpoints.to_vec(), client.clone());
        Ok(client)
    }
}

impl Registry for HttpRegistry {
    async fn members(&self, endpoints: &[String]) -> Result<MemberList, RegistryError> {
        let list = self.client(endpoints)?.members().await?;
        let leader = list.members.iter().find(|m| m.is_leader);
        match leader {
            // Only the leader knows how far behind each member is.
            Some(leader) if list.members.iter().any(|m| m.lag.is_none()) => {
                let url = leader.client_url.clone();
                match self.client(&[url])?.members().await {
                    Ok(from_leader) => Ok(from_leader),
                    Err(_) => Ok(list),
                }
            }
            _ => Ok(list),
        }
    }

    async fn add_learner(
        &self,
        endpoints: &[String],
        request: AddMemberRequest,
    ) -> Result<Member, RegistryError> {
        Ok(self.client(endpoints)?.add_member(&request).await?)
    }

    async fn promote(&self, endpoints: &[String], name: &str) -> Result<(), RegistryError> {
        self.client(endpoints)?.promote_member(name, None).await?;
        Ok(())
    }

    async fn remove(&self, endpoints: &[String], name: &str) -> Result<(), RegistryError> {
        self.client(endpoints)?.remove_member(name, None).await?;
        Ok(())
    }

    async fn transfer_leader(&self, endpoints: &[String], to: &str) -> Result<(), RegistryError> {
        self.client(endpoints)?.transfer_leader(to).await?;
        Ok(())
    }

    async fn node_status(&self, endpoint: &str) -> Result<Status, RegistryError> {
        let client = self.client(&[endpoint.to_string()])?;
        Ok(client.status_of(endpoint).await?)
    }
}
