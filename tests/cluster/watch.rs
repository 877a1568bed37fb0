//! Watches resume exactly where they stopped, on any member.

use std::time::Duration;

use muster_types::watch::{WatchErrorCode, WatchMessage};
use serde_json::json;

use crate::util::{Cluster, Options, wait_until};

/// (key, value, revision) of every put/delete event.
fn triples(events: &[WatchMessage]) -> Vec<(String, String, u64)> {
    events
        .iter()
        .map(|message| match message {
            WatchMessage::Put(e) => (
                e.key.clone(),
                String::from_utf8_lossy(e.value.as_bytes()).into_owned(),
                e.mod_revision,
            ),
            WatchMessage::Delete(e) => (e.key.clone(), "<deleted>".to_owned(), e.mod_revision),
            other => panic!("not an event: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_node_without_gaps_or_duplicates() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let api = cluster.api.clone();
    let urls = cluster.urls();
    let leader = cluster.leader().await;
    // Watch on a follower, which is then killed; resume on the other one.
    let others = cluster.others(leader);
    let (first, second) = (others[0], others[1]);
    let start = api.status(&urls[leader]).await.unwrap().revision;

    let mut expected = Vec::new();
    let write = async |i: usize, key: String| {
        let value = format!("w{i}");
        // Interleave writes outside the watched prefix.
        api.put_ok(&urls[i % 3], &format!("other/{i}"), "noise")
            .await;
        let put = api.put_ok(&urls[i % 3], &key, &value).await;
        (key, value, put.revision)
    };
    for i in 0..5 {
        expected.push(write(i, format!("w/{i}")).await);
    }

    let mut seen = Vec::new();
    {
        let query = format!("key=w/&prefix=true&from_revision={start}");
        let mut stream = api.watch(&urls[first], &query).await;
        seen.extend(stream.events(3, Duration::from_secs(5)).await);
        // Dropped here, mid-way through what is there.
    }
    let last_seen = triples(&seen).last().unwrap().2;

    for i in 5..10 {
        expected.push(write(i, format!("w/{i}")).await);
    }
    let deleted = api.delete(&urls[leader], "w/0", "").await.unwrap();
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let delete_revision = deleted.body["revision"].as_u64().unwrap();
    expected.push(("w/0".to_owned(), "<deleted>".to_owned(), delete_revision));

    cluster.nodes[first].kill9();
    // The other follower may still be applying the last writes; history
    // plus live delivery must cover them either way.
    let query = format!("key=w/&prefix=true&from_revision={last_seen}&progress_interval_ms=200");
    let mut stream = api.watch(&urls[second], &query).await;
    let rest = expected.len() - seen.len();
    seen.extend(stream.events(rest, Duration::from_secs(10)).await);
    assert_eq!(triples(&seen), expected);

    // Nothing more: the next messages are progress notifications only,
    // reaching the last revision.
    let final_revision = delete_revision;
    let mut progressed = false;
    for _ in 0..20 {
        match stream.next(Duration::from_secs(2)).await {
            Some(WatchMessage::Progress { revision }) if revision >= final_revision => {
                progressed = true;
                break;
            }
            Some(WatchMessage::Progress { .. }) => {}
            other => panic!("unexpected after the last event: {other:?}"),
        }
    }
    assert!(
        progressed,
        "no progress notification reached {final_revision}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_says_so() {
    let cluster = Cluster::start(3, Options::default()).await;
    let api = &cluster.api;
    let urls = cluster.urls();
    let mut last = 0;
    for i in 0..5 {
        last = api.put_ok(&urls[0], &format!("c/{i}"), "x").await.revision;
    }
    let compact = api
        .post_json(
            &format!("{}/v1/compact", urls[1]),
            &json!({ "revision": last }),
        )
        .await
        .unwrap();
    assert_eq!(compact.status, 200, "{compact:?}");
    assert_eq!(compact.body["compacted_revision"], json!(last));

    for url in &urls {
        wait_until(
            Duration::from_secs(5),
            "the compaction to apply",
            async || {
                api.status(url)
                    .await
                    .is_ok_and(|s| s.compacted_revision == last)
            },
        )
        .await;
        let mut stream = api.watch(url, "key=c/&prefix=true&from_revision=1").await;
        match stream.next(Duration::from_secs(5)).await {
            Some(WatchMessage::Error {
                code: WatchErrorCode::Compacted,
                compacted_revision,
                ..
            }) => assert_eq!(compacted_revision, Some(last), "on {url}"),
            other => panic!("expected a compacted error on {url}, got {other:?}"),
        }
        // The stream ends after the error.
        assert_eq!(stream.next(Duration::from_secs(2)).await, None);
    }
    // The raw line has exactly the documented shape.
    let raw = api
        .http
        .get(format!(
            "{}/v1/watch?key=c/&prefix=true&from_revision=1",
            urls[2]
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(raw.trim()).unwrap();
    assert_eq!(line["type"], json!("error"));
    assert_eq!(line["code"], json!("compacted"));
    assert_eq!(line["compacted_revision"], json!(last));
}
