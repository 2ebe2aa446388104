//! The `tend-log` commands (also run as `tend log …`), one file each as
//! cargo has them: each owns its arguments and its `run`. What several
//! share (where the database is, how to reach a running server, who is
//! asking) is here.

pub mod enroll;
pub mod rollout;
pub mod serve;
pub mod show;
pub mod token;
pub mod wake;

use std::path::PathBuf;
pub use tend_common::cli::{EXIT_ERROR, Format};

use clap::{Args, Subcommand};

use crate::identity::{self, Kind};
use crate::report::client::Client;
use crate::{Database, clock, settings};

const DEFAULT_LOG_DB: &str = "sqlite:/var/lib/tend-log/log.db";
const DEFAULT_SERVER: &str = "http://127.0.0.1:8140";

#[derive(Subcommand)]
pub enum Command {
    /// Run the log server (until SIGTERM or SIGINT).
    Serve(serve::Args),
    /// Tokens of hosts, viewers and operators: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(token::Command),
    /// Join tokens a fleet enrolls with: create (printed once), list, revoke.
    #[command(subcommand)]
    Enroll(enroll::Command),
    /// Staged rollouts: where each commit is, and resume or abort one.
    #[command(subcommand)]
    Rollout(rollout::Command),
    /// Print reports from a log server, for people or as JSON.
    Show(show::Args),
    /// Run now: the hosts of an environment (matching a glob) cycle at
    /// once, through the watches they hold on the log.
    Wake(wake::Args),
}

pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Token(command) => token::run(command),
        Command::Enroll(command) => enroll::run(command),
        Command::Rollout(command) => rollout::run(command),
        Command::Show(args) => show::run(args),
        Command::Wake(args) => wake::run(args),
    }
}

/// Where the log's data is: `--db URL`, or the URL read from a file (so a
/// PostgreSQL password is not on the command line), else what the
/// settings file (`--config`) says, else SQLite under /var/lib/tend-log.
#[derive(Args)]
pub struct DbArgs {
    /// sqlite:PATH or postgres://USER@HOST:PORT/DB (`?sslmode=require` or
    /// `verify-full` for TLS) [default: sqlite:/var/lib/tend-log/log.db].
    #[arg(long)]
    db: Option<String>,
    /// A file holding the database URL (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "db")]
    db_file: Option<PathBuf>,
    /// The log's settings: one key per `serve` flag; flags win.
    #[arg(long, value_name = "FILE", default_value = settings::DEFAULT_PATH)]
    config: PathBuf,
}

impl DbArgs {
    /// The settings file, or none when it does not exist.
    pub(crate) fn settings(&self) -> anyhow::Result<settings::FileSettings> {
        match settings::read(&self.config) {
            Ok(file) => Ok(file.unwrap_or_default()),
            Err(problems) => {
                let sources = crate::manifest::diagnostic::Sources::new(std::path::Path::new("/"));
                let mut text = String::new();
                for d in &problems {
                    text.push_str(&sources.render(d));
                    text.push('\n');
                }
                anyhow::bail!("{text}`{}` is not valid", self.config.display())
            }
        }
    }

    pub(crate) fn database(&self) -> anyhow::Result<Database> {
        self.database_with(&self.settings()?)
    }

    pub(crate) fn database_with(&self, file: &settings::FileSettings) -> anyhow::Result<Database> {
        let url = match (&self.db, &self.db_file) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => secret_line(path)?,
            (None, None) => match (&file.db, &file.db_file) {
                (Some(url), _) => url.clone(),
                (None, Some(path)) => secret_line(path)?,
                (None, None) => DEFAULT_LOG_DB.to_owned(),
            },
        };
        url.parse().map_err(anyhow::Error::msg)
    }
}

/// The first line of a secret file, trimmed.
pub(crate) fn secret_line(file: &std::path::Path) -> anyhow::Result<String> {
    let text = fs_err::read_to_string(file)?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        anyhow::bail!("`{}` is empty", file.display());
    }
    Ok(line)
}

/// How a command reaches a running log server.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The log's URL: https://…, or http:// to this machine only.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// A viewer's or operator's token (`tend log token create --viewer NAME`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust besides the system's, for a log
    /// whose certificate a private CA signed.
    #[arg(long, value_name = "FILE")]
    log_ca: Option<PathBuf>,
}

/// `GET server+path?query`: the body of a 200, or an error saying what
/// the server answered.
pub(crate) fn get(
    server: &ServerArgs,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<String> {
    let (client, token) = connect(server)?;
    let url = client.url(path);
    let mut request = client.agent.get(&url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    for (k, v) in query {
        request = request.query(*k, v);
    }
    let mut response = request.call().map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string()?;
    if status != 200 {
        anyhow::bail!("{url} answered {status}: {body}");
    }
    Ok(body)
}

/// A client for the server, and the token to send.
pub(crate) fn connect(server: &ServerArgs) -> anyhow::Result<(Client, Option<String>)> {
    let client = Client::new(
        &server.server,
        server.log_ca.as_deref(),
        std::time::Duration::from_secs(20),
    )
    .map_err(anyhow::Error::msg)?;
    let token = match &server.token_file {
        Some(file) => Some(secret_line(file)?),
        None => None,
    };
    Ok((client, token))
}

/// Who ran a command that made a token: the person behind sudo, else the user.
pub(crate) fn operator_name() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("{user} (tend log)")
}

pub(crate) fn expiry(expires: Option<std::time::Duration>) -> Option<i64> {
    expires.map(|d| crate::now_unix() + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
}

pub(crate) fn whose(
    host: Option<String>,
    viewer: Option<String>,
    operator: Option<String>,
) -> anyhow::Result<(Kind, String)> {
    let (kind, name) = match (host, viewer, operator) {
        (Some(host), _, _) => (Kind::Host, host),
        (None, Some(name), _) => (Kind::Viewer, name),
        (None, None, Some(name)) => (Kind::Operator, name),
        (None, None, None) => anyhow::bail!("name a host, --viewer NAME or --operator NAME"),
    };
    if kind == Kind::Host {
        identity::check_host_name(&name).map_err(anyhow::Error::msg)?;
    } else if name.trim().is_empty() || name.contains(char::is_whitespace) {
        anyhow::bail!("`{name}` is not a person's name (one word, e.g. ana)");
    }
    Ok((kind, name))
}

/// Whether a token or join token still works: `live`, `expires …`,
/// `expired …` or `revoked …`.
pub(crate) fn standing(revoked: Option<i64>, expires: Option<i64>, now: i64) -> String {
    match (revoked, expires) {
        (Some(r), _) => format!("revoked {}", clock::rfc3339(r)),
        (None, Some(e)) if e <= now => format!("expired {}", clock::rfc3339(e)),
        (None, Some(e)) => format!("expires {}", clock::rfc3339(e)),
        (None, None) => "live".to_owned(),
    }
}
