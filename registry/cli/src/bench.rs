//! `muster bench`: load generators with latency histograms.
//!
//! Every phase is bounded in time: workers stop at the deadline, requests
//! carry the client timeout, and stragglers are aborted after a grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use muster_client::{Client, GetOptions, PutOptions, WatchOptions};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::Ctx;
use crate::output::{Format, Table, print_json};

mod typed;

/// Every benchmark key starts with this, so one prefix delete cleans up.
const PREFIX: &str = "bench/";
/// Watchers learn they are live when they see this key.
const READY_KEY: &str = "bench/~ready";
/// A watch benchmark's value starts with the send time: 20 decimal digits
/// of nanoseconds since the Unix epoch.
const STAMP_LEN: usize = 20;
/// Time allowed for watchers to start, and for the last events to arrive.
const WATCH_SETTLE: Duration = Duration::from_secs(10);
const PRELOAD_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Writes of random keys.
    Put(LoadArgs),
    /// Reads of random keys, preloaded first.
    Get {
        #[command(flatten)]
        load: LoadArgs,
        /// Serializable (local) reads instead of linearizable ones.
        #[arg(long)]
        serializable: bool,
    },
    /// End-to-end latency from a put to its watchers.
    Watch {
        #[command(flatten)]
        load: LoadArgs,
        /// Concurrent watchers of the benchmark prefix.
        #[arg(long, default_value_t = 10)]
        watchers: usize,
    },
    /// Registrations and updates of service instances.
    Register(typed::RegisterArgs),
    /// Discovery reads of one service with `--instances` instances.
    Discover(typed::DiscoverArgs),
    /// Config publish latency, and the delay from a publish to the return
    /// of long-poll listeners on the item.
    Config(typed::ConfigArgs),
}

#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// Concurrent requests (writers for watch).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Bytes per key, the 'bench/' prefix included.
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Distinct keys used.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
}

impl LoadArgs {
    fn check(&self, min_value: usize) -> anyhow::Result<()> {
        let Self {
            clients,
            duration,
            key_size,
            value_size,
            keys,
        } = self;
        ensure!(*clients > 0, "--clients must be at least 1");
        ensure!(*duration > 0, "--duration must be at least 1 second");
        ensure!(*keys > 0, "--keys must be at least 1");
        let digits = (keys - 1).to_string().len();
        ensure!(
            *key_size >= PREFIX.len() + digits,
            "--key-size {key_size} is too small for {keys} keys (need {})",
            PREFIX.len() + digits
        );
        ensure!(
            (min_value..=muster_types::limits::MAX_VALUE_BYTES).contains(value_size),
            "--value-size must be between {min_value} and {}",
            muster_types::limits::MAX_VALUE_BYTES
        );
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }
}

impl BenchCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let summary = match self {
            BenchCommand::Put(load) => {
                load.check(0)?;
                put(ctx, &load).await?
            }
            BenchCommand::Get { load, serializable } => {
                load.check(0)?;
                get(ctx, &load, serializable).await?
            }
            BenchCommand::Watch { load, watchers } => {
                load.check(STAMP_LEN)?;
                ensure!(watchers > 0, "--watchers must be at least 1");
                watch(ctx, &load, watchers).await?
            }
            BenchCommand::Register(args) => {
                args.check()?;
                typed::register(ctx, &args).await?
            }
            BenchCommand::Discover(args) => {
                args.check()?;
                typed::discover(ctx, &args).await?
            }
            BenchCommand::Config(args) => {
                args.check()?;
                let [publish, notify] = typed::config(ctx, &args).await?;
                return match ctx.format {
                    Format::Json => print_json(&serde_json::json!({
                        "publish": publish,
                        "notify": notify,
                    })),
                    Format::Table => {
                        Summary::table_of(&[publish, notify]).print();
                        Ok(())
                    }
                };
            }
        };
        match ctx.format {
            Format::Json => print_json(&summary),
            Format::Table => {
                summary.table().print();
                Ok(())
            }
        }
    }
}

/// Counts shared by the workers and the progress line.
#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, err: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().expect("not poisoned");
        if first.is_none() {
            *first = Some(err.to_string());
        }
    }
}

/// Latencies in microseconds, 1 µs to 1 min, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn record(hist: &mut Histogram<u64>, latency: Duration) {
    hist.saturating_record(
        u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1),
    );
}

#[derive(Debug, PartialEq, Serialize)]
struct Summary {
    benchmark: &'static str,
    ops: u64,
    errors: u64,
    seconds: f64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// Watch only: puts made, each due to every watcher.
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<u64>,
}

impl Summary {
    fn new(benchmark: &'static str, errors: u64, elapsed: Duration, hist: &Histogram<u64>) -> Self {
        let seconds = elapsed.as_secs_f64();
        let ms = |us: u64| us as f64 / 1000.0;
        let quantile = |q: f64| {
            if hist.is_empty() {
                0.0
            } else {
                ms(hist.value_at_quantile(q))
            }
        };
        Summary {
            benchmark,
            ops: hist.len(),
            errors,
            seconds,
            ops_per_sec: if seconds > 0.0 {
                hist.len() as f64 / seconds
            } else {
                0.0
            },
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: if hist.is_empty() { 0.0 } else { ms(hist.max()) },
            writes: None,
        }
    }

    fn table(&self) -> Table {
        Self::table_of(std::slice::from_ref(self))
    }

    /// One row per summary; a WRITES column when any has writes.
    fn table_of(summaries: &[Summary]) -> Table {
        let with_writes = summaries.iter().any(|s| s.writes.is_some());
        let mut headers = vec![
            "BENCHMARK",
            "OPS",
            "ERRORS",
            "OPS/S",
            "P50 MS",
            "P99 MS",
            "P99.9 MS",
            "MAX MS",
        ];
        if with_writes {
            headers.push("WRITES");
        }
        let mut table = Table::new(&headers);
        for summary in summaries {
            let mut row = vec![
                summary.benchmark.to_string(),
                summary.ops.to_string(),
                summary.errors.to_string(),
                format!("{:.1}", summary.ops_per_sec),
                format!("{:.3}", summary.p50_ms),
                format!("{:.3}", summary.p99_ms),
                format!("{:.3}", summary.p999_ms),
                format!("{:.3}", summary.max_ms),
            ];
            if with_writes {
                row.push(summary.writes.map_or_else(|| "-".into(), |w| w.to_string()));
            }
            table.row(row);
        }
        table
    }
}

/// Prints ops so far and ops in the last second, every second, to stderr.
fn spawn_progress(counters: Arc<Counters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        let mut previous = 0;
        loop {
            ticker.tick().await;
            let ops = counters.ops.load(Ordering::Relaxed);
            let errors = counters.errors.load(Ordering::Relaxed);
            eprintln!(
                "{:>4}s  ops={ops}  ops/s={}  errors={errors}",
                start.elapsed().as_secs(),
                ops - previous
            );
            previous = ops;
        }
    })
}

/// Waits for the workers' histograms, aborting any still running after
/// `grace`, and merges them.
async fn join_histograms(
    mut tasks: JoinSet<Histogram<u64>>,
    grace: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let mut total = histogram();
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(joined)) => total.add(joined.context("a benchmark task failed")?)?,
            Ok(None) => return Ok(total),
            Err(_) => {
                tasks.abort_all();
                eprintln!("warning: {} task(s) did not stop in time", tasks.len());
                return Ok(total);
            }
        }
    }
}

fn bench_key(index: usize, key_size: usize) -> String {
    format!("{PREFIX}{index:0width$}", width = key_size - PREFIX.len())
}

/// Pauses a worker after an error so a dead cluster does not spin the CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

fn finish(counters: &Counters) {
    if let Some(first) = counters.first_error.lock().expect("not poisoned").as_ref() {
        eprintln!("first error: {first}");
    }
}

/// A closed-loop run: workers that each send one request at a time until
/// the deadline, a progress line, and the clock.
struct Run {
    counters: Arc<Counters>,
    progress: tokio::task::JoinHandle<()>,
    start: Instant,
    deadline: Instant,
    workers: JoinSet<Histogram<u64>>,
}

impl Run {
    fn start(duration: Duration) -> Self {
        let counters = Arc::new(Counters::default());
        let start = Instant::now();
        Run {
            progress: spawn_progress(counters.clone()),
            counters,
            start,
            deadline: start + duration,
            workers: JoinSet::new(),
        }
    }

    /// Waits for the workers and sums the run up.
    async fn finish(self, benchmark: &'static str, ctx: &Ctx) -> anyhow::Result<Summary> {
        let hist = join_histograms(self.workers, ctx.timeout + Duration::from_secs(1)).await;
        self.progress.abort();
        finish(&self.counters);
        Ok(Summary::new(
            benchmark,
            self.counters.errors.load(Ordering::Relaxed),
            self.start.elapsed(),
            &hist?,
        ))
    }
}

/// Counts one request sent at `sent`: its latency when it succeeded; a
/// wrong answer (inner `Err`) as an error; a failure as an error, after
/// which the worker pauses so a dead cluster does not spin the CPU.
async fn count<E: std::fmt::Display>(
    hist: &mut Histogram<u64>,
    counters: &Counters,
    sent: Instant,
    result: Result<Result<(), String>, E>,
) {
    match result {
        Ok(Ok(())) => {
            record(hist, sent.elapsed());
            counters.ops.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(wrong)) => counters.error(wrong),
        Err(err) => {
            counters.error(err);
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

async fn put(ctx: &Ctx, load: &LoadArgs) -> anyhow::Result<Summary> {
    let mut run = Run::start(load.duration());
    let value = vec![b'x'; load.value_size];
    for _ in 0..load.clients {
        let (client, counters, value, load) = (
            ctx.client.clone(),
            run.counters.clone(),
            value.clone(),
            load.clone(),
        );
        let deadline = run.deadline;
        run.workers.spawn(async move {
            let mut hist = histogram();
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            while Instant::now() < deadline {
                let key = bench_key(rng.random_range(0..load.keys), load.key_size);
                let sent = Instant::now();
                let result = client.put(&key, value.clone(), PutOptions::default()).await;
                count(&mut hist, &counters, sent, result.map(|_| Ok(()))).await;
            }
            hist
        });
    }
    run.finish("put", ctx).await
}

async fn get(ctx: &Ctx, load: &LoadArgs, serializable: bool) -> anyhow::Result<Summary> {
    preload(&ctx.client, load).await?;
    let mut run = Run::start(load.duration());
    for _ in 0..load.clients {
        let (client, counters, load) = (ctx.client.clone(), run.counters.clone(), load.clone());
        let deadline = run.deadline;
        run.workers.spawn(async move {
            let mut hist = histogram();
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let options = GetOptions {
                revision: None,
                serializable,
            };
            while Instant::now() < deadline {
                let key = bench_key(rng.random_range(0..load.keys), load.key_size);
                let sent = Instant::now();
                let result = client.get(&key, options.clone()).await.map(|found| {
                    found
                        .map(drop)
                        .ok_or_else(|| format!("preloaded key {key} is missing"))
                });
                count(&mut hist, &counters, sent, result).await;
            }
            hist
        });
    }
    run.finish("get", ctx).await
}

/// Writes every key once, `clients` at a time.
async fn preload(client: &Client, load: &LoadArgs) -> anyhow::Result<()> {
    eprintln!("preloading {} keys", load.keys);
    let value = vec![b'x'; load.value_size];
    let writes = futures::stream::iter(0..load.keys)
        .map(|index| {
            let key = bench_key(index, load.key_size);
            let value = value.clone();
            async move { client.put(&key, value, PutOptions::default()).await }
        })
        .buffer_unordered(load.clients)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(PRELOAD_LIMIT, writes)
        .await
        .with_context(|| format!("preloading took over {}s", PRELOAD_LIMIT.as_secs()))?;
    let mut errors = results.into_iter().filter_map(Result::err);
    if let Some(first) = errors.next() {
        bail!(
            "preloading failed for {} key(s), first: {first}",
            1 + errors.count()
        );
    }
    Ok(())
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A value that carries its send time, padded to `size`.
fn stamped_value(size: usize) -> Vec<u8> {
    let mut value = format!("{:0width$}", now_nanos(), width = STAMP_LEN).into_bytes();
    value.resize(size.max(STAMP_LEN), b'x');
    value
}

/// The delay since a stamped value was made; `None` for other values.
fn stamp_age(value: &[u8]) -> Option<Duration> {
    let stamp: u128 = std::str::from_utf8(value.get(..STAMP_LEN)?)
        .ok()?
        .parse()
        .ok()?;
    let nanos = now_nanos().saturating_sub(stamp);
    Some(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

async fn watch(ctx: &Ctx, load: &LoadArgs, watchers: usize) -> anyhow::Result<Summary> {
    let counters = Arc::new(Counters::default());
    let writes = Arc::new(AtomicU64::new(0));
    // Watchers start just before the marker so each one sees it once live.
    let marker = ctx
        .client
        .put(READY_KEY, "ready", PutOptions::default())
        .await?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(watchers);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Also a hard bound, should the stop signal never come.
    let stop_watching = tokio::time::Instant::now() + WATCH_SETTLE + load.duration() + WATCH_SETTLE;
    let mut watch_tasks = JoinSet::new();
    for _ in 0..watchers {
        let options = WatchOptions {
            key: PREFIX.into(),
            prefix: true,
            from_revision: Some(marker.revision - 1),
            prev_value: false,
        };
        let mut changes = ctx.client.watch(options)?;
        let (counters, ready_tx) = (counters.clone(), ready_tx.clone());
        let mut stop_rx = stop_rx.clone();
        watch_tasks.spawn(async move {
            let mut hist = histogram();
            loop {
                let change = tokio::select! {
                    _ = tokio::time::sleep_until(stop_watching) => break,
                    _ = stop_rx.changed() => break,
                    change = changes.next() => change,
                };
                match change {
                    None => break,
                    Some(Err(err)) => counters.error(err),
                    Some(Ok(change)) if change.event.key == READY_KEY => {
                        let _ = ready_tx.send(()).await;
                    }
                    Some(Ok(change)) => {
                        if let Some(age) = stamp_age(change.event.value.as_bytes()) {
                            record(&mut hist, age);
                            counters.ops.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            hist
        });
    }
    drop(ready_tx);
    let all_ready = async {
        for _ in 0..watchers {
            ready_rx
                .recv()
                .await
                .context("a watcher stopped before it was live")?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(WATCH_SETTLE, all_ready)
        .await
        .context("watchers did not start in time")??;

    let progress = spawn_progress(counters.clone());
    let start = Instant::now();
    let deadline = start + load.duration();
    let mut writers = JoinSet::new();
    for _ in 0..load.clients {
        let (client, counters, writes, load) = (
            ctx.client.clone(),
            counters.clone(),
            writes.clone(),
            load.clone(),
        );
        writers.spawn(async move {
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            while Instant::now() < deadline {
                let key = bench_key(rng.random_range(0..load.keys), load.key_size);
                let value = stamped_value(load.value_size);
                match client.put(&key, value, PutOptions::default()).await {
                    Ok(_) => {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        counters.error(err);
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
            histogram()
        });
    }
    join_histograms(writers, ctx.timeout + Duration::from_secs(1)).await?;
    // Let the last events arrive: stop once deliveries catch up or stall.
    let expected = writes.load(Ordering::Relaxed) * watchers as u64;
    let settle = Instant::now() + WATCH_SETTLE;
    while counters.ops.load(Ordering::Relaxed) < expected && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    // Stopped, not aborted: an aborted task loses its histogram.
    let _ = stop_tx.send(true);
    let hist = join_histograms(watch_tasks, Duration::from_secs(1)).await?;
    progress.abort();
    finish(&counters);
    let mut summary = Summary::new(
        "watch",
        counters.errors.load(Ordering::Relaxed),
        elapsed,
        &hist,
    );
    summary.writes = Some(writes.load(Ordering::Relaxed));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size() {
        assert_eq!(bench_key(42, 16), "bench/0000000042");
        assert_eq!(bench_key(42, 16).len(), 16);
        assert_eq!(bench_key(9999, 10), "bench/9999");
    }

    fn load(key_size: usize, keys: usize, value_size: usize) -> LoadArgs {
        LoadArgs {
            clients: 1,
            duration: 1,
            key_size,
            value_size,
            keys,
        }
    }

    #[test]
    fn load_arguments_are_checked() {
        assert!(load(16, 10_000, 256).check(0).is_ok());
        let err = load(8, 10_000, 256).check(0).unwrap_err();
        assert!(err.to_string().contains("need 10"), "{err}");
        assert!(load(10, 10_000, 256).check(0).is_ok());
        assert!(load(16, 10, 10).check(STAMP_LEN).is_err());
        assert!(load(16, 0, 10).check(0).is_err());
    }

    #[test]
    fn summary_statistics() {
        let mut hist = histogram();
        // 1..=1000 ms.
        for ms in 1..=1000u64 {
            record(&mut hist, Duration::from_millis(ms));
        }
        let summary = Summary::new("put", 3, Duration::from_secs(4), &hist);
        assert_eq!(summary.ops, 1000);
        assert_eq!(summary.errors, 3);
        assert!((summary.ops_per_sec - 250.0).abs() < 1e-9);
        // 3 significant digits: within 0.1%.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(close(summary.p50_ms, 500.0), "{}", summary.p50_ms);
        assert!(close(summary.p99_ms, 990.0), "{}", summary.p99_ms);
        assert!(close(summary.p999_ms, 999.0), "{}", summary.p999_ms);
        assert!(close(summary.max_ms, 1000.0), "{}", summary.max_ms);
    }

    #[test]
    fn empty_summary_is_all_zero() {
        let summary = Summary::new("get", 5, Duration::from_secs(1), &histogram());
        assert_eq!(summary.ops, 0);
        assert_eq!(summary.p99_ms, 0.0);
        assert_eq!(summary.max_ms, 0.0);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["errors"], 5);
        assert!(json.get("writes").is_none());
    }

    #[test]
    fn huge_latencies_saturate() {
        let mut hist = histogram();
        record(&mut hist, Duration::from_secs(3600));
        record(&mut hist, Duration::ZERO);
        assert_eq!(hist.len(), 2);
        assert!(hist.max() >= 59_000_000);
    }

    #[test]
    fn stamps_round_trip() {
        let value = stamped_value(64);
        assert_eq!(value.len(), 64);
        let age = stamp_age(&value).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
        assert_eq!(stamp_age(b"ready"), None);
        assert_eq!(stamp_age(b"not-a-number-at-all-x"), None);
    }

    #[test]
    fn summary_table_shows_writes_for_watch() {
        let mut summary = Summary::new("watch", 0, Duration::from_secs(1), &histogram());
        summary.writes = Some(7);
        let text = summary.table().render();
        assert!(text.lines().next().unwrap().ends_with("WRITES"), "{text}");
        assert!(text.lines().nth(1).unwrap().ends_with(" 7"), "{text}");
    }
}
