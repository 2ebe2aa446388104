//! `tend status`: how the agent is doing — its last run, last good commit,
//! source and spool.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Format;
use crate::agent::memory::{self, Memory};
use crate::report::spool::Spool;
use crate::state::DEFAULT_STATE_DIR;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = DEFAULT_STATE_DIR, env = "TEND_STATE_DIR")]
    state_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let status = status(&args.state_dir)?;
    match args.format {
        Format::Text => print!("{}", crate::report::inert(&status.to_text())),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(0)
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

fn status(state_dir: &Path) -> anyhow::Result<Status> {
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
