//! The SQLite store: one file, WAL, `synchronous = FULL` (a report is
//! acknowledged only once its commit is on disk), versioned migrations run
//! at start. One connection writes (batches, one transaction each: group
//! commit); another reads, alongside it, as WAL allows.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::clock::unix;
use super::rollouts::{self, Halt, History, RolloutRow};
use super::sql::{Cell, Sql};
use super::sql::{Param, StoreError};
use super::store::Question;
use super::store::{
    CommitRow, HostRow, Incoming, Inserted, Page, ReportQuery, ReportRow, Store, Stored,
    listed_status, refused_commit, word,
};
use crate::rollout::Admission;

/// Each entry brings the schema from the version before it to its own.
const MIGRATIONS: &[&str] = &[
    // 1: reports and tokens.
    "CREATE TABLE tokens (
        host TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created_unix INTEGER NOT NULL
    );
    CREATE TABLE reports (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        host TEXT NOT NULL,
        environment TEXT NOT NULL,
        mode TEXT NOT NULL,
        status TEXT NOT NULL,
        commit_id TEXT,
        author TEXT,
        committed_at TEXT,
        subject TEXT,
        started_at TEXT NOT NULL,
        started_unix INTEGER NOT NULL,
        received_unix INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        changed INTEGER NOT NULL,
        drift INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        source_stale INTEGER NOT NULL,
        interval_s INTEGER,
        body TEXT NOT NULL
    );
    CREATE INDEX reports_by_host ON reports (host, seq);
    CREATE INDEX reports_by_commit ON reports (commit_id, seq);
    CREATE INDEX reports_by_received ON reports (received_unix);",
    // 2: what the host list and the deploy log show, kept as reports come,
    // so that they cost the same with a million reports as with ten.
    "CREATE TABLE hosts (host TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
    CREATE TABLE commits (
        commit_id TEXT PRIMARY KEY,
        author TEXT,
        committed_at TEXT,
        subject TEXT,
        first_applied TEXT NOT NULL,
        last_applied TEXT NOT NULL,
        last_seq INTEGER NOT NULL
    );
    CREATE INDEX commits_by_last ON commits (last_seq);
    CREATE TABLE commit_hosts (
        commit_id TEXT NOT NULL,
        host TEXT NOT NULL,
        changed INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        PRIMARY KEY (commit_id, host)
    );
    INSERT INTO hosts SELECT host, MAX(seq) FROM reports WHERE mode = 'apply' GROUP BY host;
    INSERT INTO commits SELECT commit_id, MAX(author), MAX(committed_at), MAX(subject), MIN(started_at), MAX(started_at), MAX(seq)
        FROM reports WHERE commit_id IS NOT NULL AND mode = 'apply' GROUP BY commit_id;
    INSERT INTO commit_hosts SELECT commit_id, host, MAX(changed > 0 OR drift > 0), MAX(failed > 0)
        FROM reports WHERE commit_id IS NOT NULL AND mode = 'apply' GROUP BY commit_id, host;",
    // 3: staged rollouts (SPEC §8).
    "CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        environment TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        author TEXT NOT NULL,
        subject TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        committed_unix INTEGER NOT NULL,
        policy TEXT NOT NULL,
        state TEXT NOT NULL,
        wave INTEGER NOT NULL,
        wave_opened_unix INTEGER NOT NULL,
        created_unix INTEGER NOT NULL,
        updated_unix INTEGER NOT NULL,
        halted_by TEXT,
        superseded_by TEXT,
        note TEXT,
        last_report_unix INTEGER,
        UNIQUE (environment, commit_id)
    );
    CREATE INDEX rollouts_by_environment ON rollouts (environment, committed_unix);
    CREATE TABLE rollout_hosts (
        rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
        host TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        canary INTEGER NOT NULL,
        wave INTEGER NOT NULL,
        seen_unix INTEGER NOT NULL,
        interval_s INTEGER NOT NULL,
        admitted_unix INTEGER,
        reported_unix INTEGER,
        failed INTEGER NOT NULL DEFAULT 0,
        drifted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (rollout_id, host)
    );
    CREATE INDEX rollout_hosts_by_wave ON rollout_hosts (rollout_id, wave);
    CREATE INDEX rollout_hosts_unreported ON rollout_hosts (rollout_id, reported_unix, wave);",
    // 4: the gate as a state machine (deadlines, first clean reports,
    // forgiveness, rollback), with the policy from the log's own mirror.
    "ALTER TABLE rollouts ADD COLUMN rollback_to TEXT;
    ALTER TABLE rollouts ADD COLUMN fallback TEXT;
    ALTER TABLE rollouts ADD COLUMN next_check_unix INTEGER;
    ALTER TABLE rollouts ADD COLUMN holding TEXT;
    ALTER TABLE rollout_hosts ADD COLUMN previous_commit TEXT;
    ALTER TABLE rollout_hosts ADD COLUMN clean_unix INTEGER;
    ALTER TABLE rollout_hosts ADD COLUMN failure TEXT;
    ALTER TABLE rollout_hosts ADD COLUMN drifted_by TEXT;
    ALTER TABLE rollout_hosts ADD COLUMN forgiven INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollouts ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX rollouts_due ON rollouts (state, next_check_unix);",
    // 5: the trust model (SPEC §6): tokens of hosts (bound to a name and an
    // environment), viewers and operators, with expiry, last use and
    // revocation; join tokens and who enrolled with them; browser sessions.
    // Old host tokens take the environment of the host's last report.
    "CREATE TABLE identities (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        environment TEXT,
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_unix INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        expires_unix INTEGER,
        last_used_unix INTEGER,
        revoked_unix INTEGER
    );
    CREATE INDEX identities_by_lookup ON identities (lookup);
    CREATE INDEX identities_by_name ON identities (kind, name);
    INSERT INTO identities (kind, name, environment, lookup, hash, created_unix, created_by)
        SELECT CASE WHEN t.host LIKE 'operator:%' THEN 'operator' ELSE 'host' END,
               CASE WHEN t.host LIKE 'operator:%' THEN substr(t.host, 10) ELSE t.host END,
               (SELECT r.environment FROM hosts h JOIN reports r ON r.seq = h.last_seq WHERE h.host = t.host),
               substr(t.hash, 1, 16), t.hash, t.created_unix, 'tend log token create'
        FROM tokens t;
    DROP TABLE tokens;
    CREATE TABLE joins (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        environment TEXT NOT NULL,
        pattern TEXT NOT NULL,
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        allow_rebuild INTEGER NOT NULL DEFAULT 0,
        created_unix INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        expires_unix INTEGER,
        revoked_unix INTEGER
    );
    CREATE INDEX joins_by_lookup ON joins (lookup);
    CREATE TABLE enrollments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        join_id INTEGER NOT NULL,
        host TEXT NOT NULL,
        environment TEXT NOT NULL,
        enrolled_unix INTEGER NOT NULL,
        rebuilt INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX enrollments_by_host ON enrollments (host, enrolled_unix);
    CREATE TABLE sessions (
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        identity_id INTEGER NOT NULL,
        created_unix INTEGER NOT NULL,
        expires_unix INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_lookup ON sessions (lookup);",
    // 6: refused commits (SPEC §5): a run that refused a commit is
    // `refused` for it in the listings; the commit is in the deploy log
    // with the hosts that refused it.
    "ALTER TABLE reports ADD COLUMN refused_commit TEXT;
    ALTER TABLE commit_hosts ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX reports_by_refused ON reports (refused_commit, seq);",
    // 7: lead time: when each host first ran each commit.
    "ALTER TABLE commit_hosts ADD COLUMN first_unix INTEGER;",
    // 8: each commit's host counts and first and last host kept in its
    // row as runs come (as on PostgreSQL), so the deploy log reads one row
    // a commit however many hosts it has.
    "ALTER TABLE commits ADD COLUMN hosts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN hosts_changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN hosts_failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN hosts_refused INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN first_host_unix INTEGER;
    ALTER TABLE commits ADD COLUMN last_host_unix INTEGER;
    UPDATE commits SET
        hosts = (SELECT COUNT(*) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.refused = 0),
        hosts_changed = (SELECT COUNT(*) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.changed = 1),
        hosts_failed = (SELECT COUNT(*) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.failed = 1),
        hosts_refused = (SELECT COUNT(*) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.refused = 1),
        first_host_unix = (SELECT MIN(first_unix) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.refused = 0),
        last_host_unix = (SELECT MAX(first_unix) FROM commit_hosts h WHERE h.commit_id = commits.commit_id AND h.refused = 0);",
    // 9: runs per hour by status, for the front page's week of runs.
    "CREATE TABLE runs_hourly (
        hour INTEGER NOT NULL,
        status TEXT NOT NULL,
        runs INTEGER NOT NULL,
        PRIMARY KEY (hour, status)
    ) WITHOUT ROWID;
    INSERT INTO runs_hourly SELECT started_unix / 3600, status, COUNT(*)
        FROM reports WHERE mode = 'apply' GROUP BY started_unix / 3600, status;",
    // 10: each host's last run kept in its row as runs come, so the host
    // list reads one small table, not a join into every host's report.
    "ALTER TABLE hosts ADD COLUMN environment TEXT NOT NULL DEFAULT '';
    ALTER TABLE hosts ADD COLUMN report_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE hosts ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
    ALTER TABLE hosts ADD COLUMN received_unix INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE hosts ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE hosts ADD COLUMN commit_id TEXT;
    ALTER TABLE hosts ADD COLUMN drift INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE hosts ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE hosts ADD COLUMN interval_s INTEGER;
    UPDATE hosts SET (environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s) =
        (SELECT r.environment, r.id, r.started_at, r.received_unix, r.status, r.commit_id, r.drift, r.failed, r.interval_s
         FROM reports r WHERE r.seq = hosts.last_seq);",
];

pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    rollouts: rollouts::Cache,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let writer = Connection::open(path).map_err(db)?;
        writer
            .execute_batch("PRAGMA busy_timeout = 10000;")
            .map_err(db)?;
        use_wal(&writer)?;
        writer
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(db)?;
        migrate(&writer)?;
        let reader = Connection::open(path).map_err(db)?;
        reader
            .execute_batch("PRAGMA busy_timeout = 10000;")
            .map_err(db)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            rollouts: rollouts::Cache::default(),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Switches the database to write-ahead logging. The switch takes an
/// exclusive lock and SQLite does not wait on the busy handler for it, so a
/// second process opening the database at the same moment is retried here
/// for as long as the busy timeout would have waited.
fn use_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match conn.execute_batch("PRAGMA journal_mode = WAL;") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(db(e)),
        }
    }
}

/// Brings the schema up to date, one migration per transaction. The
/// version is read inside an immediate (writing) transaction so that two
/// processes opening one new database at once (a server starting while
/// `tend log token create` runs) apply each migration once, not twice.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    loop {
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(db)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Database(format!(
                "the database is at schema version {version}, newer than this tend knows ({}); upgrade tend",
                MIGRATIONS.len()
            )));
        }
        let Some(sql) = MIGRATIONS.get(version) else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))
            .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(version = version + 1, "log database migrated");
    }
}

const ROW: &str = "id, host, environment, mode, status, commit_id, author, subject, started_at, duration_ms, changed, drift, failed, source_stale, refused_commit";

fn row(r: &rusqlite::Row) -> rusqlite::Result<ReportRow> {
    Ok(ReportRow {
        id: r.get(0)?,
        host: r.get(1)?,
        environment: r.get(2)?,
        mode: r.get(3)?,
        status: r.get(4)?,
        commit: r.get(5)?,
        author: r.get(6)?,
        subject: r.get(7)?,
        started_at: r.get(8)?,
        duration_ms: r.get(9)?,
        changed: r.get(10)?,
        drift: r.get(11)?,
        failed: r.get(12)?,
        source_stale: r.get::<_, i64>(13)? != 0,
        refused_commit: r.get(14)?,
    })
}

/// Keeps the host list and the deploy log up to date with a new run.
/// Keeps the host list and the deploy log up to date with a run; the lead
/// time when the host ran this commit for the first time.
fn summarise(
    tx: &rusqlite::Transaction,
    r: &crate::report::Report,
    seq: i64,
    received_unix: i64,
) -> Result<Option<i64>, StoreError> {
    tx.prepare_cached(
        "INSERT INTO hosts (host, last_seq, environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (host) DO UPDATE SET last_seq = excluded.last_seq, environment = excluded.environment,
             report_id = excluded.report_id, started_at = excluded.started_at, received_unix = excluded.received_unix,
             status = excluded.status, commit_id = excluded.commit_id, drift = excluded.drift,
             failed = excluded.failed, interval_s = excluded.interval_s
         WHERE excluded.last_seq > hosts.last_seq",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.host,
            seq,
            r.environment,
            r.id,
            r.started_at,
            received_unix,
            listed_status(r),
            r.revision.as_ref().map(|v| v.commit.as_str()),
            r.summary.drift as i64,
            r.summary.failed as i64,
            r.interval_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        ])
    })
    .map_err(db)?;
    let Some(rev) = &r.revision else {
        return Ok(None);
    };
    tx.prepare_cached(
        "INSERT INTO commits (commit_id, author, committed_at, subject, first_applied, last_applied, last_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
         ON CONFLICT (commit_id) DO UPDATE SET
            first_applied = MIN(first_applied, excluded.first_applied),
            last_applied = MAX(last_applied, excluded.last_applied),
            last_seq = MAX(last_seq, excluded.last_seq)",
    )
    .and_then(|mut s| {
        s.execute(params![rev.commit, rev.author, rev.committed_at, rev.subject, r.started_at, seq])
    })
    .map_err(db)?;
    let started = unix(&r.started_at);
    let changed = r.summary.changed + r.summary.drift > 0;
    let failed = r.summary.failed > 0;
    let before = host_of_commit(tx, &rev.commit, &r.host)?;
    tx.prepare_cached(
        "INSERT INTO commit_hosts (commit_id, host, changed, failed, first_unix) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (commit_id, host) DO UPDATE SET
            changed = MAX(changed, excluded.changed), failed = MAX(failed, excluded.failed),
            first_unix = COALESCE(MIN(first_unix, excluded.first_unix), excluded.first_unix)",
    )
    .and_then(|mut s| {
        s.execute(params![
            rev.commit,
            r.host,
            i64::from(changed),
            i64::from(failed),
            started
        ])
    })
    .map_err(db)?;
    // The commit's counts move by what this run changed of its host's row.
    let (new_host, new_changed, new_failed) = match before {
        None => (1, i64::from(changed), i64::from(failed)),
        Some(b) => (
            0,
            i64::from(changed && !b.changed),
            i64::from(failed && !b.failed),
        ),
    };
    let counted = before.is_none_or(|b| !b.refused);
    tx.prepare_cached(
        "UPDATE commits SET hosts = hosts + ?2, hosts_changed = hosts_changed + ?3, hosts_failed = hosts_failed + ?4,
            first_host_unix = CASE WHEN ?5 THEN MIN(COALESCE(first_host_unix, ?6), ?6) ELSE first_host_unix END,
            last_host_unix = CASE WHEN ?5 THEN MAX(COALESCE(last_host_unix, ?6), ?6) ELSE last_host_unix END
         WHERE commit_id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            rev.commit,
            if counted { new_host } else { 0 },
            new_changed,
            new_failed,
            counted,
            started
        ])
    })
    .map_err(db)?;
    let first_time = before.is_none();
    let committed = unix(&rev.committed_at);
    Ok((first_time && committed > 0).then(|| started - committed))
}

/// A host's row of a commit, as it was before a run.
#[derive(Clone, Copy)]
struct HostOfCommit {
    changed: bool,
    failed: bool,
    refused: bool,
}

fn host_of_commit(
    tx: &rusqlite::Transaction,
    commit: &str,
    host: &str,
) -> Result<Option<HostOfCommit>, StoreError> {
    tx.prepare_cached(
        "SELECT changed, failed, refused FROM commit_hosts WHERE commit_id = ?1 AND host = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![commit, host], |row| {
            Ok(HostOfCommit {
                changed: row.get::<_, i64>(0)? != 0,
                failed: row.get::<_, i64>(1)? != 0,
                refused: row.get::<_, i64>(2)? != 0,
            })
        })
        .optional()
    })
    .map_err(db)
}

/// A run that refused a commit: the commit is in the deploy log (with its
/// author and subject, as the agent read them from git) and counts the
/// host as refusing. Seeing the same refusal again moves nothing.
fn refusal(
    tx: &rusqlite::Transaction,
    r: &crate::report::Report,
    seq: i64,
) -> Result<(), StoreError> {
    let Some(rejected) = &r.rejected else {
        return Ok(());
    };
    let rev = &rejected.revision;
    tx.prepare_cached(
        "INSERT INTO commits (commit_id, author, committed_at, subject, first_applied, last_applied, last_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
         ON CONFLICT (commit_id) DO UPDATE SET
            first_applied = MIN(first_applied, excluded.first_applied),
            last_applied = MAX(last_applied, excluded.last_applied)",
    )
    .and_then(|mut s| {
        s.execute(params![rev.commit, rev.author, rev.committed_at, rev.subject, r.started_at, seq])
    })
    .map_err(db)?;
    let before = host_of_commit(tx, &rev.commit, &r.host)?;
    tx.prepare_cached(
        "INSERT INTO commit_hosts (commit_id, host, changed, failed, refused) VALUES (?1, ?2, 0, 0, 1)
         ON CONFLICT (commit_id, host) DO UPDATE SET refused = 1",
    )
    .and_then(|mut s| s.execute(params![rev.commit, r.host]))
    .map_err(db)?;
    // A new refusing host; one that ran it before no longer counts as
    // running it (as PostgreSQL counts).
    let (refused, ran) = match before {
        None => (1, 0),
        Some(b) if !b.refused => (1, 1),
        Some(_) => (0, 0),
    };
    tx.prepare_cached(
        "UPDATE commits SET hosts_refused = hosts_refused + ?2, hosts = hosts - ?3 WHERE commit_id = ?1",
    )
    .and_then(|mut s| s.execute(params![rev.commit, refused, ran]))
    .map_err(db)?;
    Ok(())
}

/// The rollout gate's SQL on a SQLite connection (`$1` is written `?1`),
/// with this server's cache of rollouts.
struct Lite<'a>(&'a Connection, &'a rollouts::Cache);

impl rollouts::Db for Lite<'_> {
    fn cache(&self) -> &rollouts::Cache {
        self.1
    }
}

fn sqlite_params(args: &[Param]) -> Vec<&dyn rusqlite::ToSql> {
    args.iter()
        .map(|a| match a {
            Param::Text(t) => t as &dyn rusqlite::ToSql,
            Param::Int(n) => n as &dyn rusqlite::ToSql,
            Param::OptText(t) => t as &dyn rusqlite::ToSql,
            Param::OptInt(n) => n as &dyn rusqlite::ToSql,
        })
        .collect()
}

impl Sql for Lite<'_> {
    fn exec(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError> {
        let n = self
            .0
            .prepare_cached(&sql.replace('$', "?"))
            .and_then(|mut s| s.execute(sqlite_params(args).as_slice()))
            .map_err(db)?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, args: &[Param]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let mut stmt = self.0.prepare_cached(&sql.replace('$', "?")).map_err(db)?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(sqlite_params(args).as_slice(), |r| {
                (0..columns)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                            rusqlite::types::ValueRef::Text(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Real(f) => Cell::Int(f as i64),
                            _ => Cell::Null,
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// One writer at a time already: nothing to take.
    fn lock_environment(&mut self, _environment: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SqliteStore {
    /// One of the gate's decisions, in a writing transaction of its own.
    fn gate<T>(
        &self,
        decide: impl FnOnce(&mut Lite) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = decide(&mut Lite(&tx, &self.rollouts))?;
        tx.commit().map_err(db)?;
        self.rollouts.committed();
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn admit_read(
        &self,
        history: &dyn History,
        q: &Question,
        now: i64,
    ) -> Result<Option<Admission>, StoreError> {
        // Beside the writer, as WAL allows.
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(db)?;
        rollouts::admit(
            &mut Lite(&tx, &self.rollouts),
            history,
            &q.request,
            &q.facts,
            now,
            false,
        )
    }

    fn admit(
        &self,
        history: &dyn History,
        questions: &[Question],
        now: i64,
    ) -> Result<Vec<Admission>, StoreError> {
        self.gate(|db| {
            questions
                .iter()
                .map(|q| {
                    rollouts::admit(db, history, &q.request, &q.facts, now, true)?
                        .ok_or_else(|| StoreError::Database("the gate gave no answer".into()))
                })
                .collect()
        })
    }

    fn tick(&self, now: i64) -> Result<Vec<Halt>, StoreError> {
        self.gate(|db| rollouts::tick(db, now))
    }

    fn next_wakes(&self) -> Vec<rollouts::RolloutWake> {
        self.rollouts.next_wakes()
    }

    fn rollouts(
        &self,
        environment: Option<&str>,
        commit: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RolloutRow>, StoreError> {
        rollouts::list(
            &mut Lite(&self.reader(), &self.rollouts),
            environment,
            commit,
            limit,
        )
    }

    fn act(
        &self,
        environment: &str,
        commit: Option<&str>,
        action: rollouts::Action,
        who: &str,
        now: i64,
    ) -> Result<Result<RolloutRow, String>, StoreError> {
        self.gate(|db| rollouts::act(db, environment, commit, action, who, now))
    }

    fn insert(&self, batch: &[Incoming]) -> Result<Inserted, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction().map_err(db)?;
        let mut out = Vec::with_capacity(batch.len());
        let mut halts = Vec::new();
        let mut reached = Vec::new();
        let mut tally = super::hourly::Tally::default();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO reports (id, host, environment, mode, status, commit_id, author, committed_at, subject, started_at, started_unix, received_unix, duration_ms, changed, drift, failed, source_stale, interval_s, body, refused_commit)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                )
                .map_err(db)?;
            for item in batch {
                let r = &item.report;
                let rev = r.revision.as_ref();
                let n = insert
                    .execute(params![
                        r.id,
                        r.host,
                        r.environment,
                        word(&r.mode),
                        listed_status(r),
                        rev.map(|v| v.commit.as_str()),
                        rev.map(|v| v.author.as_str()),
                        rev.map(|v| v.committed_at.as_str()),
                        rev.map(|v| v.subject.as_str()),
                        r.started_at,
                        unix(&r.started_at),
                        item.received_unix,
                        i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
                        r.summary.changed as i64,
                        r.summary.drift as i64,
                        r.summary.failed as i64,
                        i64::from(r.source_stale),
                        r.interval_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                        item.body,
                        refused_commit(r),
                    ])
                    .map_err(db)?;
                if n == 1 && r.mode == crate::report::RunMode::Apply {
                    let seq = tx.last_insert_rowid();
                    reached.extend(summarise(&tx, r, seq, item.received_unix)?);
                    tally.add(unix(&r.started_at), &listed_status(r));
                    refusal(&tx, r, seq)?;
                    halts.extend(rollouts::observe(
                        &mut Lite(&tx, &self.rollouts),
                        r,
                        item.received_unix,
                    )?);
                }
                out.push(if n == 1 {
                    Stored::New
                } else {
                    Stored::Duplicate
                });
            }
        }
        tally.record(&mut Lite(&tx, &self.rollouts))?;
        tx.commit().map_err(db)?;
        self.rollouts.committed();
        Ok(Inserted {
            stored: out,
            halts,
            reached,
        })
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.gate(|sql| work(sql))
    }

    fn read(
        &self,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.reader();
        work(&mut Lite(&conn, &self.rollouts))
    }

    fn reports(&self, q: &ReportQuery) -> Result<Page, StoreError> {
        let mut sql = format!("SELECT {ROW}, seq FROM reports WHERE 1 = 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        for (condition, value) in q.conditions() {
            args.push(match value {
                Param::Text(t) => Box::new(t),
                Param::Int(n) => Box::new(n),
                Param::OptText(t) => Box::new(t),
                Param::OptInt(n) => Box::new(n),
            });
            sql.push_str(&format!(
                " AND {}",
                condition.replace("{}", &format!("?{}", args.len()))
            ));
        }
        let limit = q.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
        let conn = self.reader();
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(AsRef::as_ref).collect();
        let mut rows: Vec<(ReportRow, i64)> = stmt
            .query_map(params.as_slice(), |r| Ok((row(r)?, r.get(15)?)))
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(_, seq)| *seq)
        } else {
            None
        };
        Ok(Page {
            reports: rows.into_iter().map(|(r, _)| r).collect(),
            next_cursor,
        })
    }

    fn report(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.reader()
            .query_row("SELECT body FROM reports WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    fn hosts(&self, now_unix: i64) -> Result<Vec<HostRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare(
                "SELECT host, environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s
                 FROM hosts ORDER BY host",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                let received: i64 = r.get(4)?;
                let interval: Option<i64> = r.get(9)?;
                // Without an interval (a converge run by hand), the agent's default.
                let every = interval.unwrap_or(30 * 60);
                Ok(HostRow {
                    host: r.get(0)?,
                    environment: r.get(1)?,
                    last_report: r.get(2)?,
                    last_started_at: r.get(3)?,
                    last_received_unix: received,
                    status: r.get(5)?,
                    commit: r.get(6)?,
                    drift: r.get(7)?,
                    failed: r.get(8)?,
                    interval_s: interval,
                    silent: now_unix - received > 2 * every,
                    re_enrolled_unix: None,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn commits(&self, limit: usize, only: Option<&str>) -> Result<Vec<CommitRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT c.commit_id, c.author, c.committed_at, c.subject, c.first_applied, c.last_applied,
                        c.hosts_changed, c.hosts_failed, c.hosts, c.hosts_refused, c.first_host_unix, c.last_host_unix
                 FROM commits c {} ORDER BY c.last_seq DESC LIMIT ?1",
                if only.is_some() { "WHERE c.commit_id = ?2" } else { "" }
            ))
            .map_err(db)?;
        let limit = limit.clamp(1, 1000) as i64;
        let args: Vec<&dyn rusqlite::ToSql> = match &only {
            Some(commit) => vec![&limit, commit],
            None => vec![&limit],
        };
        let rows = stmt
            .query_map(args.as_slice(), |r| {
                let committed_at: Option<String> = r.get(2)?;
                let (lead_first_s, lead_last_s) =
                    super::store::lead(committed_at.as_deref(), r.get(10)?, r.get(11)?);
                Ok(CommitRow {
                    commit: r.get(0)?,
                    author: r.get(1)?,
                    committed_at,
                    subject: r.get(3)?,
                    first_applied: r.get(4)?,
                    last_applied: r.get(5)?,
                    hosts_changed: r.get(6)?,
                    hosts_failed: r.get(7)?,
                    hosts: r.get(8)?,
                    hosts_refused: r.get(9)?,
                    lead_first_s,
                    lead_last_s,
                    hosts_pending: 0,
                    from_source: false,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn prune(&self, before_unix: i64) -> Result<usize, StoreError> {
        self.writer()
            .execute(
                "DELETE FROM reports WHERE received_unix < ?1",
                [before_unix],
            )
            .map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server and `tend log token create` opening one new database at the
    /// same moment: each migration runs once and both opens succeed.
    #[test]
    fn many_processes_opening_one_new_database_at_once_all_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log.db");
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let opens: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            SqliteStore::open(&path).map(|_| ())
                        })
                    })
                    .collect();
                for open in opens {
                    open.join().unwrap().unwrap();
                }
            });
            let conn = Connection::open(&path).unwrap();
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version as usize, MIGRATIONS.len());
        }
    }

    /// A log from before the host list kept each host's last run in its
    /// row: the upgrade fills the rows from the reports, so no host goes
    /// missing or blank.
    #[test]
    fn upgrading_fills_each_hosts_last_run_from_its_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let report = |id: &str, status: &str, commit: &str| {
            let body = serde_json::json!({
                "id": id, "host": "web-1", "environment": "production", "roles": [], "mode": "apply",
                "revision": {"commit": commit, "author": "a", "committed_at": "2026-12-01T00:00:00Z", "subject": "s"},
                "source_stale": false, "started_at": "2026-12-04T10:00:00Z", "duration_ms": 1, "status": status,
                "summary": {"total": 1, "changed": usize::from(status == "changed"), "drift": 0, "failed": 0,
                            "unchanged": usize::from(status != "changed")},
                "resources": [], "interval_s": 600
            })
            .to_string();
            Incoming {
                report: serde_json::from_str(&body).unwrap(),
                body,
                received_unix: 1_796_378_400,
            }
        };
        let store = SqliteStore::open(&path).unwrap();
        store
            .insert(&[
                report("r1", "changed", "c1"),
                report("r2", "unchanged", "c2"),
            ])
            .unwrap();
        drop(store);
        // Back to schema 9: the host list as it was (host and last_seq).
        let conn = Connection::open(&path).unwrap();
        for column in [
            "environment",
            "report_id",
            "started_at",
            "received_unix",
            "status",
            "commit_id",
            "drift",
            "failed",
            "interval_s",
        ] {
            conn.execute_batch(&format!("ALTER TABLE hosts DROP COLUMN {column}"))
                .unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 9").unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        let hosts = store.hosts(1_796_378_400).unwrap();
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!(
            (
                h.host.as_str(),
                h.environment.as_str(),
                h.last_report.as_str(),
                h.status.as_str()
            ),
            ("web-1", "production", "r2", "unchanged")
        );
        assert_eq!(h.commit.as_deref(), Some("c2"));
        assert_eq!(h.interval_s, Some(600));
        assert!(!h.silent);
    }
}
