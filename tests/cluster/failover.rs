//! Killing the leader: a new one takes over, the old one catches up.

use std::time::{Duration, Instant};

use muster_types::cluster::NodeRole;

use crate::util::{Cluster, ELECTION_MS, Options, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_elects_new_leader_and_old_one_catches_up() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();
    let old = cluster.leader().await;
    let old_status = api.status(&cluster.nodes[old].client_url()).await.unwrap();
    api.put_ok(&cluster.nodes[old].client_url(), "f/before", "1")
        .await;

    cluster.nodes[old].kill9();
    let killed_at = Instant::now();
    let survivors = cluster.running_urls();
    assert_eq!(survivors.len(), 2);

    // A write through the survivors succeeds within ~5 election timeouts.
    let budget = Duration::from_millis(ELECTION_MS * 5) + Duration::from_secs(1);
    let first = api.put_any(&survivors, "f/during-0", "d0", budget).await;
    assert!(
        killed_at.elapsed() <= budget,
        "first write after the kill took {:?}",
        killed_at.elapsed()
    );
    let new = cluster.leader().await;
    assert_ne!(new, old, "the killed node cannot lead");
    let new_status = api.status(&cluster.nodes[new].client_url()).await.unwrap();
    assert_eq!(new_status.role, NodeRole::Leader);
    assert!(
        new_status.term > old_status.term,
        "term {} after {}",
        new_status.term,
        old_status.term
    );

    let mut written = vec![("f/during-0".to_owned(), "d0".to_owned(), first.revision)];
    for i in 1..20 {
        let (key, value) = (format!("f/during-{i}"), format!("d{i}"));
        let put = api.put_any(&survivors, &key, &value, budget).await;
        written.push((key, value, put.revision));
    }

    cluster.nodes[old].start();
    let url = cluster.nodes[old].client_url();
    wait_until(
        Duration::from_secs(15),
        "the restarted node to hold every key written while it was down",
        async || {
            for (key, _, _) in &written {
                if !matches!(api.kv(&url, key, true).await, Ok(Some(_))) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for (key, value, revision) in &written {
        let kv = api.kv(&url, key, true).await.unwrap().unwrap();
        assert_eq!(kv.value.as_bytes(), value.as_bytes(), "{key}");
        assert_eq!(kv.mod_revision, *revision, "{key}");
    }
    let before = api.kv(&url, "f/before", true).await.unwrap().unwrap();
    assert_eq!(before.value.as_bytes(), b"1");
    // It rejoined as a follower of the new leader.
    let status = api.status(&url).await.unwrap();
    assert_eq!(status.role, NodeRole::Follower);
    assert_eq!(status.id, old_status.id, "a restart keeps the id");
    cluster.wait_healthy(3, Duration::from_secs(10)).await;
}
