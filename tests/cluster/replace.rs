//! A member whose data was lost comes back under a new id and is added
//! with `replace`: it joins as a learner next to its old self, and
//! promoting it swaps the two in one membership change.

use std::time::Duration;

use muster_types::cluster::{MemberList, MemberRole};
use serde_json::json;

use crate::util::{Cluster, Node, Options, next_port, wait_for, wait_until};

fn named<'a>(list: &'a MemberList, name: &str) -> Vec<&'a muster_types::cluster::Member> {
    list.members.iter().filter(|m| m.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_added_with_replace_takes_its_old_place() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();
    let leader_url = cluster.urls()[0].clone();

    // n4 joins by the API (it is not in --initial-cluster, so only the API
    // brings it in), and becomes a voter.
    let (client, peer) = (next_port(), next_port());
    let mut n4 = Node::with_ports(
        "n4",
        client,
        peer,
        &format!("n4=http://127.0.0.1:{peer}"),
        &["--initial-cluster-state", "existing"],
    );
    n4.start();
    let n4_url = n4.client_url();
    let n4_peer = n4.peer_url();
    wait_until(Duration::from_secs(10), "n4 to answer", async || {
        api.status(&n4_url).await.is_ok()
    })
    .await;
    let add = json!({"name": "n4", "peer_url": n4_peer});
    let added = api
        .post_json(&format!("{leader_url}/v1/cluster/members"), &add)
        .await
        .unwrap();
    assert_eq!(added.status, 201, "{:?}", added.body);
    let old_id = added.body["id"].as_u64().unwrap();
    wait_until(Duration::from_secs(15), "n4 promoted", async || {
        api.post_json(
            &format!("{leader_url}/v1/cluster/members/n4/promote"),
            &json!({}),
        )
        .await
        .is_ok_and(|answer| answer.status == 200)
    })
    .await;

    // Its data is lost: it comes back under a new id, outside the cluster.
    n4.kill9();
    n4.wipe();
    n4.start();
    let new_id = wait_for(
        Duration::from_secs(10),
        "n4 back with a new id",
        async || api.status(&n4_url).await.ok().map(|status| status.id),
    )
    .await;
    assert_ne!(new_id, old_id, "a wiped node never reuses its Raft id");

    // Without `replace` the name is taken.
    let refused = api
        .post_json(&format!("{leader_url}/v1/cluster/members"), &add)
        .await
        .unwrap();
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("replace"),
        "{:?}",
        refused.body
    );

    // With it, the new node joins as a learner next to the old member.
    let replace = json!({"name": "n4", "peer_url": n4_peer, "replace": true});
    let added = api
        .post_json(&format!("{leader_url}/v1/cluster/members"), &replace)
        .await
        .unwrap();
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(added.body["id"].as_u64(), Some(new_id));
    let members = api.members(&leader_url).await.unwrap();
    let both = named(&members, "n4");
    assert_eq!(both.len(), 2, "{members:?}");
    assert!(
        both.iter()
            .any(|m| m.id == old_id && m.role == MemberRole::Voter)
    );
    assert!(
        both.iter()
            .any(|m| m.id == new_id && m.role == MemberRole::Learner)
    );
    // Removing by name alone is ambiguous now.
    let ambiguous = api
        .call(
            reqwest::Method::DELETE,
            &format!("{leader_url}/v1/cluster/members/n4"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ambiguous.status, 409, "{:?}", ambiguous.body);

    // Promoting swaps them: one n4, the new one, a voter; four voters.
    wait_until(
        Duration::from_secs(20),
        "the replacement promoted",
        async || {
            api.post_json(
                &format!("{leader_url}/v1/cluster/members/n4/promote"),
                &json!({}),
            )
            .await
            .is_ok_and(|answer| answer.status == 200)
        },
    )
    .await;
    let members = api.members(&leader_url).await.unwrap();
    let n4s = named(&members, "n4");
    assert_eq!(n4s.len(), 1, "{members:?}");
    assert_eq!(n4s[0].id, new_id);
    assert_eq!(n4s[0].role, MemberRole::Voter);
    assert_eq!(
        members
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .count(),
        4
    );
    cluster.nodes.push(n4);
    let put = api.put_ok(&leader_url, "replaced/k", "v").await;
    let n4_url = cluster.nodes[3].client_url();
    wait_until(
        Duration::from_secs(10),
        "n4 to have the write",
        async || {
            api.get_key(&n4_url, "replaced/k", "consistency=serializable")
                .await
                .is_ok_and(|answer| answer.status == 200)
        },
    )
    .await;
    assert!(put.revision > 0);
}
