//! The rollout gate's storage (SPEC §8), written once for both stores over
//! a small SQL interface ([`Sql`]): a rollout is loaded under its
//! environment's lock, [`gate::step`] decides, and what it touched is
//! saved, in one transaction. Log servers sharing a database therefore
//! never admit past a wave and all see a halt; a restarted server reads
//! the same state back.
//!
//! Which commit a rollout is of, and its policy, author and date, come
//! from the log's mirror of the repository ([`History`] and
//! [`CommitFacts`]); a host says only who it is and which commit it
//! fetched.

use serde::Serialize;

use super::sql::{Cell, Sql};
use super::sql::{Param, StoreError};
use crate::report::{Report, RunMode, Status};
use crate::rollout::gate::{self, Event, Failure, Holding, Member, Outcome, Phase, Rollout};
use crate::rollout::{Admission, AdmitRequest, Policy};
use crate::source::Revision;

pub use gate::HaltedBy;

/// A database transaction with this server's cache of rollouts beside it.
pub trait Db: Sql {
    /// This server's rollouts as it last read or wrote them.
    fn cache(&self) -> &Cache;
}

/// The members of the rollouts this server decided last, each with the
/// version of the rollout it saw. A decision whose rollout row still has
/// that version (no other server, no failed transaction, changed it since)
/// takes them from here instead of reading every member again: a wave of
/// thousands of hosts asking costs a row each, not a fleet each. Versions
/// are random, so a transaction that did not commit can never seem
/// current.
///
/// Beside them, the hosts the gate asked to wake (a wave opened, a
/// rollback, a resume) until the server hands them to the watches.
#[derive(Default)]
pub struct Cache {
    members: std::sync::Mutex<std::collections::HashMap<i64, (i64, Members)>>,
    /// Decided in the writing transaction under way (a store has one
    /// writer at a time).
    pending: std::sync::Mutex<Vec<RolloutWake>>,
    /// Committed, not yet handed to the watches.
    ready: std::sync::Mutex<Vec<RolloutWake>>,
    arrived: std::sync::Condvar,
}

type Members = std::collections::BTreeMap<String, Member>;

/// Hosts of one environment the gate wants to hear from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutWake {
    pub environment: String,
    pub hosts: Vec<String>,
}

impl Cache {
    /// The writing transaction committed: its wakes may go out (never
    /// before, or a host woken would be answered from the old state). A
    /// transaction that failed leaves its wakes to the next commit: a host
    /// woken for nothing runs a cycle and is told what it already knew.
    pub fn committed(&self) {
        let mut pending = self.pending.lock().expect("rollout wakes");
        if pending.is_empty() {
            return;
        }
        self.ready
            .lock()
            .expect("rollout wakes")
            .append(&mut pending);
        self.arrived.notify_all();
    }

    /// Waits for committed wakes and takes them.
    pub fn next_wakes(&self) -> Vec<RolloutWake> {
        let mut ready = self.ready.lock().expect("rollout wakes");
        while ready.is_empty() {
            ready = self.arrived.wait(ready).expect("rollout wakes");
        }
        std::mem::take(&mut *ready)
    }

    fn take(&self, id: i64, version: i64) -> Option<Members> {
        let mut map = self.members.lock().expect("rollout cache");
        match map.remove(&id) {
            Some((v, members)) if v == version => Some(members),
            _ => None,
        }
    }

    fn put(&self, id: i64, version: i64, members: Members) {
        self.members
            .lock()
            .expect("rollout cache")
            .insert(id, (version, members));
    }

    fn forget(&self, id: i64) {
        self.members.lock().expect("rollout cache").remove(&id);
    }
}

fn new_version() -> i64 {
    let (a, _) = uuid::Uuid::new_v4().as_u64_pair();
    i64::from_ne_bytes(a.to_ne_bytes())
}

fn text(s: &str) -> Param {
    Param::Text(s.to_owned())
}

/// What the log's mirror says of a commit, for one environment.
#[derive(Debug, Clone)]
pub struct CommitFacts {
    pub revision: Revision,
    /// The environment's `rollout:` in that commit; none rolls out at once.
    pub policy: Option<Policy>,
}

/// The history of the source, as the log's mirror knows it.
pub trait History {
    /// Whether `commit` is `ancestor` or descends from it.
    fn descends(&self, ancestor: &str, commit: &str) -> bool;
    /// The commit the ref points to, at the last fetch.
    fn tip(&self) -> Option<String>;
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
    /// Under `on_halt: rollback`, once halted: what its hosts converge.
    pub rollback_to: Option<String>,
    /// Hosts holding the next wave (a few, with since when), and how many.
    pub holding: Vec<HoldingHost>,
    pub holding_count: usize,
    /// When the next wave may open (its soak ends), when it is soaking.
    pub next_wave_unix: Option<i64>,
    /// Hosts in the rollout, admitted, that reported on it, that failed it.
    pub hosts: i64,
    pub admitted: i64,
    pub reported: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct HoldingHost {
    pub host: String,
    /// Admitted then, or waiting since its wave opened.
    pub since_unix: i64,
    /// Admitted (it has the commit) or not yet asked.
    pub admitted: bool,
}

/// What a rollout's `holding` column keeps: the last decision's view.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
struct Held {
    #[serde(default)]
    hosts: Vec<HoldingHost>,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    soak_until: Option<i64>,
}

const COLUMNS: &str = "r.id, r.environment, r.commit_id, r.author, r.subject, r.committed_at, r.policy, r.state, r.wave, r.wave_opened_unix, r.created_unix, r.updated_unix, r.halted_by, r.superseded_by, r.note, r.rollback_to, r.fallback, r.next_check_unix, r.holding, r.version";

/// The host counts a listing shows (decisions never need them).
const COUNTS: &str = "(SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.admitted_unix IS NOT NULL),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.reported_unix IS NOT NULL),
    (SELECT COUNT(*) FROM rollout_hosts h WHERE h.rollout_id = r.id AND h.failed = 1)";

/// A stored rollout: its row as listed, and the gate's state without its
/// members (loaded apart, only when a decision needs them).
struct Stored {
    row: RolloutRow,
    gate: Rollout,
    version: i64,
    /// Whether `gate.members` holds the members (they are read only when
    /// a decision needs them).
    loaded: bool,
}

fn stored(c: &[Cell]) -> Result<Stored, StoreError> {
    let policy: Policy = serde_json::from_str(&c[6].text())
        .map_err(|e| StoreError::Database(format!("a stored rollout policy: {e}")))?;
    let held: Held = c[18]
        .opt_text()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let row = RolloutRow {
        id: c[0].int(),
        environment: c[1].text(),
        commit: c[2].text(),
        author: c[3].text(),
        subject: c[4].text(),
        committed_at: c[5].text(),
        waves: policy.last_wave(),
        policy: policy.clone(),
        state: c[7].text(),
        wave: u32::try_from(c[8].int()).unwrap_or(0),
        wave_opened_unix: c[9].int(),
        created_unix: c[10].int(),
        updated_unix: c[11].int(),
        halted_by: c[12].opt_text().and_then(|t| serde_json::from_str(&t).ok()),
        superseded_by: c[13].opt_text(),
        note: c[14].opt_text(),
        rollback_to: c[15].opt_text(),
        holding: held.hosts,
        holding_count: held.count,
        next_wave_unix: held.soak_until,
        hosts: c.get(20).map_or(0, Cell::int),
        admitted: c.get(21).map_or(0, Cell::int),
        reported: c.get(22).map_or(0, Cell::int),
        failed: c.get(23).map_or(0, Cell::int),
    };
    let gate = Rollout {
        environment: row.environment.clone(),
        commit: row.commit.clone(),
        policy,
        phase: Phase::parse(&row.state),
        wave: row.wave,
        wave_opened: row.wave_opened_unix,
        halted_by: row.halted_by.clone(),
        superseded_by: row.superseded_by.clone(),
        note: row.note.clone(),
        // Stored as '' for "the hosts' own previous commits".
        rollback_to: match &c[15] {
            Cell::Null => None,
            other => Some(other.text()),
        },
        fallback: c[16].opt_text(),
        next_check: c[17].opt_int(),
        holding: held_holding(&row),
        members: std::collections::BTreeMap::new(),
    };
    Ok(Stored {
        row,
        gate,
        version: c[19].int(),
        loaded: false,
    })
}

/// What holds a stored rollout's next wave, as its row keeps it.
fn held_holding(row: &RolloutRow) -> Holding {
    if let Some(until) = row.next_wave_unix {
        Holding::Soak(until)
    } else if row.holding_count > 0 {
        Holding::Reports {
            hosts: row
                .holding
                .iter()
                .map(|h| (h.host.clone(), h.since_unix))
                .collect(),
            count: row.holding_count,
        }
    } else {
        Holding::Nothing
    }
}

/// The rollouts of an environment (or all), newest first; `commit` may be
/// a prefix.
pub fn list(
    db: &mut dyn Db,
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
    rows.iter().map(|r| stored(r).map(|s| s.row)).collect()
}

/// Each host of a rollout and its wave (0 is the canary).
pub fn waves(db: &mut dyn Sql, rollout_id: i64) -> Result<Vec<(String, u32)>, StoreError> {
    let rows = db.rows(
        "SELECT host, wave FROM rollout_hosts WHERE rollout_id = $1",
        &[Param::Int(rollout_id)],
    )?;
    Ok(rows
        .iter()
        .map(|c| (c[0].text(), u32::try_from(c[1].int()).unwrap_or(0)))
        .collect())
}

fn find(db: &mut dyn Db, environment: &str, commit: &str) -> Result<Option<Stored>, StoreError> {
    let rows = db.rows(
        &format!("SELECT {COLUMNS} FROM rollouts r WHERE r.environment = $1 AND r.commit_id = $2"),
        &[text(environment), text(commit)],
    )?;
    rows.first().map(|r| stored(r)).transpose()
}

/// The newest rollout of an environment.
fn latest(db: &mut dyn Db, environment: &str) -> Result<Option<Stored>, StoreError> {
    let rows = db.rows(
        &format!(
            "SELECT {COLUMNS} FROM rollouts r WHERE r.environment = $1 ORDER BY r.id DESC LIMIT 1"
        ),
        &[text(environment)],
    )?;
    rows.first().map(|r| stored(r)).transpose()
}

const MEMBER_COLUMNS: &str = "host, wave, bucket, seen_unix, interval_s, previous_commit, admitted_unix, reported_unix, clean_unix, failure, drifted_by, forgiven";

fn member_of(c: &[Cell]) -> (String, Member) {
    let drifted = c[10].opt_text().map(|t| {
        let (resource, report) = t.split_once('\n').unwrap_or((&t, ""));
        (resource.to_owned(), report.to_owned())
    });
    (
        c[0].text(),
        Member {
            wave: u32::try_from(c[1].int()).unwrap_or(0),
            bucket: c[2].int(),
            seen: c[3].int(),
            interval_s: c[4].int(),
            previous: c[5].opt_text(),
            admitted: c[6].opt_int(),
            reported: c[7].opt_int(),
            clean: c[8].opt_int(),
            failure: c[9]
                .opt_text()
                .and_then(|t| serde_json::from_str::<Failure>(&t).ok()),
            drifted,
            forgiven: c[11].int() == 1,
        },
    )
}

fn load_members(db: &mut dyn Db, s: &mut Stored) -> Result<(), StoreError> {
    s.loaded = true;
    let cached = db.cache().take(s.row.id, s.version);
    if !cfg!(debug_assertions)
        && let Some(members) = cached
    {
        s.gate.members = members;
        return Ok(());
    }
    let rows = db.rows(
        &format!("SELECT {MEMBER_COLUMNS} FROM rollout_hosts WHERE rollout_id = $1"),
        &[Param::Int(s.row.id)],
    )?;
    s.gate.members = rows.iter().map(|c| member_of(c)).collect();
    // Test builds read the members anyway and check the cache against
    // them: a cache that ever disagreed would change decisions.
    #[cfg(debug_assertions)]
    if let Some(members) = cached {
        assert_eq!(
            members, s.gate.members,
            "the rollout cache disagrees with the store"
        );
    }
    Ok(())
}

fn one_member(db: &mut dyn Db, id: i64, host: &str) -> Result<Option<Member>, StoreError> {
    let rows = db.rows(
        &format!("SELECT {MEMBER_COLUMNS} FROM rollout_hosts WHERE rollout_id = $1 AND host = $2"),
        &[Param::Int(id), text(host)],
    )?;
    Ok(rows.first().map(|c| member_of(c).1))
}

fn opt(v: Option<i64>) -> Param {
    Param::OptInt(v)
}

fn opt_text(v: Option<String>) -> Param {
    Param::OptText(v)
}

/// Writes back what a step changed: the rollout's row (with a new
/// version) and its touched members. The members go to the cache, under
/// that version, while the rollout is in motion.
fn save(db: &mut dyn Db, s: &mut Stored, step: &gate::Step, now: i64) -> Result<(), StoreError> {
    if !step.wake.is_empty() {
        db.cache()
            .pending
            .lock()
            .expect("rollout wakes")
            .push(RolloutWake {
                environment: s.gate.environment.clone(),
                hosts: step.wake.clone(),
            });
    }
    s.version = new_version();
    let r = &s.gate;
    let held = match &r.holding {
        Holding::Reports { hosts, count } => Held {
            hosts: hosts
                .iter()
                .map(|(h, since)| HoldingHost {
                    host: h.clone(),
                    since_unix: *since,
                    admitted: r.members.get(h).is_some_and(|m| m.admitted.is_some()),
                })
                .collect(),
            count: *count,
            soak_until: None,
        },
        Holding::Soak(until) => Held {
            soak_until: Some(*until),
            ..Held::default()
        },
        _ => Held::default(),
    };
    db.exec(
        "UPDATE rollouts SET state = $2, wave = $3, wave_opened_unix = $4, updated_unix = $5,
            halted_by = $6, superseded_by = $7, note = $8, rollback_to = $9, next_check_unix = $10, holding = $11,
            version = $12
         WHERE id = $1",
        &[
            Param::Int(s.row.id),
            text(r.phase.as_str()),
            Param::Int(i64::from(r.wave)),
            Param::Int(r.wave_opened),
            Param::Int(now),
            opt_text(r.halted_by.as_ref().map(|h| serde_json::to_string(h).expect("serialises"))),
            opt_text(r.superseded_by.clone()),
            opt_text(r.note.clone()),
            opt_text(r.rollback_to.clone()),
            opt(r.next_check),
            Param::Text(serde_json::to_string(&held).expect("serialises")),
            Param::Int(s.version),
        ],
    )?;
    let mut touched: Vec<&String> = step.touched.iter().collect();
    touched.sort();
    touched.dedup();
    for host in touched {
        let Some(m) = r.members.get(host) else {
            continue;
        };
        db.exec(
            "INSERT INTO rollout_hosts (rollout_id, host, bucket, canary, wave, seen_unix, interval_s, previous_commit, admitted_unix, reported_unix, clean_unix, failure, failed, drifted, drifted_by, forgiven)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (rollout_id, host) DO UPDATE SET seen_unix = excluded.seen_unix, interval_s = excluded.interval_s,
                admitted_unix = excluded.admitted_unix, reported_unix = excluded.reported_unix, clean_unix = excluded.clean_unix,
                failure = excluded.failure, failed = excluded.failed, drifted = excluded.drifted, drifted_by = excluded.drifted_by,
                forgiven = excluded.forgiven",
            &[
                Param::Int(s.row.id),
                text(host),
                Param::Int(m.bucket),
                Param::Int(i64::from(m.wave == 0)),
                Param::Int(i64::from(m.wave)),
                Param::Int(m.seen),
                Param::Int(m.interval_s),
                opt_text(m.previous.clone()),
                opt(m.admitted),
                opt(m.reported),
                opt(m.clean),
                opt_text(m.failure.as_ref().map(|f| serde_json::to_string(f).expect("serialises"))),
                Param::Int(i64::from(m.failure.is_some())),
                Param::Int(i64::from(m.drifted.is_some())),
                opt_text(m.drifted.as_ref().map(|(a, b)| format!("{a}\n{b}"))),
                Param::Int(i64::from(m.forgiven)),
            ],
        )?;
    }
    if step.changed || !step.touched.is_empty() {
        tracing::debug!(environment = %r.environment, commit = %r.commit, wave = r.wave, state = r.phase.as_str(), touched = step.touched.len(), "rollout saved");
    }
    if s.loaded && r.phase.in_motion() {
        db.cache()
            .put(s.row.id, s.version, std::mem::take(&mut s.gate.members));
        s.loaded = false;
    } else {
        db.cache().forget(s.row.id);
    }
    Ok(())
}

/// Starts a rollout of `commit`: its row, and a member for each of the
/// environment's hosts the log has heard from within two of their
/// intervals, with its wave and the commit it runs.
fn start(
    db: &mut dyn Db,
    environment: &str,
    facts: &CommitFacts,
    policy: &Policy,
    now: i64,
) -> Result<Stored, StoreError> {
    let known = db.rows(
        "SELECT r.host, r.received_unix, r.interval_s, r.commit_id FROM hosts h JOIN reports r ON r.seq = h.last_seq WHERE r.environment = $1",
        &[text(environment)],
    )?;
    let alive: Vec<(String, i64, i64, Option<String>)> = known
        .iter()
        .map(|c| {
            (
                c[0].text(),
                c[1].int(),
                c[2].opt_int().unwrap_or(gate::DEFAULT_INTERVAL_S),
                c[3].opt_text(),
            )
        })
        .filter(|(_, seen, every, _)| now - seen <= 2 * every)
        .collect();
    // What a rollback returns to: the commit the whole environment ran
    // when this one started, else the last whose rollout completed (else
    // each host's own previous commit).
    let mut running = alive.iter().map(|(_, _, _, c)| c.as_deref());
    let unanimous = match running.next() {
        Some(Some(first)) if running.all(|c| c == Some(first)) => Some(first.to_owned()),
        _ => None,
    };
    let fallback = match unanimous {
        Some(commit) => Some(commit),
        None => db
            .rows(
                "SELECT commit_id FROM rollouts WHERE environment = $1 AND state = 'done' ORDER BY id DESC LIMIT 1",
                &[text(environment)],
            )?
            .first()
            .map(|c| c[0].text()),
    };
    let rev = &facts.revision;
    db.exec(
        "INSERT INTO rollouts (environment, commit_id, author, subject, committed_at, committed_unix, policy, state, wave, wave_opened_unix, created_unix, updated_unix, fallback)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'rolling', 0, $8, $8, $8, $9)",
        &[
            text(environment),
            text(&rev.commit),
            text(&rev.author),
            text(&rev.subject),
            text(&rev.committed_at),
            Param::Int(super::clock::unix(&rev.committed_at)),
            Param::Text(serde_json::to_string(policy).expect("serialises")),
            Param::Int(now),
            opt_text(fallback.clone()),
        ],
    )?;
    let mut s = find(db, environment, &rev.commit)?
        .ok_or_else(|| StoreError::Database("a rollout just started is gone".into()))?;
    s.gate = Rollout::start(
        environment,
        &rev.commit,
        policy.clone(),
        &alive,
        fallback,
        now,
    );
    // Settled at once: waves with nobody in them open now.
    let mut step = gate::step(&mut s.gate, Event::Tick, now);
    step.touched = s.gate.members.keys().cloned().collect();
    save(db, &mut s, &step, now)?;
    tracing::info!(environment, commit = %rev.commit, hosts = alive.len(), "rollout started");
    Ok(s)
}

/// Removes a rollout, to start it again (a force push back to it).
fn forget(db: &mut dyn Db, id: i64) -> Result<(), StoreError> {
    db.cache().forget(id);
    db.exec(
        "DELETE FROM rollout_hosts WHERE rollout_id = $1",
        &[Param::Int(id)],
    )?;
    db.exec("DELETE FROM rollouts WHERE id = $1", &[Param::Int(id)])?;
    Ok(())
}

fn no_policy(req: &AdmitRequest) -> Admission {
    Admission {
        admitted: true,
        state: Phase::Done,
        wave: 0,
        host_wave: None,
        reason: format!(
            "{} declares no rollout in commit {}: every host takes it at once",
            req.environment,
            gate::short(&req.commit)
        ),
        retry_after_s: None,
        rollback_to: None,
    }
}

fn refuse(state: Phase, reason: String) -> Admission {
    Admission {
        admitted: false,
        state,
        wave: 0,
        host_wave: None,
        reason,
        retry_after_s: Some(60),
        rollback_to: None,
    }
}

/// `POST /v1/rollouts/admit`: may this host apply this commit now?
///
/// With `write` false it only reads, without the lock, and answers what
/// needs no decision (most questions while a wave runs or soaks); `None`
/// means the question needs the locked, writing path.
pub fn admit(
    db: &mut dyn Db,
    history: &dyn History,
    req: &AdmitRequest,
    facts: &CommitFacts,
    now: i64,
    write: bool,
) -> Result<Option<Admission>, StoreError> {
    let Some(policy) = &facts.policy else {
        return Ok(Some(no_policy(req)));
    };
    if write {
        db.lock_environment(&req.environment)?;
    }
    let tip = history.tip();
    let mut s = match find(db, &req.environment, &req.commit)? {
        // The ref was forced back to a commit rolled out before: it wins
        // again, from the start.
        Some(s)
            if s.gate.phase == Phase::Superseded
                && tip.as_deref() == Some(req.commit.as_str())
                && latest(db, &req.environment)?.is_some_and(|l| l.row.id != s.row.id) =>
        {
            if !write {
                return Ok(None);
            }
            forget(db, s.row.id)?;
            supersede_latest(db, &req.environment, &req.commit, now)?;
            start(db, &req.environment, facts, policy, now)?
        }
        Some(s) => s,
        None => {
            if let Some(l) = latest(db, &req.environment)? {
                let descends = history.descends(&l.row.commit, &req.commit);
                let wins = descends || tip.as_deref() == Some(req.commit.as_str());
                if !wins {
                    let older = history.descends(&req.commit, &l.row.commit);
                    let newest = tip.clone().unwrap_or_else(|| l.row.commit.clone());
                    return Ok(Some(refuse(
                        Phase::Superseded,
                        if older {
                            format!(
                                "{} already contains this commit; the source's {} points to {}: this host takes it after its next fetch",
                                gate::short(&l.row.commit),
                                "ref",
                                gate::short(&newest)
                            )
                        } else {
                            format!(
                                "the source's ref points to {}, not to this commit (a force push?): this host takes it after its next fetch",
                                gate::short(&newest)
                            )
                        },
                    )));
                }
            }
            if !write {
                return Ok(None);
            }
            supersede_latest(db, &req.environment, &req.commit, now)?;
            start(db, &req.environment, facts, policy, now)?
        }
    };
    if let Some((answer, stale)) = quick_answer(db, &s, &req.host, now)? {
        if !stale {
            return Ok(Some(answer));
        }
        if write {
            // A host that asks is alive: that is all there is to write
            // (under a new version, which this server's cache follows).
            db.exec(
                "UPDATE rollout_hosts SET seen_unix = $3 WHERE rollout_id = $1 AND host = $2",
                &[Param::Int(s.row.id), text(&req.host), Param::Int(now)],
            )?;
            let version = new_version();
            db.exec(
                "UPDATE rollouts SET version = $2 WHERE id = $1",
                &[Param::Int(s.row.id), Param::Int(version)],
            )?;
            if let Some(mut members) = db.cache().take(s.row.id, s.version) {
                if let Some(m) = members.get_mut(&req.host) {
                    m.seen = now;
                }
                db.cache().put(s.row.id, version, members);
            }
            return Ok(Some(answer));
        }
    }
    if !write {
        return Ok(None);
    }
    load_members(db, &mut s)?;
    let step = gate::step(
        &mut s.gate,
        Event::Ask {
            host: req.host.clone(),
        },
        now,
    );
    save(db, &mut s, &step, now)?;
    Ok(step.answer)
}

/// The answers that need no decision: to a host that has the commit, to
/// one whose wave is not open, or about a rollout at rest, while nothing
/// can have changed since the last decision (no soak ended, no deadline
/// passed). With it, whether the host's `seen` is over a minute old: a
/// waiting host's questions keep it counted alive, for when its wave
/// opens.
fn quick_answer(
    db: &mut dyn Db,
    s: &Stored,
    host: &str,
    now: i64,
) -> Result<Option<(Admission, bool)>, StoreError> {
    let r = &s.gate;
    if r.next_check.is_some_and(|t| now >= t) {
        return Ok(None);
    }
    let Some(m) = one_member(db, s.row.id, host)? else {
        return Ok(None);
    };
    let has_it = m.admitted.is_some() || m.reported.is_some();
    let waiting = r.phase == Phase::Rolling && !has_it;
    match (r.phase, has_it) {
        (_, true) if r.rollback_to.is_none() => {}
        (Phase::Superseded | Phase::Aborted | Phase::Halted, false) => {}
        (Phase::Rolling, false) if m.wave > r.wave => {}
        _ => return Ok(None),
    }
    let stale = waiting && m.seen_is_stale(now);
    Ok(Some((gate::answer(r, host, &m, &r.holding, now), stale)))
}

/// The environment's rollout in motion, if any, gives way to `commit`.
fn supersede_latest(
    db: &mut dyn Db,
    environment: &str,
    commit: &str,
    now: i64,
) -> Result<(), StoreError> {
    let rows = db.rows(
        &format!(
            "SELECT {COLUMNS} FROM rollouts r WHERE r.environment = $1 AND r.state IN ('rolling', 'halted')"
        ),
        &[text(environment)],
    )?;
    for row in rows {
        let mut s = stored(&row)?;
        let step = gate::step(
            &mut s.gate,
            Event::Supersede {
                by: commit.to_owned(),
            },
            now,
        );
        save(db, &mut s, &step, now)?;
    }
    Ok(())
}

/// The halt a report or the passing of time caused, for the webhook and
/// the server's log.
pub type Halt = RolloutRow;

/// What a run came to, for the rollout of `commit`.
fn outcome(report: &Report, commit: &str) -> Outcome {
    if let Some(why) = report
        .rejected
        .as_ref()
        .filter(|r| r.revision.commit == commit)
    {
        return Outcome::Refused {
            error: why
                .errors
                .first()
                .map_or_else(|| why.reason.clone(), |e| format!("{}: {e}", why.reason)),
        };
    }
    if report.status == Status::Failed {
        let first = report.resources.iter().find(|x| x.status == Status::Failed);
        return first.map_or_else(
            || Outcome::Failed {
                resource: "the run".into(),
                error: "failed".into(),
            },
            |x| Outcome::Failed {
                resource: x.id.clone(),
                error: x.error.clone().unwrap_or_else(|| "failed".into()),
            },
        );
    }
    if report.summary.drift > 0 {
        let first = report.resources.iter().find(|x| x.status == Status::Drift);
        return Outcome::Drifted {
            resource: first.map_or_else(String::new, |x| x.id.clone()),
        };
    }
    Outcome::Clean
}

/// Takes a stored run into account: the host has reported on the commit
/// it ran (or refused); a failure may halt the rollout, a last report may
/// open a wave or complete it.
pub fn observe(db: &mut dyn Db, report: &Report, now: i64) -> Result<Option<Halt>, StoreError> {
    if report.mode != RunMode::Apply {
        return Ok(None);
    }
    let applied = report.revision.as_ref().map(|r| r.commit.as_str());
    let refused = report.rejected.as_ref().map(|r| r.revision.commit.as_str());
    let mut halt = None;
    for commit in [applied, refused].into_iter().flatten() {
        // Most reports belong to no rollout in motion, or repeat a clean
        // run already counted: find out before taking the lock.
        let Some(s) = find(db, &report.environment, commit)? else {
            continue;
        };
        if !s.gate.phase.in_motion() {
            continue;
        }
        let what = outcome(report, commit);
        // A clean run of a host already counted clean changes nothing
        // (its `seen` matters only while it has not reported).
        if what == Outcome::Clean
            && let Some(m) = one_member(db, s.row.id, &report.host)?
            && m.clean.is_some()
        {
            continue;
        }
        db.lock_environment(&report.environment)?;
        let Some(mut s) = find(db, &report.environment, commit)? else {
            continue;
        };
        load_members(db, &mut s)?;
        let step = gate::step(
            &mut s.gate,
            Event::Report {
                host: report.host.clone(),
                report: report.id.clone(),
                outcome: what,
                interval_s: report.interval_s.and_then(|i| i64::try_from(i).ok()),
            },
            now,
        );
        save(db, &mut s, &step, now)?;
        if step.halted {
            tracing::warn!(environment = %report.environment, commit, host = %report.host, "rollout halted");
            halt = list(db, Some(&report.environment), Some(commit), 1)?.pop();
        }
    }
    Ok(halt)
}

/// Lets time decide (deadlines passing, soaks ending) in every rollout
/// whose next check is due; the halts it caused.
pub fn tick(db: &mut dyn Db, now: i64) -> Result<Vec<Halt>, StoreError> {
    let due = db.rows(
        "SELECT environment, commit_id FROM rollouts WHERE state = 'rolling' AND next_check_unix IS NOT NULL AND next_check_unix <= $1",
        &[Param::Int(now)],
    )?;
    let mut halts = Vec::new();
    for c in due {
        let (environment, commit) = (c[0].text(), c[1].text());
        db.lock_environment(&environment)?;
        let Some(mut s) = find(db, &environment, &commit)? else {
            continue;
        };
        if s.gate.phase != Phase::Rolling {
            continue;
        }
        load_members(db, &mut s)?;
        let step = gate::step(&mut s.gate, Event::Tick, now);
        save(db, &mut s, &step, now)?;
        if step.halted {
            tracing::warn!(environment = %environment, commit = %commit, "rollout halted: a deadline passed");
            halts.extend(list(db, Some(&environment), Some(&commit), 1)?.pop());
        }
    }
    Ok(halts)
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
    db: &mut dyn Db,
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
    let Some(mut s) = find(db, environment, &target.commit)? else {
        return Ok(Err("the rollout is gone".into()));
    };
    load_members(db, &mut s)?;
    let who = who.to_owned();
    let event = match action {
        Action::Resume => Event::Resume { who: who.clone() },
        Action::Abort => Event::Abort { who: who.clone() },
    };
    let step = gate::step(&mut s.gate, event, now);
    if let Some(why) = step.refused {
        return Ok(Err(why));
    }
    save(db, &mut s, &step, now)?;
    tracing::info!(environment, commit = %s.gate.commit, state = s.gate.phase.as_str(), who, "rollout changed by an operator");
    let mut listed = list(db, Some(environment), Some(&s.gate.commit), 1)?;
    Ok(listed.pop().ok_or_else(|| "the rollout is gone".to_owned()))
}
