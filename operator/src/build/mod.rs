//! Step 2 of the reconcile: the Kubernetes objects of one cluster, as pure
//! functions of the validated spec and of the [`Shape`] the membership plan
//! chose. Names, labels and ports live here so every builder agrees on them.

mod config_map;
mod pdb;
mod services;
mod stateful_set;
pub mod tls;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use config_map::{config_map, settings_hash};
pub use pdb::{pod_disruption_budget, quorum};
pub use services::{client_service, peer_service};
pub use stateful_set::stateful_set;

use crate::validate::ValidCluster;

pub const CLIENT_PORT: i32 = 7001;
pub const PEER_PORT: i32 = 7101;
pub const DNS_PORT: i32 = 8053;
/// Where the member's volume is mounted (its Raft log and snapshots).
pub const DATA_DIR: &str = "/var/lib/muster";
/// Where the certificates are mounted when TLS is on.
pub const TLS_DIR: &str = "/etc/muster/tls";
/// The `muster` binary in the registry image.
pub const BINARY: &str = "/usr/local/bin/muster";
/// The container's own pod name (downward API), used in the arguments.
pub const POD_NAME_ENV: &str = "POD_NAME";
/// The user and group the registry runs as (distroless `nonroot`).
pub const RUN_AS: i64 = 65532;

pub const MANAGER: &str = "muster-operator";
pub const APP_NAME: &str = "muster";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";
/// On the pod template: changes when a setting that needs a restart changes.
pub const ANNOTATION_SETTINGS_HASH: &str = "muster.dev/settings-hash";

/// How a new member's data directory starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Before the cluster exists: the first pod initializes it.
    New,
    /// Ever after: a pod with an empty volume waits to be added as a learner,
    /// so no second cluster can ever be initialized.
    Existing,
}

impl ClusterState {
    pub fn as_flag(self) -> &'static str {
        match self {
            ClusterState::New => "new",
            ClusterState::Existing => "existing",
        }
    }
}

/// What the membership plan decided about the StatefulSet this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// StatefulSet replicas: pods `0..pods` exist.
    pub pods: i32,
    pub cluster_state: ClusterState,
}

/// Every object of one cluster, in the order they are applied (the
/// StatefulSet last, so its pods find their configuration and names).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterObjects {
    pub config_map: ConfigMap,
    pub peer_service: Service,
    pub client_service: Service,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub stateful_set: StatefulSet,
}

pub fn build(cluster: &ValidCluster, shape: Shape) -> ClusterObjects {
    ClusterObjects {
        config_map: config_map(cluster, shape),
        peer_service: peer_service(cluster),
        client_service: client_service(cluster),
        pod_disruption_budget: pod_disruption_budget(cluster, shape),
        stateful_set: stateful_set(cluster, shape),
    }
}

// ---- names ----

pub fn peer_service_name(cluster: &ValidCluster) -> String {
    format!("{}-peer", cluster.name)
}

pub fn client_service_name(cluster: &ValidCluster) -> String {
    cluster.name.clone()
}

pub fn config_map_name(cluster: &ValidCluster) -> String {
    format!("{}-config", cluster.name)
}

pub fn pod_name(cluster: &ValidCluster, ordinal: i32) -> String {
    format!("{}-{ordinal}", cluster.name)
}

/// The ordinal of a pod (or member) name of this cluster.
pub fn ordinal_of(cluster: &ValidCluster, pod: &str) -> Option<i32> {
    pod.strip_prefix(&cluster.name)?
        .strip_prefix('-')?
        .parse()
        .ok()
        .filter(|ordinal| *ordinal >= 0)
}

/// The stable DNS name of a pod under the headless Service.
pub fn pod_host(cluster: &ValidCluster, pod: &str) -> String {
    format!(
        "{pod}.{}.{}.svc.{}",
        peer_service_name(cluster),
        cluster.namespace,
        cluster.cluster_domain
    )
}

pub fn scheme(cluster: &ValidCluster) -> &'static str {
    if cluster.tls.enabled() {
        "https"
    } else {
        "http"
    }
}

pub fn peer_url(cluster: &ValidCluster, pod: &str) -> String {
    format!(
        "{}://{}:{PEER_PORT}",
        scheme(cluster),
        pod_host(cluster, pod)
    )
}

pub fn client_url(cluster: &ValidCluster, pod: &str) -> String {
    format!(
        "{}://{}:{CLIENT_PORT}",
        scheme(cluster),
        pod_host(cluster, pod)
    )
}

// ---- labels and metadata ----

/// The labels that select this cluster's pods (never change: a
/// StatefulSet's selector is immutable).
pub fn selector_labels(cluster: &ValidCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.name.clone()),
    ])
}

/// The selector as a string, for the scale subresource.
pub fn selector_string(cluster: &ValidCluster) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every object the operator makes for a cluster.
pub fn labels(cluster: &ValidCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(LABEL_COMPONENT.to_string(), "registry".to_string());
    labels.insert(LABEL_MANAGED_BY.to_string(), MANAGER.to_string());
    labels
}

pub fn owner_reference(cluster: &ValidCluster) -> OwnerReference {
    OwnerReference {
        api_version: "muster.dev/v1alpha1".to_string(),
        kind: "RegistryCluster".to_string(),
        name: cluster.name.clone(),
        uid: cluster.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of an object owned by the cluster.
pub fn owned_meta(cluster: &ValidCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(labels(cluster)),
        owner_references: Some(vec![owner_reference(cluster)]),
        ..ObjectMeta::default()
    }
}
