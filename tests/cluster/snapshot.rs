//! A follower that missed more than the log keeps catches up through a
//! snapshot.

use std::time::Duration;

use crate::util::{Cluster, Options, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, Options::args(&["--snapshot-every", "20"])).await;
    let api = cluster.api.clone();
    let leader = cluster.leader().await;
    let follower = cluster.others(leader)[0];
    let leader_url = cluster.nodes[leader].client_url();
    let follower_url = cluster.nodes[follower].client_url();

    // A quiet cluster: the follower has everything the leader has.
    let leader_last = api.status(&leader_url).await.unwrap().last_log_index;
    wait_until(
        Duration::from_secs(5),
        "the follower to catch up",
        async || {
            api.status(&follower_url)
                .await
                .is_ok_and(|s| s.last_log_index == leader_last)
        },
    )
    .await;
    let follower_last = api.status(&follower_url).await.unwrap().last_log_index;
    cluster.nodes[follower].kill9();

    for i in 0..200 {
        api.put_ok(&leader_url, &format!("s/{i:03}"), &format!("value-{i}"))
            .await;
    }
    let status = api.status(&leader_url).await.unwrap();
    assert!(
        status.last_log_index >= follower_last + 200,
        "{status:?} vs {follower_last}"
    );
    // Snapshots are taken in the background: wait for one well past what
    // the follower has, which lets the log before it be purged.
    wait_until(
        Duration::from_secs(10),
        "a leader snapshot past the follower's log",
        async || {
            api.status(&leader_url)
                .await
                .is_ok_and(|s| s.snapshot_index.is_some_and(|i| i > follower_last + 20))
        },
    )
    .await;
    let status = api.status(&leader_url).await.unwrap();
    let snapshot_index = status.snapshot_index.expect("a snapshot");
    assert!(snapshot_index > follower_last, "{status:?}");
    assert_eq!(status.keys, 200, "{status:?}");

    cluster.nodes[follower].start();
    wait_until(
        Duration::from_secs(15),
        "the restarted follower to reach the leader's revision",
        async || {
            api.status(&follower_url)
                .await
                .is_ok_and(|s| s.revision == status.revision)
        },
    )
    .await;
    let kvs = api.list_all(&follower_url, "s/").await.unwrap();
    assert_eq!(kvs.len(), 200);
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("s/{i:03}"));
        assert_eq!(kv.value.as_bytes(), format!("value-{i}").as_bytes());
    }
    let leader_kvs = api.list_all(&leader_url, "s/").await.unwrap();
    assert_eq!(kvs, leader_kvs, "follower and leader differ");
    let follower_status = api.status(&follower_url).await.unwrap();
    assert_eq!(follower_status.revision, status.revision);
    assert!(
        follower_status
            .snapshot_index
            .is_some_and(|i| i >= snapshot_index),
        "{follower_status:?}"
    );
    let log = cluster.nodes[follower].last_run_log();
    assert!(
        log.contains("snapshot installed"),
        "no 'snapshot installed' in the follower's log:\n{log}"
    );
}
