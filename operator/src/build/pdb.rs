//! The PodDisruptionBudget that keeps a quorum through voluntary
//! disruptions (node drains, cluster upgrades).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Shape, owned_meta, selector_labels};
use crate::validate::ValidCluster;

/// Votes needed to commit among `members` voters.
pub fn quorum(members: i32) -> i32 {
    members / 2 + 1
}

/// At least a quorum of the pods that exist stays up; with a single member
/// that is the member itself, so it is never evicted voluntarily.
pub fn pod_disruption_budget(cluster: &ValidCluster, shape: Shape) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(cluster, cluster.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum(shape.pods.max(1)))),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
