//! What the central log keeps, behind one trait: reports as they came,
//! with the fields queries filter on, and the hosts' token hashes. One
//! implementation per database (SQLite now), each with its own migrations.

use serde::Serialize;

use super::clock::unix;
use super::rollouts::{Action, CommitFacts, Halt, History, RolloutRow};
use super::sql::{Param, Sql, StoreError};
use crate::report::Report;
use crate::rollout::{Admission, AdmitRequest};

/// An admission question with what the log's mirror says of its commit.
#[derive(Debug, Clone)]
pub struct Question {
    pub request: AdmitRequest,
    pub facts: CommitFacts,
}

/// A report accepted for storing: the parsed report and the bytes it came
/// as (kept as sent, so a query returns exactly what the host said).
pub struct Incoming {
    pub report: Report,
    pub body: String,
    pub received_unix: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stored {
    /// Stored now.
    New,
    /// That report id was already stored; nothing changed.
    Duplicate,
}

/// What a batch of reports did: each one stored or a duplicate, and the
/// rollouts they halted.
pub struct Inserted {
    pub stored: Vec<Stored>,
    pub halts: Vec<super::rollouts::Halt>,
    /// Seconds from each commit to a host's first run of it, for the
    /// hosts that ran a commit for the first time.
    pub reached: Vec<i64>,
}

/// Filters of `GET /v1/reports`.
#[derive(Debug, Default, Clone)]
pub struct ReportQuery {
    pub host: Option<String>,
    pub environment: Option<String>,
    /// Only reports that started at or after this time (seconds since the epoch).
    pub since_unix: Option<i64>,
    pub status: Option<String>,
    pub commit: Option<String>,
    pub limit: usize,
    /// Reports older than this cursor (from the previous page).
    pub before: Option<i64>,
    /// Only runs that changed or failed something.
    pub eventful: bool,
}

impl ReportQuery {
    /// The conditions and their values, in order; each condition holds
    /// `{}` where its value goes, which each store writes in its own
    /// placeholder syntax (`?3`, `$3`).
    pub fn conditions(&self) -> Vec<(&'static str, Param)> {
        let mut out = Vec::new();
        let text = |v: &Option<String>| v.clone().map(Param::Text);
        for (condition, value) in [
            ("host = {}", text(&self.host)),
            ("environment = {}", text(&self.environment)),
            ("started_unix >= {}", self.since_unix.map(Param::Int)),
            ("status = {}", text(&self.status)),
            // A run that refused a commit is listed under that commit too.
            (
                "(commit_id = {} OR refused_commit = {})",
                text(&self.commit),
            ),
            ("seq < {}", self.before.map(Param::Int)),
            (
                "changed + failed >= {}",
                self.eventful.then_some(Param::Int(1)),
            ),
        ] {
            if let Some(value) = value {
                out.push((condition, value));
            }
        }
        out
    }
}

/// The status a report is listed with: `refused` when it refused a new
/// commit (whatever it did on the commit it kept), else its own.
pub fn listed_status(report: &crate::report::Report) -> String {
    if report.rejected.is_some() {
        "refused".to_owned()
    } else if report.never_converged.is_some() {
        "never_converged".to_owned()
    } else {
        word(&report.status)
    }
}

/// The commit a report refused, if any.
pub fn refused_commit(report: &crate::report::Report) -> Option<String> {
    report.rejected.as_ref().map(|r| r.revision.commit.clone())
}

/// The word a status or mode serialises to (`changed`, `apply`).
pub fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A report as listed: the fields people filter and sort on.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: String,
    pub host: String,
    pub environment: String,
    pub mode: String,
    pub status: String,
    pub commit: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    pub started_at: String,
    pub duration_ms: i64,
    pub changed: i64,
    pub drift: i64,
    pub failed: i64,
    pub source_stale: bool,
    /// The new commit this run refused (its status is then `refused`).
    pub refused_commit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub reports: Vec<ReportRow>,
    /// Pass as `cursor=` for the next (older) page; none on the last.
    pub next_cursor: Option<i64>,
}

/// The last run of a host.
#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    pub host: String,
    pub environment: String,
    pub last_report: String,
    pub last_started_at: String,
    pub last_received_unix: i64,
    pub status: String,
    pub commit: Option<String>,
    pub drift: i64,
    pub failed: i64,
    /// The agent's interval, when its reports say it.
    pub interval_s: Option<i64>,
    /// Not heard from for more than two of its intervals.
    pub silent: bool,
    /// When a rebuilt host of this name last enrolled again (its old
    /// token revoked).
    pub re_enrolled_unix: Option<i64>,
}

/// One commit in the deploy log.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRow {
    pub commit: String,
    pub author: Option<String>,
    pub committed_at: Option<String>,
    pub subject: Option<String>,
    pub first_applied: String,
    pub last_applied: String,
    /// Hosts whose runs of this commit changed something.
    pub hosts_changed: i64,
    /// Hosts with a failed run of this commit.
    pub hosts_failed: i64,
    /// Hosts that ran it.
    pub hosts: i64,
    /// Hosts that refused it (it did not compile for them).
    pub hosts_refused: i64,
    /// Lead time: seconds from the commit to its first host's first run,
    /// and to its last host's.
    pub lead_first_s: Option<i64>,
    pub lead_last_s: Option<i64>,
    /// For the newest commit of an environment: its hosts whose last run is
    /// of another commit (the rollout still to come). 0 for older commits.
    pub hosts_pending: i64,
    /// Whether author, time and subject come from the log's copy of the
    /// source; else they are what its hosts said.
    pub from_source: bool,
}

/// Lead times from the commit's time and its first and last hosts' first
/// runs (seconds since the epoch).
pub fn lead(
    committed_at: Option<&str>,
    first: Option<i64>,
    last: Option<i64>,
) -> (Option<i64>, Option<i64>) {
    let Some(committed) = committed_at.map(unix).filter(|t| *t > 0) else {
        return (None, None);
    };
    (first.map(|f| f - committed), last.map(|l| l - committed))
}

/// Takes each commit's author, time and subject from the source (the
/// authority) when the log's mirror has the commit, moving its lead times
/// to the true commit time.
pub fn from_source(
    commits: &mut [CommitRow],
    revisions: &std::collections::HashMap<String, crate::source::git::Revision>,
) {
    for c in commits {
        let Some(r) = revisions.get(&c.commit) else {
            continue;
        };
        let claimed = c.committed_at.as_deref().map_or(0, unix);
        let true_time = unix(&r.committed_at);
        if claimed > 0 && true_time > 0 {
            let shift = claimed - true_time;
            c.lead_first_s = c.lead_first_s.map(|l| l + shift);
            c.lead_last_s = c.lead_last_s.map(|l| l + shift);
        }
        c.author = Some(r.author.clone());
        c.subject = Some(r.subject.clone());
        c.committed_at = Some(r.committed_at.clone());
        c.from_source = true;
    }
}

/// Reports as they were sent, many in one query (in no given order).
pub fn bodies(db: &mut dyn super::sql::Sql, ids: &[&str]) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let params: Vec<Param> = ids.iter().map(|id| Param::Text((*id).to_owned())).collect();
    Ok(db
        .rows(
            &format!(
                "SELECT body FROM reports WHERE id IN ({})",
                placeholders.join(",")
            ),
            &params,
        )?
        .iter()
        .map(|c| c[0].text())
        .collect())
}

/// Fills `hosts_pending`: in each environment, the newest commit any of its
/// hosts runs is pending on the hosts whose last run is of another commit.
pub fn fill_pending(commits: &mut [CommitRow], hosts: &[HostRow]) {
    use std::collections::{HashMap, HashSet};
    let mut by_env: HashMap<&str, Vec<&HostRow>> = HashMap::new();
    for h in hosts {
        by_env.entry(h.environment.as_str()).or_default().push(h);
    }
    for env_hosts in by_env.values() {
        let running: HashSet<&str> = env_hosts
            .iter()
            .filter_map(|h| h.commit.as_deref())
            .collect();
        // `commits` comes newest first.
        if let Some(newest) = commits
            .iter_mut()
            .find(|c| running.contains(c.commit.as_str()))
        {
            let behind = env_hosts
                .iter()
                .filter(|h| h.commit.as_deref() != Some(newest.commit.as_str()))
                .count();
            newest.hosts_pending += i64::try_from(behind).unwrap_or(i64::MAX);
        }
    }
}

/// The storage the log server needs. Calls may block (the server runs
/// them off its event loop); `insert` is given batches so a store can
/// make many reports durable with one commit.
pub trait Store: Send + Sync + 'static {
    /// Stores reports, and takes them into account in the rollouts their
    /// hosts are in, in one transaction.
    fn insert(&self, batch: &[Incoming]) -> Result<Inserted, StoreError>;
    /// The rollout gate's quick answer, read only: a refusal that changes
    /// nothing, or `None` when the question needs [`Store::admit`].
    fn admit_read(
        &self,
        history: &dyn History,
        question: &Question,
        now_unix: i64,
    ) -> Result<Option<Admission>, StoreError>;
    /// The rollout gate, deciding and writing: may each host apply its
    /// commit now? The questions of a batch share one transaction.
    fn admit(
        &self,
        history: &dyn History,
        questions: &[Question],
        now_unix: i64,
    ) -> Result<Vec<Admission>, StoreError>;
    /// Lets time decide in the rollouts whose next check is due
    /// (deadlines, soaks); the halts it caused.
    fn tick(&self, now_unix: i64) -> Result<Vec<Halt>, StoreError>;
    /// Waits for the hosts the gate wants to hear from now (a wave opened,
    /// a rollback, a resume), once the transaction that decided it has
    /// committed.
    fn next_wakes(&self) -> Vec<super::rollouts::RolloutWake>;
    /// Tells every other log server on this database (PostgreSQL's
    /// NOTIFY); a store no other server shares has nobody to tell.
    fn publish(&self, _message: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Hears what the other servers publish, on a thread of its own, for
    /// as long as the process runs; false when nobody else can publish.
    fn listen(&self, _heard: Box<dyn Fn(String) + Send>) -> bool {
        false
    }
    /// Rollouts, newest first; `commit` may be a prefix.
    fn rollouts(
        &self,
        environment: Option<&str>,
        commit: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RolloutRow>, StoreError>;
    /// An operator resumes or aborts a rollout (the newest in motion, or
    /// that of `commit`); the inner error says why there was nothing to do.
    fn act(
        &self,
        environment: &str,
        commit: Option<&str>,
        action: Action,
        who: &str,
        now_unix: i64,
    ) -> Result<Result<RolloutRow, String>, StoreError>;
    /// Runs `work` in one writing transaction (identities, join tokens,
    /// sessions: written once for both stores over [`Sql`]).
    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Runs `work` on a reading connection.
    fn read(
        &self,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    fn reports(&self, query: &ReportQuery) -> Result<Page, StoreError>;
    /// A report as it was sent.
    fn report(&self, id: &str) -> Result<Option<String>, StoreError>;
    fn hosts(&self, now_unix: i64) -> Result<Vec<HostRow>, StoreError>;
    /// The deploy log, newest first; `only`: that commit's row alone.
    fn commits(&self, limit: usize, only: Option<&str>) -> Result<Vec<CommitRow>, StoreError>;
    /// Removes reports received before `before_unix`; how many.
    fn prune(&self, before_unix: i64) -> Result<usize, StoreError>;
}

/// [`Store::write`] with a value out.
pub fn write<T>(
    store: &dyn Store,
    work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut work = Some(work);
    let mut out = None;
    store.write(&mut |sql| {
        if let Some(work) = work.take() {
            out = Some(work(sql)?);
        }
        Ok(())
    })?;
    out.ok_or(StoreError::Closed("the transaction did not run"))
}

/// [`Store::read`] with a value out.
pub fn read<T>(
    store: &dyn Store,
    work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut work = Some(work);
    let mut out = None;
    store.read(&mut |sql| {
        if let Some(work) = work.take() {
            out = Some(work(sql)?);
        }
        Ok(())
    })?;
    out.ok_or(StoreError::Closed("the query did not run"))
}
