//! `tend agent` and `tend status`: run the pull agent (once, or for good),
//! disable or enable it, and say how it is doing.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::agent::memory::{self, Memory};
use crate::agent::{self, Cycle, Settings};
use crate::report::spool::Spool;

/// `tend agent --once`: one cycle; converge's detailed exit codes.
pub fn once(settings: &Settings) -> anyhow::Result<u8> {
    Ok(match agent::run_cycle(settings)? {
        Cycle::Ran(report) => {
            print!("{}", crate::report::inert(&report.to_text()));
            report.detailed_exit_code()
        }
        Cycle::Disabled(reason) => {
            eprintln!(
                "the agent is disabled ({reason}); nothing was converged (`tend agent --enable` to enable it)"
            );
            0
        }
        Cycle::NothingToApply(why) => {
            eprintln!("error: nothing to apply: {why}");
            super::EXIT_ERROR
        }
        Cycle::Invalid(repo, problems) => {
            super::print_diagnostics(&repo, &problems);
            super::EXIT_ERROR
        }
    })
}

pub fn disable(state_dir: &Path, reason: &str) -> anyhow::Result<()> {
    memory::set_disabled(state_dir, Some(reason))
}

pub fn enable(state_dir: &Path) -> anyhow::Result<()> {
    memory::set_disabled(state_dir, None)
}

/// What `tend status` says.
#[derive(Debug, Serialize)]
pub struct Status {
    pub disabled: Option<String>,
    pub last_run: Option<memory::LastRun>,
    pub last_good: Option<String>,
    pub last_fetch: Option<u64>,
    pub source_age_s: Option<u64>,
    pub spool: usize,
    pub reports_dropped: u64,
    pub reports_set_aside: u64,
    pub next_run: Option<u64>,
}

pub fn status(state_dir: &Path) -> anyhow::Result<Status> {
    let memory = Memory::load(state_dir)?;
    let spool = Spool::new(state_dir.join("spool"));
    let now = memory::now();
    Ok(Status {
        disabled: memory.disabled,
        source_age_s: memory.last_fetch.map(|t| now.saturating_sub(t)),
        last_fetch: memory.last_fetch,
        last_run: memory.last_run,
        last_good: memory.last_good,
        spool: spool.pending().len(),
        reports_dropped: spool.dropped(),
        reports_set_aside: spool.set_aside(),
        next_run: memory.next_run,
    })
}

fn when(at: u64) -> String {
    let now = memory::now();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
    let stamp = humantime::format_rfc3339_seconds(t);
    let ago = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    if at <= now {
        format!("{stamp} ({} ago)", ago(now - at))
    } else {
        format!("{stamp} (in {})", ago(at - now))
    }
}

impl Status {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "agent:      {}",
            self.disabled
                .as_ref()
                .map_or_else(|| "enabled".to_owned(), |r| format!("DISABLED: {r}"))
        );
        let _ = match &self.last_run {
            Some(r) => writeln!(
                out,
                "last run:   {}, commit {}, {}{}, {} ms",
                when(r.at),
                r.commit.get(..12).unwrap_or(&r.commit),
                serde_json::to_value(r.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                if r.stale { " (source stale)" } else { "" },
                r.duration_ms
            ),
            None => writeln!(out, "last run:   never"),
        };
        let _ = writeln!(
            out,
            "last good:  {}",
            self.last_good.as_deref().unwrap_or("none yet")
        );
        let _ = writeln!(
            out,
            "source:     {}",
            self.last_fetch.map_or_else(
                || "never fetched".to_owned(),
                |t| format!("fetched {}", when(t))
            )
        );
        let _ = writeln!(
            out,
            "spool:      {} report{} waiting ({} dropped, {} set aside)",
            self.spool,
            if self.spool == 1 { "" } else { "s" },
            self.reports_dropped,
            self.reports_set_aside
        );
        let _ = writeln!(
            out,
            "next run:   {}",
            self.next_run
                .map_or_else(|| "no agent running".to_owned(), when)
        );
        out
    }
}
