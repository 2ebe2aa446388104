//! `GET /metrics`: what the log has taken in since it started, in
//! Prometheus' text format; hosts and silent hosts are read from the store
//! at each scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::{Status, Summary};

/// Upper bounds (seconds) of the run-duration histogram.
const RUN_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];
/// Upper bounds (seconds) of the lead-time histogram: commit to host.
const LEAD_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21_600.0, 86_400.0,
];
/// Upper bounds (seconds) of the ingest-latency histogram.
const INGEST_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

pub struct Metrics {
    by_status: [AtomicU64; 4],
    changes: AtomicU64,
    drift: AtomicU64,
    failures: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    run_duration: Histogram,
    ingest: Histogram,
    lead_time: Histogram,
}

const STATUSES: [&str; 4] = ["unchanged", "changed", "drift", "failed"];

impl Default for Metrics {
    fn default() -> Self {
        Self {
            by_status: Default::default(),
            changes: AtomicU64::new(0),
            drift: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            run_duration: Histogram::new(RUN_BUCKETS),
            ingest: Histogram::new(INGEST_BUCKETS),
            lead_time: Histogram::new(LEAD_BUCKETS),
        }
    }
}

impl Metrics {
    /// A report stored (not a duplicate), and how long its ingest took.
    pub fn stored(&self, status: Status, summary: &Summary, duration_ms: u64, ingest_seconds: f64) {
        let i = match status {
            Status::Changed => 1,
            Status::Drift => 2,
            Status::Failed => 3,
            Status::Unchanged | Status::Unknown => 0,
        };
        self.by_status[i].fetch_add(1, Ordering::Relaxed);
        self.changes
            .fetch_add(summary.changed as u64, Ordering::Relaxed);
        self.drift
            .fetch_add(summary.drift as u64, Ordering::Relaxed);
        self.failures
            .fetch_add(summary.failed as u64, Ordering::Relaxed);
        self.run_duration.observe(duration_ms as f64 / 1000.0);
        self.ingest.observe(ingest_seconds);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// A host ran a commit for the first time, this long after it was
    /// committed.
    pub fn reached(&self, lead_seconds: i64) {
        self.lead_time.observe(lead_seconds.max(0) as f64);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, hosts: usize, silent: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tend_log_reports_total Reports stored, by run status.\n# TYPE tend_log_reports_total counter"
        );
        for (status, n) in STATUSES.iter().zip(&self.by_status) {
            let _ = writeln!(
                out,
                "tend_log_reports_total{{status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (name, help, n) in [
            (
                "tend_log_resources_changed_total",
                "Resources changed, over all reports.",
                &self.changes,
            ),
            (
                "tend_log_resources_drift_total",
                "Resources found drifted and corrected.",
                &self.drift,
            ),
            (
                "tend_log_resources_failed_total",
                "Resources that failed.",
                &self.failures,
            ),
            (
                "tend_log_duplicate_reports_total",
                "Reports sent again and not stored again.",
                &self.duplicates,
            ),
            (
                "tend_log_refused_reports_total",
                "Posts refused (401, 403, 400, 413).",
                &self.refused,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                n.load(Ordering::Relaxed)
            );
        }
        self.run_duration.render(
            &mut out,
            "tend_log_run_duration_seconds",
            "How long the reported runs took.",
        );
        self.ingest.render(
            &mut out,
            "tend_log_ingest_seconds",
            "From a report's arrival to its durable acknowledgement.",
        );
        self.lead_time.render(
            &mut out,
            "tend_log_lead_time_seconds",
            "From a commit to a host's first run of it (each host once).",
        );
        let _ = writeln!(
            out,
            "# HELP tend_log_hosts Hosts that have reported.\n# TYPE tend_log_hosts gauge\ntend_log_hosts {hosts}"
        );
        let _ = writeln!(
            out,
            "# HELP tend_log_silent_hosts Hosts not heard from for two of their intervals.\n# TYPE tend_log_silent_hosts gauge\ntend_log_silent_hosts {silent}"
        );
        out
    }
}
