//! Step 4 of the reconcile: the status, computed from what was applied and
//! observed. Conditions keep their transition time while they hold.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use muster_types::cluster::MemberRole as WireRole;

use crate::apply::Applied;
use crate::build::{quorum, selector_string};
use crate::crd::{MemberRole, MemberStatus, RegistryClusterStatus};
use crate::plan::{Observed, Plan, Step};
use crate::validate::{InvalidSpec, ValidCluster};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// One condition before its transition time is settled.
struct Wanted {
    type_: &'static str,
    holds: bool,
    reason: String,
    message: String,
}

fn conditions(
    wanted: Vec<Wanted>,
    previous: Option<&RegistryClusterStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .into_iter()
        .map(|w| {
            let status = if w.holds { "True" } else { "False" }.to_string();
            let before = previous
                .into_iter()
                .flat_map(|p| p.conditions.iter())
                .find(|c| c.type_ == w.type_);
            let last_transition_time = match before {
                Some(before) if before.status == status => before.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: w.type_.to_string(),
                status,
                reason: w.reason,
                message: w.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// What a step is doing, as a condition reason.
fn progress_reason(step: &Step) -> Option<(&'static str, String)> {
    Some(match step {
        Step::Create => ("Creating", "creating the StatefulSet".to_string()),
        Step::GrowSet { pod } => ("ScalingUp", format!("creating pod {pod}")),
        Step::AddLearner { pod } => ("ScalingUp", format!("adding {pod} as a learner")),
        Step::Promote { member } => ("ScalingUp", format!("promoting {member} to voter")),
        Step::RemoveMember { member } => ("ScalingDown", format!("removing member {member}")),
        Step::ReplaceMember { member, .. } => (
            "ReplacingMember",
            format!("{member} lost its volume; its new self catches up to replace it"),
        ),
        Step::ShrinkSet { pods } => ("ScalingDown", format!("shrinking to {pods} pods")),
        Step::TransferLeader { from, to } => (
            "TransferringLeadership",
            format!("handing leadership from {from} to {to}"),
        ),
        Step::RestartPod { pod, why } => ("Upgrading", format!("restarting {pod}, {why}")),
        Step::Wait { reason, message } if !reason.is_degraded() => {
            (reason.as_str(), message.clone())
        }
        Step::Wait { .. } | Step::Steady => return None,
    })
}

/// `versions`: what each member reported, by name.
pub fn ready_status(
    cluster: &ValidCluster,
    applied: &Applied,
    observed: &Observed,
    plan: &Plan,
    versions: &BTreeMap<String, String>,
    previous: Option<&RegistryClusterStatus>,
    now: Timestamp,
) -> RegistryClusterStatus {
    let members_seen = observed.members.as_deref().unwrap_or_default();
    let members: Vec<MemberStatus> = members_seen
        .iter()
        .map(|m| MemberStatus {
            name: m.name.clone(),
            id: m.id.to_string(),
            role: match m.role {
                WireRole::Voter => MemberRole::Voter,
                WireRole::Learner => MemberRole::Learner,
            },
            healthy: observed.member_healthy(m),
            version: versions.get(&m.name).cloned(),
        })
        .collect();
    let voters: Vec<&MemberStatus> = members
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy).count() as i32;
    let has_quorum = !voters.is_empty() && healthy_voters >= quorum(voters.len() as i32);
    let reported: Vec<&String> = members.iter().filter_map(|m| m.version.as_ref()).collect();
    let current_version = match reported.first() {
        Some(first) if reported.len() == members.len() && reported.iter().all(|v| v == first) => {
            Some((*first).clone())
        }
        _ => None,
    };
    let bootstrapped = previous.is_some_and(|p| p.bootstrapped) || !members_seen.is_empty();
    let available = if has_quorum {
        Wanted {
            type_: AVAILABLE,
            holds: true,
            reason: "QuorumHealthy".into(),
            message: format!("{healthy_voters} of {} voters are healthy", voters.len()),
        }
    } else if !bootstrapped {
        Wanted {
            type_: AVAILABLE,
            holds: false,
            reason: "Forming".into(),
            message: "the cluster has not formed yet".into(),
        }
    } else {
        Wanted {
            type_: AVAILABLE,
            holds: false,
            reason: "NoQuorum".into(),
            message: format!(
                "{healthy_voters} of {} voters are healthy; {} are needed",
                voters.len(),
                quorum(voters.len().max(1) as i32)
            ),
        }
    };
    let progressing = match progress_reason(&plan.step) {
        Some((reason, message)) => Wanted {
            type_: PROGRESSING,
            holds: true,
            reason: reason.into(),
            message,
        },
        None => Wanted {
            type_: PROGRESSING,
            holds: false,
            reason: "Steady".into(),
            message: format!("{} members, as asked", members.len()),
        },
    };
    let unhealthy: Vec<&str> = members
        .iter()
        .filter(|m| !m.healthy)
        .map(|m| m.name.as_str())
        .collect();
    let degraded = match &plan.step {
        Step::Wait { reason, message } if reason.is_degraded() => Wanted {
            type_: DEGRADED,
            holds: true,
            reason: reason.as_str().into(),
            message: message.clone(),
        },
        _ if !unhealthy.is_empty() => Wanted {
            type_: DEGRADED,
            holds: true,
            reason: "MemberUnhealthy".into(),
            message: format!("not healthy: {}", unhealthy.join(", ")),
        },
        _ => Wanted {
            type_: DEGRADED,
            holds: false,
            reason: "Healthy".into(),
            message: "every member is healthy".into(),
        },
    };
    RegistryClusterStatus {
        observed_generation: cluster.generation,
        replicas: applied.shape().pods,
        ready_replicas: observed.pods.iter().filter(|p| p.ready).count() as i32,
        selector: Some(selector_string(cluster)),
        bootstrapped,
        leader: members_seen
            .iter()
            .find(|m| m.is_leader)
            .map(|m| m.name.clone()),
        members,
        current_version,
        conditions: conditions(
            vec![available, progressing, degraded],
            previous,
            cluster.generation,
            now,
        ),
    }
}

/// An invalid spec: everything observed before stays, `Degraded` says why.
pub fn invalid_status(
    error: &InvalidSpec,
    generation: Option<i64>,
    previous: Option<&RegistryClusterStatus>,
    now: Timestamp,
) -> RegistryClusterStatus {
    blocked_status(
        "InvalidSpec",
        "waiting for a valid spec",
        error.to_string(),
        generation,
        previous,
        now,
    )
}

/// The reconcile cannot go on (an invalid spec, an unusable TLS Secret):
/// everything observed before stays, `Progressing` is off with `waiting`,
/// and `Degraded` says why.
pub fn blocked_status(
    reason: &str,
    waiting: &str,
    message: String,
    generation: Option<i64>,
    previous: Option<&RegistryClusterStatus>,
    now: Timestamp,
) -> RegistryClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut wanted: Vec<Wanted> = previous
        .into_iter()
        .flat_map(|p| p.conditions.iter())
        .filter(|c| c.type_ != DEGRADED && c.type_ != PROGRESSING)
        .map(|c| Wanted {
            type_: if c.type_ == AVAILABLE { AVAILABLE } else { "" },
            holds: c.status == "True",
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .filter(|w| !w.type_.is_empty())
        .collect();
    wanted.push(Wanted {
        type_: PROGRESSING,
        holds: false,
        reason: reason.into(),
        message: waiting.into(),
    });
    wanted.push(Wanted {
        type_: DEGRADED,
        holds: true,
        reason: reason.into(),
        message,
    });
    status.observed_generation = generation;
    status.conditions = conditions(wanted, previous, generation, now);
    status
}
