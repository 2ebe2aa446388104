//! The agent's own metrics, in Prometheus' text format, in
//! `<state-dir>/tend.prom` (written atomically) for node_exporter's
//! textfile collector.

use std::fmt::Write as _;
use std::path::Path;

use crate::fsutil::{self, TempLog};
use crate::report::Report;
use crate::report::spool::Spool;

pub const FILE: &str = "tend.prom";

/// What one cycle leaves for the scraper.
pub struct Snapshot<'a> {
    pub report: Option<&'a Report>,
    pub source_age_s: Option<u64>,
    pub spool: &'a Spool,
    pub disabled: bool,
}

pub fn write(state_dir: &Path, s: &Snapshot) -> anyhow::Result<()> {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    if let Some(r) = s.report {
        let at = humantime::parse_rfc3339(&r.started_at)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        gauge(
            "tend_last_run_timestamp_seconds",
            "When the last converge started.",
            at,
        );
        gauge(
            "tend_last_run_duration_seconds",
            "How long the last converge took.",
            r.duration_ms as f64 / 1000.0,
        );
        gauge(
            "tend_last_run_changes",
            "Resources changed by the last converge.",
            r.summary.changed as f64,
        );
        gauge(
            "tend_last_run_drift",
            "Resources found drifted and corrected by the last converge.",
            r.summary.drift as f64,
        );
        gauge(
            "tend_last_run_failures",
            "Resources that failed in the last converge.",
            r.summary.failed as f64,
        );
        gauge(
            "tend_last_run_stale_source",
            "1 when the last converge used the last good commit because the source could not be fetched.",
            f64::from(u8::from(r.source_stale)),
        );
        gauge(
            "tend_last_run_rejected_commit",
            "1 when the last cycle refused a new commit.",
            f64::from(u8::from(r.rejected.is_some())),
        );
    }
    if let Some(age) = s.source_age_s {
        gauge(
            "tend_source_age_seconds",
            "Seconds since the source was last fetched.",
            age as f64,
        );
    }
    gauge(
        "tend_spool_reports",
        "Reports waiting to be sent to the central log.",
        s.spool.pending().len() as f64,
    );
    gauge(
        "tend_reports_dropped",
        "Reports dropped from a full spool and not yet said in a report.",
        s.spool.dropped() as f64,
    );
    gauge(
        "tend_reports_set_aside",
        "Reports the central log refused for good.",
        s.spool.set_aside() as f64,
    );
    gauge(
        "tend_agent_disabled",
        "1 when an operator disabled the agent.",
        f64::from(u8::from(s.disabled)),
    );
    fsutil::ensure_private_dir(state_dir)?;
    fsutil::atomic_write(
        &state_dir.join(FILE),
        out.as_bytes(),
        0o644,
        None,
        None,
        &TempLog::unrecorded(),
    )?;
    Ok(())
}
