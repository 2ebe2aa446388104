//! `tend-log enroll`: join tokens a fleet enrolls with.

use std::fmt::Write as _;

use super::{DbArgs, EXIT_ERROR, expiry, operator_name, standing};
use crate::identity::{self, NewJoin};
use crate::{clock, store};

#[derive(clap::Subcommand)]
pub enum Command {
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

pub fn run(command: Command) -> anyhow::Result<u8> {
    let now = crate::now_unix();
    match command {
        Command::Create {
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
            let store = crate::open(&db.database()?)?;
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
        Command::List { db } => {
            let store = crate::open(&db.database()?)?;
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
        Command::Revoke { id, db } => {
            let store = crate::open(&db.database()?)?;
            if store::write(&*store, |sql| identity::revoke_join(sql, id, now))? {
                eprintln!("revoked join token #{id}");
                Ok(0)
            } else {
                eprintln!("error: no live join token #{id}");
                Ok(EXIT_ERROR)
            }
        }
    }
}
