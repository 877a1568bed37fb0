//! What the reconciler sees: the StatefulSet's pods and the registry's
//! members, reduced to the views the [`plan`](crate::plan) needs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use muster_types::cluster::MemberList;

use crate::build::ordinal_of;
use crate::plan::{MemberView, PodView};
use crate::validate::ValidCluster;

/// The label the StatefulSet controller puts on each pod: the template
/// revision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The registry container's name in the pod template.
pub const CONTAINER: &str = "registry";

/// Pods of this cluster's StatefulSet (by name: `<cluster>-<ordinal>`).
/// `node_ids`: the Raft id each pod's registry reported, by pod name.
pub fn pod_views(
    cluster: &ValidCluster,
    set: Option<&StatefulSet>,
    pods: &[Pod],
    node_ids: &BTreeMap<String, u64>,
) -> Vec<PodView> {
    let update_revision = set
        .and_then(|set| set.status.as_ref())
        .and_then(|status| status.update_revision.clone());
    let mut views: Vec<PodView> = pods
        .iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.clone()?;
            let ordinal = ordinal_of(cluster, &name)?;
            let status = pod.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
            let running = status
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|statuses| {
                    statuses.iter().any(|c| {
                        c.name == CONTAINER
                            && c.state
                                .as_ref()
                                .is_some_and(|state| state.running.is_some())
                    })
                });
            let revision = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(REVISION_LABEL));
            // Without both revisions nothing can be called outdated.
            let current = match (&update_revision, revision) {
                (Some(wanted), Some(has)) => wanted == has,
                _ => true,
            };
            Some(PodView {
                node_id: node_ids.get(&name).copied(),
                name,
                ordinal,
                running,
                ready,
                terminating: pod.metadata.deletion_timestamp.is_some(),
                current,
            })
        })
        .collect();
    views.sort_by_key(|pod| pod.ordinal);
    views
}

pub fn member_views(cluster: &ValidCluster, list: &MemberList) -> Vec<MemberView> {
    list.members
        .iter()
        .map(|member| MemberView {
            name: member.name.clone(),
            ordinal: ordinal_of(cluster, &member.name),
            id: member.id,
            role: member.role,
            is_leader: member.is_leader,
            lag: member.lag,
        })
        .collect()
}
