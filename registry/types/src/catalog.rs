//! The service catalog: namespaces, services and their instances, with
//! health (Consul's and Nacos's naming side).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{LeaseId, Revision};

/// The namespace that always exists.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    #[default]
    Passing,
    Warning,
    Critical,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Every namespace (`default` included), as `GET /v1/namespaces` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceList {
    pub namespaces: Vec<Namespace>,
    pub revision: Revision,
}

/// A TTL check: the instance's owner reports its health at least every
/// `ttl` seconds; a missed report counts as a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub ttl: u64,
    /// Consecutive passing reports needed to turn `passing` (flap damping).
    #[serde(default = "one")]
    pub successes_before_passing: u32,
    /// Consecutive failing reports needed to turn `critical`.
    #[serde(default = "one")]
    pub failures_before_critical: u32,
    /// Deregister an instance that stayed critical this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_after: Option<u64>,
}

fn one() -> u32 {
    1
}

fn default_weight() -> u32 {
    100
}

fn yes() -> bool {
    true
}

/// What a client sends to register or update an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub address: String,
    pub port: u16,
    /// Relative share of traffic, 0-10000; 0 takes none.
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `false` drains the instance: registered, but out of discovery.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Ephemeral instances live as long as their lease: they disappear
    /// when heart-beats stop. Persistent ones stay until deregistered.
    #[serde(default)]
    pub ephemeral: bool,
    /// For ephemeral instances: the heart-beat TTL in seconds (a lease is
    /// granted), unless `lease` names an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
}

/// An instance as stored and returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub namespace: String,
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub weight: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub enabled: bool,
    pub ephemeral: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
    pub health: InstanceHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    /// Revision of the last change to this instance.
    #[serde(default)]
    pub revision: Revision,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceHealth {
    pub status: HealthStatus,
    /// The last report's output.
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub consecutive_successes: u32,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Wall-clock milliseconds (the leader's) of the last report.
    #[serde(default)]
    pub reported_at_ms: u64,
    /// When the status last became `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_since_ms: Option<u64>,
}

/// A health report for a TTL check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    #[serde(default)]
    pub output: String,
}

/// Service-level settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// 0-1: when the healthy share of enabled instances falls below it,
    /// discovery returns every enabled instance (Nacos).
    #[serde(default)]
    pub protection_threshold: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    pub passing: u64,
    pub warning: u64,
    pub critical: u64,
    /// Instances drained (`enabled: false`), whatever their health.
    pub disabled: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub name: String,
    pub instances: u64,
    pub health: HealthCounts,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceList {
    pub namespace: String,
    pub services: Vec<ServiceSummary>,
    pub revision: Revision,
}

/// The answer to a discovery query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    pub namespace: String,
    pub service: String,
    #[serde(default)]
    pub spec: ServiceSpec,
    pub instances: Vec<Instance>,
    /// True when the healthy share fell below the protection threshold and
    /// every enabled instance is returned instead of the healthy ones.
    pub protection_triggered: bool,
    /// Changes to this service up to this revision are reflected; pass it
    /// as `index` to block until the next one.
    pub revision: Revision,
}

/// A change to a service's instances, as a subscription streams it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceEvent {
    /// The full current state; sent first.
    Snapshot {
        instances: Vec<Instance>,
        revision: Revision,
    },
    Upsert {
        instance: Box<Instance>,
    },
    Remove {
        id: String,
        revision: Revision,
    },
    Progress {
        revision: Revision,
    },
    Error {
        code: crate::watch::WatchErrorCode,
        message: String,
    },
}
