//! `tend-log serve`: the central log's server. Every flag can also be a
//! key of the settings file (`--config`, /etc/tend-log/log.yaml); a flag
//! given on the command line wins.

use std::path::PathBuf;
use std::time::Duration;

use super::{DbArgs, secret_line};
use crate::{Database, ServeOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen [default: 127.0.0.1:8140].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
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
    /// Connections served at once; more are turned away (503) [default: 1024].
    #[arg(long)]
    max_connections: Option<usize>,
    /// `/metrics` without a token (counts only, never a host's name).
    #[arg(long)]
    public_metrics: bool,
    /// Reports (and rollout questions) waiting to be stored; more are
    /// answered 503 with Retry-After [default: 4096].
    #[arg(long)]
    max_waiting: Option<usize>,
    /// Largest report body accepted, in bytes [default: 4 MiB].
    #[arg(long)]
    body_limit: Option<usize>,
    /// Prune reports older than this (e.g. 90d), in the background.
    #[arg(long, value_parser = humantime::parse_duration)]
    retain: Option<Duration>,
    /// A chat webhook (Slack-compatible) told of changed, drifted, failed
    /// and refused runs and of halts: one message per commit.
    #[arg(long, value_name = "URL")]
    notify: Option<String>,
    /// A file holding the webhook URL (it is a secret).
    #[arg(long, value_name = "FILE", conflicts_with = "notify")]
    notify_file: Option<PathBuf>,
    /// Runs of one commit arriving within this window make one message
    /// [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    notify_window: Option<Duration>,
    /// The repository the hosts pull (any URL git fetches): the log
    /// keeps a bare copy and reads each commit's rollout policy,
    /// author, date and ancestry from it. Rollouts need it.
    #[arg(long, value_name = "GIT_URL")]
    source: Option<String>,
    /// The branch, tag or commit the hosts follow [default: main].
    #[arg(long = "ref")]
    reference: Option<String>,
    /// How often the log fetches the ref to learn that it moved
    /// [default: 10s]; `POST /v1/source/notify` makes it fetch at once.
    #[arg(long, value_parser = humantime::parse_duration)]
    source_poll: Option<Duration>,
    /// Where the copy of the source lives [default: `mirror` beside a
    /// SQLite database, else /var/lib/tend-log/mirror].
    #[arg(long, value_name = "DIR")]
    mirror_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    crate::serve(&args.options()?)?;
    Ok(0)
}

impl Args {
    /// The flags, over the settings file, over the defaults.
    fn options(self) -> anyhow::Result<ServeOptions> {
        let file = self.db.settings()?;
        let db = self.db.database_with(&file)?;
        let listen = match self.listen {
            Some(listen) => listen,
            None => {
                let text = file.listen.as_deref().unwrap_or(crate::DEFAULT_LISTEN);
                text.parse().map_err(|e| {
                    anyhow::anyhow!("`listen: {text}` in `{}`: {e}", self.db.config.display())
                })?
            }
        };
        let notify = match (self.notify, &self.notify_file) {
            (Some(url), _) => Some(url),
            (None, Some(path)) => Some(secret_line(path)?),
            (None, None) => match (file.notify, &file.notify_file) {
                (Some(url), _) => Some(url),
                (None, Some(path)) => Some(secret_line(path)?),
                (None, None) => None,
            },
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => match (file.tls_cert, file.tls_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!(
                    "`{}` names one of tls_cert and tls_key: TLS needs both",
                    self.db.config.display()
                ),
            },
        };
        let plain_http = self.plain_http || file.plain_http.unwrap_or(false);
        if plain_http && tls.is_some() {
            anyhow::bail!("plain_http and TLS (tls_cert, tls_key) exclude each other");
        }
        let reference = self.reference.or(file.reference);
        let source = self.source.or(file.source);
        if source.is_none() && reference.is_some() {
            anyhow::bail!("a ref (`--ref`, `ref:`) needs a source (`--source`, `source:`)");
        }
        Ok(ServeOptions {
            mirror_dir: self
                .mirror_dir
                .or(file.mirror_dir)
                .unwrap_or_else(|| match &db {
                    Database::Sqlite(path) => path
                        .parent()
                        .unwrap_or_else(|| std::path::Path::new("."))
                        .join("mirror"),
                    Database::Postgres(_) => PathBuf::from("/var/lib/tend-log/mirror"),
                }),
            source_poll: self
                .source_poll
                .or(file.source_poll)
                .unwrap_or(crate::DEFAULT_SOURCE_POLL),
            listen,
            db,
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(crate::DEFAULT_BODY_LIMIT),
            retain: self.retain.or(file.retain),
            notify,
            notify_window: self
                .notify_window
                .or(file.notify_window)
                .unwrap_or(Duration::from_secs(30)),
            source: source.map(|url| (url, reference.unwrap_or_else(|| "main".to_owned()))),
            tls,
            plain_http,
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(crate::DEFAULT_MAX_CONNECTIONS)
                .max(1),
            public_metrics: self.public_metrics || file.public_metrics.unwrap_or(false),
            max_waiting: self
                .max_waiting
                .or(file.max_waiting)
                .unwrap_or(crate::DEFAULT_MAX_WAITING)
                .max(1),
        })
    }
}
