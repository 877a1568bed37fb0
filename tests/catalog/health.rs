//! Flap damping of reports, and the leader's sweeper: a TTL check that is
//! not reported turns critical, then the instance is deregistered.

use std::time::{Duration, Instant};

use muster_types::catalog::{HealthStatus, Instance};
use reqwest::Method;
use serde_json::json;

use crate::util::{Api, Node, wait_for};
use crate::{instance_url, register_ok};

async fn report(api: &Api, base: &str, id: &str, status: &str) -> Instance {
    let url = format!("{}/health", instance_url(base, "default", "db", id));
    let body = serde_json::to_vec(&json!({"status": status, "output": status})).unwrap();
    let answer = api.call(Method::PUT, &url, Some(body)).await.unwrap();
    assert_eq!(answer.status, 200, "report {status}: {answer:?}");
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_move_health_only_after_consecutive_streaks() {
    let node = Node::single("h1", &[]);
    let api = Api::new();
    let base = node.client_url();
    wait_for(Duration::from_secs(10), "ready", async || {
        api.ready(&base).await.then_some(())
    })
    .await;
    let spec = json!({
        "address": "10.0.0.1", "port": 5432,
        "check": {"ttl": 60, "successes_before_passing": 2, "failures_before_critical": 3}
    });
    let start = register_ok(&api, &base, "db", "d1", &spec).await;
    assert_eq!(
        start.health.status,
        HealthStatus::Critical,
        "TTL checks start critical"
    );

    use HealthStatus::{Critical as C, Passing as P, Warning as W};
    let mut seen = Vec::new();
    for word in [
        "passing", "passing", "critical", "critical", "passing", "critical", "critical",
        "critical", "warning", "passing", "passing",
    ] {
        seen.push(report(&api, &base, "d1", word).await.health.status);
    }
    assert_eq!(seen, [C, P, P, P, P, P, P, C, W, W, P]);

    // Re-registering with the same check keeps the health...
    assert_eq!(
        register_ok(&api, &base, "db", "d1", &spec)
            .await
            .health
            .status,
        P
    );
    // ...a changed check starts over.
    let changed = json!({
        "address": "10.0.0.1", "port": 5432,
        "check": {"ttl": 30, "successes_before_passing": 1, "failures_before_critical": 1}
    });
    assert_eq!(
        register_ok(&api, &base, "db", "d1", &changed)
            .await
            .health
            .status,
        C
    );

    // Bad reports are refused with the field.
    let url = format!("{}/health", instance_url(&base, "default", "db", "d1"));
    let answer = api
        .call(Method::PUT, &url, Some(br#"{"status": "fine"}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    let missing = format!("{}/health", instance_url(&base, "default", "db", "nope"));
    let answer = api
        .call(
            Method::PUT,
            &missing,
            Some(br#"{"status": "passing"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreported_ttl_check_turns_critical_then_is_deregistered() {
    let node = Node::single("h2", &[]);
    let api = Api::new();
    let base = node.client_url();
    wait_for(Duration::from_secs(10), "ready", async || {
        api.ready(&base).await.then_some(())
    })
    .await;
    let check = |deregister: Option<u64>| {
        json!({
            "address": "10.0.0.1", "port": 5432,
            "check": {"ttl": 1, "failures_before_critical": 1, "deregister_critical_after": deregister}
        })
    };
    register_ok(&api, &base, "db", "silent", &check(Some(3))).await;
    register_ok(&api, &base, "db", "chatty", &check(None)).await;
    report(&api, &base, "silent", "passing").await;
    let passed = Instant::now();
    let url = instance_url(&base, "default", "db", "silent");

    let critical: Instance = wait_for(
        Duration::from_secs(5),
        "silent to turn critical",
        async || {
            report(&api, &base, "chatty", "passing").await;
            let answer = api.get(&url).await.ok()?;
            let instance: Instance = answer.json();
            (instance.health.status == HealthStatus::Critical).then_some(instance)
        },
    )
    .await;
    assert_eq!(critical.health.output, "TTL expired");
    // Not before its TTL (1 s) was missed.
    assert!(
        passed.elapsed() >= Duration::from_secs(1),
        "{:?}",
        passed.elapsed()
    );

    wait_for(
        Duration::from_secs(8),
        "silent to be deregistered",
        async || {
            report(&api, &base, "chatty", "passing").await;
            let answer = api.get(&url).await.ok()?;
            (answer.status == 404).then_some(())
        },
    )
    .await;
    assert!(
        passed.elapsed() >= Duration::from_secs(4),
        "{:?}",
        passed.elapsed()
    );
    // The instance that kept reporting stays passing.
    let chatty = report(&api, &base, "chatty", "passing").await;
    assert_eq!(chatty.health.status, HealthStatus::Passing);
}
