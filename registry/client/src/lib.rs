//! A Rust client for the Muster registry's HTTP API.
//!
//! A [`Client`] holds a list of endpoints (any members of one cluster). Each
//! call goes to the endpoint that last answered; on connection failures, on
//! timeouts of reads, and on `503` without a known leader it moves on to the
//! next endpoint, and on `421`/`503` naming the leader it retries there once.
//! [`Client::watch`] gives a stream of changes that survives disconnects.

mod catalog;
pub mod config;
mod endpoint;
mod error;
mod ndjson;
mod reconnect;
mod tls;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use muster_types::cluster::{
    AddMemberRequest, LeaderTransferRequest, Member, MemberList, MembershipChange, Status,
};
use muster_types::error::ErrorCode;
use muster_types::kv::{
    CompactRequest, CompactResponse, DeleteResponse, KeyValue, PutResponse, RangeResponse,
    TxnRequest, TxnResponse,
};
use muster_types::lease::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseInfo, LeaseKeepAliveResponse, LeaseList,
    LeaseRevokeResponse,
};
use muster_types::limits::{DEFAULT_RANGE_LIMIT, check_key, check_value};
use muster_types::{LeaseId, Revision};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use catalog::{DiscoverOptions, ServiceWatch, SubscribeOptions};
pub use endpoint::{encode_key, encode_segment, parse_endpoint};
pub use error::{ClientError, TransportKind};
pub use ndjson::{LineDecoder, LineTooLong, MAX_LINE_BYTES};
pub use tls::TlsOptions;
pub use watch::{Change, Watch, WatchOptions};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A watch that hears nothing (not even a progress message) for this long
/// is presumed dead and reopened.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive failed attempts to (re)open a watch before giving up.
pub const DEFAULT_WATCH_RETRIES: u32 = 30;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Attach the key to this lease.
    pub lease: Option<LeaseId>,
    /// Compare-and-swap on `mod_revision`; `Some(0)`: only if absent.
    pub prev_revision: Option<Revision>,
    /// Return the previous key-value.
    pub prev_kv: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Read at this past revision.
    pub revision: Option<Revision>,
    /// Serve from the answering node's state without asking the leader.
    pub serializable: bool,
}

/// Options of a prefix read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// Most keys per answer; 0: the server's default.
    pub limit: usize,
    /// Continue after this key (exclusive).
    pub after: Option<String>,
    pub revision: Option<Revision>,
    pub keys_only: bool,
    pub serializable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete every key starting with the key.
    pub prefix: bool,
    pub prev_kv: bool,
}

pub struct ClientBuilder {
    endpoints: Vec<String>,
    tls: Option<TlsOptions>,
    request_timeout: Duration,
    connect_timeout: Duration,
    watch_idle_timeout: Duration,
    watch_retries: u32,
}

impl ClientBuilder {
    /// Deadline of one attempt of a call, answer body included.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Talk to `https://` endpoints trusting only the given CA, presenting
    /// a client certificate when one is given.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a watch may stay silent before it is reopened; the server
    /// sends progress messages well within this when idle.
    pub fn watch_idle_timeout(mut self, timeout: Duration) -> Self {
        self.watch_idle_timeout = timeout;
        self
    }

    /// Consecutive failed attempts to reopen a watch before it ends with the
    /// last error.
    pub fn watch_retries(mut self, retries: u32) -> Self {
        self.watch_retries = retries;
        self
    }

    pub fn build(self) -> Result<Client> {
        if self.endpoints.is_empty() {
            return Err(ClientError::NoEndpoint);
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|raw| parse_endpoint(raw))
            .collect::<Result<Vec<_>>>()?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            http = http.use_preconfigured_tls(tls::client_config(tls)?);
        } else if endpoints.iter().any(|e| e.starts_with("https://")) {
            return Err(ClientError::InvalidArgument(
                "https endpoints need TLS options: the CA that signed the server certificates"
                    .into(),
            ));
        } else {
            http = http.use_preconfigured_tls(tls::plain_config()?);
        }
        let http = http
            .build()
            .map_err(|err| ClientError::transport("(client setup)", &err))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                preferred: AtomicUsize::new(0),
                request_timeout: self.request_timeout,
                watch_idle_timeout: self.watch_idle_timeout,
                watch_retries: self.watch_retries,
            }),
        })
    }
}

/// A handle on a cluster; cheap to clone, share it between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Normalised by [`parse_endpoint`].
    endpoints: Vec<String>,
    /// Index of the endpoint to try first: the last one that answered.
    preferred: AtomicUsize,
    request_timeout: Duration,
    watch_idle_timeout: Duration,
    watch_retries: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

/// One API call, kept so each attempt can rebuild its request.
struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<(&'static str, Bytes)>,
    /// Safe to resend after a timeout: the first try may have been applied.
    idempotent: bool,
}

impl Call {
    fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = method == Method::GET;
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            idempotent,
        }
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn flag(self, name: &'static str, on: bool) -> Self {
        if on { self.query(name, "true") } else { self }
    }

    fn json(mut self, body: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(body)
            .map_err(|err| ClientError::InvalidArgument(format!("cannot encode request: {err}")))?;
        self.body = Some(("application/json", Bytes::from(bytes)));
        Ok(self)
    }

    fn raw(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(("application/octet-stream", Bytes::from(bytes)));
        self
    }

    fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }
}

/// What one attempt gave back.
enum Reply {
    /// A unary call's whole body.
    Body(Bytes),
    /// A stream, headers read, body still to come.
    Stream(reqwest::Response),
}

struct Answer {
    endpoint: String,
    reply: Reply,
}

impl Client {
    pub fn builder(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClientBuilder {
        ClientBuilder {
            tls: None,
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            watch_idle_timeout: DEFAULT_WATCH_IDLE_TIMEOUT,
            watch_retries: DEFAULT_WATCH_RETRIES,
        }
    }

    /// A client with default timeouts; fails on an empty list or a bad URL.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Result<Self> {
        Self::builder(endpoints).build()
    }

    /// The endpoints, normalised, in the order given.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    // ---- keys ----

    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> Result<PutResponse> {
        check_key(key).map_err(ClientError::InvalidArgument)?;
        let value = value.into();
        check_value(&value).map_err(ClientError::InvalidArgument)?;
        let PutOptions {
            lease,
            prev_revision,
            prev_kv,
        } = options;
        let mut call = Call::new(Method::PUT, kv_path(key)?).raw(value);
        if let Some(lease) = lease {
            call = call.query("lease", lease);
        }
        if let Some(rev) = prev_revision {
            call = call.query("prev_revision", rev);
        }
        self.json(call.flag("prev_kv", prev_kv)).await
    }

    /// One key, or `None` when it does not exist (at that revision).
    pub async fn get(&self, key: &str, options: GetOptions) -> Result<Option<KeyValue>> {
        check_key(key).map_err(ClientError::InvalidArgument)?;
        let GetOptions {
            revision,
            serializable,
        } = options;
        let mut call = Call::new(Method::GET, kv_path(key)?);
        if let Some(rev) = revision {
            call = call.query("revision", rev);
        }
        if serializable {
            call = call.query("consistency", "serializable");
        }
        match self.json(call).await {
            Ok(kv) => Ok(Some(kv)),
            Err(err) if err.code() == Some(ErrorCode::KeyNotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// One page of the keys starting with `prefix` ("" for all keys).
    pub async fn range(&self, prefix: &str, options: RangeOptions) -> Result<RangeResponse> {
        let RangeOptions {
            limit,
            after,
            revision,
            keys_only,
            serializable,
        } = options;
        let mut call = Call::new(Method::GET, kv_path(prefix)?).query("prefix", "true");
        if limit > 0 {
            call = call.query("limit", limit);
        }
        if let Some(after) = after {
            call = call.query("after", after);
        }
        if let Some(rev) = revision {
            call = call.query("revision", rev);
        }
        if serializable {
            call = call.query("consistency", "serializable");
        }
        self.json(call.flag("keys_only", keys_only)).await
    }

    /// Follows continuations until `max_keys` keys (0: all) or the end.
    /// Later pages are read at the first page's revision, so the listing is
    /// one consistent snapshot. `options.limit` is the page size.
    pub async fn range_all(
        &self,
        prefix: &str,
        mut options: RangeOptions,
        max_keys: usize,
    ) -> Result<RangeResponse> {
        let page_size = if options.limit == 0 {
            DEFAULT_RANGE_LIMIT
        } else {
            options.limit
        };
        let mut all: Option<RangeResponse> = None;
        loop {
            let have = all.as_ref().map_or(0, |r| r.kvs.len());
            options.limit = if max_keys == 0 {
                page_size
            } else {
                page_size.min(max_keys - have)
            };
            let page = self.range(prefix, options.clone()).await?;
            let merged = match all.as_mut() {
                None => all.insert(page),
                Some(merged) => {
                    merged.kvs.extend(page.kvs);
                    merged.more = page.more;
                    merged.next = page.next;
                    merged
                }
            };
            let full = max_keys != 0 && merged.kvs.len() >= max_keys;
            match (&merged.next, merged.more && !full) {
                (Some(next), true) => {
                    options.after = Some(next.clone());
                    options.revision = Some(merged.revision);
                }
                _ => return Ok(all.expect("set above")),
            }
        }
    }

    pub async fn delete(&self, key: &str, options: DeleteOptions) -> Result<DeleteResponse> {
        let DeleteOptions { prefix, prev_kv } = options;
        if !prefix {
            check_key(key).map_err(ClientError::InvalidArgument)?;
        }
        let call = Call::new(Method::DELETE, kv_path(key)?)
            .flag("prefix", prefix)
            .flag("prev_kv", prev_kv);
        self.json(call).await
    }

    pub async fn txn(&self, txn: &TxnRequest) -> Result<TxnResponse> {
        self.json(Call::new(Method::POST, "/v1/txn").json(txn)?)
            .await
    }

    /// Drops history before `revision`.
    pub async fn compact(&self, revision: Revision) -> Result<CompactResponse> {
        let call = Call::new(Method::POST, "/v1/compact").json(&CompactRequest { revision })?;
        self.json(call).await
    }

    // ---- leases ----

    pub async fn lease_grant(&self, ttl: i64, id: Option<LeaseId>) -> Result<LeaseGrantResponse> {
        let call = Call::new(Method::POST, "/v1/leases").json(&LeaseGrantRequest { ttl, id })?;
        self.json(call).await
    }

    pub async fn lease_keepalive(&self, id: LeaseId) -> Result<LeaseKeepAliveResponse> {
        // Renewing twice is harmless, so a timed-out renewal is retried.
        let call = Call::new(Method::POST, format!("/v1/leases/{id}/keepalive")).idempotent();
        self.json(call).await
    }

    pub async fn lease_revoke(&self, id: LeaseId) -> Result<LeaseRevokeResponse> {
        self.json(Call::new(Method::DELETE, format!("/v1/leases/{id}")))
            .await
    }

    pub async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo> {
        self.json(Call::new(Method::GET, format!("/v1/leases/{id}")))
            .await
    }

    pub async fn lease_list(&self) -> Result<LeaseList> {
        self.json(Call::new(Method::GET, "/v1/leases")).await
    }

    // ---- cluster ----

    pub async fn members(&self) -> Result<MemberList> {
        self.json(Call::new(Method::GET, "/v1/cluster/members"))
            .await
    }

    pub async fn add_member(&self, request: &AddMemberRequest) -> Result<Member> {
        let call = Call::new(Method::POST, "/v1/cluster/members").json(request)?;
        self.json(call).await
    }

    /// Turns a learner into a voter.
    pub async fn promote_member(
        &self,
        name: &str,
        expect_membership: Option<u64>,
    ) -> Result<MemberList> {
        let path = format!("/v1/cluster/members/{}/promote", encode_segment(name));
        let call = Call::new(Method::POST, path).json(&MembershipChange { expect_membership })?;
        self.json(call).await
    }

    pub async fn remove_member(
        &self,
        name: &str,
        expect_membership: Option<u64>,
    ) -> Result<MemberList> {
        let path = format!("/v1/cluster/members/{}", encode_segment(name));
        let mut call = Call::new(Method::DELETE, path);
        if let Some(expect) = expect_membership {
            call = call.query("expect_membership", expect);
        }
        self.json(call).await
    }

    pub async fn transfer_leader(&self, to: &str) -> Result<MemberList> {
        let call = Call::new(Method::POST, "/v1/cluster/leader/transfer")
            .json(&LeaderTransferRequest { to: to.to_string() })?;
        self.json(call).await
    }

    /// The status of whichever endpoint answers.
    pub async fn status(&self) -> Result<Status> {
        self.json(Call::new(Method::GET, "/v1/status")).await
    }

    /// The status of one given endpoint: no failover, no redirect.
    pub async fn status_of(&self, endpoint: &str) -> Result<Status> {
        let endpoint = parse_endpoint(endpoint)?;
        let call = Call::new(Method::GET, "/v1/status");
        match self.attempt(&endpoint, &call, false).await? {
            Reply::Body(body) => decode_json(&endpoint, &body),
            Reply::Stream(_) => unreachable!("unary attempt"),
        }
    }

    // ---- plumbing ----

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let answer = self.execute(&call, false).await?;
        match answer.reply {
            Reply::Body(body) => decode_json(&answer.endpoint, &body),
            Reply::Stream(_) => unreachable!("unary call"),
        }
    }

    /// Runs a call with failover: each endpoint once, starting with the
    /// preferred one, plus one detour to a leader named by a `421`/`503`.
    async fn execute(&self, call: &Call, stream: bool) -> Result<Answer> {
        let endpoints = &self.inner.endpoints;
        let start = self.inner.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        let mut redirected = false;
        for step in 0..endpoints.len() {
            let mut index = Some((start + step) % endpoints.len());
            let mut target = endpoints[(start + step) % endpoints.len()].clone();
            loop {
                let err = match self.attempt(&target, call, stream).await {
                    Ok(reply) => {
                        if let Some(index) = index {
                            self.inner.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok(Answer {
                            endpoint: target,
                            reply,
                        });
                    }
                    Err(err) => err,
                };
                if !redirected && let Some(leader) = leader_redirect(&err, &target) {
                    tracing::debug!(from = %target, to = %leader, "retrying on the leader");
                    redirected = true;
                    index = endpoints.iter().position(|e| *e == leader);
                    target = leader;
                    continue;
                }
                if !worth_another_endpoint(&err, call.idempotent) {
                    return Err(err);
                }
                tracing::debug!(endpoint = %target, error = %err, "trying the next endpoint");
                last_error = Some(err);
                break;
            }
        }
        Err(last_error.unwrap_or(ClientError::NoEndpoint))
    }

    /// One request to one endpoint. Non-2xx answers become errors.
    async fn attempt(&self, endpoint: &str, call: &Call, stream: bool) -> Result<Reply> {
        let url = format!("{endpoint}{}", call.path);
        let mut request = self.inner.http.request(call.method.clone(), &url);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some((content_type, body)) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .body(body.clone());
        }
        let timeout = self.inner.request_timeout;
        if stream {
            request = request.header(reqwest::header::ACCEPT, "application/x-ndjson");
        } else {
            request = request.timeout(timeout);
        }
        // A stream has no overall deadline, but its headers must come soon.
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => return Err(ClientError::timeout(endpoint, "waiting for an answer")),
            Ok(Err(err)) => return Err(ClientError::transport(endpoint, &err)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() && stream {
            return Ok(Reply::Stream(response));
        }
        let body = match tokio::time::timeout(timeout, response.bytes()).await {
            Err(_) => return Err(ClientError::timeout(endpoint, "reading the answer")),
            Ok(Err(err)) => return Err(ClientError::transport(endpoint, &err)),
            Ok(Ok(body)) => body,
        };
        if status.is_success() {
            Ok(Reply::Body(body))
        } else {
            Err(error::decode_error(status.as_u16(), &body))
        }
    }

    /// Makes the endpoint after `endpoint` the preferred one, so the next
    /// call avoids a node that misbehaved without refusing connections.
    fn avoid(&self, endpoint: &str) {
        let endpoints = &self.inner.endpoints;
        if let Some(index) = endpoints.iter().position(|e| e == endpoint) {
            let _ = self.inner.preferred.compare_exchange(
                index,
                (index + 1) % endpoints.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

fn kv_path(key: &str) -> Result<String> {
    Ok(format!("/v1/kv/{}", encode_key(key)?))
}

fn decode_json<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|err| ClientError::Decode {
        endpoint: endpoint.to_string(),
        message: format!(
            "{err} in {:?}",
            error::truncate(&String::from_utf8_lossy(body), 120)
        ),
    })
}

/// The leader to retry on, when the error names one other than `target`.
fn leader_redirect(err: &ClientError, target: &str) -> Option<String> {
    let ClientError::Api { status, body } = err else {
        return None;
    };
    if *status != 421 && *status != 503 {
        return None;
    }
    let leader = parse_endpoint(body.leader_url.as_deref()?).ok()?;
    (leader != target).then_some(leader)
}

/// Whether another endpoint might succeed where this one failed.
fn worth_another_endpoint(err: &ClientError, idempotent: bool) -> bool {
    match err {
        ClientError::Transport { kind, .. } => *kind == TransportKind::Connect || idempotent,
        ClientError::Api { status, .. } => *status == 503 || *status == 421,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use muster_types::error::ErrorBody;

    use super::*;

    fn api(status: u16, code: ErrorCode, leader_url: Option<&str>) -> ClientError {
        let mut body = ErrorBody::new(code, "x");
        body.leader_url = leader_url.map(str::to_string);
        ClientError::Api { status, body }
    }

    #[test]
    fn client_needs_valid_endpoints() {
        assert!(matches!(
            Client::new(Vec::<String>::new()),
            Err(ClientError::NoEndpoint)
        ));
        assert!(matches!(
            Client::new(["http://a:1", "ftp://b:1"]),
            Err(ClientError::InvalidEndpoint { .. })
        ));
        // https needs the CA to trust.
        assert!(matches!(
            Client::new(["http://a:1", "https://b:1"]),
            Err(ClientError::InvalidArgument(message)) if message.contains("TLS")
        ));
        let client = Client::new(["a:1", "http://b:2/"]).unwrap();
        assert_eq!(client.endpoints(), ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn redirects_follow_a_named_leader_only() {
        let not_leader = api(421, ErrorCode::NotLeader, Some("http://leader:7001/"));
        assert_eq!(
            leader_redirect(&not_leader, "http://a:7001").as_deref(),
            Some("http://leader:7001")
        );
        // Already there: no point asking again.
        assert_eq!(leader_redirect(&not_leader, "http://leader:7001"), None);
        let unavailable = api(503, ErrorCode::Unavailable, Some("http://leader:7001"));
        assert!(leader_redirect(&unavailable, "http://a:7001").is_some());
        assert_eq!(
            leader_redirect(&api(503, ErrorCode::Unavailable, None), "http://a:1"),
            None
        );
        let conflict = api(409, ErrorCode::Conflict, Some("http://leader:7001"));
        assert_eq!(leader_redirect(&conflict, "http://a:1"), None);
    }

    #[test]
    fn only_unsent_writes_move_on_after_transport_errors() {
        let err = |kind| ClientError::Transport {
            endpoint: "e".into(),
            kind,
            message: "m".into(),
        };
        assert!(worth_another_endpoint(&err(TransportKind::Connect), false));
        assert!(!worth_another_endpoint(&err(TransportKind::Timeout), false));
        assert!(worth_another_endpoint(&err(TransportKind::Timeout), true));
        assert!(worth_another_endpoint(
            &api(503, ErrorCode::Unavailable, None),
            false
        ));
        assert!(!worth_another_endpoint(
            &api(404, ErrorCode::KeyNotFound, None),
            true
        ));
    }
}
