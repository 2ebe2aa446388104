//! The central log: `tend log serve`, where every host's reports land and
//! anyone can see who changed what, where and when.
//!
//! One stateless process over a [`store::Store`]. Reports are accepted
//! only from the host their token belongs to, checked against the report
//! format, and acknowledged once durable; the same report id is stored
//! once. The tokio runtime lives here only: the host side never starts it.

mod change;
pub mod cli;
pub mod clock;
pub mod commands;
mod dashboard;
mod effect;
mod fanout;
pub mod hourly;
mod http;
pub mod identity;
mod listen;
mod metrics;
pub mod mirror;
pub mod notify;
mod parked;
mod pg_tls;
pub mod postgres;
pub mod rollouts;
pub mod settings;
pub mod sql;
pub mod sqlite;
pub mod store;
pub mod watches;

// What the host and the log both speak, under the names the modules use.
pub(crate) use tend_common::{hex, manifest, report, rollout, source};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use store::Store;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8140";
/// Operators' tokens are stored under `operator:NAME` (a host name never
/// holds a colon): they may resume and abort rollouts, and never report.
pub const OPERATOR_PREFIX: &str = "operator:";
/// Bodies larger than this are refused (413).
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Where the log keeps its data: `sqlite:PATH` or `postgres://…`.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for Database {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("`sqlite:` needs a path, e.g. sqlite:/var/lib/tend-log/log.db".into());
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Database::Postgres(s.to_owned()));
        }
        Err(format!(
            "`{s}` is not a database: write sqlite:PATH or postgres://USER@HOST:PORT/DB"
        ))
    }
}

pub fn open(db: &Database) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match db {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs_err::create_dir_all(parent)?;
            }
            Arc::new(sqlite::SqliteStore::open(path)?)
        }
        Database::Postgres(url) => Arc::new(postgres::PostgresStore::open(url)?),
    })
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub db: Database,
    pub body_limit: usize,
    /// Reports older than this are pruned in the background.
    pub retain: Option<std::time::Duration>,
    /// A Slack-compatible webhook for changed, drifted and failed runs.
    pub notify: Option<String>,
    /// Runs of one commit within this window make one message.
    pub notify_window: std::time::Duration,
    /// The repository (URL, ref) the log mirrors: the rollout gate's
    /// authority. Without it, rollouts are refused.
    pub source: Option<(String, String)>,
    /// Where the mirror lives.
    pub mirror_dir: PathBuf,
    /// How often the mirror fetches the ref, to learn that it moved
    /// (`POST /v1/source/notify` makes it fetch at once).
    pub source_poll: std::time::Duration,
    /// The certificate and key files (PEM) to serve TLS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on a non-loopback address (a TLS-terminating proxy in front).
    pub plain_http: bool,
    pub max_connections: usize,
    /// `/metrics` without a token (counts only, never a host's name).
    pub public_metrics: bool,
    /// Reports (and admission questions) waiting for the writer.
    pub max_waiting: usize,
}

/// Reports waiting to be stored by default.
pub const DEFAULT_MAX_WAITING: usize = 4096;
/// `--source-poll`: a pushed commit is known within this long without a
/// notify hook.
pub const DEFAULT_SOURCE_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Runs the log server until SIGTERM or SIGINT.
pub fn serve(options: &ServeOptions) -> anyhow::Result<()> {
    let store = open(&options.db)?;
    // Declared after the store, so dropped before it: the background
    // tasks' handles on the store go with the runtime, and the store
    // itself is closed out of it (PostgreSQL's client cannot close inside
    // a runtime).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(http::serve(Arc::clone(&store), options))
}

/// A report body as the log takes it: parsed and checked against SPEC §5
/// (the checks `POST /v1/reports` makes before storing anything).
pub fn parse_report(body: &[u8]) -> Result<crate::report::Report, String> {
    let report: crate::report::Report =
        serde_json::from_slice(body).map_err(|e| format!("not a run report: {e}"))?;
    http::check(&report).map_err(|e| format!("not a valid run report: {e}"))?;
    Ok(report)
}

/// A new token: 32 random bytes, hexadecimal.
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(a.as_bytes());
    bytes.extend_from_slice(b.as_bytes());
    crate::hex(&bytes)
}

/// What is stored of a token: its sha256.
pub fn token_hash(token: &str) -> String {
    crate::hex(&Sha256::digest(token.trim().as_bytes()))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
