//! Talking to a cluster's members through the registry's own membership and
//! status API. The reconciler depends on the [`Registry`] trait so its tests
//! can script the answers and record the calls in order with the
//! Kubernetes API calls; [`HttpRegistry`] is the real thing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use muster_client::{Client, ClientError, TlsOptions};
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

/// Where a cluster's members answer and how to trust them: their client
/// URLs and, when the cluster uses TLS, the PEM of the CA that signed their
/// certificates (the client trusts only that CA). Built once per reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Members {
    pub urls: Vec<String>,
    pub ca_pem: Option<Vec<u8>>,
}

impl Members {
    pub fn new(urls: Vec<String>, ca_pem: Option<Vec<u8>>) -> Self {
        Members { urls, ca_pem }
    }

    /// One member, trusted the same way.
    pub fn only(&self, url: impl Into<String>) -> Members {
        Members {
            urls: vec![url.into()],
            ca_pem: self.ca_pem.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

/// The calls the operator makes. `members` are the client URLs of any
/// members (and the CA to trust); membership changes are forwarded to the
/// leader by the registry.
pub trait Registry: Send + Sync + 'static {
    /// The membership, with each member's lag when the leader answered.
    fn members(
        &self,
        members: &Members,
    ) -> impl Future<Output = Result<MemberList, RegistryError>> + Send;

    fn add_learner(
        &self,
        members: &Members,
        request: AddMemberRequest,
    ) -> impl Future<Output = Result<Member, RegistryError>> + Send;

    fn promote(
        &self,
        members: &Members,
        name: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    fn remove(
        &self,
        members: &Members,
        name: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    fn transfer_leader(
        &self,
        members: &Members,
        to: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// What the node at `endpoint` says of itself (its Raft id, version,
    /// role), whether or not it is a member yet; it is trusted as
    /// `members` says.
    fn node_status(
        &self,
        members: &Members,
        endpoint: &str,
    ) -> impl Future<Output = Result<Status, RegistryError>> + Send;
}

/// Over HTTP(S), with `muster-client`. Clients are cached per member list
/// and CA.
pub struct HttpRegistry {
    clients: Mutex<HashMap<Members, Client>>,
    timeout: Duration,
}

impl HttpRegistry {
    pub fn new(timeout: Duration) -> Self {
        HttpRegistry {
            clients: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn client(&self, members: &Members) -> Result<Client, RegistryError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(members) {
            return Ok(client.clone());
        }
        let mut builder = Client::builder(members.urls.iter().cloned())
            .request_timeout(self.timeout)
            .connect_timeout(self.timeout);
        if let Some(ca_pem) = &members.ca_pem {
            builder = builder.tls(TlsOptions {
                ca_pem: ca_pem.clone(),
                client_cert_pem: None,
                client_key_pem: None,
            });
        }
        let client = builder.build()?;
        // Member lists change only with scaling (and the CA with renewals);
        // keep the cache small anyway.
        if clients.len() > 64 {
            clients.clear();
        }
        clients.insert(members.clone(), client.clone());
        Ok(client)
    }
}

impl Registry for HttpRegistry {
    async fn members(&self, members: &Members) -> Result<MemberList, RegistryError> {
        let list = self.client(members)?.members().await?;
        let leader = list.members.iter().find(|m| m.is_leader);
        match leader {
            // Only the leader knows how far behind each member is.
            Some(leader) if list.members.iter().any(|m| m.lag.is_none()) => {
                let leader = members.only(leader.client_url.clone());
                match self.client(&leader)?.members().await {
                    Ok(from_leader) => Ok(from_leader),
                    Err(_) => Ok(list),
                }
            }
            _ => Ok(list),
        }
    }

    async fn add_learner(
        &self,
        members: &Members,
        request: AddMemberRequest,
    ) -> Result<Member, RegistryError> {
        Ok(self.client(members)?.add_member(&request).await?)
    }

    async fn promote(&self, members: &Members, name: &str) -> Result<(), RegistryError> {
        self.client(members)?.promote_member(name, None).await?;
        Ok(())
    }

    async fn remove(&self, members: &Members, name: &str) -> Result<(), RegistryError> {
        self.client(members)?.remove_member(name, None).await?;
        Ok(())
    }

    async fn transfer_leader(&self, members: &Members, to: &str) -> Result<(), RegistryError> {
        self.client(members)?.transfer_leader(to).await?;
        Ok(())
    }

    async fn node_status(
        &self,
        members: &Members,
        endpoint: &str,
    ) -> Result<Status, RegistryError> {
        let client = self.client(&members.only(endpoint))?;
        Ok(client.status_of(endpoint).await?)
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    use super::*;

    fn ca_pem() -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem().into_bytes()
    }

    fn urls() -> Vec<String> {
        (0..3)
            .map(|o| format!("https://demo-{o}.demo-peer.default.svc.cluster.local:7001"))
            .collect()
    }

    #[test]
    fn https_members_get_a_client_that_trusts_the_cluster_ca() {
        let registry = HttpRegistry::new(Duration::from_secs(1));
        let members = Members::new(urls(), Some(ca_pem()));
        let client = registry.client(&members).expect("a TLS client");
        assert_eq!(client.endpoints(), urls().as_slice());
        // Cached per (urls, CA); one member keeps the trust.
        registry.client(&members).unwrap();
        registry.client(&members.only(urls()[1].clone())).unwrap();
        let other_ca = Members::new(urls(), Some(ca_pem()));
        registry.client(&other_ca).unwrap();
        assert_eq!(registry.clients.lock().unwrap().len(), 3);
    }

    #[test]
    fn https_members_without_a_ca_are_a_clear_error() {
        let registry = HttpRegistry::new(Duration::from_secs(1));
        let err = registry
            .client(&Members::new(urls(), None))
            .expect_err("https without a CA");
        assert!(matches!(err, RegistryError::Failed(_)), "{err:?}");
        assert!(
            err.to_string().contains("https endpoints need TLS options"),
            "{err}"
        );
        let err = registry
            .client(&Members::new(urls(), Some(b"not a certificate".to_vec())))
            .expect_err("a CA that is not PEM");
        assert!(err.to_string().contains("CA bundle"), "{err}");
        assert!(registry.clients.lock().unwrap().is_empty());
    }

    #[test]
    fn plain_members_need_no_ca() {
        let registry = HttpRegistry::new(Duration::from_secs(1));
        let plain = Members::new(vec!["http://demo-0:7001".into()], None);
        registry.client(&plain).unwrap();
    }
}
