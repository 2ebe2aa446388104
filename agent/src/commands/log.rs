//! `tend log …`: serve the central log, manage tokens and join tokens,
//! read reports and rollouts. Each subcommand owns its arguments.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::log::identity::{self, Kind, NewJoin, NewToken};
use crate::log::{self, Database, ServeOptions, clock, store};
use crate::report::client::Client;

const DEFAULT_LOG_DB: &str = "sqlite:/var/lib/tend-log/log.db";
const DEFAULT_SERVER: &str = "http://127.0.0.1:8140";

#[derive(Subcommand)]
pub enum LogCommand {
    /// Run the log server (until SIGTERM or SIGINT).
    Serve(Serve),
    /// Tokens of hosts, viewers and operators: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Join tokens a fleet enrolls with: create (printed once), list, revoke.
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// Staged rollouts: where each commit is, and resume or abort one.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Print reports from a log server, for people or as JSON.
    Show(Show),
}

/// Where the log's data is: `--db URL`, or the URL read from a file (so a
/// PostgreSQL password is not on the command line).
#[derive(Args)]
pub struct DbArgs {
    /// sqlite:PATH or postgres://USER@HOST:PORT/DB (`?sslmode=require` or
    /// `verify-full` for TLS).
    #[arg(long, default_value = DEFAULT_LOG_DB)]
    db: String,
    /// A file holding the database URL (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "db")]
    db_file: Option<PathBuf>,
}

impl DbArgs {
    fn database(&self) -> anyhow::Result<Database> {
        let url = match &self.db_file {
            Some(file) => secret_line(file)?,
            None => self.db.clone(),
        };
        url.parse().map_err(anyhow::Error::msg)
    }
}

/// The first line of a secret file, trimmed.
fn secret_line(file: &std::path::Path) -> anyhow::Result<String> {
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

#[derive(Args)]
pub struct Serve {
    #[arg(long, default_value = log::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    /// The server's certificate chain (PEM); read again on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); read again on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback --listen: only behind a proxy
    /// that terminates TLS.
    #[arg(long, conflicts_with = "tls_cert")]
    plain_http: bool,
    /// Connections served at once; more are turned away (503).
    #[arg(long, default_value_t = log::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// `/metrics` without a token (counts only, never a host's name).
    #[arg(long)]
    public_metrics: bool,
    /// Reports (and rollout questions) waiting to be stored; more are
    /// answered 503 with Retry-After.
    #[arg(long, default_value_t = log::DEFAULT_MAX_WAITING)]
    max_waiting: usize,
    /// Largest report body accepted, in bytes.
    #[arg(long, default_value_t = log::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Prune reports older than this (e.g. 90d), in the background.
    #[arg(long, value_parser = humantime::parse_duration)]
    retain: Option<std::time::Duration>,
    /// A chat webhook (Slack-compatible) told of changed, drifted, failed
    /// and refused runs and of halts: one message per commit.
    #[arg(long, value_name = "URL")]
    notify: Option<String>,
    /// A file holding the webhook URL (it is a secret).
    #[arg(long, value_name = "FILE", conflicts_with = "notify")]
    notify_file: Option<PathBuf>,
    /// Runs of one commit arriving within this window make one message.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    notify_window: std::time::Duration,
    /// The repository the hosts pull (any URL git fetches): the log
    /// keeps a bare copy and reads each commit's rollout policy,
    /// author, date and ancestry from it. Rollouts need it.
    #[arg(long, value_name = "GIT_URL")]
    source: Option<String>,
    /// The branch, tag or commit the hosts follow.
    #[arg(long = "ref", default_value = "main", requires = "source")]
    reference: String,
    /// Where the copy of the source lives [default: `mirror` beside a
    /// SQLite database, else /var/lib/tend-log/mirror].
    #[arg(long, value_name = "DIR")]
    mirror_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// A new token, printed alone on the last line of stdout (only its
    /// sha256 is kept): a host's (HOST --env ENV: it reports and asks the
    /// gate for itself in ENV only), a viewer's (reads) or an operator's
    /// (reads, resumes and aborts rollouts).
    Create {
        #[arg(required_unless_present_any = ["viewer", "operator"], conflicts_with_all = ["viewer", "operator"], requires = "env")]
        host: Option<String>,
        /// The host's environment.
        #[arg(long)]
        env: Option<String>,
        #[arg(long, value_name = "NAME", conflicts_with = "operator")]
        viewer: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        /// The token stops working this long from now (e.g. 90d).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Revoke the host's live token and make a new one.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Every token: whose, made when and by what, last used, expiry, revoked.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke the tokens of HOST (or of a viewer or operator).
    Revoke {
        #[arg(required_unless_present_any = ["viewer", "operator"], conflicts_with_all = ["viewer", "operator"])]
        host: Option<String>,
        #[arg(long, value_name = "NAME", conflicts_with = "operator")]
        viewer: Option<String>,
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum EnrollCommand {
    /// A join token, printed alone on the last line of stdout: hosts whose
    /// names match GLOB exchange it (`tend agent --enroll-token-file`) for
    /// a host token of their own in ENV.
    Create {
        #[arg(long)]
        env: String,
        /// The host names it admits, e.g. 'web-*.prod'.
        #[arg(long = "match", value_name = "GLOB")]
        pattern: String,
        /// At most this many hosts enroll with it.
        #[arg(long)]
        uses: Option<u32>,
        /// It stops working this long from now (e.g. 24h).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// A host whose name already has a token may enroll again (a
        /// rebuilt host): its old token is revoked.
        #[arg(long)]
        allow_rebuild: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Every join token, its uses, and who enrolled with it when.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// No host enrolls with join token ID any more.
    Revoke {
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// The rollouts of an environment (or of one commit): state, wave,
    /// hosts admitted, and what halted them.
    Status {
        env: String,
        commit: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_enum, default_value_t = super::Format::Text)]
        format: super::Format,
    },
    /// A halted rollout goes on (the failures seen so far are forgiven).
    Resume {
        env: String,
        commit: Option<String>,
        /// The server; --token-file is an operator's token.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// No more hosts get the commit; those that have it keep it.
    Abort {
        env: String,
        commit: Option<String>,
        /// The server; --token-file is an operator's token.
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Args)]
pub struct Show {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    env: Option<String>,
    /// e.g. 2h, or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    commit: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, value_enum, default_value_t = super::Format::Text)]
    format: super::Format,
}

pub fn run(command: LogCommand) -> anyhow::Result<u8> {
    match command {
        LogCommand::Serve(serve) => {
            log::serve(&serve.options()?)?;
            Ok(0)
        }
        LogCommand::Token(command) => token(command),
        LogCommand::Enroll(command) => enroll(command),
        LogCommand::Show(show) => {
            let filters: Vec<(&str, String)> = [
                ("host", show.host),
                ("env", show.env),
                ("since", show.since),
                ("status", show.status),
                ("commit", show.commit),
                ("limit", Some(show.limit.to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            self::show(&show.server, &filters, show.format.is_json())
        }
        LogCommand::Rollout(RolloutCommand::Status {
            env,
            commit,
            server,
            format,
        }) => rollout_status(&server, &env, commit.as_deref(), format.is_json()),
        LogCommand::Rollout(RolloutCommand::Resume {
            env,
            commit,
            server,
        }) => rollout_act("resume", &server, &env, commit.as_deref()),
        LogCommand::Rollout(RolloutCommand::Abort {
            env,
            commit,
            server,
        }) => rollout_act("abort", &server, &env, commit.as_deref()),
    }
}

impl Serve {
    fn options(self) -> anyhow::Result<ServeOptions> {
        let db = self.db.database()?;
        let notify = match &self.notify_file {
            Some(file) => Some(secret_line(file)?),
            None => self.notify,
        };
        Ok(ServeOptions {
            mirror_dir: self.mirror_dir.unwrap_or_else(|| match &db {
                Database::Sqlite(path) => path
                    .parent()
                    .unwrap_or_else(|| std::path::Path::new("."))
                    .join("mirror"),
                Database::Postgres(_) => PathBuf::from("/var/lib/tend-log/mirror"),
            }),
            listen: self.listen,
            db,
            body_limit: self.body_limit,
            retain: self.retain,
            notify,
            notify_window: self.notify_window,
            source: self.source.map(|url| (url, self.reference)),
            tls: self.tls_cert.zip(self.tls_key),
            plain_http: self.plain_http,
            max_connections: self.max_connections.max(1),
            public_metrics: self.public_metrics,
            max_waiting: self.max_waiting.max(1),
        })
    }
}

/// Who ran a command that made a token: the person behind sudo, else the user.
fn operator_name() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::getuid()));
    format!("{user} (tend log)")
}

fn expiry(expires: Option<std::time::Duration>) -> Option<i64> {
    expires.map(|d| log::now_unix() + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
}

fn whose(
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
fn standing(revoked: Option<i64>, expires: Option<i64>, now: i64) -> String {
    match (revoked, expires) {
        (Some(r), _) => format!("revoked {}", clock::rfc3339(r)),
        (None, Some(e)) if e <= now => format!("expired {}", clock::rfc3339(e)),
        (None, Some(e)) => format!("expires {}", clock::rfc3339(e)),
        (None, None) => "live".to_owned(),
    }
}

fn token(command: TokenCommand) -> anyhow::Result<u8> {
    let now = log::now_unix();
    match command {
        TokenCommand::Create {
            host,
            env,
            viewer,
            operator,
            expires,
            replace,
            db,
        } => {
            let (kind, name) = whose(host, viewer, operator)?;
            let store = log::open(&db.database()?)?;
            let created_by = operator_name();
            let new = NewToken {
                kind,
                name: &name,
                environment: env.as_deref().filter(|_| kind == Kind::Host),
                expires_unix: expiry(expires),
                replace,
                created_by: &created_by,
            };
            match store::write(&*store, |sql| identity::create(sql, &new, now))? {
                Ok(token) => {
                    eprintln!(
                        "a {} token for `{name}`{}{} (shown once; only its sha256 is kept):",
                        kind.word(),
                        env.as_deref()
                            .filter(|_| kind == Kind::Host)
                            .map_or(String::new(), |e| format!(" in `{e}`")),
                        new.expires_unix
                            .map_or(String::new(), |t| format!(", until {}", clock::rfc3339(t)))
                    );
                    println!("{token}");
                    Ok(0)
                }
                Err(why) => {
                    eprintln!("error: {why}");
                    Ok(super::EXIT_ERROR)
                }
            }
        }
        TokenCommand::List { db } => {
            let store = log::open(&db.database()?)?;
            let rows = store::read(&*store, identity::list)?;
            let mut out = String::new();
            for t in rows {
                let state = standing(t.revoked_unix, t.expires_unix, now);
                let _ = writeln!(
                    out,
                    "{:<8} {:<28} {:<12} {:<30} created {} by {}, last used {}",
                    t.kind.word(),
                    t.name,
                    t.environment.as_deref().unwrap_or("-"),
                    state,
                    clock::rfc3339(t.created_unix),
                    t.created_by,
                    t.last_used_unix.map_or("never".to_owned(), clock::rfc3339),
                );
            }
            print!("{}", crate::report::inert(&out));
            Ok(0)
        }
        TokenCommand::Revoke {
            host,
            viewer,
            operator,
            db,
        } => {
            let (kind, name) = whose(host, viewer, operator)?;
            let store = log::open(&db.database()?)?;
            let n = store::write(&*store, |sql| identity::revoke(sql, kind, &name, now))?;
            if n > 0 {
                eprintln!(
                    "revoked the {} token{} of `{name}`",
                    kind.word(),
                    if n == 1 { "" } else { "s" }
                );
                Ok(0)
            } else {
                eprintln!("error: `{name}` has no live {} token", kind.word());
                Ok(super::EXIT_ERROR)
            }
        }
    }
}

fn enroll(command: EnrollCommand) -> anyhow::Result<u8> {
    let now = log::now_unix();
    match command {
        EnrollCommand::Create {
            env,
            pattern,
            uses,
            expires,
            allow_rebuild,
            db,
        } => {
            if env.trim().is_empty() {
                anyhow::bail!("--env is empty");
            }
            glob::Pattern::new(&pattern)
                .map_err(|e| anyhow::anyhow!("--match `{pattern}` is not a glob: {e}"))?;
            let store = log::open(&db.database()?)?;
            let created_by = operator_name();
            let new = NewJoin {
                environment: &env,
                pattern: &pattern,
                max_uses: uses.map(i64::from),
                expires_unix: expiry(expires),
                allow_rebuild,
                created_by: &created_by,
            };
            let (token, id) = store::write(&*store, |sql| identity::create_join(sql, &new, now))?;
            eprintln!(
                "join token #{id}: hosts named `{pattern}` enroll in `{env}`{}{}{} (shown once):",
                uses.map_or(String::new(), |n| format!(", at most {n}")),
                new.expires_unix
                    .map_or(String::new(), |t| format!(", until {}", clock::rfc3339(t))),
                if allow_rebuild {
                    ", rebuilt hosts again"
                } else {
                    ""
                }
            );
            println!("{token}");
            Ok(0)
        }
        EnrollCommand::List { db } => {
            let store = log::open(&db.database()?)?;
            let mut out = String::new();
            for j in store::read(&*store, identity::joins)? {
                let state = standing(j.revoked_unix, j.expires_unix, now);
                let _ = writeln!(
                    out,
                    "#{:<4} {:<12} {:<24} used {}{}{}  {state}  created {} by {}",
                    j.id,
                    j.environment,
                    j.pattern,
                    j.uses,
                    j.max_uses.map_or(String::new(), |m| format!(" of {m}")),
                    if j.allow_rebuild { ", rebuilds" } else { "" },
                    clock::rfc3339(j.created_unix),
                    j.created_by
                );
                for (host, at, rebuilt) in &j.enrolled {
                    let _ = writeln!(
                        out,
                        "      {host} {} {}",
                        if *rebuilt { "re-enrolled" } else { "enrolled" },
                        clock::rfc3339(*at)
                    );
                }
            }
            print!("{}", crate::report::inert(&out));
            Ok(0)
        }
        EnrollCommand::Revoke { id, db } => {
            let store = log::open(&db.database()?)?;
            if store::write(&*store, |sql| identity::revoke_join(sql, id, now))? {
                eprintln!("revoked join token #{id}");
                Ok(0)
            } else {
                eprintln!("error: no live join token #{id}");
                Ok(super::EXIT_ERROR)
            }
        }
    }
}

/// `GET server+path?query`: the body of a 200, or an error saying what
/// the server answered.
fn get(server: &ServerArgs, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
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
fn connect(server: &ServerArgs) -> anyhow::Result<(Client, Option<String>)> {
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

fn rollout_status(
    server: &ServerArgs,
    env: &str,
    commit: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let mut query = vec![("env", env.to_owned())];
    query.extend(commit.map(|c| ("commit", c.to_owned())));
    let body = get(server, "/v1/rollouts", &query)?;
    if json {
        println!("{body}");
        return Ok(0);
    }
    let list: serde_json::Value = serde_json::from_str(&body)?;
    let rollouts = list["rollouts"].as_array().cloned().unwrap_or_default();
    if rollouts.is_empty() {
        println!("no rollouts in {env}");
    }
    print!(
        "{}",
        crate::report::inert(&rollouts.iter().map(rollout_text).collect::<String>())
    );
    Ok(0)
}

/// A rollout for people: commit, state, wave and hosts, who made the
/// commit, and what halted it.
fn rollout_text(r: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let commit = s(&r["commit"]);
    let mut out = format!(
        "{} {}  {}  wave {} of {}  admitted {} of {}, reported {}, failed {}\n    {} by {}\n",
        s(&r["environment"]),
        commit.get(..12).unwrap_or(&commit),
        s(&r["state"]).to_uppercase(),
        r["wave"],
        r["waves"],
        r["admitted"],
        r["hosts"],
        r["reported"],
        r["failed"],
        s(&r["subject"]),
        s(&r["author"]),
    );
    let h = &r["halted_by"];
    if h.is_object() {
        let _ = writeln!(
            out,
            "    halted: {} on {}: {}: {} (report {})",
            s(&h["condition"]),
            s(&h["host"]),
            s(&h["resource"]),
            s(&h["error"]),
            s(&h["report"])
        );
    }
    if let Some(to) = r["rollback_to"].as_str() {
        let to = if to.is_empty() {
            "each host's previous commit".to_owned()
        } else {
            to.get(..12).unwrap_or(to).to_owned()
        };
        let _ = writeln!(out, "    the hosts that applied it are rolled back to {to}");
    }
    let now = crate::log::now_unix();
    let when = |unix: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0)),
        )
        .to_string()
    };
    if let Some(holding) = r["holding"].as_array().filter(|h| !h.is_empty()) {
        let names: Vec<String> = holding
            .iter()
            .map(|h| {
                let since = h["since_unix"].as_i64().unwrap_or(0);
                format!(
                    "{} ({} {}, {} s ago)",
                    s(&h["host"]),
                    if h["admitted"] == true {
                        "admitted"
                    } else {
                        "not yet asked, since"
                    },
                    when(since),
                    (now - since).max(0)
                )
            })
            .collect();
        let more = r["holding_count"].as_u64().unwrap_or(0) as usize;
        let more = if more > names.len() {
            format!(" and {} more", more - names.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    holding wave {}: {}{more}",
            r["wave"].as_u64().unwrap_or(0) + 1,
            names.join(", ")
        );
    }
    if let Some(at) = r["next_wave_unix"].as_i64() {
        let _ = writeln!(
            out,
            "    wave {} opens at {} (in {} s, after the soak)",
            r["wave"].as_u64().unwrap_or(0) + 1,
            when(at),
            (at - now).max(0)
        );
    }
    if let Some(by) = r["superseded_by"].as_str() {
        let _ = writeln!(out, "    superseded by {}", by.get(..12).unwrap_or(by));
    }
    if let Some(note) = r["note"].as_str() {
        let _ = writeln!(out, "    {note}");
    }
    out
}

fn rollout_act(
    action: &str,
    server: &ServerArgs,
    env: &str,
    commit: Option<&str>,
) -> anyhow::Result<u8> {
    let (client, token) = connect(server)?;
    let Some(token) = token else {
        anyhow::bail!(
            "--token-file is needed: an operator's token (`tend log token create --operator NAME`)"
        );
    };
    let url = client.url(&format!("/v1/rollouts/{action}"));
    let body = serde_json::json!({ "environment": env, "commit": commit }).to_string();
    let mut response = client
        .agent
        .post(&url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if status != 200 {
        eprintln!(
            "error: {}",
            answer["error"].as_str().map_or(text.clone(), str::to_owned)
        );
        return Ok(super::EXIT_ERROR);
    }
    print!(
        "{}",
        crate::report::inert(&rollout_text(&answer["rollout"]))
    );
    Ok(0)
}

fn show(server: &ServerArgs, filters: &[(&str, String)], json: bool) -> anyhow::Result<u8> {
    let body = get(server, "/v1/reports", filters)?;
    if json {
        println!("{body}");
        return Ok(0);
    }
    let page: serde_json::Value = serde_json::from_str(&body)?;
    let mut out = String::new();
    for r in page["reports"].as_array().into_iter().flatten() {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let commit = s("commit");
        let _ = writeln!(
            out,
            "{}  {:<28} {:<9} {:>3} changed {:>3} drift {:>3} failed  {} {} ({})",
            s("started_at"),
            s("host"),
            s("status"),
            r["changed"],
            r["drift"],
            r["failed"],
            commit.get(..10).unwrap_or(&commit),
            s("subject"),
            s("author"),
        );
        let refused = s("refused_commit");
        if !refused.is_empty() {
            let _ = writeln!(
                out,
                "    refused {}: it does not compile for this host",
                refused.get(..10).unwrap_or(&refused)
            );
        }
    }
    print!("{}", crate::report::inert(&out));
    Ok(0)
}
