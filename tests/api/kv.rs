//! Reads, writes, listings, CAS, history and transactions on one node.

use std::time::Duration;

use muster_types::kv::{KeyValue, RangeResponse, TxnOpResponse, TxnResponse};
use reqwest::Method;
use serde_json::{Value, json};

use crate::util::{Api, Node, wait_until};

/// A single node, ready.
async fn node() -> (Node, Api, String) {
    let node = Node::single("solo", &[]);
    let api = Api::new();
    let url = node.client_url();
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(&url).await,
    )
    .await;
    (node, api, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_round_trip() {
    let (_node, api, url) = node().await;
    let put = api.put(&url, "a/b", "hello", "").await.unwrap();
    assert_eq!(put.status, 200, "{put:?}");
    let revision = put.body["revision"].as_u64().unwrap();
    assert!(revision >= 1);

    let got = api.get_key(&url, "a/b", "").await.unwrap();
    assert_eq!(got.status, 200);
    // The wire shape: value in base64, the revisions, the version.
    assert_eq!(got.body["key"], json!("a/b"));
    assert_eq!(got.body["value"], json!("aGVsbG8="));
    assert_eq!(got.body["create_revision"], json!(revision));
    assert_eq!(got.body["mod_revision"], json!(revision));
    assert_eq!(got.body["version"], json!(1));
    assert!(got.body.get("lease").is_none(), "{got:?}");

    let raw = api.get_key(&url, "a/b", "raw").await.unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(raw.bytes, b"hello");
    assert_eq!(
        raw.header("content-type").as_deref(),
        Some("application/octet-stream")
    );

    // Binary values survive.
    let bytes: Vec<u8> = (0..=255).collect();
    let put = api.put(&url, "bin", bytes.clone(), "").await.unwrap();
    assert_eq!(put.status, 200);
    assert_eq!(api.get_key(&url, "bin", "raw").await.unwrap().bytes, bytes);

    let second = api.put(&url, "a/b", "again", "prev_kv=true").await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.body["prev_kv"]["value"], json!("aGVsbG8="));
    let kv: KeyValue = api.get_key(&url, "a/b", "").await.unwrap().json();
    assert_eq!(kv.version, 2);
    assert_eq!(kv.create_revision, revision);
    assert_eq!(kv.mod_revision, second.body["revision"].as_u64().unwrap());

    let deleted = api.delete(&url, "a/b", "").await.unwrap();
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["deleted"], json!(1));
    assert_eq!(
        deleted.body["revision"].as_u64().unwrap(),
        kv.mod_revision + 1
    );
    let gone = api.get_key(&url, "a/b", "").await.unwrap();
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["error"], json!("key_not_found"));
    // Deleting an absent key deletes nothing and takes no revision.
    let status_before = api.status(&url).await.unwrap().revision;
    let again = api.delete(&url, "a/b", "").await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.body["deleted"], json!(0));
    assert_eq!(api.status(&url).await.unwrap().revision, status_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_listing_pages_with_limit_and_after() {
    let (_node, api, url) = node().await;
    for i in 0..7 {
        api.put_ok(&url, &format!("p/{i}"), &format!("v{i}")).await;
    }
    api.put_ok(&url, "pz", "outside").await;
    api.put_ok(&url, "o/1", "outside").await;

    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    for _ in 0..10 {
        let mut query = "prefix=true&limit=3".to_owned();
        if let Some(after) = &after {
            query.push_str(&format!("&after={after}"));
        }
        let answer = api.get_key(&url, "p/", &query).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        let page: RangeResponse = answer.json();
        pages.push((page.kvs.len(), page.more, page.next.clone()));
        keys.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        after = page.next;
    }
    assert_eq!(
        pages,
        [
            (3, true, Some("p/2".to_owned())),
            (3, true, Some("p/5".to_owned())),
            (1, false, None)
        ]
    );
    assert_eq!(keys, ["p/0", "p/1", "p/2", "p/3", "p/4", "p/5", "p/6"]);

    // keys_only leaves the values out.
    let page: RangeResponse = api
        .get_key(&url, "p/", "prefix&keys_only=true")
        .await
        .unwrap()
        .json();
    assert_eq!(page.kvs.len(), 7);
    assert!(page.kvs.iter().all(|kv| kv.value.is_empty()));
    // A listing of the whole keyspace (empty prefix).
    let all: RangeResponse = api
        .get(&format!("{url}/v1/kv/?prefix"))
        .await
        .unwrap()
        .json();
    assert_eq!(all.kvs.len(), 9);
    // Prefix delete.
    let deleted = api.delete(&url, "p/", "prefix=true").await.unwrap();
    assert_eq!(deleted.body["deleted"], json!(7), "{deleted:?}");
    let page: RangeResponse = api.get_key(&url, "p/", "prefix").await.unwrap().json();
    assert!(page.kvs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap() {
    let (_node, api, url) = node().await;
    let created = api
        .put(&url, "cas", "one", "prev_revision=0")
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{created:?}");
    let r1 = created.body["revision"].as_u64().unwrap();

    // Create-only fails once the key exists, naming its mod revision.
    let refused = api
        .put(&url, "cas", "two", "prev_revision=0")
        .await
        .unwrap();
    assert_eq!(refused.status, 412, "{refused:?}");
    let error = refused.error();
    assert_eq!(error.current_revision, Some(r1));
    assert_eq!(refused.body["error"], json!("compare_failed"));

    let wrong = api
        .put(&url, "cas", "two", &format!("prev_revision={}", r1 + 100))
        .await
        .unwrap();
    assert_eq!(wrong.status, 412);
    assert_eq!(wrong.error().current_revision, Some(r1));

    let swapped = api
        .put(&url, "cas", "two", &format!("prev_revision={r1}"))
        .await
        .unwrap();
    assert_eq!(swapped.status, 200, "{swapped:?}");
    let kv: KeyValue = api.get_key(&url, "cas", "").await.unwrap().json();
    assert_eq!(kv.value.as_bytes(), b"two");
    assert_eq!(kv.mod_revision, swapped.body["revision"].as_u64().unwrap());
    // Refused swaps changed nothing.
    assert_eq!(kv.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_reads_until_compacted() {
    let (_node, api, url) = node().await;
    let r1 = api.put_ok(&url, "h", "v1").await.revision;
    let r2 = api.put_ok(&url, "h", "v2").await.revision;
    let r3 = api.put_ok(&url, "h", "v3").await.revision;

    let at = async |revision: u64| -> KeyValue {
        let answer = api
            .get_key(&url, "h", &format!("revision={revision}"))
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json()
    };
    assert_eq!(at(r1).await.value.as_bytes(), b"v1");
    assert_eq!(at(r2).await.value.as_bytes(), b"v2");
    assert_eq!(at(r3).await.value.as_bytes(), b"v3");
    assert_eq!(at(r1).await.mod_revision, r1);

    let compact = api
        .post_json(&format!("{url}/v1/compact"), &json!({ "revision": r2 }))
        .await
        .unwrap();
    assert_eq!(compact.status, 200, "{compact:?}");
    assert_eq!(compact.body["compacted_revision"], json!(r2));

    let old = api
        .get_key(&url, "h", &format!("revision={r1}"))
        .await
        .unwrap();
    assert_eq!(old.status, 410, "{old:?}");
    let error = old.error();
    assert_eq!(old.body["error"], json!("compacted"));
    assert_eq!(error.compacted_revision, Some(r2));
    assert_eq!(error.field.as_deref(), Some("revision"));
    // The compacted revision itself is still readable.
    assert_eq!(at(r2).await.value.as_bytes(), b"v2");
    assert_eq!(api.status(&url).await.unwrap().compacted_revision, r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_lock_pattern() {
    let (_node, api, url) = node().await;
    let lock = |owner: &str| {
        json!({
            "compare": [{ "key": "lock", "op": "=", "target": { "version": 0 } }],
            "then": [{ "put": { "key": "lock", "value": base64(owner) } }],
            "else": [{ "get": { "key": "lock" } }],
        })
    };
    let first = api
        .post_json(&format!("{url}/v1/txn"), &lock("me"))
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let first: TxnResponse = first.json();
    assert!(first.succeeded);
    match &first.responses[..] {
        [TxnOpResponse::Put(put)] => assert_eq!(put.revision, first.revision),
        other => panic!("{other:?}"),
    }

    let second = api
        .post_json(&format!("{url}/v1/txn"), &lock("you"))
        .await
        .unwrap();
    assert_eq!(second.status, 200, "{second:?}");
    let second: TxnResponse = second.json();
    assert!(!second.succeeded);
    match &second.responses[..] {
        [TxnOpResponse::Get(range)] => {
            assert_eq!(range.kvs.len(), 1);
            assert_eq!(range.kvs[0].value.as_bytes(), b"me");
            assert_eq!(range.kvs[0].mod_revision, first.revision);
        }
        other => panic!("{other:?}"),
    }
    // A failed txn with only reads takes no revision.
    assert_eq!(api.status(&url).await.unwrap().revision, first.revision);

    // Release: delete only if still ours (value compare).
    let release = json!({
        "compare": [{ "key": "lock", "op": "=", "target": { "value": base64("me") } }],
        "then": [{ "delete": { "key": "lock" } }],
    });
    let released: TxnResponse = api
        .post_json(&format!("{url}/v1/txn"), &release)
        .await
        .unwrap()
        .json();
    assert!(released.succeeded);
    assert_eq!(api.get_key(&url, "lock", "").await.unwrap().status, 404);
}

fn base64(text: &str) -> Value {
    serde_json::to_value(muster_types::Blob::from(text)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_revision_and_leader_headers() {
    let (_node, api, url) = node().await;
    let put = api.put(&url, "hdr", "x", "").await.unwrap();
    let revision = put.body["revision"].as_u64().unwrap();
    for answer in [
        api.get_key(&url, "hdr", "").await.unwrap(),
        api.get_key(&url, "absent", "").await.unwrap(),
        api.get(&format!("{url}/v1/status")).await.unwrap(),
        api.call(Method::GET, &format!("{url}/v1/cluster/members"), None)
            .await
            .unwrap(),
    ] {
        assert_eq!(
            answer.header("x-muster-revision"),
            Some(revision.to_string()),
            "{answer:?}"
        );
        assert_eq!(answer.header("x-muster-leader").as_deref(), Some("solo"));
        assert_eq!(answer.header("x-muster-node").as_deref(), Some("solo"));
        assert_eq!(
            answer.header("x-muster-leader-url"),
            Some(url.clone()),
            "{answer:?}"
        );
    }
}
