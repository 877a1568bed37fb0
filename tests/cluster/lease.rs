//! Leases expire through the log (same revision everywhere) and survive a
//! leader change while kept alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use muster_types::lease::LeaseGrantResponse;
use muster_types::watch::WatchMessage;
use reqwest::Method;
use serde_json::json;

use crate::util::{Api, Cluster, Options, wait_until};

async fn grant(api: &Api, url: &str, ttl: i64) -> LeaseGrantResponse {
    let answer = api
        .post_json(&format!("{url}/v1/leases"), &json!({ "ttl": ttl }))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "grant: {answer:?}");
    let granted: LeaseGrantResponse = answer.json();
    assert_eq!(granted.ttl, ttl);
    granted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_deletes_its_keys_at_one_revision_everywhere() {
    let cluster = Cluster::start(3, Options::default()).await;
    let api = &cluster.api;
    let urls = cluster.urls();
    let leader = cluster.leader().await;
    let via = cluster.others(leader)[0];

    let lease = grant(api, &urls[via], 2).await;
    let mut last_put = 0;
    for name in ["a", "b", "c"] {
        let answer = api
            .put(
                &urls[via],
                &format!("l/{name}"),
                name,
                &format!("lease={}", lease.id),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        last_put = answer.body["revision"].as_u64().unwrap();
    }
    let attached_at = Instant::now();
    for url in &urls {
        let kv = wait_until_present(api, url, "l/c").await;
        assert_eq!(kv.lease, Some(lease.id));
    }

    // Every node streams the three deletes, all at one revision.
    let mut streams = Vec::new();
    for url in &urls {
        let query = format!("key=l/&prefix=true&from_revision={last_put}");
        streams.push(api.watch(url, &query).await);
    }
    let mut revisions = Vec::new();
    for (url, stream) in urls.iter().zip(&mut streams) {
        let events = stream.events(3, Duration::from_secs(10)).await;
        let mut keys = Vec::new();
        for event in &events {
            match event {
                WatchMessage::Delete(e) => {
                    keys.push(e.key.clone());
                    revisions.push(e.mod_revision);
                }
                other => panic!("expected deletes on {url}, got {other:?}"),
            }
        }
        keys.sort();
        assert_eq!(keys, ["l/a", "l/b", "l/c"], "on {url}");
    }
    assert!(
        revisions
            .iter()
            .all(|r| *r == revisions[0] && *r == last_put + 1),
        "deletes at {revisions:?}, last put at {last_put}"
    );
    // Gone everywhere within TTL plus a bounded delay.
    let deadline = Duration::from_secs(2 + 5);
    for url in &urls {
        for name in ["a", "b", "c"] {
            let key = format!("l/{name}");
            let left = deadline.saturating_sub(attached_at.elapsed());
            wait_until(left, &format!("{key} gone on {url}"), async || {
                matches!(api.kv(url, &key, true).await, Ok(None))
            })
            .await;
        }
    }
    let info = api
        .get(&format!("{}/v1/leases/{}", urls[leader], lease.id))
        .await
        .unwrap();
    assert_eq!(info.status, 404, "{info:?}");
    assert_eq!(info.body["error"], json!("lease_not_found"));
}

async fn wait_until_present(api: &Api, url: &str, key: &str) -> muster_types::kv::KeyValue {
    crate::util::wait_for(
        Duration::from_secs(5),
        &format!("{key} on {url}"),
        async || api.kv(url, key, true).await.ok().flatten(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_lease_survives_leader_kill() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();
    let urls = cluster.urls();
    let leader = cluster.leader().await;
    let via = cluster.others(leader)[0];
    let via_url = urls[via].clone();

    let lease = grant(&api, &via_url, 2).await;
    for name in ["a", "b"] {
        let answer = api
            .put(
                &via_url,
                &format!("k/{name}"),
                name,
                &format!("lease={}", lease.id),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    // Keep-alives every 500 ms through the follower.
    let stop = Arc::new(AtomicBool::new(false));
    let keepalive = {
        let (api, url, stop) = (api.clone(), via_url.clone(), stop.clone());
        let id = lease.id;
        tokio::spawn(async move {
            let mut ok = 0u32;
            for _ in 0..200 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let url = format!("{url}/v1/leases/{id}/keepalive");
                if let Ok(answer) = api.call(Method::POST, &url, None).await
                    && answer.status == 200
                {
                    ok += 1;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            ok
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.nodes[leader].kill9();
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let failover_done = Instant::now();
    // 4 s after the failover (twice the TTL) the keys are still there.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for url in cluster.running_urls() {
        for name in ["a", "b"] {
            let kv = api.kv(&url, &format!("k/{name}"), false).await.unwrap();
            assert!(
                kv.is_some_and(|kv| kv.lease == Some(lease.id)),
                "k/{name} lost on {url} {:?} after the failover",
                failover_done.elapsed()
            );
        }
    }
    let shown = api
        .get(&format!("{via_url}/v1/leases/{}", lease.id))
        .await
        .unwrap();
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.body["granted_ttl"], json!(2));

    stop.store(true, Ordering::SeqCst);
    let renewals = keepalive.await.unwrap();
    assert!(renewals >= 8, "only {renewals} keep-alives succeeded");
    let stopped = Instant::now();
    // The last renewal was under a second ago: still there.
    let kv = api.kv(&via_url, "k/a", true).await.unwrap();
    assert!(kv.is_some(), "k/a gone right after the last keep-alive");
    for url in cluster.running_urls() {
        for name in ["a", "b"] {
            let key = format!("k/{name}");
            let left = Duration::from_secs(2 + 5).saturating_sub(stopped.elapsed());
            wait_until(left, &format!("{key} to expire on {url}"), async || {
                matches!(api.kv(&url, &key, true).await, Ok(None))
            })
            .await;
        }
    }
}
