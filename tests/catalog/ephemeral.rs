//! Ephemeral instances vanish on every node once heart-beats stop;
//! persistent ones stay.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::util::{Cluster, Options, wait_until};
use crate::{instance_url, register_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_instances_vanish_everywhere_when_heartbeats_stop_persistent_ones_stay() {
    let cluster = Cluster::start(3, Options::default()).await;
    let api = &cluster.api;
    let urls = cluster.urls();
    let leader = cluster.leader().await;
    let via = &urls[cluster.others(leader)[0]];

    let ephemeral = register_ok(
        api,
        via,
        "cart",
        "e1",
        &json!({"address": "10.0.0.1", "port": 80, "ephemeral": true, "ttl": 2}),
    )
    .await;
    assert!(
        ephemeral.ephemeral && ephemeral.lease.is_some(),
        "{ephemeral:?}"
    );
    register_ok(
        api,
        via,
        "cart",
        "p1",
        &json!({"address": "10.0.0.2", "port": 80}),
    )
    .await;

    // Heart-beats through a follower keep it alive past its TTL.
    let heartbeat = format!("{}/heartbeat", instance_url(via, "default", "cart", "e1"));
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        let answer = api.call(Method::POST, &heartbeat, None).await.unwrap();
        assert_eq!(answer.status, 200, "heartbeat: {answer:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let present = |url: &str, id: &str| {
        format!(
            "{}?consistency=serializable",
            instance_url(url, "default", "cart", id)
        )
    };
    for url in &urls {
        let answer = api.get(&present(url, "e1")).await.unwrap();
        assert_eq!(answer.status, 200, "e1 alive on {url}: {answer:?}");
    }

    // Heart-beats stop: gone from every node within the TTL plus a bound.
    let stopped = Instant::now();
    for url in &urls {
        wait_until(
            Duration::from_secs(6),
            &format!("e1 gone on {url}"),
            async || matches!(api.get(&present(url, "e1")).await, Ok(a) if a.status == 404),
        )
        .await;
    }
    assert!(stopped.elapsed() < Duration::from_secs(6));
    let answer = api.call(Method::POST, &heartbeat, None).await.unwrap();
    assert_eq!(
        answer.status, 404,
        "heartbeat of a gone instance: {answer:?}"
    );
    for url in &urls {
        let answer = api.get(&present(url, "p1")).await.unwrap();
        assert_eq!(answer.status, 200, "p1 stays on {url}: {answer:?}");
    }
    // A persistent instance has no heart-beat.
    let answer = api
        .call(
            Method::POST,
            &format!("{}/heartbeat", instance_url(via, "default", "cart", "p1")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error().field.as_deref(), Some("ephemeral"));
}
