//! `tend-log rollout`: where each commit's rollout is; resume or abort one.

use std::fmt::Write as _;

use super::{EXIT_ERROR, Format, ServerArgs, connect, get};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The rollouts of an environment (or of one commit): state, wave,
    /// hosts admitted, and what halted them.
    Status {
        env: String,
        commit: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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

pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Status {
            env,
            commit,
            server,
            format,
        } => status(&server, &env, commit.as_deref(), format.is_json()),
        Command::Resume {
            env,
            commit,
            server,
        } => act("resume", &server, &env, commit.as_deref()),
        Command::Abort {
            env,
            commit,
            server,
        } => act("abort", &server, &env, commit.as_deref()),
    }
}

fn status(server: &ServerArgs, env: &str, commit: Option<&str>, json: bool) -> anyhow::Result<u8> {
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
    let now = crate::now_unix();
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

fn act(action: &str, server: &ServerArgs, env: &str, commit: Option<&str>) -> anyhow::Result<u8> {
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
        return Ok(EXIT_ERROR);
    }
    print!(
        "{}",
        crate::report::inert(&rollout_text(&answer["rollout"]))
    );
    Ok(0)
}
