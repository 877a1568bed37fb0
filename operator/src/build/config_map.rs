//! The ConfigMap of registry settings, given to the pods as `MUSTER_*`
//! environment variables (every `muster server` flag has one).
//!
//! The initial cluster and its state live here rather than in the pod
//! template: they change on scaling and after bootstrap, and a change of
//! the template would make every pod outdated and roll the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::{
    CLIENT_PORT, DATA_DIR, PEER_PORT, Shape, config_map_name, owned_meta, peer_url, pod_name,
};
use crate::validate::ValidCluster;

pub fn config_map(cluster: &ValidCluster, shape: Shape) -> ConfigMap {
    let initial_cluster = (0..shape.pods)
        .map(|ordinal| {
            let pod = pod_name(cluster, ordinal);
            format!("{pod}={}", peer_url(cluster, &pod))
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut data = restart_settings(cluster);
    data.extend([
        ("MUSTER_DATA_DIR".to_string(), DATA_DIR.to_string()),
        (
            "MUSTER_LISTEN_CLIENT".to_string(),
            format!("0.0.0.0:{CLIENT_PORT}"),
        ),
        (
            "MUSTER_LISTEN_PEER".to_string(),
            format!("0.0.0.0:{PEER_PORT}"),
        ),
        ("MUSTER_INITIAL_CLUSTER".to_string(), initial_cluster),
        (
            "MUSTER_INITIAL_CLUSTER_STATE".to_string(),
            shape.cluster_state.as_flag().to_string(),
        ),
    ]);
    ConfigMap {
        metadata: owned_meta(cluster, config_map_name(cluster)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Settings a member reads only when it starts: a change must restart the
/// members (one at a time, like an upgrade).
fn restart_settings(cluster: &ValidCluster) -> BTreeMap<String, String> {
    let settings = &cluster.settings;
    BTreeMap::from([
        (
            "MUSTER_HEARTBEAT_INTERVAL_MS".to_string(),
            settings.heartbeat_interval_ms.to_string(),
        ),
        (
            "MUSTER_ELECTION_TIMEOUT_MS".to_string(),
            settings.election_timeout_ms.to_string(),
        ),
        (
            "MUSTER_SNAPSHOT_EVERY".to_string(),
            settings.snapshot_every.to_string(),
        ),
        (
            "MUSTER_HISTORY_REVISIONS".to_string(),
            settings.history_revisions.to_string(),
        ),
    ])
}

/// A digest of [`restart_settings`], put on the pod template so that a
/// change of them makes a new StatefulSet revision.
pub fn settings_hash(cluster: &ValidCluster) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in restart_settings(cluster) {
        hasher.update(key.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
