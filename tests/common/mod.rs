//! Shared harness of the integration tests: `muster server` child processes
//! on loopback, a small HTTP client for the JSON API, and bounded waits.
//!
//! Every target includes this file with `#[path]` and defines `PORTS`, its
//! own port range, so targets running at the same time never collide.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use muster_types::cluster::{MemberList, MemberRole, NodeRole, Status};
use muster_types::error::ErrorBody;
use muster_types::kv::{KeyValue, PutResponse, RangeResponse};
use muster_types::watch::WatchMessage;
use reqwest::Method;
use serde_json::Value;

pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;
/// How often `wait_until` polls.
pub const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------- ports

static NEXT_PORT: AtomicU32 = AtomicU32::new(0);
static PORT_OFFSET: OnceLock<u32> = OnceLock::new();

/// A port from this target's range that nobody listens on right now. Handed
/// out once per process (an atomic counter); the start is shifted by the
/// pid so two runs of the same target are unlikely to overlap.
pub fn next_port() -> u16 {
    let (low, high) = crate::PORTS;
    let span = u32::from(high - low);
    let offset = *PORT_OFFSET.get_or_init(|| (std::process::id().wrapping_mul(97)) % span);
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = low + ((offset + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port left in {low}..{high}");
}

// ---------------------------------------------------------------- waiting

/// Polls `cond` every 50 ms until it holds; panics naming `what` after
/// `timeout`.
pub async fn wait_until<F>(timeout: Duration, what: &str, mut cond: F)
where
    F: AsyncFnMut() -> bool,
{
    wait_for(timeout, what, async || cond().await.then_some(())).await
}

/// Polls `probe` every 50 ms until it yields a value; panics naming `what`
/// after `timeout`.
pub async fn wait_for<T, F>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: AsyncFnMut() -> Option<T>,
{
    let started = Instant::now();
    let max_polls = timeout.as_millis() / POLL.as_millis() + 2;
    for _ in 0..max_polls {
        if let Some(value) = probe().await {
            return value;
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!(
        "timed out after {:.1?} waiting for {what}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------- nodes

/// One `muster server` child process with its own temp directory: data in
/// `<root>/data`, stdout and stderr appended to `<root>/node.log`.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub initial_cluster: String,
    pub extra_args: Vec<String>,
    root: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    /// A node that is not started yet.
    pub fn new(name: &str, initial_cluster: &str, extra_args: &[&str]) -> Node {
        Node::with_ports(name, next_port(), next_port(), initial_cluster, extra_args)
    }

    pub fn with_ports(
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
        extra_args: &[&str],
    ) -> Node {
        Node {
            name: name.to_owned(),
            client_port,
            peer_port,
            initial_cluster: initial_cluster.to_owned(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            root: tempfile::Builder::new()
                .prefix(&format!("muster-{name}-"))
                .tempdir()
                .expect("a temp dir"),
            child: None,
            starts: 0,
        }
    }

    /// A single-node cluster of its own, started.
    pub fn single(name: &str, extra_args: &[&str]) -> Node {
        let peer_port = next_port();
        let initial = format!("{name}=http://127.0.0.1:{peer_port}");
        let mut node = Node::with_ports(name, next_port(), peer_port, &initial, extra_args);
        node.start();
        node
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("node.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Spawns the server. The log gets a marker line per start, so a test
    /// can look at what one particular run printed.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the node log");
        writeln!(log, "===== start {} of {} =====", self.starts, self.name).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_muster"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MUSTER_") {
                command.env_remove(name);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .arg("server")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_port),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", self.peer_port)])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--heartbeat-interval-ms", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout-ms", &ELECTION_MS.to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        let child = command.spawn().expect("spawn muster server");
        self.child = Some(child);
    }

    /// SIGKILL to exactly this child (never by name), then reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills (if running) and starts again on the same data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    /// Deletes the data directory; the node must be stopped.
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "wipe {} while it runs", self.name);
        if self.data_dir().exists() {
            std::fs::remove_dir_all(self.data_dir()).expect("remove the data dir");
        }
    }

    /// Waits (bounded) for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// What the latest start printed.
    pub fn last_run_log(&self) -> String {
        let log = self.log();
        let marker = format!("===== start {} of {} =====", self.starts, self.name);
        match log.rfind(&marker) {
            Some(at) => log[at..].to_owned(),
            None => log,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- last log lines of {} ({}) -----\n{}\n-----",
                self.name,
                self.log_path().display(),
                self.log_tail(40)
            );
        }
    }
}

// ---------------------------------------------------------------- HTTP

/// The JSON API over plain reqwest, one per test (a reqwest client must not
/// outlive the runtime it was used on).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// No overall timeout: for watch streams.
    pub streaming: reqwest::Client,
}

/// An answer: status, headers, body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn error(&self) -> ErrorBody {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|err| panic!("not an error body ({err}): {self:?}"))
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|err| panic!("unexpected body ({err}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    pub fn new() -> Api {
        // The tests' own HTTP clients use the same provider as muster.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("reqwest client"),
            streaming: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .build()
                .expect("reqwest client"),
        }
    }

    /// Any request; `Err` only when no HTTP answer came back.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?.to_vec();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer {
            status,
            headers,
            body,
            bytes,
        })
    }

    pub async fn get(&self, url: &str) -> anyhow::Result<Answer> {
        self.call(Method::GET, url, None).await
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::POST, url, Some(serde_json::to_vec(body)?))
            .await
    }

    pub async fn status(&self, base: &str) -> anyhow::Result<Status> {
        let answer = self.get(&format!("{base}/v1/status")).await?;
        anyhow::ensure!(answer.status == 200, "status: {answer:?}");
        Ok(serde_json::from_value(answer.body)?)
    }

    pub async fn members(&self, base: &str) -> anyhow::Result<MemberList> {
        let answer = self.get(&format!("{base}/v1/cluster/members")).await?;
        anyhow::ensure!(answer.status == 200, "members: {answer:?}");
        Ok(serde_json::from_value(answer.body)?)
    }

    pub async fn ready(&self, base: &str) -> bool {
        matches!(self.get(&format!("{base}/readyz")).await, Ok(a) if a.status == 200)
    }

    /// PUT with a raw body; `query` is appended as is (e.g. `lease=5`).
    pub async fn put(
        &self,
        base: &str,
        key: &str,
        value: impl Into<Vec<u8>>,
        query: &str,
    ) -> anyhow::Result<Answer> {
        let url = with_query(&format!("{base}/v1/kv/{key}"), query);
        self.call(Method::PUT, &url, Some(value.into())).await
    }

    /// A put that must succeed.
    pub async fn put_ok(&self, base: &str, key: &str, value: &str) -> PutResponse {
        let answer = self
            .put(base, key, value, "")
            .await
            .unwrap_or_else(|err| panic!("put {key} on {base}: {err}"));
        assert_eq!(answer.status, 200, "put {key} on {base}: {answer:?}");
        answer.json()
    }

    /// Put through whichever node takes it, retrying (bounded) while a
    /// leader is elected.
    pub async fn put_any(
        &self,
        bases: &[String],
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> PutResponse {
        let mut attempt = 0usize;
        let mut last = String::new();
        wait_for(timeout, &format!("a put of {key} to succeed"), async || {
            let base = &bases[attempt % bases.len()];
            attempt += 1;
            match self.put(base, key, value, "").await {
                Ok(answer) if answer.status == 200 => Some(answer.json()),
                Ok(answer) => {
                    last = format!("{answer:?}");
                    None
                }
                Err(err) => {
                    last = err.to_string();
                    None
                }
            }
        })
        .await
    }

    pub async fn delete(&self, base: &str, key: &str, query: &str) -> anyhow::Result<Answer> {
        let url = with_query(&format!("{base}/v1/kv/{key}"), query);
        self.call(Method::DELETE, &url, None).await
    }

    /// GET /v1/kv/<key>?<query>.
    pub async fn get_key(&self, base: &str, key: &str, query: &str) -> anyhow::Result<Answer> {
        self.get(&with_query(&format!("{base}/v1/kv/{key}"), query))
            .await
    }

    /// One key, `None` when it is absent (404).
    pub async fn kv(
        &self,
        base: &str,
        key: &str,
        serializable: bool,
    ) -> anyhow::Result<Option<KeyValue>> {
        let query = if serializable {
            "consistency=serializable"
        } else {
            ""
        };
        let answer = self.get_key(base, key, query).await?;
        match answer.status {
            200 => Ok(Some(serde_json::from_value(answer.body)?)),
            404 => Ok(None),
            _ => anyhow::bail!("get {key}: {answer:?}"),
        }
    }

    /// Every key under `prefix` (pages through `more`/`next`), read locally.
    pub async fn list_all(&self, base: &str, prefix: &str) -> anyhow::Result<Vec<KeyValue>> {
        let mut kvs = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let mut query = "prefix=true&consistency=serializable&limit=1000".to_owned();
            if let Some(after) = &after {
                query.push_str(&format!("&after={after}"));
            }
            let answer = self.get_key(base, prefix, &query).await?;
            anyhow::ensure!(answer.status == 200, "list {prefix}: {answer:?}");
            let page: RangeResponse = serde_json::from_value(answer.body)?;
            kvs.extend(page.kvs);
            if !page.more {
                return Ok(kvs);
            }
            after = page.next;
            anyhow::ensure!(after.is_some(), "more without next");
        }
        anyhow::bail!("too many pages under {prefix}")
    }

    /// Opens an NDJSON watch; `query` is the whole query string.
    pub async fn watch(&self, base: &str, query: &str) -> WatchStream {
        let url = format!("{base}/v1/watch?{query}");
        let response = self
            .streaming
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("watch {url}: {err}"));
        assert_eq!(response.status().as_u16(), 200, "watch {url}");
        WatchStream {
            response,
            buffer: Vec::new(),
        }
    }
}

pub fn with_query(url: &str, query: &str) -> String {
    if query.is_empty() {
        url.to_owned()
    } else {
        format!("{url}?{query}")
    }
}

/// A watch response read line by line.
pub struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WatchStream {
    /// The next message; `None` on timeout or at the end of the stream.
    pub async fn next(&mut self, timeout: Duration) -> Option<WatchMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_str(text)
                        .unwrap_or_else(|err| panic!("bad watch line {text:?}: {err}")),
                );
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None) | Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The next `count` put/delete events (progress messages skipped);
    /// panics on an error message or when they do not come in `timeout`.
    pub async fn events(&mut self, count: usize, timeout: Duration) -> Vec<WatchMessage> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        while events.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(WatchMessage::Progress { .. }) => {}
                Some(message @ (WatchMessage::Put(_) | WatchMessage::Delete(_))) => {
                    events.push(message)
                }
                Some(error) => panic!("watch error after {events:?}: {error:?}"),
                None => panic!("watch gave {} of {count} events: {events:?}", events.len()),
            }
        }
        events
    }
}

// ---------------------------------------------------------------- clusters

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra `muster server` flags for every node.
    pub extra_args: Vec<String>,
}

impl Options {
    pub fn args(args: &[&str]) -> Options {
        Options {
            extra_args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// Nodes `n1..nN` sharing one `--initial-cluster`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub api: Api,
}

impl Cluster {
    /// Starts `n` nodes and waits (20 s at most) for `n` voters, every one
    /// ready.
    pub async fn start(n: usize, options: Options) -> Cluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (next_port(), next_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let extra: Vec<&str> = options.extra_args.iter().map(String::as_str).collect();
        let mut nodes: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                Node::with_ports(&format!("n{}", i + 1), *client, *peer, &initial, &extra)
            })
            .collect();
        for node in &mut nodes {
            node.start();
        }
        let cluster = Cluster {
            nodes,
            api: Api::new(),
        };
        cluster.wait_healthy(n, Duration::from_secs(20)).await;
        cluster
    }

    pub fn initial_cluster(&self) -> String {
        self.nodes[0].initial_cluster.clone()
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::client_url).collect()
    }

    pub fn running_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::client_url)
            .collect()
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Waits until some running node lists `voters` voters and every running
    /// node is ready.
    pub async fn wait_healthy(&self, voters: usize, timeout: Duration) {
        let urls = self.running_urls();
        let api = &self.api;
        wait_until(
            timeout,
            &format!("{voters} voters and every running node ready"),
            async || {
                let mut listed = false;
                for url in &urls {
                    if let Ok(list) = api.members(url).await
                        && list
                            .members
                            .iter()
                            .filter(|m| m.role == MemberRole::Voter)
                            .count()
                            == voters
                    {
                        listed = true;
                        break;
                    }
                }
                if !listed {
                    return false;
                }
                for url in &urls {
                    if !api.ready(url).await {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    }

    /// Index of the leader among the running nodes: the node that says it
    /// leads, in the highest term any running node reports (10 s at most).
    pub async fn leader(&self) -> usize {
        let api = &self.api;
        let nodes = &self.nodes;
        wait_for(Duration::from_secs(10), "a leader", async || {
            let mut best: Option<(u64, usize)> = None;
            let mut max_term = 0;
            for (i, node) in nodes.iter().enumerate() {
                if !node.is_running() {
                    continue;
                }
                if let Ok(status) = api.status(&node.client_url()).await {
                    max_term = max_term.max(status.term);
                    if status.role == NodeRole::Leader {
                        best = Some((status.term, i));
                    }
                }
            }
            best.filter(|(term, _)| *term == max_term).map(|(_, i)| i)
        })
        .await
    }

    /// Indices of running nodes that are not `leader`.
    pub fn others(&self, leader: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| *i != leader && self.nodes[*i].is_running())
            .collect()
    }

    /// Waits until every running node has applied up to the same revision
    /// as the leader, and returns it.
    pub async fn wait_converged(&self, timeout: Duration) -> u64 {
        let api = &self.api;
        let urls = self.running_urls();
        wait_for(timeout, "every running node at one revision", async || {
            let mut revisions = Vec::new();
            for url in &urls {
                revisions.push(api.status(url).await.ok()?.revision);
            }
            let first = revisions[0];
            revisions.iter().all(|r| *r == first).then_some(first)
        })
        .await
    }
}
