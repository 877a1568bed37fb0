//! Refused input: each answer has the right status, error code and field,
//! and the keyspace revision does not move.

use std::time::Duration;

use muster_types::limits::{MAX_KEY_BYTES, MAX_REQUEST_BYTES, MAX_TXN_OPS, MAX_VALUE_BYTES};
use reqwest::Method;
use serde_json::json;

use crate::util::{Answer, Api, Node, wait_until};

struct Case {
    what: &'static str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

const fn case(
    what: &'static str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        what,
        status,
        code,
        field,
    }
}

/// Sends the request (`answer` is lazy) between two status reads.
async fn check(
    api: &Api,
    url: &str,
    case: Case,
    answer: impl Future<Output = anyhow::Result<Answer>>,
) {
    let before = api.status(url).await.unwrap().revision;
    let answer = answer
        .await
        .unwrap_or_else(|err| panic!("{}: no answer: {err}", case.what));
    assert_eq!(answer.status, case.status, "{}: {answer:?}", case.what);
    let error = answer.error();
    assert_eq!(
        answer.body["error"],
        json!(case.code),
        "{}: {answer:?}",
        case.what
    );
    assert_eq!(
        error.field.as_deref(),
        case.field,
        "{}: {answer:?}",
        case.what
    );
    assert!(!error.message.is_empty(), "{}", case.what);
    let after = api.status(url).await.unwrap().revision;
    assert_eq!(after, before, "{} moved the revision", case.what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_precisely() {
    let node = Node::single("solo", &[]);
    let api = Api::new();
    let url = node.client_url();
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(&url).await,
    )
    .await;
    let revision = api.put_ok(&url, "exists", "x").await.revision;
    let start = api.status(&url).await.unwrap().revision;
    assert_eq!(start, revision);
    let call = |method: Method, path: &str, body: Option<Vec<u8>>| {
        let url = format!("{url}{path}");
        let api = api.clone();
        async move { api.call(method, &url, body).await }
    };

    check(
        &api,
        &url,
        case("malformed txn JSON", 400, "invalid_argument", Some("json")),
        call(Method::POST, "/v1/txn", Some(b"{\"compare\": [".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "txn JSON of the wrong shape",
            400,
            "invalid_argument",
            Some("body"),
        ),
        call(Method::POST, "/v1/txn", Some(b"{\"compare\": 7}".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "malformed lease JSON",
            400,
            "invalid_argument",
            Some("json"),
        ),
        call(Method::POST, "/v1/leases", Some(b"ttl=5".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "lease ttl of the wrong type",
            400,
            "invalid_argument",
            Some("body"),
        ),
        call(
            Method::POST,
            "/v1/leases",
            Some(b"{\"ttl\": \"long\"}".to_vec()),
        ),
    )
    .await;
    check(
        &api,
        &url,
        case("lease ttl 0", 400, "invalid_argument", Some("ttl")),
        call(Method::POST, "/v1/leases", Some(b"{\"ttl\": 0}".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case("value over 1 MiB", 413, "too_large", Some("value")),
        call(
            Method::PUT,
            "/v1/kv/big",
            Some(vec![b'v'; MAX_VALUE_BYTES + 1]),
        ),
    )
    .await;
    check(
        &api,
        &url,
        case("body over 1.5 MiB", 413, "too_large", Some("body")),
        call(
            Method::PUT,
            "/v1/kv/big",
            Some(vec![b'v'; MAX_REQUEST_BYTES + 1]),
        ),
    )
    .await;
    // A value of exactly the limit is fine.
    let fits = api
        .put(&url, "big", vec![b'v'; MAX_VALUE_BYTES], "")
        .await
        .unwrap();
    assert_eq!(fits.status, 200, "a 1 MiB value must fit");
    let start = fits.body["revision"].as_u64().unwrap();

    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    check(
        &api,
        &url,
        case("key over 1024 bytes", 400, "invalid_argument", Some("key")),
        call(
            Method::PUT,
            &format!("/v1/kv/{long_key}"),
            Some(b"x".to_vec()),
        ),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "read of a key over 1024 bytes",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::GET, &format!("/v1/kv/{long_key}"), None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "put with an unknown lease",
            404,
            "lease_not_found",
            Some("lease"),
        ),
        call(
            Method::PUT,
            "/v1/kv/leased?lease=123456789",
            Some(b"x".to_vec()),
        ),
    )
    .await;
    assert_eq!(api.get_key(&url, "leased", "").await.unwrap().status, 404);
    check(
        &api,
        &url,
        case(
            "put to a reserved key",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::PUT, "/v1/kv/_muster/svc/x", Some(b"x".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "delete of every key (reserved ones included)",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::DELETE, "/v1/kv/?prefix", None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "keepalive of an unknown lease",
            404,
            "lease_not_found",
            Some("id"),
        ),
        call(Method::POST, "/v1/leases/987654321/keepalive", None),
    )
    .await;
    check(
        &api,
        &url,
        case("revision=abc", 400, "invalid_argument", Some("revision")),
        call(Method::GET, "/v1/kv/exists?revision=abc", None),
    )
    .await;
    let future = start + 1000;
    check(
        &api,
        &url,
        case(
            "a future revision",
            400,
            "invalid_argument",
            Some("revision"),
        ),
        call(
            Method::GET,
            &format!("/v1/kv/exists?revision={future}"),
            None,
        ),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "non-UTF-8 key in a read",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::GET, "/v1/kv/%FF%FE", None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "non-UTF-8 key in a put",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::PUT, "/v1/kv/%FF%FE", Some(b"x".to_vec())),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "non-UTF-8 key in a delete",
            400,
            "invalid_argument",
            Some("key"),
        ),
        call(Method::DELETE, "/v1/kv/%FF%FE", None),
    )
    .await;
    let ops: Vec<_> = (0..=MAX_TXN_OPS)
        .map(|i| json!({ "put": { "key": format!("t/{i}"), "value": "" } }))
        .collect();
    let txn = serde_json::to_vec(&json!({ "then": ops })).unwrap();
    check(
        &api,
        &url,
        case("txn over 128 ops", 400, "invalid_argument", Some("txn")),
        call(Method::POST, "/v1/txn", Some(txn)),
    )
    .await;
    assert_eq!(api.get_key(&url, "t/0", "").await.unwrap().status, 404);
    check(
        &api,
        &url,
        case("prefix=maybe", 400, "invalid_argument", Some("prefix")),
        call(Method::GET, "/v1/kv/p/?prefix=maybe", None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "delete with prefix=maybe",
            400,
            "invalid_argument",
            Some("prefix"),
        ),
        call(Method::DELETE, "/v1/kv/exists?prefix=maybe", None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "consistency=eventual",
            400,
            "invalid_argument",
            Some("consistency"),
        ),
        call(Method::GET, "/v1/kv/exists?consistency=eventual", None),
    )
    .await;
    check(
        &api,
        &url,
        case(
            "compact to a future revision",
            400,
            "invalid_argument",
            Some("revision"),
        ),
        call(
            Method::POST,
            "/v1/compact",
            Some(format!("{{\"revision\": {future}}}").into_bytes()),
        ),
    )
    .await;

    // Nothing above changed the keyspace.
    assert_eq!(api.status(&url).await.unwrap().revision, start);
    let kv = api.kv(&url, "exists", true).await.unwrap().unwrap();
    assert_eq!(kv.mod_revision, revision);
}
