//! Benchmarks of the typed layers: instance registration, discovery reads,
//! and config publish and listener notification.
//!
//! They speak plain HTTP to the API (worker `i` to endpoint `i mod n`; a
//! follower forwards writes to the leader itself), so they measure the
//! server and nothing of a client library's retry policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use futures::StreamExt as _;
use muster_types::catalog::{DEFAULT_NAMESPACE, Discovery};
use muster_types::config::{ConfigItem, ListenResponse};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tokio::task::JoinSet;

use super::{
    Counters, ERROR_PAUSE, PRELOAD_LIMIT, Run, Summary, count, finish, histogram, join_histograms,
    record, spawn_progress,
};
use crate::Ctx;

/// Services of the register benchmark are `bench-svc-N`.
const REGISTER_SERVICE: &str = "bench-svc";
const DISCOVER_SERVICE: &str = "bench-discover";
const CONFIG_GROUP: &str = "bench";
const CONFIG_DATA_ID: &str = "bench-item";
/// How long a listener's long-poll waits before it returns unchanged.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for listeners to start, and for the last notifications.
const LISTEN_SETTLE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Args)]
pub struct RegisterArgs {
    /// Concurrent registering clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Services registered into (`bench-svc-0` ...).
    #[arg(long, default_value_t = 4)]
    services: usize,
    /// Distinct instances per service: the first registration of each
    /// creates it, later ones update it.
    #[arg(long, default_value_t = 250)]
    instances: usize,
}

impl RegisterArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        let Self {
            clients,
            duration,
            services,
            instances,
        } = self;
        ensure!(*clients > 0, "--clients must be at least 1");
        ensure!(*duration > 0, "--duration must be at least 1 second");
        ensure!(*services > 0, "--services must be at least 1");
        ensure!(
            (1..=65_536).contains(instances),
            "--instances must be between 1 and 65536"
        );
        Ok(())
    }
}

#[derive(Clone, Debug, Args)]
pub struct DiscoverArgs {
    /// Concurrent readers.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Instances of the service read (registered first).
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Serializable (local) reads instead of linearizable ones.
    #[arg(long)]
    serializable: bool,
}

impl DiscoverArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        let Self {
            clients,
            duration,
            instances,
            serializable: _,
        } = self;
        ensure!(*clients > 0, "--clients must be at least 1");
        ensure!(*duration > 0, "--duration must be at least 1 second");
        ensure!(
            (1..=65_536).contains(instances),
            "--instances must be between 1 and 65536"
        );
        Ok(())
    }
}

#[derive(Clone, Debug, Args)]
pub struct ConfigArgs {
    /// Long-poll listeners on the item.
    #[arg(long, default_value_t = 10)]
    listeners: usize,
    /// Milliseconds between publishes.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Bytes of content per publish.
    #[arg(long, default_value_t = 256)]
    content_size: usize,
}

impl ConfigArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        let Self {
            listeners,
            interval_ms,
            duration,
            content_size,
        } = self;
        ensure!(*listeners > 0, "--listeners must be at least 1");
        ensure!(*interval_ms > 0, "--interval-ms must be at least 1");
        ensure!(*duration > 0, "--duration must be at least 1 second");
        ensure!(
            (STAMP_PREFIX_LEN..=muster_types::limits::MAX_VALUE_BYTES / 2).contains(content_size),
            "--content-size must be between {STAMP_PREFIX_LEN} and {}",
            muster_types::limits::MAX_VALUE_BYTES / 2
        );
        Ok(())
    }
}

/// HTTP to the cluster's endpoints, every request under a deadline.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    endpoints: Arc<Vec<String>>,
    timeout: Duration,
}

impl Http {
    fn new(ctx: &Ctx) -> anyhow::Result<Self> {
        let endpoints: Vec<String> = ctx
            .client
            .endpoints()
            .iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        ensure!(!endpoints.is_empty(), "no endpoint to benchmark");
        ensure!(
            endpoints.iter().all(|e| e.starts_with("http://")),
            "the register, discover and config benchmarks speak plain HTTP: give http:// endpoints"
        );
        Ok(Http {
            // No client-wide timeout: long-polls need a longer one.
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .tcp_nodelay(true)
                .build()?,
            endpoints: Arc::new(endpoints),
            timeout: ctx.timeout,
        })
    }

    fn base(&self, worker: usize) -> &str {
        &self.endpoints[worker % self.endpoints.len()]
    }

    /// Sends; a non-2xx answer is an error carrying the body.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        self.send_within(request, self.timeout).await
    }

    async fn send_within(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let response = request.timeout(timeout).send().await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    async fn register(
        &self,
        worker: usize,
        service: &str,
        id: &str,
        spec: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let url = format!(
            "{}/v1/services/{DEFAULT_NAMESPACE}/{service}/instances/{id}",
            self.base(worker)
        );
        self.send(self.client.put(url).json(spec)).await.map(drop)
    }
}

/// An instance registration: a documentation-range address derived from
/// the index, and a weight that varies so each update is a real change.
fn instance_spec(index: usize, weight: u32) -> serde_json::Value {
    json!({
        "address": format!("192.0.{}.{}", index / 256, index % 256),
        "port": 8080,
        "weight": weight,
    })
}

pub async fn register(ctx: &Ctx, args: &RegisterArgs) -> anyhow::Result<Summary> {
    let http = Http::new(ctx)?;
    let mut run = Run::start(Duration::from_secs(args.duration));
    for worker in 0..args.clients {
        let (http, counters, args) = (http.clone(), run.counters.clone(), args.clone());
        let deadline = run.deadline;
        run.workers.spawn(async move {
            let mut hist = histogram();
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            while Instant::now() < deadline {
                let service = format!("{REGISTER_SERVICE}-{}", rng.random_range(0..args.services));
                let index = rng.random_range(0..args.instances);
                let spec = instance_spec(index, rng.random_range(1..=100));
                let sent = Instant::now();
                let result = http
                    .register(worker, &service, &format!("bench-{index}"), &spec)
                    .await;
                count(&mut hist, &counters, sent, result.map(Ok)).await;
            }
            hist
        });
    }
    run.finish("register", ctx).await
}

pub async fn discover(ctx: &Ctx, args: &DiscoverArgs) -> anyhow::Result<Summary> {
    let http = Http::new(ctx)?;
    eprintln!(
        "registering {} instances of {DISCOVER_SERVICE}",
        args.instances
    );
    let registrations = futures::stream::iter(0..args.instances)
        .map(|index| {
            let http = &http;
            async move {
                http.register(
                    index,
                    DISCOVER_SERVICE,
                    &format!("bench-{index}"),
                    &instance_spec(index, 100),
                )
                .await
            }
        })
        .buffer_unordered(args.clients)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(PRELOAD_LIMIT, registrations)
        .await
        .with_context(|| format!("registering took over {}s", PRELOAD_LIMIT.as_secs()))?;
    let mut errors = results.into_iter().filter_map(Result::err);
    if let Some(first) = errors.next() {
        bail!(
            "registering failed for {} instance(s), first: {first}",
            1 + errors.count()
        );
    }

    let mut run = Run::start(Duration::from_secs(args.duration));
    for worker in 0..args.clients {
        let (http, counters, args) = (http.clone(), run.counters.clone(), args.clone());
        let deadline = run.deadline;
        run.workers.spawn(async move {
            let mut hist = histogram();
            let url = format!(
                "{}/v1/services/{DEFAULT_NAMESPACE}/{DISCOVER_SERVICE}",
                http.base(worker)
            );
            let consistency = if args.serializable {
                "serializable"
            } else {
                "linearizable"
            };
            while Instant::now() < deadline {
                let sent = Instant::now();
                let request = http.client.get(&url).query(&[("consistency", consistency)]);
                let answer = http.send(request).await.and_then(|body| {
                    let discovery: Discovery = serde_json::from_slice(&body)?;
                    Ok(discovery.instances.len())
                });
                let result = answer.map(|found| {
                    if found == args.instances {
                        Ok(())
                    } else {
                        Err(format!(
                            "discovery returned {found} of {} instances",
                            args.instances
                        ))
                    }
                });
                count(&mut hist, &counters, sent, result).await;
            }
            hist
        });
    }
    let name = if args.serializable {
        "discover-serializable"
    } else {
        "discover"
    };
    run.finish(name, ctx).await
}

/// `seq=NNNNNNNNNN\n`: which publish a content is.
const STAMP_PREFIX_LEN: usize = 15;

fn stamped_content(seq: u64, size: usize) -> String {
    let mut content = format!("seq={seq:010}\n");
    content.extend(std::iter::repeat_n('x', size.saturating_sub(content.len())));
    content
}

fn content_seq(content: &str) -> Option<u64> {
    content.strip_prefix("seq=")?.get(..10)?.parse().ok()
}

/// When each publish was sent, by sequence number.
type SendTimes = Arc<Mutex<HashMap<u64, Instant>>>;

/// Publishes every `interval_ms` and measures the publish latency; `K`
/// listeners long-poll the item and measure, for each return, the delay
/// since the publish that changed it from the content they held. A
/// listener that was re-arming when a publish landed returns at once, so
/// the delay includes re-arming: what an application would see.
pub async fn config(ctx: &Ctx, args: &ConfigArgs) -> anyhow::Result<[Summary; 2]> {
    let http = Http::new(ctx)?;
    let item_url = |worker: usize| {
        format!(
            "{}/v1/config/{DEFAULT_NAMESPACE}/{CONFIG_GROUP}/{CONFIG_DATA_ID}",
            http.base(worker)
        )
    };
    let publish = async |worker: usize, seq: u64| {
        let request = http
            .client
            .put(item_url(worker))
            .query(&[("format", "text")])
            .body(stamped_content(seq, args.content_size));
        http.send(request).await
    };
    publish(0, 0)
        .await
        .context("publishing the first version")?;

    let sent: SendTimes = Arc::default();
    let notify_counters = Arc::new(Counters::default());
    let last_seen: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.listeners).map(|_| AtomicU64::new(0)).collect());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.listeners);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hard_stop = tokio::time::Instant::now()
        + LISTEN_SETTLE
        + Duration::from_secs(args.duration)
        + LISTEN_SETTLE
        + ctx.timeout;
    let mut listeners = JoinSet::new();
    for listener in 0..args.listeners {
        let (http, sent, counters, last_seen, ready_tx) = (
            http.clone(),
            sent.clone(),
            notify_counters.clone(),
            last_seen.clone(),
            ready_tx.clone(),
        );
        let mut stop_rx = stop_rx.clone();
        let url = item_url(listener);
        let listen_url = format!("{}/v1/config/listen", http.base(listener));
        listeners.spawn(async move {
            let mut hist = histogram();
            let mut ready = Some(ready_tx);
            loop {
                let held = match http.send(http.client.get(&url)).await.and_then(|body| {
                    let item: ConfigItem = serde_json::from_slice(&body)?;
                    let seq = content_seq(&item.content).context("content without seq")?;
                    Ok((seq, item.md5))
                }) {
                    Ok(held) => held,
                    Err(err) => {
                        counters.error(err);
                        tokio::time::sleep(ERROR_PAUSE).await;
                        if tokio::time::Instant::now() >= hard_stop || *stop_rx.borrow() {
                            break;
                        }
                        continue;
                    }
                };
                let (seq, md5) = held;
                last_seen[listener].store(seq, Ordering::Relaxed);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(()).await;
                }
                let body = json!({
                    "items": [{
                        "namespace": DEFAULT_NAMESPACE,
                        "group": CONFIG_GROUP,
                        "data_id": CONFIG_DATA_ID,
                        "md5": md5,
                    }],
                    "timeout_ms": LISTEN_TIMEOUT.as_millis() as u64,
                });
                let poll = http.send_within(
                    http.client.post(&listen_url).json(&body),
                    LISTEN_TIMEOUT + http.timeout,
                );
                let answer = tokio::select! {
                    _ = tokio::time::sleep_until(hard_stop) => break,
                    _ = stop_rx.changed() => break,
                    answer = poll => answer,
                };
                let returned = Instant::now();
                match answer.and_then(|body| Ok(serde_json::from_slice::<ListenResponse>(&body)?)) {
                    Ok(response) if response.changed.is_empty() => {}
                    Ok(_) => {
                        let trigger = sent.lock().expect("not poisoned").get(&(seq + 1)).copied();
                        match trigger {
                            Some(at) => {
                                record(&mut hist, returned.saturating_duration_since(at));
                                counters.ops.fetch_add(1, Ordering::Relaxed);
                            }
                            None => counters.error(format!(
                                "listener returned, but publish {} was never sent",
                                seq + 1
                            )),
                        }
                    }
                    Err(err) => {
                        counters.error(err);
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
            hist
        });
    }
    drop(ready_tx);
    let all_ready = async {
        for _ in 0..args.listeners {
            ready_rx
                .recv()
                .await
                .context("a listener stopped before it was listening")?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(LISTEN_SETTLE, all_ready)
        .await
        .context("listeners did not start in time")??;
    // Each listener has read the item; give its long-poll time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let publish_counters = Arc::new(Counters::default());
    let progress = spawn_progress(notify_counters.clone());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let mut publish_hist = histogram();
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0;
    let mut publishes = 0u64;
    while Instant::now() < deadline {
        ticker.tick().await;
        let next = seq + 1;
        let at = Instant::now();
        // Recorded before sending: a listener may return before the
        // publish's own answer arrives.
        sent.lock().expect("not poisoned").insert(next, at);
        match publish(publishes as usize, next).await {
            Ok(_) => {
                record(&mut publish_hist, at.elapsed());
                publish_counters.ops.fetch_add(1, Ordering::Relaxed);
                publishes += 1;
                seq = next;
            }
            Err(err) => {
                // Not published (or not known to be): the number is reused.
                sent.lock().expect("not poisoned").remove(&next);
                publish_counters.error(err);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    let publishing = start.elapsed();
    // Let every listener see the last publish, then stop them.
    let settle = Instant::now() + LISTEN_SETTLE;
    while last_seen.iter().any(|s| s.load(Ordering::Relaxed) < seq) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let notify_hist = join_histograms(listeners, Duration::from_secs(2)).await?;
    progress.abort();
    finish(&publish_counters);
    finish(&notify_counters);
    let mut publish_summary = Summary::new(
        "config-publish",
        publish_counters.errors.load(Ordering::Relaxed),
        publishing,
        &publish_hist,
    );
    publish_summary.writes = Some(publishes);
    let mut notify_summary = Summary::new(
        "config-notify",
        notify_counters.errors.load(Ordering::Relaxed),
        publishing,
        &notify_hist,
    );
    notify_summary.writes = Some(publishes);
    Ok([publish_summary, notify_summary])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_carries_its_sequence_number() {
        let content = stamped_content(42, 64);
        assert_eq!(content.len(), 64);
        assert_eq!(content_seq(&content), Some(42));
        assert_eq!(stamped_content(7, 0).len(), STAMP_PREFIX_LEN);
        assert_eq!(content_seq(&stamped_content(7, 0)), Some(7));
        assert_eq!(content_seq("seq=12"), None);
        assert_eq!(content_seq("hello"), None);
    }

    #[test]
    fn instance_addresses_are_distinct_per_index() {
        assert_eq!(instance_spec(0, 5)["address"], "192.0.0.0");
        assert_eq!(instance_spec(258, 5)["address"], "192.0.1.2");
        assert_eq!(instance_spec(258, 5)["weight"], 5);
    }

    #[test]
    fn arguments_are_checked() {
        let register = RegisterArgs {
            clients: 1,
            duration: 1,
            services: 1,
            instances: 0,
        };
        assert!(register.check().is_err());
        let config = ConfigArgs {
            listeners: 1,
            interval_ms: 100,
            duration: 1,
            content_size: 3,
        };
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("--content-size"), "{err}");
    }
}
