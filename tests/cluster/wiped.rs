//! A listed node whose data directory was wiped comes back under a new id
//! and replaces its old self.

use std::time::Duration;

use muster_types::cluster::MemberRole;

use crate::util::{Cluster, Options, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_follower_rejoins_with_a_new_id() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();
    let leader = cluster.leader().await;
    let victim = cluster.others(leader)[0];
    let victim_url = cluster.nodes[victim].client_url();
    let leader_url = cluster.nodes[leader].client_url();
    let old = api.status(&victim_url).await.unwrap();

    let urls = cluster.urls();
    for i in 0..10 {
        api.put_ok(&urls[i % 3], &format!("x/{i}"), &format!("v{i}"))
            .await;
    }
    cluster.nodes[victim].kill9();
    cluster.nodes[victim].wipe();
    assert!(!cluster.nodes[victim].data_dir().exists());
    for i in 10..20 {
        api.put_ok(&leader_url, &format!("x/{i}"), &format!("v{i}"))
            .await;
    }
    cluster.nodes[victim].start();

    wait_until(
        Duration::from_secs(20),
        "the wiped node to be a voter under a new id, its old id gone",
        async || {
            let Ok(status) = api.status(&victim_url).await else {
                return false;
            };
            let Ok(list) = api.members(&leader_url).await else {
                return false;
            };
            status.id != old.id
                && list.members.len() == 3
                && list.members.iter().all(|m| m.id != old.id)
                && list
                    .members
                    .iter()
                    .any(|m| m.id == status.id && m.role == MemberRole::Voter)
        },
    )
    .await;
    let new = api.status(&victim_url).await.unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(new.name, old.name);
    assert_eq!(new.cluster_id, old.cluster_id, "it joined the same cluster");

    cluster.wait_healthy(3, Duration::from_secs(10)).await;
    let revision = cluster.wait_converged(Duration::from_secs(10)).await;
    assert_eq!(api.status(&victim_url).await.unwrap().revision, revision);
    let kvs = api.list_all(&victim_url, "x/").await.unwrap();
    assert_eq!(kvs.len(), 20);
    for kv in &kvs {
        let i: usize = kv.key["x/".len()..].parse().unwrap();
        assert_eq!(kv.value.as_bytes(), format!("v{i}").as_bytes());
    }
    // Every member agrees on the three members.
    for url in cluster.urls() {
        let list = api.members(&url).await.unwrap();
        let mut ids: Vec<u64> = list.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        assert_eq!(ids.len(), 3, "on {url}: {list:?}");
        assert!(!ids.contains(&old.id), "old id still listed on {url}");
        assert!(ids.contains(&new.id), "new id missing on {url}");
    }
}
