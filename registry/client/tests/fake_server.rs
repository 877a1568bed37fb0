//! The client against tiny fake servers: failover, leader redirects, key
//! encoding and watch resumption.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use futures::StreamExt;
use muster_client::{Client, ClientError, GetOptions, PutOptions, TransportKind, WatchOptions};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::{KeyValue, PutResponse};
use muster_types::watch::{EventKind, WatchEvent, WatchMessage};
use muster_types::{Blob, headers};

type Params = HashMap<String, String>;

/// What a fake server saw, and what it should answer with.
#[derive(Default)]
struct Fake {
    /// (path tail or "watch", query) of every request, in order.
    seen: Vec<(String, Params)>,
    /// Put bodies by key.
    puts: Vec<(String, Vec<u8>)>,
    /// Answer to send instead of success (status, body).
    refuse: Option<(u16, ErrorBody)>,
    /// Delay before answering.
    delay: Option<Duration>,
    /// Watch answers, one per connection: chunks, then whether to hang.
    watch_scripts: Vec<(Vec<String>, bool)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn serve(fake: Shared) -> String {
    let app = Router::new()
        .route("/v1/kv/{*key}", put(put_key).get(get_key))
        .route("/v1/watch", get(watch))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// An address nothing listens on.
async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn refusal(fake: &Shared) -> Option<Response> {
    let (status, body) = fake.lock().unwrap().refuse.clone()?;
    Some((StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response())
}

async fn put_key(
    State(fake): State<Shared>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
    body: Bytes,
) -> Response {
    let delay = {
        let mut f = fake.lock().unwrap();
        f.seen.push((key.clone(), params));
        f.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(refused) = refusal(&fake) {
        return refused;
    }
    fake.lock().unwrap().puts.push((key, body.to_vec()));
    axum::Json(PutResponse {
        revision: 42,
        prev_kv: None,
    })
    .into_response()
}

async fn get_key(
    State(fake): State<Shared>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let delay = {
        let mut f = fake.lock().unwrap();
        f.seen.push((key.clone(), params));
        f.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(refused) = refusal(&fake) {
        return refused;
    }
    if key == "missing" {
        let body = ErrorBody::new(ErrorCode::KeyNotFound, "key not found: missing");
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    axum::Json(KeyValue {
        key,
        value: Blob::from("v"),
        create_revision: 1,
        mod_revision: 2,
        version: 1,
        lease: None,
    })
    .into_response()
}

async fn watch(State(fake): State<Shared>, Query(params): Query<Params>) -> Response {
    let script = {
        let mut f = fake.lock().unwrap();
        f.seen.push(("watch".into(), params));
        if f.watch_scripts.is_empty() {
            (Vec::new(), true)
        } else {
            f.watch_scripts.remove(0)
        }
    };
    let (chunks, hang) = script;
    let chunks = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Bytes::from(c))),
    );
    let body = if hang {
        Body::from_stream(chunks.chain(futures::stream::pending()))
    } else {
        Body::from_stream(chunks)
    };
    let mut headers = HeaderMap::new();
    headers.insert(headers::REVISION, "10".parse().unwrap());
    (headers, body).into_response()
}

fn event(kind: &str, key: &str, rev: u64) -> String {
    let event = WatchEvent {
        key: key.into(),
        value: Blob::from(format!("v{rev}").as_str()),
        mod_revision: rev,
        create_revision: rev,
        version: 1,
        lease: None,
        prev_value: None,
    };
    let message = match kind {
        "put" => WatchMessage::Put(event),
        _ => WatchMessage::Delete(event),
    };
    serde_json::to_string(&message).unwrap() + "\n"
}

fn watch_queries(fake: &Shared) -> Vec<Params> {
    fake.lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(what, _)| what == "watch")
        .map(|(_, q)| q.clone())
        .collect()
}

async fn collect(watch: &mut muster_client::Watch, n: usize) -> Vec<(EventKind, String, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let change = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .expect("watch failed");
        out.push((change.kind, change.event.key, change.event.mod_revision));
    }
    out
}

#[tokio::test]
async fn refused_connection_moves_to_the_next_endpoint() {
    let fake = Shared::default();
    let live = serve(fake.clone()).await;
    let client = Client::new([dead_endpoint().await, live]).unwrap();
    let answer = client.put("k", "v", PutOptions::default()).await.unwrap();
    assert_eq!(answer.revision, 42);
    assert_eq!(
        fake.lock().unwrap().puts,
        [("k".to_string(), b"v".to_vec())]
    );
}

#[tokio::test]
async fn unavailable_without_leader_tries_the_next_endpoint_then_remembers() {
    let sick = Shared::default();
    sick.lock().unwrap().refuse = Some((503, ErrorBody::new(ErrorCode::Unavailable, "no leader")));
    let healthy = Shared::default();
    let client = Client::new([serve(sick.clone()).await, serve(healthy.clone()).await]).unwrap();
    for _ in 0..3 {
        client
            .get("k", GetOptions::default())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        sick.lock().unwrap().seen.len(),
        1,
        "only the first call asks the sick node"
    );
    assert_eq!(healthy.lock().unwrap().seen.len(), 3);
}

#[tokio::test]
async fn not_leader_is_retried_on_the_leader_url() {
    let leader = Shared::default();
    let leader_url = serve(leader.clone()).await;
    let follower = Shared::default();
    let mut body = ErrorBody::new(ErrorCode::NotLeader, "not the leader");
    body.leader_url = Some(leader_url.clone());
    follower.lock().unwrap().refuse = Some((421, body));
    // The leader is not among the endpoints: it is learned from the answer.
    let client = Client::new([serve(follower.clone()).await]).unwrap();
    let options = PutOptions {
        lease: Some(7),
        prev_revision: Some(0),
        prev_kv: true,
    };
    client.put("a/b", "x", options).await.unwrap();
    let leader = leader.lock().unwrap();
    assert_eq!(leader.puts, [("a/b".to_string(), b"x".to_vec())]);
    let query = &leader.seen[0].1;
    assert_eq!(query["lease"], "7");
    assert_eq!(query["prev_revision"], "0");
    assert_eq!(query["prev_kv"], "true");
}

#[tokio::test]
async fn every_endpoint_failing_reports_the_last_error() {
    let sick = Shared::default();
    sick.lock().unwrap().refuse = Some((503, ErrorBody::new(ErrorCode::Unavailable, "no quorum")));
    let client = Client::new([dead_endpoint().await, serve(sick).await]).unwrap();
    let err = client.get("k", GetOptions::default()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unavailable));
    assert!(err.to_string().contains("no quorum"), "{err}");
}

#[tokio::test]
async fn timed_out_writes_are_not_resent_but_reads_are() {
    let slow = Shared::default();
    slow.lock().unwrap().delay = Some(Duration::from_secs(5));
    let fast = Shared::default();
    let client = Client::builder([serve(slow.clone()).await, serve(fast.clone()).await])
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .put("k", "v", PutOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        fast.lock().unwrap().seen.is_empty(),
        "the write may have applied"
    );
    client
        .get("k", GetOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fast.lock().unwrap().seen.len(), 1);
}

#[tokio::test]
async fn get_maps_not_found_to_none_and_passes_options() {
    let fake = Shared::default();
    let client = Client::new([serve(fake.clone()).await]).unwrap();
    assert_eq!(
        client.get("missing", GetOptions::default()).await.unwrap(),
        None
    );
    let options = GetOptions {
        revision: Some(5),
        serializable: true,
    };
    let kv = client.get("there", options).await.unwrap().unwrap();
    assert_eq!(kv.value, Blob::from("v"));
    let query = &fake.lock().unwrap().seen[1].1;
    assert_eq!(query["revision"], "5");
    assert_eq!(query["consistency"], "serializable");
}

#[tokio::test]
async fn odd_keys_reach_the_server_intact() {
    let fake = Shared::default();
    let client = Client::new([serve(fake.clone()).await]).unwrap();
    let keys = ["a b/c?d#e", "x/../y", "dir/.", "100%/ü", "/lead//double/"];
    for key in keys {
        client.put(key, "v", PutOptions::default()).await.unwrap();
    }
    let seen: Vec<String> = fake
        .lock()
        .unwrap()
        .puts
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    let expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn watch_resumes_after_a_drop_without_loss_or_repeats() {
    let fake = Shared::default();
    {
        let mut f = fake.lock().unwrap();
        let first = event("put", "a", 11) + &event("put", "b", 12);
        // Split mid-line to exercise the decoder; then the stream ends.
        let (x, y) = first.split_at(first.len() - 7);
        f.watch_scripts
            .push((vec![x.to_string(), y.to_string()], false));
        // The replay of 12, then new changes.
        let second = event("put", "b", 12) + &event("delete", "a", 13);
        f.watch_scripts.push((vec![second], true));
    }
    let client = Client::new([serve(fake.clone()).await]).unwrap();
    let mut watch = client
        .watch(WatchOptions {
            key: "".into(),
            prefix: true,
            from_revision: None,
            prev_value: true,
        })
        .unwrap();
    let got = collect(&mut watch, 3).await;
    assert_eq!(
        got,
        [
            (EventKind::Put, "a".to_string(), 11),
            (EventKind::Put, "b".to_string(), 12),
            (EventKind::Delete, "a".to_string(), 13),
        ]
    );
    let queries = watch_queries(&fake);
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].get("from_revision"), None);
    assert_eq!(queries[0]["prefix"], "true");
    assert_eq!(queries[0]["prev_value"], "true");
    // 12 may have had more changes (a transaction), so it is replayed.
    assert_eq!(queries[1]["from_revision"], "11");
}

#[tokio::test]
async fn watch_resumes_after_progress_and_slow_watcher() {
    let fake = Shared::default();
    {
        let mut f = fake.lock().unwrap();
        let progress = serde_json::to_string(&WatchMessage::Progress { revision: 20 }).unwrap();
        let slow = serde_json::to_string(&WatchMessage::Error {
            code: muster_types::watch::WatchErrorCode::SlowWatcher,
            message: "too slow".into(),
            compacted_revision: None,
            resume_revision: Some(20),
        })
        .unwrap();
        f.watch_scripts.push((
            vec![event("put", "k", 15), progress + "\n" + &slow + "\n"],
            false,
        ));
        f.watch_scripts.push((vec![event("put", "k", 21)], true));
    }
    let client = Client::new([serve(fake.clone()).await]).unwrap();
    let mut watch = client
        .watch(WatchOptions {
            key: "k".into(),
            prefix: false,
            from_revision: Some(14),
            prev_value: false,
        })
        .unwrap();
    let got = collect(&mut watch, 2).await;
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [15, 21]);
    let queries = watch_queries(&fake);
    assert_eq!(queries[0]["from_revision"], "14");
    assert_eq!(queries[0]["key"], "k");
    assert_eq!(queries[1]["from_revision"], "20");
}

#[tokio::test]
async fn silent_watch_is_reopened() {
    let fake = Shared::default();
    fake.lock().unwrap().watch_scripts.push((Vec::new(), true));
    fake.lock()
        .unwrap()
        .watch_scripts
        .push((vec![event("put", "k", 11)], true));
    let client = Client::builder([serve(fake.clone()).await])
        .watch_idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let options = WatchOptions {
        key: "k".into(),
        ..WatchOptions::default()
    };
    let mut watch = client.watch(options).unwrap();
    assert_eq!(collect(&mut watch, 1).await[0].2, 11);
    // The first connection started at the server's revision header.
    assert_eq!(watch_queries(&fake)[1]["from_revision"], "10");
}

#[tokio::test]
async fn compaction_ends_the_watch_with_an_error() {
    let fake = Shared::default();
    let compacted = serde_json::to_string(&WatchMessage::Error {
        code: muster_types::watch::WatchErrorCode::Compacted,
        message: "revision 3 is compacted".into(),
        compacted_revision: Some(8),
        resume_revision: None,
    })
    .unwrap();
    fake.lock()
        .unwrap()
        .watch_scripts
        .push((vec![compacted + "\n"], false));
    let client = Client::new([serve(fake.clone()).await]).unwrap();
    let options = WatchOptions {
        key: "k".into(),
        from_revision: Some(3),
        ..WatchOptions::default()
    };
    let mut watch = client.watch(options).unwrap();
    let err = watch.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Compacted));
    assert_eq!(err.compacted_revision(), Some(8));
    assert!(watch.next().await.is_none());
    assert_eq!(watch_queries(&fake).len(), 1);
}

#[tokio::test]
async fn watch_gives_up_after_bounded_retries() {
    let client = Client::builder([dead_endpoint().await])
        .watch_retries(2)
        .build()
        .unwrap();
    let mut watch = client
        .watch(WatchOptions {
            key: "k".into(),
            ..WatchOptions::default()
        })
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(watch.next().await.is_none());
}
