//! `tend-log token`: the tokens of hosts, viewers and operators.

use std::fmt::Write as _;

use super::{DbArgs, EXIT_ERROR, expiry, operator_name, standing, whose};
use crate::identity::{self, Kind, NewToken};
use crate::{clock, store};

#[derive(clap::Subcommand)]
pub enum Command {
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

pub fn run(command: Command) -> anyhow::Result<u8> {
    let now = crate::now_unix();
    match command {
        Command::Create {
            host,
            env,
            viewer,
            operator,
            expires,
            replace,
            db,
        } => {
            let (kind, name) = whose(host, viewer, operator)?;
            let store = crate::open(&db.database()?)?;
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
                    Ok(EXIT_ERROR)
                }
            }
        }
        Command::List { db } => {
            let store = crate::open(&db.database()?)?;
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
        Command::Revoke {
            host,
            viewer,
            operator,
            db,
        } => {
            let (kind, name) = whose(host, viewer, operator)?;
            let store = crate::open(&db.database()?)?;
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
                Ok(EXIT_ERROR)
            }
        }
    }
}
