//! The service catalog: namespaces, instances, health, discovery (with
//! blocking queries) and subscriptions that resume across reconnects.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use muster_types::Revision;
use muster_types::catalog::{
    Discovery, HealthReport, HealthStatus, Instance, InstanceSpec, Namespace, NamespaceList,
    ServiceEvent, ServiceList, ServiceSpec,
};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::{DeleteResponse, PutResponse};
use muster_types::lease::LeaseKeepAliveResponse;
use muster_types::watch::WatchErrorCode;
use reqwest::Method;

use crate::reconnect::{self, Failure, Feed};
use crate::watch::Resume;
use crate::{Call, Client, ClientError, Inner, Result, encode_segment};

/// Filters of a discovery query, and its blocking-query position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiscoverOptions {
    /// Statuses to return; empty: the server's default, `passing` only.
    pub healthy: Vec<HealthStatus>,
    /// Every one must be among an instance's tags.
    pub tags: Vec<String>,
    pub zone: Option<String>,
    /// Every pair must be in an instance's metadata.
    pub metadata: Vec<(String, String)>,
    /// Blocking query: answer once the service changed after this revision
    /// (a previous answer's `revision`), or after `wait`.
    pub index: Option<Revision>,
    /// How long a blocking query may wait (server default 30 s, at most 5 min).
    pub wait: Option<Duration>,
    /// Serve from the answering node's state without asking the leader.
    pub serializable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Every change after this revision, without a snapshot; `None`: a
    /// snapshot first, then every change after it.
    pub from_revision: Option<Revision>,
}

fn status_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Passing => "passing",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
    }
}

fn service_path(ns: &str, service: &str) -> String {
    format!(
        "/v1/services/{}/{}",
        encode_segment(ns),
        encode_segment(service)
    )
}

fn instance_path(ns: &str, service: &str, id: &str) -> String {
    format!(
        "{}/instances/{}",
        service_path(ns, service),
        encode_segment(id)
    )
}

impl Client {
    // ---- namespaces ----

    pub async fn namespaces(&self) -> Result<NamespaceList> {
        self.json(Call::new(Method::GET, "/v1/namespaces")).await
    }

    pub async fn create_namespace(&self, name: &str, description: &str) -> Result<Namespace> {
        let namespace = Namespace {
            name: name.to_owned(),
            description: description.to_owned(),
        };
        let call = Call::new(Method::POST, "/v1/namespaces").json(&namespace)?;
        self.json(call).await
    }

    /// Deletes an empty namespace (`409` while it holds services).
    pub async fn delete_namespace(&self, name: &str) -> Result<DeleteResponse> {
        let path = format!("/v1/namespaces/{}", encode_segment(name));
        self.json(Call::new(Method::DELETE, path)).await
    }

    // ---- instances ----

    /// Registers or updates an instance.
    pub async fn register(
        &self,
        ns: &str,
        service: &str,
        id: &str,
        spec: &InstanceSpec,
    ) -> Result<Instance> {
        // Registering the same spec twice leaves the same state.
        let call = Call::new(Method::PUT, instance_path(ns, service, id))
            .json(spec)?
            .idempotent();
        self.json(call).await
    }

    pub async fn deregister(&self, ns: &str, service: &str, id: &str) -> Result<DeleteResponse> {
        self.json(Call::new(Method::DELETE, instance_path(ns, service, id)))
            .await
    }

    /// One instance, `None` when it is not registered.
    pub async fn instance(&self, ns: &str, service: &str, id: &str) -> Result<Option<Instance>> {
        match self
            .json(Call::new(Method::GET, instance_path(ns, service, id)))
            .await
        {
            Ok(instance) => Ok(Some(instance)),
            Err(err) if err.code() == Some(ErrorCode::KeyNotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Keeps an ephemeral instance alive (renews its lease).
    pub async fn heartbeat(
        &self,
        ns: &str,
        service: &str,
        id: &str,
    ) -> Result<LeaseKeepAliveResponse> {
        let path = format!("{}/heartbeat", instance_path(ns, service, id));
        self.json(Call::new(Method::POST, path).idempotent()).await
    }

    /// Reports the result of an instance's check. Not retried after a
    /// timeout: reports count towards flap damping.
    pub async fn report_health(
        &self,
        ns: &str,
        service: &str,
        id: &str,
        report: &HealthReport,
    ) -> Result<Instance> {
        let path = format!("{}/health", instance_path(ns, service, id));
        self.json(Call::new(Method::PUT, path).json(report)?).await
    }

    /// Takes an instance out of discovery, keeping it registered.
    pub async fn drain(&self, ns: &str, service: &str, id: &str) -> Result<Instance> {
        let path = format!("{}/drain", instance_path(ns, service, id));
        self.json(Call::new(Method::POST, path).idempotent()).await
    }

    pub async fn enable(&self, ns: &str, service: &str, id: &str) -> Result<Instance> {
        let path = format!("{}/enable", instance_path(ns, service, id));
        self.json(Call::new(Method::POST, path).idempotent()).await
    }

    // ---- services ----

    /// Sets a service's metadata and protection threshold.
    pub async fn set_service(
        &self,
        ns: &str,
        service: &str,
        spec: &ServiceSpec,
    ) -> Result<PutResponse> {
        let call = Call::new(Method::PUT, service_path(ns, service))
            .json(spec)?
            .idempotent();
        self.json(call).await
    }

    /// The services of a namespace with their instance counts.
    pub async fn list_services(&self, ns: &str) -> Result<ServiceList> {
        let path = format!("/v1/services/{}", encode_segment(ns));
        self.json(Call::new(Method::GET, path)).await
    }

    /// The instances discovery returns. With `index`, a blocking query: the
    /// answer comes once the service changed after it, or after `wait`.
    pub async fn discover(
        &self,
        ns: &str,
        service: &str,
        options: DiscoverOptions,
    ) -> Result<Discovery> {
        let DiscoverOptions {
            healthy,
            tags,
            zone,
            metadata,
            index,
            wait,
            serializable,
        } = options;
        let mut call = Call::new(Method::GET, service_path(ns, service));
        if !healthy.is_empty() {
            let names: Vec<&str> = healthy.into_iter().map(status_name).collect();
            call = call.query("healthy", names.join(","));
        }
        for tag in tags {
            call = call.query("tag", tag);
        }
        if let Some(zone) = zone {
            call = call.query("zone", zone);
        }
        for (key, value) in metadata {
            call = call.query("metadata", format!("{key}:{value}"));
        }
        if serializable {
            call = call.query("consistency", "serializable");
        }
        let Some(index) = index else {
            return self.json(call).await;
        };
        let wait = wait.unwrap_or(Duration::from_secs(30));
        call = call
            .query("index", index)
            .query("wait", format!("{}ms", wait.as_millis()));
        // The answer may take the whole wait: give each attempt that long
        // on top of the usual deadline.
        self.with_request_timeout(self.inner.request_timeout + wait)
            .json(call)
            .await
    }

    /// This client with another per-attempt deadline, sharing connections.
    fn with_request_timeout(&self, request_timeout: Duration) -> Client {
        let inner = &self.inner;
        Client {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                endpoints: inner.endpoints.clone(),
                preferred: AtomicUsize::new(inner.preferred.load(Ordering::Relaxed)),
                request_timeout,
                watch_idle_timeout: inner.watch_idle_timeout,
                watch_retries: inner.watch_retries,
            }),
        }
    }

    /// A service's instance changes: a `Snapshot` first (unless
    /// `from_revision` is given), then `Upsert`/`Remove` for every change,
    /// each once, across reconnects to any endpoint. If the history needed
    /// to resume was compacted, a fresh `Snapshot` comes instead: replace
    /// the state with it. Nothing is sent until the stream is first polled.
    pub fn subscribe(&self, ns: &str, service: &str, options: SubscribeOptions) -> ServiceWatch {
        let feed = ServiceFeed {
            path: format!("{}/watch", service_path(ns, service)),
            resume: Resume::new(options.from_revision),
        };
        ServiceWatch {
            inner: reconnect::stream(self.clone(), feed),
        }
    }
}

/// A stream of [`ServiceEvent`]s (`Snapshot`, `Upsert`, `Remove`); ends
/// after yielding an error it cannot recover from.
pub struct ServiceWatch {
    inner: BoxStream<'static, Result<ServiceEvent>>,
}

impl Stream for ServiceWatch {
    type Item = Result<ServiceEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The subscription's side of the reconnecting stream.
struct ServiceFeed {
    path: String,
    resume: Resume,
}

impl Feed for ServiceFeed {
    type Message = ServiceEvent;
    type Item = ServiceEvent;
    const NAME: &'static str = "subscription";

    fn open(&self) -> Call {
        let call = Call::new(Method::GET, self.path.clone());
        match self.resume.resume_from() {
            Some(from) => call.query("from_revision", from),
            None => call,
        }
    }

    fn opened(&mut self, _started_at: Option<Revision>) {
        // Without a position the server sends a snapshot, which sets it; the
        // stream's start revision must not, or a connection lost before the
        // snapshot arrived would resume without one.
        self.resume.connected(None);
    }

    fn message(
        &mut self,
        event: ServiceEvent,
        ready: &mut VecDeque<Result<ServiceEvent>>,
    ) -> std::result::Result<(), Failure> {
        match event {
            ServiceEvent::Snapshot { revision, .. } => {
                self.resume.progress(revision);
                ready.push_back(Ok(event));
            }
            ServiceEvent::Upsert { ref instance } => {
                if self.resume.accept(instance.revision) {
                    ready.push_back(Ok(event));
                }
            }
            ServiceEvent::Remove { revision, .. } => {
                if self.resume.accept(revision) {
                    ready.push_back(Ok(event));
                }
            }
            ServiceEvent::Progress { revision } => self.resume.progress(revision),
            ServiceEvent::Error { code, message } => {
                let mut body = ErrorBody::new(ErrorCode::Unavailable, message);
                body.field = Some("subscription".into());
                let error = ClientError::Api { status: 503, body };
                if code == WatchErrorCode::Compacted {
                    // The history is gone: start over from a snapshot.
                    self.resume = Resume::new(None);
                }
                return Err(Failure::Retry {
                    error,
                    avoid: code == WatchErrorCode::Unavailable,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(
            instance_path("default", "web", "pod:1"),
            format!(
                "/v1/services/default/web/instances/{}",
                encode_segment("pod:1")
            )
        );
        assert_eq!(
            service_path("a b", "web"),
            format!("/v1/services/{}/web", encode_segment("a b"))
        );
    }
}
