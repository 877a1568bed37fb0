//! The `muster` command line against a real single-node server.

#[path = "../common/mod.rs"]
mod util;

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::util::{Api, Node, wait_until};

/// This target's port range.
pub const PORTS: (u16, u16) = (24000, 24999);

async fn muster(endpoints: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_muster"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MUSTER_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .args(["--endpoints", endpoints, "--timeout", "5s"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("muster {args:?} did not finish"))
        .expect("run muster")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

async fn server() -> (Node, String) {
    let node = Node::single("clinode", &[]);
    let api = Api::new();
    let url = node.client_url();
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(&url).await,
    )
    .await;
    (node, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_commands() {
    let (_node, url) = server().await;
    let put = ok(&muster(&url, &["kv", "put", "a", "hello"]).await, "kv put");
    let revision: u64 = put
        .trim()
        .strip_prefix("OK revision=")
        .unwrap_or_else(|| panic!("unexpected put output {put:?}"))
        .parse()
        .unwrap();
    assert!(revision >= 1);

    // Raw bytes on a pipe: no newline added.
    let get = ok(&muster(&url, &["kv", "get", "a"]).await, "kv get");
    assert_eq!(get, "hello");

    let json = ok(
        &muster(&url, &["-o", "json", "kv", "get", "a"]).await,
        "json get",
    );
    let kv: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(kv["key"], "a");
    assert_eq!(kv["value"], "aGVsbG8=");
    assert_eq!(kv["mod_revision"], revision);

    let missing = muster(&url, &["kv", "get", "missing"]).await;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(
        stderr(&missing).contains("key not found"),
        "stderr: {}",
        stderr(&missing)
    );
    assert_eq!(stdout(&missing), "");

    // The first endpoint is dead; the client moves on to the next.
    let endpoints = format!("http://127.0.0.1:1,{url}");
    let failover = ok(
        &muster(&endpoints, &["kv", "get", "a"]).await,
        "dead first endpoint",
    );
    assert_eq!(failover, "hello");
    let put = ok(
        &muster(&endpoints, &["kv", "put", "b", "world"]).await,
        "put with a dead first endpoint",
    );
    assert!(put.starts_with("OK revision="), "{put}");
    assert_eq!(
        ok(&muster(&url, &["kv", "get", "b"]).await, "get b"),
        "world"
    );

    let deleted = ok(&muster(&url, &["kv", "del", "b"]).await, "kv del");
    assert_eq!(deleted.trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_list_and_status() {
    let (node, url) = server().await;
    let list = ok(&muster(&url, &["member", "list"]).await, "member list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "header, one member, membership id:\n{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "ID", "ROLE", "LEADER", "PEER", "URL", "CLIENT", "URL", "LAG"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "clinode");
    assert_eq!(row[2], "voter");
    assert_eq!(row[3], "true");
    assert_eq!(row[4], node.peer_url());
    assert_eq!(row[5], url);
    assert!(lines[2].starts_with("membership id: "), "{list}");

    let status = ok(&muster(&url, &["status"]).await, "status");
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 2, "{status}");
    assert!(lines[0].starts_with("ENDPOINT"), "{status}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], url);
    assert_eq!(row[1], "clinode");
    assert_eq!(row[3], "leader");

    // A dead endpoint makes status fail, but the live one is still shown.
    let mixed = muster(&format!("{url},http://127.0.0.1:1"), &["status"]).await;
    assert_eq!(mixed.status.code(), Some(1));
    assert!(stdout(&mixed).contains("clinode"), "{}", stdout(&mixed));
    assert!(
        stderr(&mixed).contains("1 of 2 endpoint(s) did not answer"),
        "{}",
        stderr(&mixed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_grant_and_show() {
    let (_node, url) = server().await;
    let granted = ok(
        &muster(&url, &["lease", "grant", "30"]).await,
        "lease grant",
    );
    // "lease <id> granted with TTL 30s"
    let words: Vec<&str> = granted.split_whitespace().collect();
    assert_eq!(words.len(), 6, "{granted}");
    assert_eq!(words[0], "lease");
    assert_eq!(&words[2..], ["granted", "with", "TTL", "30s"]);
    let id: u64 = words[1].parse().expect("a lease id");

    let put = ok(
        &muster(
            &url,
            &["kv", "put", "leased", "x", "--lease", &id.to_string()],
        )
        .await,
        "put with lease",
    );
    assert!(put.starts_with("OK"), "{put}");

    let shown = ok(
        &muster(&url, &["lease", "show", &id.to_string()]).await,
        "lease show",
    );
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "TTL", "GRANTED", "KEYS"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], id.to_string());
    let ttl: i64 = row[1].parse().unwrap();
    assert!((25..=30).contains(&ttl), "ttl {ttl}");
    assert_eq!(row[2], "30");
    assert_eq!(row[3], "leased");

    let revoked = ok(
        &muster(&url, &["lease", "revoke", &id.to_string()]).await,
        "lease revoke",
    );
    assert!(revoked.contains("1 key(s) deleted"), "{revoked}");
    let gone = muster(&url, &["lease", "show", &id.to_string()]).await;
    assert_eq!(gone.status.code(), Some(1));
}
