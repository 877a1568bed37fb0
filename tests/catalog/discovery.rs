//! Discovery filters, the protection threshold, blocking queries,
//! namespaces and refusals of bad input, on one node.

use std::time::{Duration, Instant};

use muster_types::catalog::{Discovery, NamespaceList, ServiceList};
use reqwest::Method;
use serde_json::{Value, json};

use crate::util::{Api, Node, wait_for};
use crate::{discover, ids, instance_url, register, register_ok};

async fn single(name: &str) -> (Node, Api, String) {
    let node = Node::single(name, &[]);
    let api = Api::new();
    let base = node.client_url();
    wait_for(Duration::from_secs(10), "ready", async || {
        api.ready(&base).await.then_some(())
    })
    .await;
    (node, api, base)
}

async fn put_json(api: &Api, url: &str, body: &Value) -> crate::util::Answer {
    api.call(Method::PUT, url, Some(serde_json::to_vec(body).unwrap()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_protection_threshold() {
    let (_node, api, base) = single("d1").await;
    let api = &api;
    register_ok(
        api,
        &base,
        "web",
        "a",
        &json!({"address": "10.0.0.1", "port": 80, "tags": ["v2", "canary"], "zone": "eu-1",
                "metadata": {"version": "2"}, "weight": 300}),
    )
    .await;
    register_ok(
        api,
        &base,
        "web",
        "b",
        &json!({"address": "10.0.0.2", "port": 80, "tags": ["v1"], "zone": "eu-2"}),
    )
    .await;
    // A TTL check starts critical.
    register_ok(
        api,
        &base,
        "web",
        "c",
        &json!({"address": "10.0.0.3", "port": 80, "check": {"ttl": 60}}),
    )
    .await;
    register_ok(
        api,
        &base,
        "web",
        "d",
        &json!({"address": "10.0.0.4", "port": 80}),
    )
    .await;
    let drain = format!("{}/drain", instance_url(&base, "default", "web", "d"));
    let answer = api.call(Method::POST, &drain, None).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");

    let by = async |query: &str| ids(&discover(api, &base, "web", query).await).join(",");
    assert_eq!(by("").await, "a,b");
    assert_eq!(by("tag=v2").await, "a");
    assert_eq!(by("tag=v2&tag=canary").await, "a");
    assert_eq!(by("tag=v2&tag=v1").await, "");
    assert_eq!(by("zone=eu-2").await, "b");
    assert_eq!(by("metadata=version:2").await, "a");
    assert_eq!(by("metadata=version:3").await, "");
    assert_eq!(by("healthy=all").await, "a,b,c");
    assert_eq!(by("healthy=passing,critical").await, "a,b,c");
    assert_eq!(by("healthy=critical&consistency=serializable").await, "c");
    let weights = discover(api, &base, "web", "tag=v2").await;
    assert_eq!(weights.instances[0].weight, 300);

    // Enabling brings the drained instance back.
    let enable = format!("{}/enable", instance_url(&base, "default", "web", "d"));
    assert_eq!(
        api.call(Method::POST, &enable, None).await.unwrap().status,
        200
    );
    assert_eq!(by("").await, "a,b,d");
    assert_eq!(
        api.call(Method::POST, &drain, None).await.unwrap().status,
        200
    );

    // Protection: 2 of 3 enabled instances pass (0.67).
    let service = format!("{base}/v1/services/default/web");
    let threshold = async |t: f64| {
        let answer = put_json(
            api,
            &service,
            &json!({"protection_threshold": t, "metadata": {"team": "x"}}),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    };
    threshold(0.9).await;
    let protected = discover(api, &base, "web", "").await;
    assert!(protected.protection_triggered);
    assert_eq!(
        ids(&protected),
        ["a", "b", "c"],
        "every enabled instance, not d"
    );
    assert_eq!(protected.spec.metadata["team"], "x");
    threshold(0.5).await;
    let normal = discover(api, &base, "web", "").await;
    assert!(!normal.protection_triggered);
    assert_eq!(ids(&normal), ["a", "b"]);

    let list: ServiceList = api
        .get(&format!("{base}/v1/services/default"))
        .await
        .unwrap()
        .json();
    let web = &list.services[0];
    assert_eq!((web.name.as_str(), web.instances), ("web", 4));
    assert_eq!(
        (web.health.passing, web.health.critical, web.health.disabled),
        (2, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_queries_answer_on_change_or_after_wait() {
    let (_node, api, base) = single("d2").await;
    register_ok(
        &api,
        &base,
        "api",
        "a",
        &json!({"address": "10.0.0.1", "port": 80}),
    )
    .await;
    let first = discover(&api, &base, "api", "").await;

    // A change after the index answers at once.
    let waiter = {
        let api = api.clone();
        let url = format!(
            "{base}/v1/services/default/api?index={}&wait=20s",
            first.revision
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = api.get(&url).await.unwrap();
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "nothing changed yet");
    register_ok(
        &api,
        &base,
        "api",
        "b",
        &json!({"address": "10.0.0.2", "port": 80}),
    )
    .await;
    let (answer, took) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the blocking query answered after the change")
        .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let changed: Discovery = answer.json();
    assert_eq!(ids(&changed), ["a", "b"]);
    assert!(changed.revision > first.revision);
    assert_eq!(
        answer.header("x-muster-index"),
        Some(changed.revision.to_string())
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A change elsewhere does not wake it; `wait` elapses.
    api.put_ok(&base, "unrelated", "x").await;
    let started = Instant::now();
    let url = format!(
        "{base}/v1/services/default/api?index={}&wait=1500ms",
        changed.revision
    );
    let answer = api.get(&url).await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status, 200);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(ids(&answer.json()), ["a", "b"]);

    // An index already passed answers at once.
    let started = Instant::now();
    let url = format!(
        "{base}/v1/services/default/api?index={}&wait=20s",
        first.revision
    );
    assert_eq!(api.get(&url).await.unwrap().status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field_and_namespaces_guard_their_content() {
    let (_node, api, base) = single("d3").await;
    let api = &api;
    let field = async |answer: crate::util::Answer, status: u16| {
        assert_eq!(answer.status, status, "{answer:?}");
        answer.error().field.unwrap_or_default()
    };
    let spec = |extra: Value| {
        let mut spec = json!({"address": "10.0.0.1", "port": 80});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    for (extra, expected) in [
        (json!({"address": ""}), "address"),
        (json!({"port": 0}), "port"),
        (json!({"weight": 10001}), "weight"),
        (json!({"zone": "a b"}), "zone"),
        (json!({"ephemeral": true}), "ttl"),
        (json!({"ephemeral": true, "ttl": 0}), "ttl"),
        (json!({"ttl": 5}), "ephemeral"),
        (
            json!({"check": {"ttl": 5, "failures_before_critical": 0}}),
            "check.failures_before_critical",
        ),
    ] {
        let answer = register(api, &base, "web", "x", &spec(extra.clone())).await;
        assert_eq!(field(answer, 400).await, expected, "{extra}");
    }
    let answer = register(api, &base, "bad/name", "x", &spec(json!({}))).await;
    assert_eq!(answer.status, 404, "a slash is another path: {answer:?}");
    let answer = register(api, &base, "web", "x y", &spec(json!({}))).await;
    assert_eq!(field(answer, 400).await, "id");
    let answer = register(
        api,
        &base,
        "web",
        "x",
        &spec(json!({"ephemeral": true, "lease": 12345})),
    )
    .await;
    assert_eq!(field(answer, 404).await, "lease");

    let get = async |url: String| api.get(&url).await.unwrap();
    assert_eq!(
        field(
            get(format!("{base}/v1/services/default/web?healthy=up")).await,
            400
        )
        .await,
        "healthy"
    );
    assert_eq!(
        field(
            get(format!("{base}/v1/services/default/web?wait=1h&index=1")).await,
            400
        )
        .await,
        "wait"
    );
    assert_eq!(
        field(
            get(format!("{base}/v1/services/default/web?metadata=x")).await,
            400
        )
        .await,
        "metadata"
    );
    assert_eq!(
        field(
            get(format!("{base}/v1/services/default/web?index=x")).await,
            400
        )
        .await,
        "index"
    );
    let answer = put_json(
        api,
        &format!("{base}/v1/services/default/web"),
        &json!({"protection_threshold": 1.5}),
    )
    .await;
    assert_eq!(field(answer, 400).await, "protection_threshold");
    let answer = api
        .call(
            Method::DELETE,
            &instance_url(&base, "default", "web", "ghost"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(field(answer, 404).await, "id");

    // Namespaces: unknown is 404, default cannot go, others only when empty.
    let answer = api
        .call(
            Method::PUT,
            &instance_url(&base, "prod", "web", "p1"),
            Some(serde_json::to_vec(&spec(json!({}))).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(field(answer, 404).await, "namespace");
    let namespaces = format!("{base}/v1/namespaces");
    let answer = api
        .post_json(
            &namespaces,
            &json!({"name": "prod", "description": "production"}),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
    let again = api
        .post_json(&namespaces, &json!({"name": "prod"}))
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{again:?}");
    let bad = api
        .post_json(&namespaces, &json!({"name": "a/b"}))
        .await
        .unwrap();
    assert_eq!(field(bad, 400).await, "name");
    let list: NamespaceList = get(namespaces.clone()).await.json();
    let names: Vec<&str> = list.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["default", "prod"]);

    let p1 = instance_url(&base, "prod", "web", "p1");
    let answer = put_json(api, &p1, &spec(json!({}))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let prod = format!("{namespaces}/prod");
    let answer = api.call(Method::DELETE, &prod, None).await.unwrap();
    assert_eq!(answer.status, 409, "not empty: {answer:?}");
    assert_eq!(
        api.call(Method::DELETE, &p1, None).await.unwrap().status,
        200
    );
    let answer = api.call(Method::DELETE, &prod, None).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(get(prod.clone()).await.status, 404);
    let answer = api
        .call(Method::DELETE, &format!("{namespaces}/default"), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 409, "{answer:?}");
}
