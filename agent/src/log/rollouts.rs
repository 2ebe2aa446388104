//! The rollout gate (SPEC §8), written once for both stores over a small
//! SQL interface ([`Sql`]): admissions, the reports that move or halt a
//! rollout, and the operators' resume and abort.
//!
//! Every decision runs in one transaction under a per-environment lock
//! (an advisory lock on PostgreSQL; SQLite has one writer), so log servers
//! sharing a database never admit past a wave and all see a halt.
//!
//! A rollout's hosts are the environment's hosts the log knows when it
//! starts (those that reported in the last two of their intervals), each
//! with its wave, plus any host that asks later. A wave is complete when
//! each of its hosts that is alive (or admitted) has reported on the
//! commit; the next opens once the last of those reports is `soak` old.

use serde::Serialize;

use super::store::{Param, StoreError, unix};
use crate::report::{Report, RunMode, Status};
use crate::rollout::{Admission, AdmitRequest, Policy, bucket};

/// A value read back.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }
    fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }
    fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Null => String::new(),
        }
    }
    fn opt_text(&self) -> Option<String> {
        match self {
            Cell::Text(t) if !t.is_empty() => Some(t.clone()),
            _ => None,
        }
    }
}

/// What the gate needs of a database, inside one transaction. SQL is
/// written with `$1` placeholders and integer (not boolean) columns, which
/// both stores read alike.
pub trait Sql {
    fn exec(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError>;
    fn rows(&mut self, sql: &str, args: &[Param]) -> Result<Vec<Vec<Cell>>, StoreError>;
    /// Holds the environment's rollout lock until the transaction ends.
    fn lock_environment(&mut self, environment: &str) -> Result<(), StoreError>;
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

/// Who halted a rollout, with what.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HaltedBy {
    pub host: String,
    pub report: String,
    /// The first failed resource (or the refused commit's reason).
    pub resource: String,
    pub error: String,
    /// failed, or drift_after_apply.
    pub condition: String,
    pub at_unix: i64,
}

/// A rollout as `GET /v1/rollouts` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRow {
    #[serde(skip)]
    pub id: i64,
    pub environment: String,
    pub commit: String,
    pub author: String,
    pub subject: String,
    pub committed_at: String,
    #[serde(skip)]
    pub committed_unix: i64,
    pub policy: Policy,
    /// rolling, halted, done, superseded or aborted.
    pub state: String,
    /// The wave open now (0 is the canary) and the last one.
    pub wave: u32,
    pub waves: u32,
    pub wave_opened_unix: i64,
    pub created_unix: i64,
    pub updated_unix: i64,
    pub halted_by: Option<HaltedBy>,
    pub superseded_by: Option<String>,
    /// Who resumed or aborted it, and when.
    pub note: Option<String>,
    /// The last time a host reported on the commit: soaks count from it.
    pub last_report_unix: Option<i64>,
    /// Hosts in the rollout, admitted, that reported on it, that failed it.
    pub hosts: i64,
    pub admitted: i64,
    pub reported: i64,
    pub failed: i64,
}

const COLUMNS: &str = "r.id, r.environment, r.commit_id, r.author, r.subject, r.committed_at, r.committed_unix, r.policy, r.state, r.wave, r.wave_opened_unix, r.created_unix, r.updated_unix, r.halted_by, r.superseded_by, r.note, r.last_report_unix";

/// The host counts a listing shows (decisions never need them).
const COUNTS: &str = "(SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.admitted_unix IS NOT NULL),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.reported_unix IS NOT NULL),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.failed = 1)";

fn rollout_row(c: &[Cell]) -> Result<RolloutRow, StoreError> {
    let policy: Policy = serde_json::from_str(&c[7].text())
        .map_err(|e| StoreError::Database(format!("a stored rollout policy: {e}")))?;
    Ok(RolloutRow {
        id: c[0].int(),
        environment: c[1].text(),
        commit: c[2].text(),
        author: c[3].text(),
        subject: c[4].text(),
        committed_at: c[5].text(),
        committed_unix: c[6].int(),
        waves: policy.last_wave(),
        policy,
        state: c[8].text(),
        wave: u32::try_from(c[9].int()).unwrap_or(0),
        wave_opened_unix: c[10].int(),
        created_unix: c[11].int(),
        updated_unix: c[12].int(),
        halted_by: c[13].opt_text().and_then(|t| serde_json::from_str(&t).ok()),
        superseded_by: c[14].opt_text(),
        note: c[15].opt_text(),
        last_report_unix: c[16].opt_int(),
        hosts: c.get(17).map_or(0, Cell::int),
        admitted: c.get(18).map_or(0, Cell::int),
        reported: c.get(19).map_or(0, Cell::int),
        failed: c.get(20).map_or(0, Cell::int),
    })
}

/// The rollouts of an environment (or all), newest first; `commit` may be
/// a prefix.
pub fn list(
    db: &mut dyn Sql,
    environment: Option<&str>,
    commit: Option<&str>,
    limit: usize,
) -> Result<Vec<RolloutRow>, StoreError> {
    let rows = db.rows(
        &format!(
            "SELECT {COLUMNS}, {COUNTS} FROM rollouts r
             WHERE ($1 = '' OR r.environment = $1) AND ($2 = '' OR r.commit_id LIKE ($2 || '%'))
             ORDER BY r.id DESC LIMIT $3"
        ),
        &[
            text(environment.unwrap_or("")),
            text(commit.unwrap_or("")),
            Param::Int(i64::try_from(limit.clamp(1, 1000)).unwrap_or(1000)),
        ],
    )?;
    rows.iter().map(|r| rollout_row(r)).collect()
}

fn find(
    db: &mut dyn Sql,
    environment: &str,
    commit: &str,
) -> Result<Option<RolloutRow>, StoreError> {
    let rows = db.rows(
        &format!("SELECT {COLUMNS} FROM rollouts r WHERE r.environment = $1 AND r.commit_id = $2"),
        &[text(environment), text(commit)],
    )?;
    rows.first().map(|r| rollout_row(r)).transpose()
}

fn save(db: &mut dyn Sql, r: &RolloutRow, now: i64) -> Result<(), StoreError> {
    let halted = r
        .halted_by
        .as_ref()
        .map(|h| serde_json::to_string(h).expect("serialises"))
        .unwrap_or_default();
    db.exec(
        "UPDATE rollouts SET state = $2, wave = $3, wave_opened_unix = $4, updated_unix = $5,
            halted_by = NULLIF($6, ''), superseded_by = NULLIF($7, ''), note = NULLIF($8, '')
         WHERE id = $1",
        &[
            Param::Int(r.id),
            text(&r.state),
            Param::Int(i64::from(r.wave)),
            Param::Int(r.wave_opened_unix),
            Param::Int(now),
            Param::Text(halted),
            text(r.superseded_by.as_deref().unwrap_or("")),
            text(r.note.as_deref().unwrap_or("")),
        ],
    )?;
    Ok(())
}

/// A host's row in a rollout.
struct Member {
    wave: u32,
    seen_unix: i64,
    admitted: bool,
    reported: bool,
}

fn member(db: &mut dyn Sql, rollout: i64, host: &str) -> Result<Option<Member>, StoreError> {
    let rows = db.rows(
        "SELECT wave, seen_unix, admitted_unix, reported_unix FROM rollout_hosts WHERE rollout_id = $1 AND host = $2",
        &[Param::Int(rollout), text(host)],
    )?;
    Ok(rows.first().map(|c| Member {
        wave: u32::try_from(c[0].int()).unwrap_or(0),
        seen_unix: c[1].int(),
        admitted: c[2].opt_int().is_some(),
        reported: c[3].opt_int().is_some(),
    }))
}

const DEFAULT_INTERVAL_S: i64 = 30 * 60;

/// Starts a rollout: its row, and a row for each of the environment's
/// hosts the log has heard from lately, with its wave.
fn start(db: &mut dyn Sql, req: &AdmitRequest, now: i64) -> Result<RolloutRow, StoreError> {
    let policy = serde_json::to_string(&req.policy).expect("serialises");
    let id = db.rows(
        "INSERT INTO rollouts (environment, commit_id, author, subject, committed_at, committed_unix, policy, state, wave, wave_opened_unix, created_unix, updated_unix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'rolling', 0, $8, $8, $8) RETURNING id",
        &[
            text(&req.environment),
            text(&req.commit),
            text(&req.author),
            text(&req.subject),
            text(&req.committed_at),
            Param::Int(unix(&req.committed_at)),
            Param::Text(policy),
            Param::Int(now),
        ],
    )?;
    let id = id.first().map_or(0, |r| r[0].int());
    let known = db.rows(
        "SELECT r.host, r.received_unix, r.interval_s FROM hosts h JOIN reports r ON r.seq = h.last_seq WHERE r.environment = $1",
        &[text(&req.environment)],
    )?;
    let alive: Vec<(String, i64, i64)> = known
        .iter()
        .map(|c| {
            (
                c[0].text(),
                c[1].int(),
                c[2].opt_int().unwrap_or(DEFAULT_INTERVAL_S),
            )
        })
        .filter(|(_, seen, every)| now - seen <= 2 * every)
        .collect();
    let names: Vec<&str> = alive.iter().map(|(h, _, _)| h.as_str()).collect();
    let waves: std::collections::HashMap<&str, u32> = req
        .policy
        .assign(&req.environment, &names)
        .into_iter()
        .collect();
    let rows: Vec<(&str, i64, i64, u32)> = alive
        .iter()
        .map(|(host, seen, every)| (host.as_str(), *seen, *every, waves[host.as_str()]))
        .collect();
    for chunk in rows.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO rollout_hosts (rollout_id, host, bucket, canary, wave, seen_unix, interval_s) VALUES ",
        );
        let mut args = Vec::with_capacity(chunk.len() * 7);
        for (i, (host, seen, every, wave)) in chunk.iter().enumerate() {
            let k = i * 7;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                k + 1,
                k + 2,
                k + 3,
                k + 4,
                k + 5,
                k + 6,
                k + 7
            ));
            args.extend([
                Param::Int(id),
                text(host),
                Param::Int(bucket(&req.environment, host)),
                Param::Int(i64::from(*wave == 0)),
                Param::Int(i64::from(*wave)),
                Param::Int(*seen),
                Param::Int(*every),
            ]);
        }
        db.exec(&sql, &args)?;
    }
    find(db, &req.environment, &req.commit)?
        .ok_or_else(|| StoreError::Database("a rollout just started is gone".into()))
}

/// A host the rollout did not know when it started: its wave from its
/// place among the hosts it has now.
fn join(
    db: &mut dyn Sql,
    r: &RolloutRow,
    host: &str,
    every: i64,
    now: i64,
) -> Result<u32, StoreError> {
    let b = bucket(&r.environment, host);
    let wave = if r.policy.is_canary(host) {
        0
    } else {
        let c = db.rows(
            "SELECT COUNT(CASE WHEN bucket < $2 THEN 1 END), COUNT(*) FROM rollout_hosts WHERE rollout_id = $1 AND canary = 0",
            &[Param::Int(r.id), Param::Int(b)],
        )?;
        let (below, n) = c.first().map_or((0, 0), |c| (c[0].int(), c[1].int()));
        r.policy.wave_of_rank(
            u64::try_from(below).unwrap_or(0),
            u64::try_from(n + 1).unwrap_or(1),
        )
    };
    db.exec(
        "INSERT INTO rollout_hosts (rollout_id, host, bucket, canary, wave, seen_unix, interval_s) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Param::Int(r.id),
            text(host),
            Param::Int(b),
            Param::Int(i64::from(wave == 0)),
            Param::Int(i64::from(wave)),
            Param::Int(now),
            Param::Int(every),
        ],
    )?;
    Ok(wave)
}

/// Why the next wave is not open yet.
enum Holding {
    /// A host of the open waves still to report (one of them).
    Reports(String),
    /// Soaking until this time.
    Soak(i64),
    /// The last wave is open.
    Last,
}

/// Opens every wave that may open now; marks the rollout done when its
/// last wave is complete. Returns what holds the next wave.
fn advance(
    db: &mut dyn Sql,
    r: &mut RolloutRow,
    now: i64,
    write: bool,
) -> Result<Holding, StoreError> {
    let before = (r.wave, r.state.clone());
    let holding = loop {
        // One host of the open waves that is alive (or admitted) and has
        // not reported holds the next wave: finding one is enough.
        let blocking = db.rows(
            "SELECT host FROM rollout_hosts
             WHERE rollout_id = $1 AND reported_unix IS NULL AND wave <= $2
               AND (admitted_unix IS NOT NULL OR seen_unix >= $3 - 2 * interval_s)
             LIMIT 1",
            &[
                Param::Int(r.id),
                Param::Int(i64::from(r.wave)),
                Param::Int(now),
            ],
        )?;
        if let Some(host) = blocking.first() {
            break Holding::Reports(host[0].text());
        }
        if r.wave >= r.waves {
            if r.state == "rolling" {
                r.state = "done".into();
            }
            break Holding::Last;
        }
        // Waves with no host yet open at once; the others once the last
        // report on the commit has soaked.
        let any = db.rows(
            "SELECT 1 FROM rollout_hosts WHERE rollout_id = $1 AND wave <= $2 LIMIT 1",
            &[Param::Int(r.id), Param::Int(i64::from(r.wave))],
        )?;
        let until = r
            .last_report_unix
            .map_or(0, |t| t + i64::try_from(r.policy.soak_s).unwrap_or(0));
        if !any.is_empty() && now < until {
            break Holding::Soak(until);
        }
        r.wave += 1;
        r.wave_opened_unix = now;
    };
    if write && (r.wave, r.state.clone()) != before {
        tracing::info!(environment = %r.environment, commit = %r.commit, wave = r.wave, state = %r.state, "rollout moved on");
        save(db, r, now)?;
    }
    Ok(holding)
}

fn answer(
    r: &RolloutRow,
    admitted: bool,
    host_wave: u32,
    reason: String,
    retry: Option<i64>,
) -> Admission {
    Admission {
        admitted,
        state: r.state.clone(),
        wave: r.wave,
        host_wave: Some(host_wave),
        reason,
        retry_after_s: retry.map(|s| u64::try_from(s.max(1)).unwrap_or(1)),
    }
}

/// `POST /v1/rollouts/admit`: may this host apply this commit now?
///
/// With `write` false it only reads, without the lock, and answers only a
/// refusal that changes nothing (most questions, while a wave runs or
/// soaks); `None` means the question needs the locked, writing path:
/// admitting, starting a rollout, a host joining, a wave opening.
pub fn admit(
    db: &mut dyn Sql,
    req: &AdmitRequest,
    now: i64,
    write: bool,
) -> Result<Option<Admission>, StoreError> {
    if write {
        db.lock_environment(&req.environment)?;
    }
    let every = req
        .interval_s
        .and_then(|s| i64::try_from(s).ok())
        .unwrap_or(DEFAULT_INTERVAL_S);
    let mut r = match find(db, &req.environment, &req.commit)? {
        Some(r) => r,
        None if !write => return Ok(None),
        None => {
            // An older commit asked after a newer one started (a host that
            // fetched before the push): it will fetch the newer one.
            let newest = db.rows(
                "SELECT commit_id, committed_unix FROM rollouts WHERE environment = $1 ORDER BY committed_unix DESC, id DESC LIMIT 1",
                &[text(&req.environment)],
            )?;
            if let Some(c) = newest.first()
                && c[1].int() > unix(&req.committed_at)
            {
                return Ok(Some(Admission {
                    admitted: false,
                    state: "superseded".into(),
                    wave: 0,
                    host_wave: None,
                    reason: format!(
                        "a newer commit, {}, is rolling out in {}; this host takes it after its next fetch",
                        c[0].text(),
                        req.environment
                    ),
                    retry_after_s: Some(60),
                }));
            }
            db.exec(
                "UPDATE rollouts SET state = 'superseded', superseded_by = $2, updated_unix = $3
                 WHERE environment = $1 AND state IN ('rolling', 'halted')",
                &[text(&req.environment), text(&req.commit), Param::Int(now)],
            )?;
            tracing::info!(environment = %req.environment, commit = %req.commit, "rollout started");
            start(db, req, now)?
        }
    };
    let (host_wave, admitted) = match member(db, r.id, &req.host)? {
        Some(m) => {
            // Seen: a host that asks is alive. Written at most once a
            // minute, so asking is mostly a read.
            if now - m.seen_unix >= 60 {
                if !write {
                    return Ok(None);
                }
                db.exec(
                    "UPDATE rollout_hosts SET seen_unix = $3, interval_s = $4 WHERE rollout_id = $1 AND host = $2",
                    &[Param::Int(r.id), text(&req.host), Param::Int(now), Param::Int(every)],
                )?;
            }
            (m.wave, m.admitted || m.reported)
        }
        None if !write => return Ok(None),
        None => (join(db, &r, &req.host, every, now)?, false),
    };
    let yes = |r: &RolloutRow| {
        Ok(Some(answer(
            r,
            true,
            host_wave,
            format!("admitted in wave {host_wave}"),
            None,
        )))
    };
    if admitted {
        return yes(&r);
    }
    let refuse = |r: &RolloutRow, reason: String, retry: i64| {
        Ok(Some(answer(r, false, host_wave, reason, Some(retry))))
    };
    match r.state.as_str() {
        "superseded" => {
            return refuse(
                &r,
                format!(
                    "superseded by {}; this host takes it after its next fetch",
                    r.superseded_by.clone().unwrap_or_default()
                ),
                60,
            );
        }
        "aborted" => {
            return refuse(
                &r,
                format!(
                    "the rollout was aborted ({})",
                    r.note.clone().unwrap_or_default()
                ),
                every,
            );
        }
        "halted" => {
            let why = r.halted_by.as_ref().map_or_else(String::new, |h| {
                format!(
                    ": {} {} on {} ({})",
                    h.condition, h.resource, h.host, h.error
                )
            });
            return refuse(&r, format!("the rollout is halted{why}"), every);
        }
        _ => {}
    }
    // The host's wave is open: no need to look further.
    let before = (r.wave, r.state.clone());
    let holding = if host_wave <= r.wave || r.state == "done" {
        Holding::Last
    } else {
        advance(db, &mut r, now, write)?
    };
    if !write && (host_wave <= r.wave || r.state == "done" || (r.wave, r.state.clone()) != before) {
        return Ok(None);
    }
    if host_wave <= r.wave || r.state == "done" {
        db.exec(
            "UPDATE rollout_hosts SET admitted_unix = $3, seen_unix = $3 WHERE rollout_id = $1 AND host = $2",
            &[Param::Int(r.id), text(&req.host), Param::Int(now)],
        )?;
        return yes(&r);
    }
    let (reason, retry) = match holding {
        Holding::Reports(host) => (
            format!(
                "wave {host_wave} opens after every host of wave {} has reported on this commit ({host} has not yet)",
                r.wave
            ),
            // Hosts report once an interval: no use asking much sooner.
            (every / 4).clamp(60, 600),
        ),
        Holding::Soak(until) => (
            format!(
                "wave {host_wave} opens after wave {} soaks, in {} s",
                r.wave,
                until - now
            ),
            until - now,
        ),
        Holding::Last => (
            format!("wave {host_wave} is not open"),
            (every / 4).clamp(60, 600),
        ),
    };
    refuse(&r, reason, retry)
}

/// The halt a report caused, for the webhook and the server's log.
pub type Halt = RolloutRow;

/// Takes a stored run into account: the host has reported on the commit
/// (or refused it); a failure or drift after applying may halt the
/// rollout, and a last report may complete it.
pub fn observe(db: &mut dyn Sql, report: &Report, now: i64) -> Result<Option<Halt>, StoreError> {
    if report.mode != RunMode::Apply {
        return Ok(None);
    }
    let applied = report.revision.as_ref().map(|r| r.commit.as_str());
    let refused = report.rejected.as_ref().map(|r| r.revision.commit.as_str());
    let mut halt = None;
    for commit in [applied, refused].into_iter().flatten() {
        // Most reports belong to no rollout in motion: find out before
        // taking the lock.
        let hit = db.rows(
            "SELECT 1 FROM rollouts r JOIN rollout_hosts h ON h.rollout_id = r.id
             WHERE r.environment = $1 AND r.commit_id = $2 AND h.host = $3 AND r.state IN ('rolling', 'halted')",
            &[text(&report.environment), text(commit), text(&report.host)],
        )?;
        if hit.is_empty() {
            continue;
        }
        db.lock_environment(&report.environment)?;
        let Some(mut r) = find(db, &report.environment, commit)? else {
            continue;
        };
        let Some(m) = member(db, r.id, &report.host)? else {
            continue;
        };
        let failure = if Some(commit) == refused {
            let why = report.rejected.as_ref().expect("refused");
            Some((
                format!("commit {}", short(commit)),
                why.errors
                    .first()
                    .map_or_else(|| why.reason.clone(), |e| format!("{}: {e}", why.reason)),
            ))
        } else if report.status == Status::Failed {
            let first = report.resources.iter().find(|x| x.status == Status::Failed);
            Some(first.map_or_else(
                || ("the run".to_owned(), "failed".to_owned()),
                |x| {
                    (
                        x.id.clone(),
                        x.error.clone().unwrap_or_else(|| "failed".into()),
                    )
                },
            ))
        } else {
            None
        };
        let drifted = failure.is_none() && m.reported && report.summary.drift > 0;
        db.exec(
            "UPDATE rollout_hosts SET reported_unix = COALESCE(reported_unix, $3), admitted_unix = COALESCE(admitted_unix, $3), seen_unix = $3,
                failed = CASE WHEN CAST($4 AS BIGINT) = 1 THEN 1 ELSE failed END,
                drifted = CASE WHEN CAST($5 AS BIGINT) = 1 THEN 1 ELSE drifted END
             WHERE rollout_id = $1 AND host = $2",
            &[
                Param::Int(r.id),
                text(&report.host),
                Param::Int(now),
                Param::Int(i64::from(failure.is_some())),
                Param::Int(i64::from(drifted)),
            ],
        )?;
        db.exec(
            "UPDATE rollouts SET last_report_unix = $2 WHERE id = $1",
            &[Param::Int(r.id), Param::Int(now)],
        )?;
        r.last_report_unix = Some(now);
        if r.state != "rolling" {
            continue;
        }
        if failure.is_none() && !drifted {
            // A clean run: it may complete the last wave.
            advance(db, &mut r, now, true)?;
            continue;
        }
        let c = db.rows(
            "SELECT COUNT(CASE WHEN failed = 1 THEN 1 END), COUNT(CASE WHEN drifted = 1 THEN 1 END) FROM rollout_hosts WHERE rollout_id = $1",
            &[Param::Int(r.id)],
        )?;
        let (failed, drift) = c.first().map_or((0, 0), |c| (c[0].int(), c[1].int()));
        let halt_on = r.policy.halt_on;
        let condition =
            if halt_on.failed > 0 && failed >= i64::from(halt_on.failed) && failure.is_some() {
                Some("failed")
            } else if halt_on.drift_after_apply > 0
                && drift >= i64::from(halt_on.drift_after_apply)
                && drifted
            {
                Some("drift_after_apply")
            } else {
                None
            };
        match condition {
            Some(condition) => {
                let (resource, error) = failure.unwrap_or_else(|| {
                    let d = report.resources.iter().find(|x| x.status == Status::Drift);
                    (
                        d.map_or_else(String::new, |x| x.id.clone()),
                        "drifted after the commit was applied".into(),
                    )
                });
                r.state = "halted".into();
                r.halted_by = Some(HaltedBy {
                    host: report.host.clone(),
                    report: report.id.clone(),
                    resource,
                    error,
                    condition: condition.into(),
                    at_unix: now,
                });
                save(db, &r, now)?;
                tracing::warn!(environment = %r.environment, commit = %r.commit, host = %report.host, "rollout halted");
                let mut listed = list(db, Some(&r.environment), Some(&r.commit), 1)?;
                halt = listed.pop();
            }
            None => {
                advance(db, &mut r, now, true)?;
            }
        }
    }
    Ok(halt)
}

/// What an operator does to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A halted rollout goes on; the failures seen so far are forgiven.
    Resume,
    /// No more hosts are admitted, for good.
    Abort,
}

/// Resumes or aborts the newest rollout in motion of an environment (or
/// the one of `commit`). An error message for the operator when there is
/// nothing to act on.
pub fn act(
    db: &mut dyn Sql,
    environment: &str,
    commit: Option<&str>,
    action: Action,
    who: &str,
    now: i64,
) -> Result<Result<RolloutRow, String>, StoreError> {
    db.lock_environment(environment)?;
    let candidates = list(db, Some(environment), commit, 50)?;
    let target = match commit {
        Some(c) => {
            let matching: Vec<&RolloutRow> = candidates
                .iter()
                .filter(|r| r.commit.starts_with(c))
                .collect();
            match matching.as_slice() {
                [one] => (*one).clone(),
                [] => return Ok(Err(format!("no rollout of a commit {c}… in {environment}"))),
                _ => {
                    return Ok(Err(format!(
                        "{c} names more than one rollout in {environment}; give more of the commit"
                    )));
                }
            }
        }
        None => match candidates
            .iter()
            .find(|r| r.state == "rolling" || r.state == "halted")
        {
            Some(r) => r.clone(),
            None => {
                return Ok(Err(format!(
                    "no rollout in {environment} is rolling or halted"
                )));
            }
        },
    };
    let mut r = target;
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)),
    );
    match (action, r.state.as_str()) {
        (Action::Resume, "halted") => {
            db.exec(
                "UPDATE rollout_hosts SET failed = 0, drifted = 0 WHERE rollout_id = $1",
                &[Param::Int(r.id)],
            )?;
            r.state = "rolling".into();
            r.note = Some(format!("resumed by {who} at {when}"));
        }
        (Action::Abort, "rolling" | "halted") => {
            r.state = "aborted".into();
            r.note = Some(format!("aborted by {who} at {when}"));
        }
        (Action::Resume, state) => {
            return Ok(Err(format!(
                "the rollout of {} in {environment} is {state}, not halted: nothing to resume",
                short(&r.commit)
            )));
        }
        (Action::Abort, state) => {
            return Ok(Err(format!(
                "the rollout of {} in {environment} is {state}: nothing to abort",
                short(&r.commit)
            )));
        }
    }
    save(db, &r, now)?;
    tracing::info!(environment, commit = %r.commit, state = %r.state, who, "rollout changed by an operator");
    let mut listed = list(db, Some(environment), Some(&r.commit), 1)?;
    Ok(listed.pop().ok_or_else(|| "the rollout is gone".to_owned()))
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
