//! The operator's Prometheus metrics (prefix `muster_operator_`).

use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounter,
    failures: IntCounterVec,
    duration: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("muster_operator".into()), None)?;
        let reconciles = IntCounter::new("reconciles_total", "Reconciles started")?;
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_failures_total",
                "Reconciles that failed, by reason",
            ),
            &["reason"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            failures,
            duration,
        })
    }

    /// Counts a reconcile; its duration is recorded when the timer drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            histogram: &self.duration,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, reason: &str) {
        self.failures.with_label_values(&[reason]).inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}

pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
