//! A subscription sees every change once across a leader failover: its
//! events equal those of an uninterrupted replay of the same history.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use muster_client::{Client, ServiceWatch, SubscribeOptions};
use muster_types::Revision;
use muster_types::catalog::{InstanceSpec, ServiceEvent};

use crate::util::{Cluster, Options};

/// (kind, instance id, revision) of one change.
type Seen = (&'static str, String, Revision);

fn spec(port: u16) -> InstanceSpec {
    serde_json::from_value(serde_json::json!({"address": "10.1.0.1", "port": port})).unwrap()
}

/// Changes until the upsert of `until` (included), bounded in time.
async fn collect_until(events: &mut ServiceWatch, until: &str, timeout: Duration) -> Vec<Seen> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("no upsert of {until} in time; saw {seen:?}"))
            .expect("the subscription ended")
            .expect("the subscription failed");
        match event {
            ServiceEvent::Upsert { instance } => {
                let done = instance.id == until;
                seen.push(("upsert", instance.id.clone(), instance.revision));
                if done {
                    return seen;
                }
            }
            ServiceEvent::Remove { id, revision } => seen.push(("remove", id, revision)),
            other => panic!("unexpected {other:?} after {seen:?}"),
        }
    }
}

/// Retries a write (bounded) while the cluster elects a new leader.
async fn with_retries<T>(
    what: &str,
    mut write: impl AsyncFnMut() -> muster_client::Result<T>,
) -> T {
    let started = Instant::now();
    loop {
        match write().await {
            Ok(value) => return value,
            Err(err) if started.elapsed() < Duration::from_secs(15) => {
                eprintln!("{what}: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("{what}: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_sees_every_change_once_across_a_leader_failover() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let urls = cluster.urls();
    let leader = cluster.leader().await;
    // The subscriber talks to the leader first, so killing it cuts the stream.
    let mut ordered = vec![urls[leader].clone()];
    ordered.extend(cluster.others(leader).into_iter().map(|i| urls[i].clone()));
    let subscriber = Client::builder(ordered)
        .watch_idle_timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let mut events = subscriber.subscribe("default", "pay", SubscribeOptions::default());
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a snapshot in time")
        .unwrap()
        .unwrap();
    let ServiceEvent::Snapshot {
        instances,
        revision: start,
    } = first
    else {
        panic!("a snapshot first, not {first:?}");
    };
    assert!(instances.is_empty());

    let survivors: Vec<String> = cluster
        .others(leader)
        .into_iter()
        .map(|i| urls[i].clone())
        .collect();
    let writer = Client::new(survivors.clone()).unwrap();
    for i in 0..5u16 {
        writer
            .register("default", "pay", &format!("a{i}"), &spec(8000 + i))
            .await
            .unwrap();
    }
    writer.deregister("default", "pay", "a0").await.unwrap();
    // Let some of it reach the subscriber, then kill the leader mid-stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.nodes[leader].kill9();
    for i in 0..5u16 {
        let id = format!("b{i}");
        with_retries(&id, async || {
            writer
                .register("default", "pay", &id, &spec(9000 + i))
                .await
        })
        .await;
    }
    with_retries("deregister a1", async || {
        writer.deregister("default", "pay", "a1").await
    })
    .await;
    with_retries("end", async || {
        writer.register("default", "pay", "end", &spec(9999)).await
    })
    .await;

    let resumed = collect_until(&mut events, "end", Duration::from_secs(30)).await;
    // The same history, replayed without interruption on a survivor.
    let replayer = Client::new(survivors).unwrap();
    let mut replay = replayer.subscribe(
        "default",
        "pay",
        SubscribeOptions {
            from_revision: Some(start),
        },
    );
    let expected = collect_until(&mut replay, "end", Duration::from_secs(10)).await;
    assert_eq!(resumed, expected);
    for id in ["a0", "a1"] {
        assert!(
            expected
                .iter()
                .any(|(kind, seen, _)| *kind == "remove" && seen == id),
            "{expected:?}"
        );
    }
    let mut revisions: Vec<Revision> = expected.iter().map(|(_, _, r)| *r).collect();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        expected.len(),
        "one change per revision: {expected:?}"
    );
}
