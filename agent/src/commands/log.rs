//! `tend log …`: serve the central log, manage hosts' tokens, read reports.

use std::fmt::Write as _;

use crate::log::{self, Database, ServeOptions};

pub enum Log {
    Serve(ServeOptions),
    TokenCreate {
        host: String,
        db: Database,
    },
    TokenList {
        db: Database,
    },
    TokenRevoke {
        host: String,
        db: Database,
    },
    Show {
        server: String,
        filters: Vec<(&'static str, String)>,
        json: bool,
    },
}

pub fn run(command: Log) -> anyhow::Result<u8> {
    match command {
        Log::Serve(options) => {
            log::serve(&options)?;
            Ok(0)
        }
        Log::TokenCreate { host, db } => {
            if host.trim().is_empty() || host.contains(char::is_whitespace) {
                anyhow::bail!("`{host}` is not a host name");
            }
            let store = log::open(&db)?;
            let token = log::new_token();
            store.put_token(&host, &log::token_hash(&token))?;
            // Shown once: only its hash is stored.
            println!("{token}");
            Ok(0)
        }
        Log::TokenList { db } => {
            for (host, created) in log::open(&db)?.tokens()? {
                let when = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(created).unwrap_or(0));
                println!(
                    "{host}\tcreated {}",
                    humantime::format_rfc3339_seconds(when)
                );
            }
            Ok(0)
        }
        Log::TokenRevoke { host, db } => {
            if log::open(&db)?.revoke_token(&host)? {
                eprintln!("revoked the token of `{host}`");
                Ok(0)
            } else {
                eprintln!("error: `{host}` has no token");
                Ok(super::EXIT_ERROR)
            }
        }
        Log::Show {
            server,
            filters,
            json,
        } => show(&server, &filters, json),
    }
}

fn show(server: &str, filters: &[(&str, String)], json: bool) -> anyhow::Result<u8> {
    let url = format!("{}/v1/reports", server.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&url);
    for (k, v) in filters {
        request = request.query(*k, v);
    }
    let mut response = request.call().map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string()?;
    if status != 200 {
        anyhow::bail!("{url} answered {status}: {body}");
    }
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
    }
    print!("{out}");
    Ok(0)
}
