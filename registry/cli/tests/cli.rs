//! The `muster` binary end to end: environment variables, exit codes, and
//! output against a fake server.

use std::process::Output;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use muster_types::Blob;
use muster_types::cluster::{NodeRole, Status};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::KeyValue;
use tokio::process::Command;

async fn muster(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_muster"));
    command.args(args).env_remove("MUSTER_ENDPOINTS");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn fake_server() -> String {
    async fn key(Path(key): Path<String>) -> Response {
        if key == "missing" {
            let body = ErrorBody::new(ErrorCode::KeyNotFound, format!("key not found: {key}"));
            return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
        }
        axum::Json(KeyValue {
            key,
            value: Blob::from("the value"),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
            lease: None,
        })
        .into_response()
    }
    async fn status() -> axum::Json<Status> {
        axum::Json(Status {
            name: "n1".into(),
            id: 7,
            cluster_id: "c".into(),
            role: NodeRole::Leader,
            leader: Some("n1".into()),
            leader_id: Some(7),
            term: 2,
            revision: 30,
            compacted_revision: 0,
            commit_index: 40,
            applied_index: 40,
            last_log_index: 40,
            snapshot_index: None,
            keys: 3,
            version: "0.1.0".into(),
        })
    }
    let app = Router::new()
        .route("/v1/kv/{*key}", get(key))
        .route("/v1/status", get(status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn server_flags_come_from_the_environment() {
    let out = muster(
        &["server", "--name", "a"],
        &[("MUSTER_INITIAL_CLUSTER", "bad")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error: --initial-cluster: entry 'bad' is not name=url"),
        "{}",
        stderr(&out)
    );
    let out = muster(
        &["server"],
        &[
            ("MUSTER_NAME", "x"),
            ("MUSTER_INITIAL_CLUSTER", "y=http://h:1"),
        ],
    )
    .await;
    assert!(
        stderr(&out).contains("does not list this node's name 'x'"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let out = muster(
        &["server", "--dev"],
        &[("MUSTER_HEARTBEAT_INTERVAL_MS", "soon")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("soon"), "{}", stderr(&out));
    let out = muster(&["kv", "frobnicate"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn endpoints_come_from_the_environment() {
    let dead = dead_endpoint().await;
    let out = muster(&["kv", "get", "k"], &[("MUSTER_ENDPOINTS", &dead)]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("error: cannot reach {dead}")),
        "{}",
        stderr(&out)
    );
    let out = muster(&["kv", "get", "k", "--endpoints", "ftp://h:1"], &[]).await;
    assert!(
        stderr(&out).contains("invalid endpoint 'ftp://h:1'"),
        "{}",
        stderr(&out)
    );
    // https needs to know which CA to trust.
    let out = muster(&["kv", "get", "k", "--endpoints", "https://h:1"], &[]).await;
    assert!(
        stderr(&out).contains("--cacert") || stderr(&out).contains("TLS options"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn get_prints_raw_values_and_reports_missing_keys() {
    let live = fake_server().await;
    let out = muster(&["kv", "get", "present", "--endpoints", &live], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"the value", "piped output gets no newline");
    let out = muster(&["kv", "get", "missing", "--endpoints", &live], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: key not found: missing\n");
    let out = muster(
        &["kv", "get", "present", "-o", "json", "--endpoints", &live],
        &[],
    )
    .await;
    let kv: KeyValue = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kv.value, Blob::from("the value"));
}

#[tokio::test]
async fn status_has_a_row_per_endpoint() {
    let live = fake_server().await;
    let dead = dead_endpoint().await;
    let endpoints = format!("{live},{dead}");
    let out = muster(&["status", "--endpoints", &endpoints], &[]).await;
    assert_eq!(out.status.code(), Some(1), "one endpoint is down");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].starts_with(&live) && lines[1].contains("leader"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&dead) && lines[2].contains("cannot reach"),
        "{text}"
    );
    assert!(stderr(&out).contains("1 of 2 endpoint(s) did not answer"));
}
