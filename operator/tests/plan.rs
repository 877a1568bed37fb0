//! The membership and upgrade decisions, rule by rule.

use muster_operator::build::{ClusterState, Shape};
use muster_operator::plan::{MemberView, Observed, PodView, RestartWhy, Step, WaitReason, plan};
use muster_types::cluster::MemberRole;

fn name(ordinal: i32) -> String {
    format!("demo-{ordinal}")
}

fn pod(ordinal: i32) -> PodView {
    PodView {
        name: name(ordinal),
        ordinal,
        running: true,
        ready: true,
        terminating: false,
        current: true,
        node_id: Some(1000 + ordinal as u64),
    }
}

fn voter(ordinal: i32) -> MemberView {
    MemberView {
        name: name(ordinal),
        ordinal: Some(ordinal),
        id: 1000 + ordinal as u64,
        role: MemberRole::Voter,
        is_leader: ordinal == 0,
        lag: Some(0),
    }
}

/// A healthy cluster of `members` voters (demo-0 leads) in a StatefulSet
/// of `members` pods, asked for `desired`.
fn healthy(members: i32, desired: i32) -> Observed {
    Observed {
        desired,
        set_pods: Some(members),
        bootstrapped: true,
        pods: (0..members).map(pod).collect(),
        members: Some((0..members).map(voter).collect()),
    }
}

fn next(observed: &Observed) -> (Shape, Step) {
    let plan = plan(observed, name);
    (plan.shape, plan.step)
}

fn existing(pods: i32) -> Shape {
    Shape {
        pods,
        cluster_state: ClusterState::Existing,
    }
}

fn wait_reason(step: &Step) -> WaitReason {
    match step {
        Step::Wait { reason, .. } => *reason,
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn a_new_cluster_is_created_with_every_pod_in_new_state() {
    let observed = Observed {
        desired: 3,
        set_pods: None,
        bootstrapped: false,
        pods: vec![],
        members: None,
    };
    let (shape, step) = next(&observed);
    assert_eq!(step, Step::Create);
    assert_eq!(
        shape,
        Shape {
            pods: 3,
            cluster_state: ClusterState::New
        }
    );
}

#[test]
fn a_cluster_status_calls_initialized_is_never_initialized_again() {
    // The StatefulSet was deleted by hand; the volumes are still there.
    let observed = Observed {
        desired: 3,
        set_pods: None,
        bootstrapped: true,
        pods: vec![],
        members: None,
    };
    assert_eq!(next(&observed).0, existing(3));
    let unreachable = Observed {
        members: None,
        ..healthy(3, 3)
    };
    let (shape, step) = next(&unreachable);
    assert_eq!(shape, existing(3));
    assert_eq!(wait_reason(&step), WaitReason::RegistryUnreachable);
}

#[test]
fn a_forming_cluster_waits_in_new_state() {
    let observed = Observed {
        bootstrapped: false,
        members: Some(vec![]),
        ..healthy(3, 3)
    };
    let (shape, step) = next(&observed);
    assert_eq!(shape.cluster_state, ClusterState::New);
    assert_eq!(wait_reason(&step), WaitReason::Forming);
    // Once members answer, the state is existing even before status says so.
    let formed = Observed {
        bootstrapped: false,
        ..healthy(3, 3)
    };
    assert_eq!(next(&formed), (existing(3), Step::Steady));
}

#[test]
fn scale_up_grows_one_pod_adds_it_as_learner_then_promotes_it() {
    let mut observed = healthy(3, 5);
    assert_eq!(
        next(&observed),
        (
            existing(4),
            Step::GrowSet {
                pod: "demo-3".into()
            }
        )
    );

    observed.set_pods = Some(4);
    observed.pods.push(PodView {
        running: false,
        ready: false,
        ..pod(3)
    });
    let (shape, step) = next(&observed);
    assert_eq!(shape, existing(4));
    assert_eq!(wait_reason(&step), WaitReason::PodStarting);

    observed.pods[3].running = true;
    assert_eq!(
        next(&observed),
        (
            existing(4),
            Step::AddLearner {
                pod: "demo-3".into()
            }
        )
    );

    observed.members.as_mut().unwrap().push(MemberView {
        role: MemberRole::Learner,
        lag: Some(5000),
        ..voter(3)
    });
    assert_eq!(wait_reason(&next(&observed).1), WaitReason::CatchingUp);

    observed.pods[3].ready = true;
    observed.members.as_mut().unwrap()[3].lag = Some(3);
    assert_eq!(
        next(&observed),
        (
            existing(4),
            Step::Promote {
                member: "demo-3".into()
            }
        )
    );

    observed.members.as_mut().unwrap()[3].role = MemberRole::Voter;
    assert_eq!(
        next(&observed),
        (
            existing(5),
            Step::GrowSet {
                pod: "demo-4".into()
            }
        )
    );
}

#[test]
fn no_change_starts_while_a_member_is_unhealthy() {
    for desired in [1, 5] {
        let mut observed = healthy(3, desired);
        observed.pods[2].ready = false;
        let (shape, step) = next(&observed);
        assert_eq!(shape, existing(3), "the StatefulSet keeps its size");
        assert_eq!(wait_reason(&step), WaitReason::MemberUnhealthy);
        let Step::Wait { message, .. } = step else {
            unreachable!()
        };
        assert!(message.contains("demo-2"), "{message}");
    }
    // A lagging member is unhealthy too.
    let mut lagging = healthy(3, 5);
    lagging.members.as_mut().unwrap()[1].lag = Some(10_000);
    assert_eq!(wait_reason(&next(&lagging).1), WaitReason::MemberUnhealthy);
}

#[test]
fn scale_down_removes_the_highest_member_before_shrinking() {
    let observed = healthy(5, 3);
    assert_eq!(
        next(&observed),
        (
            existing(4),
            Step::RemoveMember {
                member: "demo-4".into()
            }
        )
    );
    let after = Observed {
        set_pods: Some(4),
        pods: (0..4).map(pod).collect(),
        members: Some((0..4).map(voter).collect()),
        ..observed
    };
    assert_eq!(
        next(&after),
        (
            existing(3),
            Step::RemoveMember {
                member: "demo-3".into()
            }
        )
    );
}

#[test]
fn scale_down_hands_leadership_away_from_the_member_it_removes() {
    let mut observed = healthy(3, 1);
    for member in observed.members.as_mut().unwrap() {
        member.is_leader = member.name == "demo-2";
    }
    assert_eq!(
        next(&observed),
        (
            existing(3),
            Step::TransferLeader {
                from: "demo-2".into(),
                to: "demo-0".into()
            }
        )
    );
}

#[test]
fn pods_that_never_joined_are_removed_from_the_stateful_set() {
    let mut observed = healthy(3, 3);
    observed.set_pods = Some(4);
    observed.pods.push(PodView {
        ready: false,
        ..pod(3)
    });
    assert_eq!(next(&observed), (existing(3), Step::ShrinkSet { pods: 3 }));
}

#[test]
fn upgrade_restarts_followers_highest_first_and_the_leader_last() {
    let mut observed = healthy(3, 3);
    for pod in &mut observed.pods {
        pod.current = false;
    }
    let restart = |pod: &str, why| Step::RestartPod {
        pod: pod.into(),
        why,
    };
    assert_eq!(next(&observed).1, restart("demo-2", RestartWhy::Follower));

    // The restarted pod is on its way: wait for it.
    observed.pods[2].terminating = true;
    assert_eq!(wait_reason(&next(&observed).1), WaitReason::PodRestarting);
    // Back, new, but not ready yet: still waits (cluster health gates).
    observed.pods[2] = PodView {
        ready: false,
        ..pod(2)
    };
    assert_eq!(wait_reason(&next(&observed).1), WaitReason::MemberUnhealthy);
    observed.pods[2].ready = true;
    assert_eq!(next(&observed).1, restart("demo-1", RestartWhy::Follower));

    observed.pods[1] = pod(1);
    assert_eq!(
        next(&observed).1,
        Step::TransferLeader {
            from: "demo-0".into(),
            to: "demo-1".into()
        }
    );
    for member in observed.members.as_mut().unwrap() {
        member.is_leader = member.name == "demo-1";
    }
    assert_eq!(next(&observed).1, restart("demo-0", RestartWhy::Follower));
    observed.pods[0] = pod(0);
    assert_eq!(next(&observed).1, Step::Steady);
}

#[test]
fn an_outdated_unhealthy_pod_is_restarted_first() {
    let mut observed = healthy(3, 3);
    for pod in &mut observed.pods {
        pod.current = false;
    }
    observed.pods[1].ready = false;
    assert_eq!(
        next(&observed).1,
        Step::RestartPod {
            pod: "demo-1".into(),
            why: RestartWhy::Unhealthy
        }
    );
}

#[test]
fn a_single_member_is_restarted_in_place() {
    let mut observed = healthy(1, 1);
    observed.pods[0].current = false;
    assert_eq!(
        next(&observed).1,
        Step::RestartPod {
            pod: "demo-0".into(),
            why: RestartWhy::Leader
        }
    );
}

#[test]
fn a_member_back_with_an_empty_volume_joins_as_its_replacement_then_is_promoted() {
    let mut observed = healthy(5, 5);
    // demo-3's pod restarted on an empty volume: a new id, not a member.
    observed.pods[3] = PodView {
        ready: false,
        node_id: Some(9999),
        ..pod(3)
    };
    assert_eq!(
        next(&observed),
        (
            existing(5),
            Step::ReplaceMember {
                member: "demo-3".into(),
                old_id: 1003,
                new_id: 9999
            }
        )
    );
    // Added as a learner next to its old self: it catches up first...
    observed.members.as_mut().unwrap().push(MemberView {
        id: 9999,
        role: MemberRole::Learner,
        lag: Some(5000),
        ..voter(3)
    });
    let (shape, step) = next(&observed);
    assert_eq!(shape, existing(5));
    assert_eq!(wait_reason(&step), WaitReason::CatchingUp);
    // ...then is promoted, which replaces the old member.
    observed.pods[3].ready = true;
    observed.members.as_mut().unwrap()[5].lag = Some(0);
    assert_eq!(
        next(&observed),
        (
            existing(5),
            Step::Promote {
                member: "demo-3".into()
            }
        )
    );
}

#[test]
fn a_replacement_waits_for_the_other_members() {
    let mut observed = healthy(3, 3);
    observed.pods[2] = PodView {
        ready: false,
        node_id: Some(9999),
        ..pod(2)
    };
    observed.pods[1].ready = false;
    let (shape, step) = next(&observed);
    assert_eq!(shape, existing(3));
    assert_eq!(wait_reason(&step), WaitReason::MemberUnhealthy);
    // A pod that did not answer is not taken for a replaced one.
    let mut silent = healthy(3, 3);
    silent.pods[2].node_id = None;
    assert_eq!(next(&silent).1, Step::Steady);
}
