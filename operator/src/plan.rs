//! What to do next with a cluster's membership and pods: one safe step per
//! reconcile, chosen from what was observed. Pure, so every rule is tested
//! without an API server.
//!
//! The rules, in order:
//! 1. No StatefulSet yet: create it (the first pod initializes the cluster,
//!    unless status says it was initialized already).
//! 2. Without an answer from the registry nothing changes.
//! 3. A pod that came back with an empty volume (a new Raft id) joins as a
//!    learner that replaces its old member; a learner is promoted once its
//!    pod is ready (caught up), and promoting a replacement removes the old
//!    member in the same membership change.
//! 4. An outdated pod that is unhealthy anyway is restarted first.
//! 5. Every other change waits until every member is healthy: with all
//!    voters healthy, changing one member at a time never loses a quorum.
//! 6. Scaling, one member at a time: up = grow the StatefulSet by one pod,
//!    add that pod as a learner, promote it (3); down = remove the highest
//!    member from the Raft membership first (handing leadership away if it
//!    leads), then shrink the StatefulSet.
//! 7. Upgrades: outdated followers (highest ordinal first), then the leader
//!    after leadership is handed to an up-to-date member.

use std::fmt;

use muster_types::cluster::MemberRole;

use crate::build::{ClusterState, Shape};

/// A learner lagging more than this many entries is not promoted (the
/// registry's own bar).
pub const CAUGHT_UP_LAG: u64 = 100;

/// One pod of the StatefulSet, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub ordinal: i32,
    /// The registry container runs (it may not be ready yet).
    pub running: bool,
    /// The pod's Ready condition: `/readyz` passes.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Made from the StatefulSet's latest template.
    pub current: bool,
    /// The Raft id the pod's registry reports (`None`: it did not answer).
    /// It differs from its member's id when the pod came back with an
    /// empty volume.
    pub node_id: Option<u64>,
}

/// One Raft member, as the registry reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    /// The ordinal of the pod it is named after (`None`: not one of ours).
    pub ordinal: Option<i32>,
    pub id: u64,
    pub role: MemberRole,
    pub is_leader: bool,
    /// Entries behind the leader (known when the leader answered).
    pub lag: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `spec.replicas`.
    pub desired: i32,
    /// The StatefulSet's replicas; `None` before it exists.
    pub set_pods: Option<i32>,
    /// Status says the cluster was initialized.
    pub bootstrapped: bool,
    pub pods: Vec<PodView>,
    /// `None` when no member answered.
    pub members: Option<Vec<MemberView>>,
}

impl Observed {
    fn pod(&self, name: &str) -> Option<&PodView> {
        self.pods.iter().find(|pod| pod.name == name)
    }

    /// Its pod is up, ready, staying, and it keeps up with the leader.
    pub fn member_healthy(&self, member: &MemberView) -> bool {
        let pod_ok = self
            .pod(&member.name)
            .is_some_and(|pod| pod.ready && !pod.terminating);
        pod_ok && member.lag.is_none_or(|lag| lag <= CAUGHT_UP_LAG)
    }
}

/// Why nothing changes this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The first members are starting and electing a leader.
    Forming,
    /// No member answered.
    RegistryUnreachable,
    /// A member is not healthy: no change may start.
    MemberUnhealthy,
    /// A new pod is starting before it can be added.
    PodStarting,
    /// A learner is catching up before it can be promoted.
    CatchingUp,
    /// A pod is being replaced.
    PodRestarting,
}

impl WaitReason {
    /// The condition reason (CamelCase).
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Forming => "Forming",
            WaitReason::RegistryUnreachable => "RegistryUnreachable",
            WaitReason::MemberUnhealthy => "MemberUnhealthy",
            WaitReason::PodStarting => "PodStarting",
            WaitReason::CatchingUp => "CatchingUp",
            WaitReason::PodRestarting => "PodRestarting",
        }
    }

    /// Waiting for this is a problem (Degraded), not just progress.
    pub fn is_degraded(self) -> bool {
        matches!(
            self,
            WaitReason::RegistryUnreachable | WaitReason::MemberUnhealthy
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create the StatefulSet.
    Create,
    /// Nothing to do.
    Steady,
    Wait {
        reason: WaitReason,
        message: String,
    },
    /// Grow the StatefulSet by one pod (already in the shape).
    GrowSet {
        pod: String,
    },
    AddLearner {
        pod: String,
    },
    Promote {
        member: String,
    },
    /// Remove from the membership, then shrink the StatefulSet (the shape).
    RemoveMember {
        member: String,
    },
    /// The member's pod came back with an empty volume under a new Raft
    /// id: add it as a learner that replaces the old member when promoted.
    ReplaceMember {
        member: String,
        old_id: u64,
        new_id: u64,
    },
    /// Shrink the StatefulSet to the members (pods that never joined).
    ShrinkSet {
        pods: i32,
    },
    TransferLeader {
        from: String,
        to: String,
    },
    /// Delete the pod so the StatefulSet recreates it from the new template.
    RestartPod {
        pod: String,
        why: RestartWhy,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartWhy {
    Unhealthy,
    Follower,
    Leader,
}

impl fmt::Display for RestartWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartWhy::Unhealthy => "an outdated pod that is unhealthy anyway",
            RestartWhy::Follower => "an outdated follower",
            RestartWhy::Leader => "the outdated former leader",
        })
    }
}

impl Step {
    /// Whether this step changes something (vs. waiting or steady).
    pub fn acts(&self) -> bool {
        !matches!(self, Step::Steady | Step::Wait { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub shape: Shape,
    pub step: Step,
}

fn wait(shape: Shape, reason: WaitReason, message: impl Into<String>) -> Plan {
    Plan {
        shape,
        step: Step::Wait {
            reason,
            message: message.into(),
        },
    }
}

/// Decides the next step. `pod_name(ordinal)` names the cluster's pods.
pub fn plan(observed: &Observed, pod_name: impl Fn(i32) -> String) -> Plan {
    let Some(set_pods) = observed.set_pods else {
        let cluster_state = if observed.bootstrapped {
            ClusterState::Existing
        } else {
            ClusterState::New
        };
        return Plan {
            shape: Shape {
                pods: observed.desired,
                cluster_state,
            },
            step: Step::Create,
        };
    };
    let members = observed.members.as_deref().unwrap_or_default();
    let formed = !members.is_empty();
    let shape = Shape {
        pods: set_pods,
        cluster_state: if observed.bootstrapped || formed {
            ClusterState::Existing
        } else {
            ClusterState::New
        },
    };
    if !formed {
        return if observed.bootstrapped {
            wait(shape, WaitReason::RegistryUnreachable, "no member answers")
        } else {
            wait(
                shape,
                WaitReason::Forming,
                "waiting for the first members to form the cluster",
            )
        };
    }
    if let Some(pod) = observed.pods.iter().find(|pod| pod.terminating) {
        return wait(
            shape,
            WaitReason::PodRestarting,
            format!("waiting for {} to be replaced", pod.name),
        );
    }
    // 3a. A member whose pod runs under another Raft id lost its volume:
    // its old self never comes back. The pod joins as a learner next to it
    // (a replacement); 3b promotes it once caught up, which removes the old
    // member in the same change, so the cluster is never a voter short.
    if let Some((member, new_id)) = members.iter().find_map(|member| {
        let new_id = observed.pod(&member.name)?.node_id?;
        let replaced = new_id != member.id && !members.iter().any(|m| m.id == new_id);
        replaced.then_some((member, new_id))
    }) {
        let others_unhealthy: Vec<&str> = members
            .iter()
            .filter(|m| m.name != member.name && !observed.member_healthy(m))
            .map(|m| m.name.as_str())
            .collect();
        return if others_unhealthy.is_empty() {
            Plan {
                shape,
                step: Step::ReplaceMember {
                    member: member.name.clone(),
                    old_id: member.id,
                    new_id,
                },
            }
        } else {
            wait(
                shape,
                WaitReason::MemberUnhealthy,
                format!(
                    "{} lost its volume; waiting for {} to be healthy before replacing it",
                    member.name,
                    others_unhealthy.join(", ")
                ),
            )
        };
    }
    // 3b. Learners: a half-finished scale-up is finished.
    if let Some(learner) = members.iter().find(|m| m.role == MemberRole::Learner) {
        return if observed.member_healthy(learner) {
            Plan {
                shape,
                step: Step::Promote {
                    member: learner.name.clone(),
                },
            }
        } else {
            wait(
                shape,
                WaitReason::CatchingUp,
                format!("learner {} is catching up", learner.name),
            )
        };
    }
    // 4. Restarting an outdated pod that is down anyway costs nothing.
    let member_names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if let Some(pod) = observed
        .pods
        .iter()
        .filter(|pod| !pod.current && !pod.ready && member_names.contains(&pod.name.as_str()))
        .max_by_key(|pod| pod.ordinal)
    {
        return Plan {
            shape,
            step: Step::RestartPod {
                pod: pod.name.clone(),
                why: RestartWhy::Unhealthy,
            },
        };
    }
    // 5. Every other change needs every member healthy.
    let unhealthy: Vec<&str> = members
        .iter()
        .filter(|m| !observed.member_healthy(m))
        .map(|m| m.name.as_str())
        .collect();
    if !unhealthy.is_empty() {
        return wait(
            shape,
            WaitReason::MemberUnhealthy,
            format!(
                "waiting for {} to be healthy before any change",
                unhealthy.join(", ")
            ),
        );
    }
    let voters = members.len() as i32;
    if voters < observed.desired {
        return scale_up(observed, shape, members, &pod_name);
    }
    if voters > observed.desired {
        return scale_down(shape, members);
    }
    // Pods beyond the members never joined (a scale-up that was reverted).
    let highest_member = members.iter().filter_map(|m| m.ordinal).max().unwrap_or(-1);
    if set_pods > highest_member + 1 && highest_member + 1 == voters {
        return Plan {
            shape: Shape {
                pods: voters,
                ..shape
            },
            step: Step::ShrinkSet { pods: voters },
        };
    }
    upgrade(observed, shape, members)
}

fn scale_up(
    observed: &Observed,
    shape: Shape,
    members: &[MemberView],
    pod_name: &impl Fn(i32) -> String,
) -> Plan {
    let next = (0..)
        .find(|ordinal| !members.iter().any(|m| m.name == pod_name(*ordinal)))
        .unwrap_or_default();
    let name = pod_name(next);
    if shape.pods <= next {
        return Plan {
            shape: Shape {
                pods: next + 1,
                ..shape
            },
            step: Step::GrowSet { pod: name },
        };
    }
    match observed.pod(&name) {
        Some(pod) if pod.running => Plan {
            shape,
            step: Step::AddLearner { pod: name },
        },
        _ => wait(
            shape,
            WaitReason::PodStarting,
            format!("waiting for pod {name} to start before adding it"),
        ),
    }
}

/// Only called with every member healthy, so removing one voter keeps a
/// quorum of healthy voters.
fn scale_down(shape: Shape, members: &[MemberView]) -> Plan {
    let Some(victim) = members.iter().max_by_key(|m| m.ordinal) else {
        return Plan {
            shape,
            step: Step::Steady,
        };
    };
    if victim.is_leader {
        let to = members
            .iter()
            .filter(|m| m.name != victim.name && m.ordinal.is_some())
            .min_by_key(|m| m.ordinal);
        if let Some(to) = to {
            return Plan {
                shape,
                step: Step::TransferLeader {
                    from: victim.name.clone(),
                    to: to.name.clone(),
                },
            };
        }
    }
    let pods = victim.ordinal.unwrap_or(shape.pods - 1).min(shape.pods);
    Plan {
        shape: Shape { pods, ..shape },
        step: Step::RemoveMember {
            member: victim.name.clone(),
        },
    }
}

fn upgrade(observed: &Observed, shape: Shape, members: &[MemberView]) -> Plan {
    let outdated: Vec<&PodView> = observed.pods.iter().filter(|pod| !pod.current).collect();
    let leader = members.iter().find(|m| m.is_leader);
    let is_leader = |pod: &PodView| leader.is_some_and(|l| l.name == pod.name);
    if let Some(follower) = outdated
        .iter()
        .filter(|pod| !is_leader(pod))
        .max_by_key(|pod| pod.ordinal)
    {
        return Plan {
            shape,
            step: Step::RestartPod {
                pod: follower.name.clone(),
                why: RestartWhy::Follower,
            },
        };
    }
    let Some(leader_pod) = outdated.first() else {
        return Plan {
            shape,
            step: Step::Steady,
        };
    };
    // Only the leader is left: hand leadership to an up-to-date voter
    // first, unless it is alone.
    let successor = members
        .iter()
        .filter(|m| m.name != leader_pod.name && m.role == MemberRole::Voter)
        .find(|m| observed.pod(&m.name).is_some_and(|pod| pod.current));
    match successor {
        Some(to) => Plan {
            shape,
            step: Step::TransferLeader {
                from: leader_pod.name.clone(),
                to: to.name.clone(),
            },
        },
        None => Plan {
            shape,
            step: Step::RestartPod {
                pod: leader_pod.name.clone(),
                why: RestartWhy::Leader,
            },
        },
    }
}
