//! One Prometheus registry for the node, with a `muster_` prefix and a
//! sub-prefix per subsystem (`raft_`, `store_`, `wal_`, `watch_`, `http_`).

use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub raft_term: IntGauge,
    pub raft_state: IntGaugeVec,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_last_log_index: IntGauge,
    pub raft_leader_changes: IntCounterVec,
    pub raft_proposals: IntCounterVec,
    pub store_apply_seconds: Histogram,
    pub store_revision: IntGauge,
    pub store_keys: IntGauge,
    pub wal_fsync_seconds: Histogram,
    pub watch_watchers: IntGauge,
    pub http_requests: IntCounterVec,
    pub http_request_seconds: HistogramVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("muster".into()), None)
            .expect("a static prefix is a valid registry prefix");
        let int_gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help).expect("static metric names are valid");
            registry
                .register(Box::new(gauge.clone()))
                .expect("each metric is registered once");
            gauge
        };
        let histogram = |name: &str, help: &str| {
            let histogram = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.into()),
            )
            .expect("static metric names are valid");
            registry
                .register(Box::new(histogram.clone()))
                .expect("each metric is registered once");
            histogram
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let counter =
                IntCounterVec::new(Opts::new(name, help), labels).expect("static names are valid");
            registry
                .register(Box::new(counter.clone()))
                .expect("each metric is registered once");
            counter
        };
        let raft_state = IntGaugeVec::new(
            Opts::new("raft_state", "1 for the role this node has now"),
            &["role"],
        )
        .expect("static names are valid");
        registry
            .register(Box::new(raft_state.clone()))
            .expect("each metric is registered once");
        let http_request_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.into()),
            &["method", "route"],
        )
        .expect("static names are valid");
        registry
            .register(Box::new(http_request_seconds.clone()))
            .expect("each metric is registered once");
        Metrics {
            raft_term: int_gauge("raft_term", "Current Raft term"),
            raft_state,
            raft_commit_index: int_gauge("raft_commit_index", "Last committed log index"),
            raft_applied_index: int_gauge("raft_applied_index", "Last applied log index"),
            raft_last_log_index: int_gauge("raft_last_log_index", "Last log index on disk"),
            raft_leader_changes: counter_vec(
                "raft_leader_changes_total",
                "Times this node saw a new leader",
                &["leader"],
            ),
            raft_proposals: counter_vec(
                "raft_proposals_total",
                "Commands proposed through this node",
                &["result"],
            ),
            store_apply_seconds: histogram(
                "store_apply_seconds",
                "Time to apply one command to the keyspace",
            ),
            store_revision: int_gauge("store_revision", "Current keyspace revision"),
            store_keys: int_gauge("store_keys", "Live keys"),
            wal_fsync_seconds: histogram("wal_fsync_seconds", "Raft log fsync latency"),
            watch_watchers: int_gauge("watch_watchers", "Open watch streams on this node"),
            http_requests: counter_vec(
                "http_requests_total",
                "HTTP requests served",
                &["method", "route", "status"],
            ),
            http_request_seconds,
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Observes the elapsed time into a histogram when dropped.
pub struct Timer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl<'a> Timer<'a> {
    pub fn start(histogram: &'a Histogram) -> Self {
        Timer {
            histogram,
            start: Instant::now(),
        }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
