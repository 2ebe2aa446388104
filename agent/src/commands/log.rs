//! `tend log …`: serve the central log, manage hosts' tokens, read reports.

use std::fmt::Write as _;

use crate::log::{self, Database, ServeOptions};

/// Whose token `token create` makes.
pub enum TokenFor {
    Host(String),
    /// An operator: may resume and abort rollouts, never report.
    Operator(String),
}

pub enum Log {
    Serve(ServeOptions),
    TokenCreate {
        name: TokenFor,
        db: Database,
    },
    RolloutStatus {
        env: String,
        commit: Option<String>,
        server: String,
        json: bool,
    },
    RolloutAct {
        action: &'static str,
        env: String,
        commit: Option<String>,
        server: String,
        token_file: std::path::PathBuf,
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
        Log::TokenCreate { name, db } => {
            let host = match name {
                TokenFor::Host(host) => {
                    if host.trim().is_empty()
                        || host.contains(char::is_whitespace)
                        || host.contains(':')
                    {
                        anyhow::bail!("`{host}` is not a host name");
                    }
                    host
                }
                TokenFor::Operator(name) => {
                    if name.trim().is_empty() || name.contains(char::is_whitespace) {
                        anyhow::bail!("`{name}` is not an operator's name (one word, e.g. ana)");
                    }
                    format!("{}{name}", log::OPERATOR_PREFIX)
                }
            };
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
        Log::RolloutStatus {
            env,
            commit,
            server,
            json,
        } => rollout_status(&server, &env, commit.as_deref(), json),
        Log::RolloutAct {
            action,
            env,
            commit,
            server,
            token_file,
        } => rollout_act(action, &server, &env, commit.as_deref(), &token_file),
    }
}

/// `GET server+path?query`: the body of a 200, or an error saying what
/// the server answered.
fn get(server: &str, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut request = client().get(&url);
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

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn rollout_status(server: &str, env: &str, commit: Option<&str>, json: bool) -> anyhow::Result<u8> {
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
    server: &str,
    env: &str,
    commit: Option<&str>,
    token_file: &std::path::Path,
) -> anyhow::Result<u8> {
    let token = fs_err::read_to_string(token_file)?.trim().to_owned();
    let url = format!("{}/v1/rollouts/{action}", server.trim_end_matches('/'));
    let body = serde_json::json!({ "environment": env, "commit": commit }).to_string();
    let mut response = client()
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

fn show(server: &str, filters: &[(&str, String)], json: bool) -> anyhow::Result<u8> {
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
    }
    print!("{}", crate::report::inert(&out));
    Ok(0)
}
