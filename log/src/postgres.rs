//! The PostgreSQL store, for a fleet's log servers: several `tend log
//! serve` processes share one database. Report ids are unique in the
//! table, so a report posted to two servers at once is stored once.
//! Migrations are versioned in a table of their own and run at start
//! under an advisory lock (servers starting together take turns).
//!
//! The synchronous `postgres` client (the rust-postgres project's own
//! wrapper of tokio-postgres) fits the store trait, whose calls the server
//! already runs off its event loop.

use std::sync::Mutex;

use postgres::Client;

use super::pg_tls::{self, MakeRustls};

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

/// The rollout gate's SQL on a PostgreSQL connection or transaction,
/// with this server's cache of rollouts.
struct Pg<'a, C: postgres::GenericClient>(&'a mut C, &'a rollouts::Cache);

impl<C: postgres::GenericClient> rollouts::Db for Pg<'_, C> {
    fn cache(&self) -> &rollouts::Cache {
        self.1
    }
}

fn pg_params(args: &[Param]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Param::Text(t) => t as &(dyn postgres::types::ToSql + Sync),
            Param::Int(n) => n as &(dyn postgres::types::ToSql + Sync),
            Param::OptText(t) => t as &(dyn postgres::types::ToSql + Sync),
            Param::OptInt(n) => n as &(dyn postgres::types::ToSql + Sync),
        })
        .collect()
}

impl<C: postgres::GenericClient> Sql for Pg<'_, C> {
    fn exec(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError> {
        self.0.execute(sql, &pg_params(args)).map_err(db)
    }

    fn rows(&mut self, sql: &str, args: &[Param]) -> Result<Vec<Vec<Cell>>, StoreError> {
        use postgres::types::Type;
        let rows = self.0.query(sql, &pg_params(args)).map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let ty = column.type_();
                let cell = if *ty == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i)
                        .map(|v| v.map_or(Cell::Null, Cell::Int))
                } else if *ty == Type::INT4 {
                    row.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map_or(Cell::Null, |n| Cell::Int(i64::from(n))))
                } else {
                    row.try_get::<_, Option<String>>(i)
                        .map(|v| v.map_or(Cell::Null, Cell::Text))
                };
                cells.push(cell.map_err(db)?);
            }
            out.push(cells);
        }
        Ok(out)
    }

    /// A transaction-scoped advisory lock on the environment's name: log
    /// servers sharing the database decide one at a time.
    fn lock_environment(&mut self, environment: &str) -> Result<(), StoreError> {
        self.0
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('tend-rollout:' || $1, 0))",
                &[&environment],
            )
            .map_err(db)?;
        Ok(())
    }
}

const MIGRATIONS: &[&str] = &[
    // 1: reports and tokens.
    "CREATE TABLE tokens (
        host TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created_unix BIGINT NOT NULL
    );
    CREATE TABLE reports (
        seq BIGSERIAL PRIMARY KEY,
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
        started_unix BIGINT NOT NULL,
        received_unix BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        changed BIGINT NOT NULL,
        drift BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        source_stale BOOLEAN NOT NULL,
        interval_s BIGINT,
        body TEXT NOT NULL
    );
    CREATE INDEX reports_by_host ON reports (host, seq);
    CREATE INDEX reports_by_commit ON reports (commit_id, seq);
    CREATE INDEX reports_by_received ON reports (received_unix);",
    // 2: what the host list and the deploy log show, kept as reports come.
    "CREATE TABLE hosts (host TEXT PRIMARY KEY, last_seq BIGINT NOT NULL);
    CREATE TABLE commits (
        commit_id TEXT PRIMARY KEY,
        author TEXT,
        committed_at TEXT,
        subject TEXT,
        first_applied TEXT NOT NULL,
        last_applied TEXT NOT NULL,
        last_seq BIGINT NOT NULL
    );
    CREATE INDEX commits_by_last ON commits (last_seq);
    CREATE TABLE commit_hosts (
        commit_id TEXT NOT NULL,
        host TEXT NOT NULL,
        changed BOOLEAN NOT NULL,
        failed BOOLEAN NOT NULL,
        PRIMARY KEY (commit_id, host)
    );
    INSERT INTO hosts SELECT host, MAX(seq) FROM reports WHERE mode = 'apply' GROUP BY host;
    INSERT INTO commits SELECT commit_id, MAX(author), MAX(committed_at), MAX(subject), MIN(started_at), MAX(started_at), MAX(seq)
        FROM reports WHERE commit_id IS NOT NULL AND mode = 'apply' GROUP BY commit_id;
    INSERT INTO commit_hosts SELECT commit_id, host, BOOL_OR(changed > 0 OR drift > 0), BOOL_OR(failed > 0)
        FROM reports WHERE commit_id IS NOT NULL AND mode = 'apply' GROUP BY commit_id, host;",
    // 3: each commit's host counts kept with it, so the deploy log reads
    // one row a commit.
    "ALTER TABLE commits ADD COLUMN hosts BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN hosts_changed BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN hosts_failed BIGINT NOT NULL DEFAULT 0;
    UPDATE commits c SET hosts = s.n, hosts_changed = s.ch, hosts_failed = s.f
        FROM (SELECT commit_id, COUNT(*) AS n, COUNT(*) FILTER (WHERE changed) AS ch, COUNT(*) FILTER (WHERE failed) AS f
              FROM commit_hosts GROUP BY commit_id) s
        WHERE c.commit_id = s.commit_id;",
    // 4: staged rollouts (SPEC §8); integer flags, as SQLite has them, so
    // the gate's SQL is one for both.
    "CREATE TABLE rollouts (
        id BIGSERIAL PRIMARY KEY,
        environment TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        author TEXT NOT NULL,
        subject TEXT NOT NULL,
        committed_at TEXT NOT NULL,
        committed_unix BIGINT NOT NULL,
        policy TEXT NOT NULL,
        state TEXT NOT NULL,
        wave BIGINT NOT NULL,
        wave_opened_unix BIGINT NOT NULL,
        created_unix BIGINT NOT NULL,
        updated_unix BIGINT NOT NULL,
        halted_by TEXT,
        superseded_by TEXT,
        note TEXT,
        last_report_unix BIGINT,
        UNIQUE (environment, commit_id)
    );
    CREATE INDEX rollouts_by_environment ON rollouts (environment, committed_unix);
    CREATE TABLE rollout_hosts (
        rollout_id BIGINT NOT NULL REFERENCES rollouts (id),
        host TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        canary BIGINT NOT NULL,
        wave BIGINT NOT NULL,
        seen_unix BIGINT NOT NULL,
        interval_s BIGINT NOT NULL,
        admitted_unix BIGINT,
        reported_unix BIGINT,
        failed BIGINT NOT NULL DEFAULT 0,
        drifted BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (rollout_id, host)
    );
    CREATE INDEX rollout_hosts_by_wave ON rollout_hosts (rollout_id, wave);
    CREATE INDEX rollout_hosts_unreported ON rollout_hosts (rollout_id, reported_unix, wave);",
    // 5: the gate as a state machine (deadlines, first clean reports,
    // forgiveness, rollback), with the policy from the log's own mirror.
    "ALTER TABLE rollouts ADD COLUMN rollback_to TEXT, ADD COLUMN fallback TEXT,
        ADD COLUMN next_check_unix BIGINT, ADD COLUMN holding TEXT, ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE rollout_hosts ADD COLUMN previous_commit TEXT, ADD COLUMN clean_unix BIGINT,
        ADD COLUMN failure TEXT, ADD COLUMN drifted_by TEXT, ADD COLUMN forgiven BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX rollouts_due ON rollouts (state, next_check_unix);",
    // 6: the trust model (SPEC §6): tokens of hosts (bound to a name and an
    // environment), viewers and operators, with expiry, last use and
    // revocation; join tokens and who enrolled with them; browser sessions.
    // Old host tokens take the environment of the host's last report.
    "CREATE TABLE identities (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        environment TEXT,
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_unix BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        expires_unix BIGINT,
        last_used_unix BIGINT,
        revoked_unix BIGINT
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
        id BIGSERIAL PRIMARY KEY,
        environment TEXT NOT NULL,
        pattern TEXT NOT NULL,
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        max_uses BIGINT,
        uses BIGINT NOT NULL DEFAULT 0,
        allow_rebuild BIGINT NOT NULL DEFAULT 0,
        created_unix BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        expires_unix BIGINT,
        revoked_unix BIGINT
    );
    CREATE INDEX joins_by_lookup ON joins (lookup);
    CREATE TABLE enrollments (
        id BIGSERIAL PRIMARY KEY,
        join_id BIGINT NOT NULL,
        host TEXT NOT NULL,
        environment TEXT NOT NULL,
        enrolled_unix BIGINT NOT NULL,
        rebuilt BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX enrollments_by_host ON enrollments (host, enrolled_unix);
    CREATE TABLE sessions (
        lookup TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        identity_id BIGINT NOT NULL,
        created_unix BIGINT NOT NULL,
        expires_unix BIGINT NOT NULL
    );
    CREATE INDEX sessions_by_lookup ON sessions (lookup);",
    // 7: refused commits (SPEC §5): a run that refused a commit is
    // `refused` for it in the listings; the commit is in the deploy log
    // with the hosts that refused it.
    "ALTER TABLE reports ADD COLUMN refused_commit TEXT;
    ALTER TABLE commit_hosts ADD COLUMN refused BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE commits ADD COLUMN hosts_refused BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX reports_by_refused ON reports (refused_commit, seq);",
    // 8: lead time: when each host first ran each commit, and each
    // commit's first and last host.
    "ALTER TABLE commit_hosts ADD COLUMN first_unix BIGINT;
    ALTER TABLE commits ADD COLUMN first_host_unix BIGINT, ADD COLUMN last_host_unix BIGINT;",
    // 9: runs per hour by status, for the front page's week of runs.
    "CREATE TABLE runs_hourly (
        hour BIGINT NOT NULL,
        status TEXT NOT NULL,
        runs BIGINT NOT NULL,
        PRIMARY KEY (hour, status)
    );
    INSERT INTO runs_hourly SELECT started_unix / 3600, status, COUNT(*)
        FROM reports WHERE mode = 'apply' GROUP BY started_unix / 3600, status;",
    // 10: each host's last run kept in its row as runs come, so the host
    // list reads one small table, not a join into every host's report.
    "ALTER TABLE hosts ADD COLUMN environment TEXT NOT NULL DEFAULT '',
        ADD COLUMN report_id TEXT NOT NULL DEFAULT '',
        ADD COLUMN started_at TEXT NOT NULL DEFAULT '',
        ADD COLUMN received_unix BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN status TEXT NOT NULL DEFAULT '',
        ADD COLUMN commit_id TEXT,
        ADD COLUMN drift BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN failed BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN interval_s BIGINT;
    UPDATE hosts SET (environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s) =
        (SELECT r.environment, r.id, r.started_at, r.received_unix, r.status, r.commit_id, r.drift, r.failed, r.interval_s
         FROM reports r WHERE r.seq = hosts.last_seq);",
];

/// An arbitrary constant: the advisory lock migrations run under.
const MIGRATION_LOCK: i64 = 0x7465_6e64_6c6f_6701;

pub struct PostgresStore {
    /// For connecting again after PostgreSQL restarted (as the client
    /// library takes it), with TLS as the URL's `sslmode` says.
    url: String,
    tls: MakeRustls,
    writer: Mutex<Client>,
    /// Queries and the gate's read-only answers, several at a time.
    readers: Vec<Mutex<Client>>,
    next_reader: std::sync::atomic::AtomicUsize,
    rollouts: rollouts::Cache,
}

/// Reading connections per server.
const READERS: usize = 4;

/// The channel log servers on one database tell each other on (SPEC §9:
/// a ref that moved, a wave that opened, an operator's wake).
const CHANNEL: &str = "tend_log";

/// LISTENs on its own connection for good, connecting again (1 s, then
/// up to 30 s apart) when the connection drops: what is published
/// meanwhile is missed, and the mirror's poll and the agents' own
/// schedule cover it.
fn listen_forever(url: &str, tls: MakeRustls, heard: &dyn Fn(String)) {
    use postgres::fallible_iterator::FallibleIterator as _;
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let listened = Client::connect(url, tls.clone()).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            tracing::debug!("listening to the other log servers");
            pause = std::time::Duration::from_secs(1);
            let mut notes = client.notifications();
            let mut each = notes.blocking_iter();
            while let Some(note) = each.next()? {
                heard(note.payload().to_owned());
            }
            Ok(())
        });
        if let Err(e) = listened {
            tracing::warn!(error = %db(e), retry_in_s = pause.as_secs(), "lost the channel to the other log servers");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}

/// The error with its causes (a TLS handshake's says which certificate
/// check failed).
fn db(e: postgres::Error) -> StoreError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    StoreError::Database(text)
}

impl PostgresStore {
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let (url, tls) = pg_tls::connector(url).map_err(StoreError::Database)?;
        let mut writer = Client::connect(&url, tls.clone()).map_err(db)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| Client::connect(&url, tls.clone()).map(Mutex::new))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        Ok(PostgresStore {
            url,
            tls,
            writer: Mutex::new(writer),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            rollouts: rollouts::Cache::default(),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Client> {
        self.alive(self.writer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The connection, connected again when the last call found it closed
    /// (PostgreSQL restarted, a network cut): the call that found it failed
    /// (a 503, which agents retry); the next one works.
    fn alive<'a>(
        &self,
        mut client: std::sync::MutexGuard<'a, Client>,
    ) -> std::sync::MutexGuard<'a, Client> {
        if client.is_closed() {
            match Client::connect(&self.url, self.tls.clone()) {
                Ok(fresh) => {
                    tracing::info!("connected to PostgreSQL again");
                    *client = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "PostgreSQL is still out of reach"),
            }
        }
        client
    }

    /// A free reading connection, or the next one in turn.
    fn reader(&self) -> std::sync::MutexGuard<'_, Client> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return self.alive(guard);
            }
        }
        let turn = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.alive(
            self.readers[turn % self.readers.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS tend_schema (version INTEGER NOT NULL)")
        .map_err(db)?;
    let version: i32 = tx
        .query_opt("SELECT version FROM tend_schema", &[])
        .map_err(db)?
        .map_or(0, |r| r.get(0));
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the database is at schema version {version}, newer than this tend knows ({}); upgrade tend",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(sql).map_err(db)?;
        tracing::info!(version = i + 1, "log database migrated");
    }
    let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    tx.execute("DELETE FROM tend_schema", &[]).map_err(db)?;
    tx.execute("INSERT INTO tend_schema (version) VALUES ($1)", &[&latest])
        .map_err(db)?;
    tx.commit().map_err(db)
}

const ROW: &str = "id, host, environment, mode, status, commit_id, author, subject, started_at, duration_ms, changed, drift, failed, source_stale, refused_commit";

fn row(r: &postgres::Row) -> ReportRow {
    ReportRow {
        id: r.get(0),
        host: r.get(1),
        environment: r.get(2),
        mode: r.get(3),
        status: r.get(4),
        commit: r.get(5),
        author: r.get(6),
        subject: r.get(7),
        started_at: r.get(8),
        duration_ms: r.get(9),
        changed: r.get(10),
        drift: r.get(11),
        failed: r.get(12),
        source_stale: r.get(13),
        refused_commit: r.get(14),
    }
}

/// A host's newest run of a batch, as its row in `hosts` keeps it.
struct HostLast {
    host: String,
    seq: i64,
    environment: String,
    report_id: String,
    started_at: String,
    received: i64,
    status: String,
    commit: Option<String>,
    drift: i64,
    failed: i64,
    interval_s: Option<i64>,
}

/// Keeps the host list and the deploy log up to date with new runs: one
/// statement a table, the batch aggregated first (a multi-row upsert may
/// not touch a row twice).
fn summarise(
    tx: &mut postgres::Transaction,
    runs: &[(&crate::report::Report, i64, i64)],
) -> Result<Vec<i64>, StoreError> {
    use std::collections::BTreeMap;
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    // host → its newest run of the batch: (seq, report, received)
    let mut hosts: BTreeMap<&str, (i64, &crate::report::Report, i64)> = BTreeMap::new();
    // commit → (author, committed_at, subject, first, last, seq)
    let mut commits: BTreeMap<&str, (&str, &str, &str, &str, &str, i64)> = BTreeMap::new();
    let mut commit_hosts: BTreeMap<(&str, &str), (bool, bool, i64)> = BTreeMap::new();
    for &(r, ref seq, received) in runs {
        let last = hosts.entry(r.host.as_str()).or_insert((*seq, r, received));
        if *seq > last.0 {
            *last = (*seq, r, received);
        }
        let Some(rev) = &r.revision else { continue };
        let c = commits.entry(rev.commit.as_str()).or_insert((
            rev.author.as_str(),
            rev.committed_at.as_str(),
            rev.subject.as_str(),
            r.started_at.as_str(),
            r.started_at.as_str(),
            *seq,
        ));
        c.3 = c.3.min(r.started_at.as_str());
        c.4 = c.4.max(r.started_at.as_str());
        c.5 = c.5.max(*seq);
        let started = unix(&r.started_at);
        let h = commit_hosts
            .entry((rev.commit.as_str(), r.host.as_str()))
            .or_insert((false, false, started));
        h.0 |= r.summary.changed + r.summary.drift > 0;
        h.1 |= r.summary.failed > 0;
        h.2 = h.2.min(started);
    }
    let placeholders = |rows: usize, per: usize| {
        (0..rows)
            .map(|i| {
                let cols: Vec<String> = (1..=per).map(|k| format!("${}", i * per + k)).collect();
                format!("({})", cols.join(","))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    // At most 65,535 parameters a statement: 5,000 rows of up to 11.
    let hosts: Vec<HostLast> = hosts
        .into_iter()
        .map(|(host, (seq, r, received))| HostLast {
            host: host.to_owned(),
            seq,
            environment: r.environment.clone(),
            report_id: r.id.clone(),
            started_at: r.started_at.clone(),
            received,
            status: listed_status(r),
            commit: r.revision.as_ref().map(|v| v.commit.clone()),
            drift: r.summary.drift as i64,
            failed: r.summary.failed as i64,
            interval_s: r.interval_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        })
        .collect();
    for chunk in hosts.chunks(5000) {
        let mut values: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        for h in chunk {
            values.extend([
                &h.host as &(dyn postgres::types::ToSql + Sync),
                &h.seq,
                &h.environment,
                &h.report_id,
                &h.started_at,
                &h.received,
                &h.status,
                &h.commit,
                &h.drift,
                &h.failed,
                &h.interval_s,
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO hosts (host, last_seq, environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s)
                 VALUES {} ON CONFLICT (host) DO UPDATE SET last_seq = excluded.last_seq, environment = excluded.environment,
                     report_id = excluded.report_id, started_at = excluded.started_at, received_unix = excluded.received_unix,
                     status = excluded.status, commit_id = excluded.commit_id, drift = excluded.drift,
                     failed = excluded.failed, interval_s = excluded.interval_s
                 WHERE excluded.last_seq > hosts.last_seq",
                placeholders(chunk.len(), 11)
            ),
            &values,
        )
        .map_err(db)?;
    }
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let commits: Vec<_> = commits.into_iter().collect();
    for chunk in commits.chunks(5000) {
        let mut values: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        for (commit, (author, at, subject, first, last, seq)) in chunk {
            values.extend([
                commit as &(dyn postgres::types::ToSql + Sync),
                author,
                at,
                subject,
                first,
                last,
                seq,
            ]);
        }
        tx.execute(
        &format!(
            "INSERT INTO commits (commit_id, author, committed_at, subject, first_applied, last_applied, last_seq) VALUES {}
             ON CONFLICT (commit_id) DO UPDATE SET
                first_applied = LEAST(commits.first_applied, excluded.first_applied),
                last_applied = GREATEST(commits.last_applied, excluded.last_applied),
                last_seq = GREATEST(commits.last_seq, excluded.last_seq)",
            placeholders(chunk.len(), 7)
        ),
        &values,
    )
    .map_err(db)?;
    }
    // When each commit was made, for the lead times of the hosts that run
    // it for the first time.
    let committed: BTreeMap<&str, i64> = commits
        .iter()
        .map(|(c, (_, at, ..))| (*c, unix(at)))
        .collect();
    let mut reached = Vec::new();
    let commit_hosts: Vec<_> = commit_hosts.into_iter().collect();
    for chunk in commit_hosts.chunks(5000) {
        let mut values: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        for ((commit, host), (changed, failed, first)) in chunk {
            values.extend([
                commit as &(dyn postgres::types::ToSql + Sync),
                host,
                changed,
                failed,
                first,
            ]);
        }
        // `xmax = 0`: the row was inserted now, not updated: a host's
        // first run of that commit (after a refusal of it: not counted).
        let rows = tx
            .query(
                &format!(
                    "INSERT INTO commit_hosts (commit_id, host, changed, failed, first_unix) VALUES {}
             ON CONFLICT (commit_id, host) DO UPDATE SET
                changed = commit_hosts.changed OR excluded.changed,
                failed = commit_hosts.failed OR excluded.failed,
                first_unix = LEAST(commit_hosts.first_unix, excluded.first_unix)
             RETURNING commit_id, first_unix, (xmax = 0) AS fresh",
                    placeholders(chunk.len(), 5)
                ),
                &values,
            )
            .map_err(db)?;
        for row in rows {
            let (commit, first, fresh): (String, Option<i64>, bool) =
                (row.get(0), row.get(1), row.get(2));
            if let (true, Some(first), Some(at)) = (
                fresh,
                first,
                committed.get(commit.as_str()).filter(|t| **t > 0),
            ) {
                reached.push(first - at);
            }
        }
    }
    let touched: Vec<String> = commits.iter().map(|(c, _)| (*c).to_owned()).collect();
    tx.execute(COUNT_HOSTS, &[&touched]).map_err(db)?;
    Ok(reached)
}

/// Each touched commit's host counts, from its hosts' rows.
const COUNT_HOSTS: &str = "UPDATE commits c SET hosts = s.n, hosts_changed = s.ch, hosts_failed = s.f, hosts_refused = s.r,
        first_host_unix = s.fh, last_host_unix = s.lh
     FROM (SELECT commit_id, COUNT(*) FILTER (WHERE NOT refused) AS n, COUNT(*) FILTER (WHERE changed) AS ch,
                  COUNT(*) FILTER (WHERE failed) AS f, COUNT(*) FILTER (WHERE refused) AS r,
                  MIN(first_unix) FILTER (WHERE NOT refused) AS fh, MAX(first_unix) FILTER (WHERE NOT refused) AS lh
           FROM commit_hosts WHERE commit_id = ANY($1) GROUP BY commit_id) s
     WHERE c.commit_id = s.commit_id";

/// A run that refused a commit: the commit is in the deploy log (with its
/// author and subject, as the agent read them from git) and counts the
/// host as refusing. Seeing the same refusal again moves nothing.
fn refusal(
    tx: &mut postgres::Transaction,
    r: &crate::report::Report,
    seq: i64,
) -> Result<(), StoreError> {
    let Some(rejected) = &r.rejected else {
        return Ok(());
    };
    let rev = &rejected.revision;
    tx.execute(
        "INSERT INTO commits (commit_id, author, committed_at, subject, first_applied, last_applied, last_seq)
         VALUES ($1, $2, $3, $4, $5, $5, $6)
         ON CONFLICT (commit_id) DO UPDATE SET
            first_applied = LEAST(commits.first_applied, excluded.first_applied),
            last_applied = GREATEST(commits.last_applied, excluded.last_applied)",
        &[&rev.commit, &rev.author, &rev.committed_at, &rev.subject, &r.started_at, &seq],
    )
    .map_err(db)?;
    tx.execute(
        "INSERT INTO commit_hosts (commit_id, host, changed, failed, refused) VALUES ($1, $2, FALSE, FALSE, TRUE)
         ON CONFLICT (commit_id, host) DO UPDATE SET refused = TRUE",
        &[&rev.commit, &r.host],
    )
    .map_err(db)?;
    tx.execute(COUNT_HOSTS, &[&vec![rev.commit.clone()]])
        .map_err(db)?;
    Ok(())
}

impl Store for PostgresStore {
    fn admit_read(
        &self,
        history: &dyn History,
        q: &Question,
        now: i64,
    ) -> Result<Option<Admission>, StoreError> {
        // What needs no decision is safe to answer without the lock.
        rollouts::admit(
            &mut Pg(&mut *self.reader(), &self.rollouts),
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
        let mut client = self.writer();
        let mut tx = client.transaction().map_err(db)?;
        // Environments' locks in one order across batches.
        let mut order: Vec<usize> = (0..questions.len()).collect();
        order.sort_by(|a, b| {
            questions[*a]
                .request
                .environment
                .cmp(&questions[*b].request.environment)
        });
        let mut answers: Vec<Option<Admission>> = vec![None; questions.len()];
        for i in order {
            let q = &questions[i];
            answers[i] = Some(
                rollouts::admit(
                    &mut Pg(&mut tx, &self.rollouts),
                    history,
                    &q.request,
                    &q.facts,
                    now,
                    true,
                )?
                .ok_or_else(|| StoreError::Database("the gate gave no answer".into()))?,
            );
        }
        tx.commit().map_err(db)?;
        self.rollouts.committed();
        Ok(answers.into_iter().flatten().collect())
    }

    fn tick(&self, now: i64) -> Result<Vec<Halt>, StoreError> {
        let mut client = self.writer();
        let mut tx = client.transaction().map_err(db)?;
        let halts = rollouts::tick(&mut Pg(&mut tx, &self.rollouts), now)?;
        tx.commit().map_err(db)?;
        self.rollouts.committed();
        Ok(halts)
    }

    fn next_wakes(&self) -> Vec<rollouts::RolloutWake> {
        self.rollouts.next_wakes()
    }

    fn publish(&self, message: &str) -> Result<(), StoreError> {
        // Outside a transaction: delivered at once.
        self.reader()
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &message])
            .map_err(db)?;
        Ok(())
    }

    fn listen(&self, heard: Box<dyn Fn(String) + Send>) -> bool {
        let (url, tls) = (self.url.clone(), self.tls.clone());
        std::thread::Builder::new()
            .name("log-listener".into())
            .spawn(move || listen_forever(&url, tls, &*heard))
            .is_ok()
    }

    fn rollouts(
        &self,
        environment: Option<&str>,
        commit: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RolloutRow>, StoreError> {
        rollouts::list(
            &mut Pg(&mut *self.reader(), &self.rollouts),
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
        let mut client = self.writer();
        let mut tx = client.transaction().map_err(db)?;
        let done = rollouts::act(
            &mut Pg(&mut tx, &self.rollouts),
            environment,
            commit,
            action,
            who,
            now,
        )?;
        tx.commit().map_err(db)?;
        self.rollouts.committed();
        Ok(done)
    }

    fn insert(&self, batch: &[Incoming]) -> Result<Inserted, StoreError> {
        let mut client = self.writer();
        let mut tx = client.transaction().map_err(db)?;
        // Multi-row statements: one round trip for many reports (at most
        // 65,535 parameters a statement, 20 a report).
        let mut seqs: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for chunk in batch.chunks(3000) {
            let mut sql = String::from(
                "INSERT INTO reports (id, host, environment, mode, status, commit_id, author, committed_at, subject, started_at, started_unix, received_unix, duration_ms, changed, drift, failed, source_stale, interval_s, body, refused_commit) VALUES ",
            );
            let mut values: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
            for (i, item) in chunk.iter().enumerate() {
                let r = &item.report;
                let rev = r.revision.as_ref();
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for k in 0..20 {
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("${}", i * 20 + k + 1));
                }
                sql.push(')');
                values.push(Box::new(r.id.clone()));
                values.push(Box::new(r.host.clone()));
                values.push(Box::new(r.environment.clone()));
                values.push(Box::new(word(&r.mode)));
                values.push(Box::new(listed_status(r)));
                values.push(Box::new(rev.map(|v| v.commit.clone())));
                values.push(Box::new(rev.map(|v| v.author.clone())));
                values.push(Box::new(rev.map(|v| v.committed_at.clone())));
                values.push(Box::new(rev.map(|v| v.subject.clone())));
                values.push(Box::new(r.started_at.clone()));
                values.push(Box::new(unix(&r.started_at)));
                values.push(Box::new(item.received_unix));
                values.push(Box::new(i64::try_from(r.duration_ms).unwrap_or(i64::MAX)));
                values.push(Box::new(r.summary.changed as i64));
                values.push(Box::new(r.summary.drift as i64));
                values.push(Box::new(r.summary.failed as i64));
                values.push(Box::new(r.source_stale));
                values.push(Box::new(
                    r.interval_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                ));
                values.push(Box::new(item.body.clone()));
                values.push(Box::new(refused_commit(r)));
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id, seq");
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
                values.iter().map(AsRef::as_ref).collect();
            for row in tx.query(&sql, &params).map_err(db)? {
                seqs.insert(row.get(0), row.get(1));
            }
        }
        // A report stored twice in one batch counts once: the first.
        let mut out = Vec::with_capacity(batch.len());
        let mut new_ones = Vec::new();
        for item in batch {
            match seqs.remove(&item.report.id) {
                Some(seq) => {
                    out.push(Stored::New);
                    if item.report.mode == crate::report::RunMode::Apply {
                        new_ones.push((&item.report, seq, item.received_unix));
                    }
                }
                None => out.push(Stored::Duplicate),
            }
        }
        let reached = summarise(&mut tx, &new_ones)?;
        let mut tally = super::hourly::Tally::default();
        for (r, seq, _) in &new_ones {
            refusal(&mut tx, r, *seq)?;
            tally.add(unix(&r.started_at), &listed_status(r));
        }
        tally.record(&mut Pg(&mut tx, &self.rollouts))?;
        // Environments' rollout locks in one order, so two servers' batches
        // never wait on each other in a circle.
        let mut observed: Vec<&Incoming> = batch
            .iter()
            .filter(|i| new_ones.iter().any(|(r, ..)| std::ptr::eq(*r, &i.report)))
            .collect();
        observed.sort_by(|a, b| a.report.environment.cmp(&b.report.environment));
        let mut halts = Vec::new();
        for item in observed {
            halts.extend(rollouts::observe(
                &mut Pg(&mut tx, &self.rollouts),
                &item.report,
                item.received_unix,
            )?);
        }
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
        let mut client = self.writer();
        let mut tx = client.transaction().map_err(db)?;
        work(&mut Pg(&mut tx, &self.rollouts))?;
        tx.commit().map_err(db)
    }

    fn read(
        &self,
        work: &mut dyn FnMut(&mut dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        work(&mut Pg(&mut *self.reader(), &self.rollouts))
    }

    fn reports(&self, q: &ReportQuery) -> Result<Page, StoreError> {
        let mut sql = format!("SELECT {ROW}, seq FROM reports WHERE TRUE");
        let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
        for (condition, value) in q.conditions() {
            args.push(match value {
                Param::Text(t) => Box::new(t),
                Param::Int(n) => Box::new(n),
                Param::OptText(t) => Box::new(t),
                Param::OptInt(n) => Box::new(n),
            });
            sql.push_str(&format!(
                " AND {}",
                condition.replace("{}", &format!("${}", args.len()))
            ));
        }
        let limit = q.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            args.iter().map(AsRef::as_ref).collect();
        let rows = self.reader().query(&sql, &params).map_err(db)?;
        let mut out: Vec<(ReportRow, i64)> = rows.iter().map(|r| (row(r), r.get(15))).collect();
        let next_cursor = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|(_, seq)| *seq)
        } else {
            None
        };
        Ok(Page {
            reports: out.into_iter().map(|(r, _)| r).collect(),
            next_cursor,
        })
    }

    fn report(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .reader()
            .query_opt("SELECT body FROM reports WHERE id = $1", &[&id])
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    fn hosts(&self, now_unix: i64) -> Result<Vec<HostRow>, StoreError> {
        let rows = self
            .reader()
            .query(
                "SELECT host, environment, report_id, started_at, received_unix, status, commit_id, drift, failed, interval_s
                 FROM hosts ORDER BY host",
                &[],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let received: i64 = r.get(4);
                let interval: Option<i64> = r.get(9);
                HostRow {
                    host: r.get(0),
                    environment: r.get(1),
                    last_report: r.get(2),
                    last_started_at: r.get(3),
                    last_received_unix: received,
                    status: r.get(5),
                    commit: r.get(6),
                    drift: r.get(7),
                    failed: r.get(8),
                    interval_s: interval,
                    silent: now_unix - received > 2 * interval.unwrap_or(30 * 60),
                    re_enrolled_unix: None,
                }
            })
            .collect())
    }

    fn commits(&self, limit: usize, only: Option<&str>) -> Result<Vec<CommitRow>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let rows = self
            .reader()
            .query(
                "SELECT commit_id, author, committed_at, subject, first_applied, last_applied,
                        hosts_changed, hosts_failed, hosts, hosts_refused, first_host_unix, last_host_unix
                 FROM commits WHERE ($2::TEXT IS NULL OR commit_id = $2) ORDER BY last_seq DESC LIMIT $1",
                &[&limit, &only],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| {
                let committed_at: Option<String> = r.get(2);
                let (lead_first_s, lead_last_s) =
                    super::store::lead(committed_at.as_deref(), r.get(10), r.get(11));
                CommitRow {
                    commit: r.get(0),
                    author: r.get(1),
                    committed_at,
                    subject: r.get(3),
                    first_applied: r.get(4),
                    last_applied: r.get(5),
                    hosts_changed: r.get(6),
                    hosts_failed: r.get(7),
                    hosts: r.get(8),
                    hosts_refused: r.get(9),
                    lead_first_s,
                    lead_last_s,
                    hosts_pending: 0,
                    from_source: false,
                }
            })
            .collect())
    }

    fn prune(&self, before_unix: i64) -> Result<usize, StoreError> {
        let n = self
            .writer()
            .execute(
                "DELETE FROM reports WHERE received_unix < $1",
                &[&before_unix],
            )
            .map_err(db)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
