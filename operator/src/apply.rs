//! Step 3 of the reconcile: server-side apply of the built objects under
//! one field manager, in a fixed order (certificates, configuration,
//! Services, disruption budget, StatefulSet last), and deletion of the
//! Secrets the operator issued that are no longer wanted.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::tls::IssuedTls;
use crate::build::{ClusterObjects, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER, Shape};
use crate::validate::ValidCluster;

/// Proof that the objects of one shape were applied: status is computed
/// from it, so it never reports a shape that was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    shape: Shape,
}

impl Applied {
    pub fn shape(&self) -> Shape {
        self.shape
    }
}

pub fn patch_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

async fn apply_one<K>(client: &Client, namespace: &str, object: &K) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(&name, &patch_params(), &Patch::Apply(object))
        .await?;
    Ok(())
}

pub async fn apply(
    client: &Client,
    cluster: &ValidCluster,
    shape: Shape,
    objects: &ClusterObjects,
    tls: Option<&IssuedTls>,
) -> Result<Applied, kube::Error> {
    let namespace = cluster.namespace.as_str();
    if let Some(tls) = tls {
        apply_one(client, namespace, &tls.ca).await?;
        apply_one(client, namespace, &tls.server).await?;
    }
    delete_orphaned_secrets(client, cluster, tls).await?;
    apply_one(client, namespace, &objects.config_map).await?;
    apply_one(client, namespace, &objects.peer_service).await?;
    apply_one(client, namespace, &objects.client_service).await?;
    apply_one(client, namespace, &objects.pod_disruption_budget).await?;
    apply_one(client, namespace, &objects.stateful_set).await?;
    Ok(Applied { shape })
}

/// Secrets labelled as this cluster's and ours that were not built this
/// time (TLS was turned off or switched to the user's Secrets).
async fn delete_orphaned_secrets(
    client: &Client,
    cluster: &ValidCluster,
    tls: Option<&IssuedTls>,
) -> Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &cluster.namespace);
    let selector = format!(
        "{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={MANAGER}",
        cluster.name
    );
    let wanted: Vec<&str> = tls
        .iter()
        .flat_map(|tls| [&tls.ca, &tls.server])
        .filter_map(|secret| secret.metadata.name.as_deref())
        .collect();
    let existing = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await?;
    for secret in existing {
        let Some(name) = secret.metadata.name else {
            continue;
        };
        if !wanted.contains(&name.as_str()) {
            tracing::info!(secret = %name, "deleting a Secret the operator no longer issues");
            api.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}
