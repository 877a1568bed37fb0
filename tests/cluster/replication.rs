//! Writes through any member are replicated to all of them.

use std::time::Duration;

use crate::util::{Cluster, Options, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_node_reach_every_node() {
    let cluster = Cluster::start(3, Options::default()).await;
    let api = &cluster.api;
    let leader = cluster.leader().await;
    let urls = cluster.urls();

    // Three writes through each node: followers forward to the leader.
    let mut written = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        for j in 0..3 {
            let key = format!("r/{i}-{j}");
            let value = format!("from-n{}-{j}", i + 1);
            let put = api.put_ok(url, &key, &value).await;
            written.push((key, value, put.revision));
        }
    }
    // Each acknowledged write got its own, increasing revision.
    for pair in written.windows(2) {
        assert!(
            pair[0].2 < pair[1].2,
            "revisions not increasing: {written:?}"
        );
    }

    for url in &urls {
        wait_until(
            Duration::from_secs(5),
            &format!("every write visible on {url}"),
            async || {
                for (key, _, _) in &written {
                    if !matches!(api.kv(url, key, true).await, Ok(Some(_))) {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        for (key, value, revision) in &written {
            let kv = api.kv(url, key, true).await.unwrap().unwrap();
            assert_eq!(kv.value.as_bytes(), value.as_bytes(), "{key} on {url}");
            assert_eq!(kv.mod_revision, *revision, "{key} on {url}");
            assert_eq!(kv.create_revision, *revision, "{key} on {url}");
            assert_eq!(kv.version, 1, "{key} on {url}");
        }
    }

    // A linearizable read on one follower right after a write through the
    // other sees the write, every time.
    let followers = cluster.others(leader);
    let (writer, reader) = (&urls[followers[0]], &urls[followers[1]]);
    for round in 0..20 {
        let value = format!("v{round}");
        let put = api.put_ok(writer, "r/linear", &value).await;
        let kv = api
            .kv(reader, "r/linear", false)
            .await
            .unwrap()
            .expect("r/linear present");
        assert_eq!(kv.value.as_bytes(), value.as_bytes(), "round {round}");
        assert_eq!(kv.mod_revision, put.revision, "round {round}");
        assert_eq!(kv.version, round + 1, "round {round}");
    }
}
