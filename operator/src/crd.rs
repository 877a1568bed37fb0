//! The `RegistryCluster` custom resource: what a user asks for (spec) and
//! what the operator reports (status). The CRD YAML in `crds/` and in the
//! chart is generated from these types by the `crdgen` binary.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of Muster's custom resources.
pub const GROUP: &str = "muster.dev";

/// A replicated Muster registry: a StatefulSet of `muster server` pods
/// forming one Raft cluster, scaled and upgraded through Raft membership
/// changes.
// Several printer columns share a type; clippy takes the repeated
// `type_ = ...` inside kube's attribute for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "muster.dev",
    version = "v1alpha1",
    kind = "RegistryCluster",
    plural = "registryclusters",
    singular = "registrycluster",
    shortname = "mrc",
    category = "muster",
    namespaced,
    status = "RegistryClusterStatus",
    derive = "PartialEq",
    doc = "A replicated Muster service registry and configuration center.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Members asked for"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Pods that are ready"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader",
        description = "The Raft leader"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion",
        description = "Version every member runs"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RegistryClusterSpec {
    /// Number of voting members: 1, 3, 5 or 7. An odd number, because an
    /// even one tolerates no more failures than the odd number below it.
    /// Changed one member at a time through Raft membership changes.
    #[serde(default = "default_replicas")]
    #[schemars(extend("enum" = [1, 3, 5, 7]))]
    pub replicas: i32,

    /// The Muster version to run. It is the image tag unless `image` is set,
    /// and changing it rolls the pods one at a time, the leader last.
    pub version: String,

    /// The full image reference; by default `ghcr.io/muster-dev/muster:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The persistent volume of each member (its Raft log and snapshots).
    #[serde(default)]
    pub storage: StorageSpec,

    /// CPU and memory of the registry container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Where the pods may run. By default they are spread across nodes.
    #[serde(default)]
    pub scheduling: SchedulingSpec,

    /// TLS for the client and peer ports.
    #[serde(default)]
    pub tls: TlsSpec,

    /// Settings of the registry itself.
    #[serde(default)]
    pub settings: RegistrySettings,

    /// Additions to the pod template.
    #[serde(default)]
    pub pod_template: PodTemplateOverrides,
}

fn default_replicas() -> i32 {
    3
}

/// A member's persistent volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each member's volume, as a Kubernetes quantity (e.g. `10Gi`).
    #[serde(default = "default_storage_size")]
    pub size: String,

    /// The StorageClass of the volumes; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// What happens to the volumes when the cluster is deleted or shrinks.
    #[serde(default)]
    pub retention: RetentionSpec,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_storage_size(),
            storage_class_name: None,
            retention: RetentionSpec::default(),
        }
    }
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

/// The fate of member volumes (the StatefulSet's PVC retention policy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// When the RegistryCluster is deleted: `Retain` (default, the data
    /// survives) or `Delete`.
    #[serde(default = "Retention::retain")]
    pub when_deleted: Retention,

    /// When a member is removed by scaling down: `Delete` (default: a member
    /// added again later must start empty, as a new Raft member) or `Retain`.
    #[serde(default = "Retention::delete")]
    pub when_scaled: Retention,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec {
            when_deleted: Retention::Retain,
            when_scaled: Retention::Delete,
        }
    }
}

/// Keep or delete a volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Retention {
    Retain,
    Delete,
}

impl Retention {
    fn retain() -> Self {
        Retention::Retain
    }

    fn delete() -> Self {
        Retention::Delete
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Retain => "Retain",
            Retention::Delete => "Delete",
        }
    }
}

/// Placement of the pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// Only nodes with these labels run members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the members tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Replaces the default affinity, which prefers one member per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// TLS on the client and peer ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// `Disabled` (plain HTTP), `OperatorIssued` (the operator runs a CA for
    /// this cluster and renews the certificates before they expire), or
    /// `Secrets` (certificates from the Secrets named below).
    #[serde(default)]
    pub mode: TlsMode,

    /// With `mode: Secrets`: a Secret of type `kubernetes.io/tls` with
    /// `tls.crt`, `tls.key` and `ca.crt` (as cert-manager writes them). The
    /// certificate serves both ports, so it must be valid for the client
    /// Service and every pod's name under the headless Service, for server
    /// and client authentication (members present it to each other, and
    /// trust only `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// How the cluster gets its certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TlsMode {
    #[default]
    Disabled,
    OperatorIssued,
    Secrets,
}

/// The registry's own settings (flags of `muster server`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySettings {
    /// How often the leader heart-beats its followers, in milliseconds.
    #[serde(default = "default_heartbeat")]
    #[schemars(range(min = 10))]
    pub heartbeat_interval_ms: u32,

    /// How long a follower waits without a heart-beat before it calls an
    /// election, in milliseconds; must exceed the heart-beat interval.
    #[serde(default = "default_election")]
    #[schemars(range(min = 50))]
    pub election_timeout_ms: u32,

    /// Take a snapshot (and truncate the log) every this many entries.
    #[serde(default = "default_snapshot_every")]
    #[schemars(range(min = 1))]
    pub snapshot_every: u32,

    /// Revisions of history kept before automatic compaction; 0 keeps all.
    #[serde(default = "default_history_revisions")]
    pub history_revisions: u32,

    /// Serve DNS (service discovery by name) on port 8053.
    #[serde(default)]
    pub dns: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            heartbeat_interval_ms: default_heartbeat(),
            election_timeout_ms: default_election(),
            snapshot_every: default_snapshot_every(),
            history_revisions: default_history_revisions(),
            dns: false,
        }
    }
}

fn default_heartbeat() -> u32 {
    100
}

fn default_election() -> u32 {
    1000
}

fn default_snapshot_every() -> u32 {
    10_000
}

fn default_history_revisions() -> u32 {
    100_000
}

/// Additions to every member pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod labels (the operator's own labels win on a clash).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Extra environment variables of the registry container (`MUSTER_*`
    /// ones set by the operator cannot be overridden).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods the StatefulSet runs (the scale subresource's current count).
    #[serde(default)]
    pub replicas: i32,

    /// Pods that are ready (have a leader and are caught up).
    #[serde(default)]
    pub ready_replicas: i32,

    /// The label selector of the member pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Set once the cluster has been initialized. From then on no pod is
    /// ever started in a mode that could initialize a second cluster.
    #[serde(default)]
    pub bootstrapped: bool,

    /// The name of the current Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// The Raft members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,

    /// The version every member runs; unset while they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,

    /// `Available`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One Raft member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member's name: its pod's name.
    pub name: String,
    /// The Raft id (decimal): generated on the member's first start with an
    /// empty volume, never reused.
    pub id: String,
    /// `Voter` or `Learner`.
    pub role: MemberRole,
    /// Its pod is ready and it is not lagging behind the leader.
    pub healthy: bool,
    /// The version the member reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A member's part in Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MemberRole {
    Voter,
    Learner,
}
