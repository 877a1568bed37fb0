//! Acknowledged writes survive SIGKILLs of any node, the leader included,
//! and of the whole cluster at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::util::{Api, Cluster, Options, wait_until};

/// Writes `d/<i>` = `v<i>` in order through whichever node answers, until
/// told to stop or `max` keys; returns the acknowledged ones.
async fn writer(
    api: Api,
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    max: usize,
) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    let mut target = 0usize;
    for i in 0..max {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (key, value) = (format!("d/{i:05}"), format!("v{i}"));
        // A few attempts on successive nodes; an unacknowledged write may
        // or may not have been applied, so it is simply not counted.
        for _ in 0..6 {
            let url = &urls[target % urls.len()];
            match api.put(url, &key, value.as_str(), "").await {
                Ok(answer) if answer.status == 200 => {
                    acked.insert(key.clone(), value.clone());
                    break;
                }
                _ => {
                    target += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    acked
}

/// Every acknowledged key is on every running node with its value.
async fn check_all(cluster: &Cluster, acked: &BTreeMap<String, String>) {
    cluster.wait_converged(Duration::from_secs(15)).await;
    for url in cluster.running_urls() {
        let kvs = cluster.api.list_all(&url, "d/").await.unwrap();
        let present: BTreeMap<String, Vec<u8>> = kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value.into_vec()))
            .collect();
        for (key, value) in acked {
            assert_eq!(
                present.get(key).map(Vec::as_slice),
                Some(value.as_bytes()),
                "acknowledged {key} missing or wrong on {url}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kills() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(writer(
        cluster.api.clone(),
        cluster.urls(),
        stop.clone(),
        20_000,
    ));

    // Kill -9 and restart one node at a time: leader, follower, leader, follower.
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = cluster.leader().await;
        let victim = if round % 2 == 0 {
            leader
        } else {
            cluster.others(leader)[0]
        };
        cluster.nodes[victim].kill9();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.nodes[victim].start();
        cluster.wait_healthy(3, Duration::from_secs(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let acked = task.await.expect("the writer task");
    eprintln!("{} writes acknowledged across the kills", acked.len());
    assert!(
        acked.len() >= 50,
        "only {} writes were acknowledged",
        acked.len()
    );
    check_all(&cluster, &acked).await;

    // The whole cluster at once.
    for node in &mut cluster.nodes {
        node.kill9();
    }
    for node in &mut cluster.nodes {
        node.start();
    }
    cluster.wait_healthy(3, Duration::from_secs(20)).await;
    check_all(&cluster, &acked).await;
    // And it still takes writes.
    let urls = cluster.urls();
    cluster
        .api
        .put_any(&urls, "d/after", "x", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_kill_keeps_acknowledged_writes() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(writer(
        cluster.api.clone(),
        cluster.urls(),
        stop.clone(),
        20_000,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // All three die while writes are in flight.
    for node in &mut cluster.nodes {
        node.kill9();
    }
    stop.store(true, Ordering::SeqCst);
    let acked = task.await.expect("the writer task");
    eprintln!("{} writes acknowledged before the full kill", acked.len());
    assert!(!acked.is_empty(), "nothing was acknowledged");
    for node in &mut cluster.nodes {
        node.start();
    }
    cluster.wait_healthy(3, Duration::from_secs(20)).await;
    check_all(&cluster, &acked).await;
    let api = &cluster.api;
    let url = cluster.nodes[0].client_url();
    wait_until(Duration::from_secs(5), "a linearizable read", async || {
        api.kv(&url, acked.keys().next_back().unwrap(), false)
            .await
            .is_ok_and(|kv| kv.is_some())
    })
    .await;
}
