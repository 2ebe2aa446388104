//! Reports on their way to the central log.
//!
//! A report is written to the spool (atomically) before it is sent, and
//! leaves it only when the log acknowledged it, or answered that it will
//! never take it (set aside, counted). The log stores a report id once, so
//! sending again after a crash between its answer and our removal is
//! harmless: each report is delivered exactly once. The spool is bounded;
//! what it has to drop is counted and said in the next report, never lost
//! silently.

use std::path::{Path, PathBuf};

use super::Report;
use super::send::{Refused, Sender};
use crate::fsutil::{self, FsError, TempLog};

/// At most this many reports wait in the spool...
pub const MAX_REPORTS: usize = 1_000;
/// ...and at most this many bytes of them.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

const DROPPED: &str = "dropped";
const SET_ASIDE: &str = "set-aside";

pub struct Spool {
    dir: PathBuf,
    max_reports: usize,
    max_bytes: u64,
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    /// Refused for good by the log (a 4xx other than 408/429): set aside.
    pub set_aside: usize,
    /// Still waiting: the log could not be reached or asked us to retry.
    pub waiting: usize,
    /// Why the round stopped early, when it did.
    pub error: Option<String>,
}

impl Spool {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_reports: MAX_REPORTS,
            max_bytes: MAX_BYTES,
        }
    }

    #[must_use]
    pub fn with_limits(mut self, max_reports: usize, max_bytes: u64) -> Self {
        self.max_reports = max_reports;
        self.max_bytes = max_bytes;
        self
    }

    /// Reports dropped for room and not yet said in a report.
    pub fn dropped(&self) -> u64 {
        read_counter(&self.dir.join(DROPPED))
    }

    /// Reports the log refused for good, in all (they are kept in
    /// `set-aside/` for a person to look at).
    pub fn set_aside(&self) -> u64 {
        fs_err::read_dir(self.dir.join(SET_ASIDE)).map_or(0, |d| d.count() as u64)
    }

    /// The reports waiting, oldest first.
    pub fn pending(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs_err::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    }

    /// Puts a report in the spool, making room by dropping the oldest
    /// reports when it is full (and counting them). The report carries the
    /// count of reports dropped before it, which is then reset.
    pub fn put(&self, report: &mut Report, temps: &TempLog) -> Result<PathBuf, FsError> {
        fsutil::ensure_private_dir(&self.dir)?;
        report.reports_dropped = self.dropped();
        let bytes = serde_json::to_vec(report).expect("a report serialises");
        let mut pending = self.pending();
        let mut total: u64 = pending
            .iter()
            .filter_map(|p| fs_err::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let mut dropped = 0;
        while !pending.is_empty()
            && (pending.len() + 1 > self.max_reports || total + bytes.len() as u64 > self.max_bytes)
        {
            let oldest = pending.remove(0);
            total -= fs_err::metadata(&oldest).map_or(0, |m| m.len());
            fs_err::remove_file(&oldest)?;
            tracing::warn!(report = %oldest.display(), "the report spool is full; dropped the oldest report");
            dropped += 1;
        }
        // The name orders reports by time; the id makes it unique.
        let name = format!(
            "{:020}-{}.json",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            report.id
        );
        let path = self.dir.join(name);
        fsutil::atomic_write(&path, &bytes, 0o600, None, None, temps)?;
        // Said in this report: start counting afresh (plus what this put dropped).
        write_counter(&self.dir.join(DROPPED), dropped, temps)?;
        Ok(path)
    }

    /// Sends every waiting report, oldest first. Stops at the first that
    /// cannot be delivered now (the log is down or busy): the others would
    /// fail the same way, and order is kept.
    pub fn deliver(&self, sender: &Sender) -> Delivery {
        let mut round = Delivery::default();
        let pending = self.pending();
        for (i, path) in pending.iter().enumerate() {
            // A damaged entry (unreadable, not a report) is set aside here:
            // it must not hold every later report back, nor be sent.
            let body = match fs_err::read(path) {
                Ok(body) if serde_json::from_slice::<Report>(&body).is_ok() => body,
                Ok(_) => {
                    self.put_aside(path, "it is not a run report (damaged)", &mut round);
                    continue;
                }
                Err(e) => {
                    self.put_aside(path, &format!("it cannot be read ({e})"), &mut round);
                    continue;
                }
            };
            match sender.post(&body) {
                Ok(()) => {
                    if let Err(e) = fs_err::remove_file(path) {
                        round.error = Some(e.to_string());
                    }
                    round.sent += 1;
                }
                Err(Refused::ForGood(why)) => {
                    self.put_aside(path, &format!("the log refused it: {why}"), &mut round);
                }
                Err(Refused::ForNow(why)) => {
                    round.error = Some(why);
                    round.waiting = pending.len() - i;
                    break;
                }
            }
        }
        round
    }
}

impl Spool {
    /// Moves a report the log will never take into `set-aside/`, for a
    /// person to look at (a name already there is replaced: same report).
    fn put_aside(&self, path: &Path, why: &str, round: &mut Delivery) {
        tracing::warn!(report = %path.display(), reason = %why, "a spooled report was set aside");
        let aside = self.dir.join(SET_ASIDE);
        let target = aside.join(path.file_name().unwrap_or_default());
        let moved = fsutil::ensure_private_dir(&aside)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                // A directory in the spool's place cannot be renamed over a
                // file; anything else can.
                let _ = fs_err::remove_dir_all(&target);
                fs_err::rename(path, &target).map_err(|e| e.to_string())
            });
        if let Err(e) = moved {
            round.error = Some(e);
        }
        round.set_aside += 1;
    }
}

fn read_counter(path: &Path) -> u64 {
    fs_err::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_counter(path: &Path, n: u64, temps: &TempLog) -> Result<(), FsError> {
    fsutil::atomic_write(path, format!("{n}\n").as_bytes(), 0o600, None, None, temps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunMode, Status, Summary};

    fn report(id: &str) -> Report {
        Report {
            id: id.to_owned(),
            host: "h".into(),
            environment: "e".into(),
            roles: Vec::new(),
            mode: RunMode::Apply,
            revision: None,
            source_stale: false,
            source_age_s: None,
            rejected: None,
            never_converged: None,
            rollout: None,
            interval_s: None,
            started_at: String::new(),
            duration_ms: 0,
            status: Status::Unchanged,
            summary: Summary::default(),
            reports_dropped: 0,
            leftovers_removed: Vec::new(),
            resources: Vec::new(),
        }
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_the_next_report_says_how_many() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool")).with_limits(2, u64::MAX);
        let temps = TempLog::unrecorded();
        for id in ["a", "b", "c", "d"] {
            spool.put(&mut report(id), &temps).unwrap();
        }
        let names: Vec<String> = spool
            .pending()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with("-c.json") && names[1].ends_with("-d.json"));
        // Putting c dropped a, putting d dropped b: d said a, the next says b.
        assert_eq!(spool.dropped(), 1);
        let mut next = report("e");
        spool.put(&mut next, &temps).unwrap();
        assert_eq!(next.reports_dropped, 1);
        // Bytes bound too.
        let small = Spool::new(dir.path().join("small")).with_limits(100, 1);
        small.put(&mut report("x"), &temps).unwrap();
        small.put(&mut report("y"), &temps).unwrap();
        assert_eq!(small.pending().len(), 1);
        assert_eq!(small.dropped(), 1);
    }
}
