//! Leader election against a mocked API server.

use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use muster_operator::lease::LeaseLock;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/muster-operator";

fn lock() -> (LeaseLock, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ops");
    let lock = LeaseLock::new(
        client,
        "ops",
        "muster-operator",
        "pod-a",
        Duration::from_secs(15),
    );
    (lock, handle)
}

async fn answer(handle: &mut Handle, method: &str, path: &str, status: u16, body: Value) -> Value {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a call in time")
        .expect("a call");
    assert_eq!(
        (request.method().as_str(), request.uri().path()),
        (method, path)
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let sent = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    sent
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": "NotFound", "code": 404, "message": "not found"})
}

fn lease(holder: &str, renewed: Timestamp) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "muster-operator", "namespace": "ops", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": 15,
            "renewTime": renewed.to_string(), "leaseTransitions": 2
        }
    })
}

#[tokio::test]
async fn a_missing_lease_is_created_for_us() {
    let (lock, mut handle) = lock();
    let now = Timestamp::now();
    let server = async {
        answer(&mut handle, "GET", PATH, 404, not_found()).await;
        let created = answer(
            &mut handle,
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
            201,
            lease("pod-a", now),
        )
        .await;
        assert_eq!(created["spec"]["holderIdentity"], "pod-a");
        assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    };
    let (acquired, ()) = tokio::join!(lock.try_acquire_or_renew(now), server);
    assert!(acquired.unwrap());
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_left_alone() {
    let (lock, mut handle) = lock();
    let now = Timestamp::now();
    let server = answer(
        &mut handle,
        "GET",
        PATH,
        200,
        lease("pod-b", now - SignedDuration::from_secs(5)),
    );
    let (acquired, _) = tokio::join!(lock.try_acquire_or_renew(now), server);
    assert!(!acquired.unwrap());
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_a_compare_and_swap() {
    let (lock, mut handle) = lock();
    let now = Timestamp::now();
    let server = async {
        answer(
            &mut handle,
            "GET",
            PATH,
            200,
            lease("pod-b", now - SignedDuration::from_secs(60)),
        )
        .await;
        let replaced = answer(&mut handle, "PUT", PATH, 200, lease("pod-a", now)).await;
        assert_eq!(replaced["metadata"]["resourceVersion"], "7");
        assert_eq!(replaced["spec"]["holderIdentity"], "pod-a");
        assert_eq!(replaced["spec"]["leaseTransitions"], 3);
    };
    let (acquired, ()) = tokio::join!(lock.try_acquire_or_renew(now), server);
    assert!(acquired.unwrap());
}

#[tokio::test]
async fn losing_the_race_is_not_an_error() {
    let (lock, mut handle) = lock();
    let now = Timestamp::now();
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "reason": "Conflict", "code": 409, "message": "the object has been modified"});
    let server = async {
        answer(
            &mut handle,
            "GET",
            PATH,
            200,
            lease("pod-b", now - SignedDuration::from_secs(60)),
        )
        .await;
        answer(&mut handle, "PUT", PATH, 409, conflict).await;
    };
    let (acquired, ()) = tokio::join!(lock.try_acquire_or_renew(now), server);
    assert!(!acquired.unwrap());
}
