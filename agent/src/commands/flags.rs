//! `tend flags preview --env E FLAG=N`: which hosts a knob would move.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::flags::FlagValue;

/// `tend flags …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// The hosts whose value of FLAG would change if it were set to N (a
    /// percentage, true or false): FLAG=N.
    Preview {
        setting: String,
        #[arg(long)]
        env: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Every host the central log has heard from (else the host
        /// entries that name one host).
        #[command(flatten)]
        log: super::LogReadArgs,
        #[arg(long, value_enum, default_value_t = super::Format::Text)]
        format: super::Format,
    },
}

pub fn run(command: Command) -> anyhow::Result<u8> {
    let Command::Preview {
        setting,
        env,
        repo,
        log,
        format,
    } = command;
    preview(&repo, &env, &setting, log.read().as_ref(), format.is_json())
}

fn preview(
    repo: &Path,
    env: &str,
    setting: &str,
    log: Option<&super::LogRead>,
    json: bool,
) -> anyhow::Result<u8> {
    let manifests = super::open_repo(repo)?;
    if !manifests.diagnostics.is_empty() {
        super::print_diagnostics(&manifests, &manifests.diagnostics);
        return Ok(super::EXIT_ERROR);
    }
    let Some(environment) = manifests.environments.iter().find(|e| e.name == env) else {
        eprintln!("error: no environment named `{env}`");
        return Ok(super::EXIT_ERROR);
    };
    let Some((flag, value)) = setting.split_once('=') else {
        eprintln!("error: write FLAG=N (a percentage), FLAG=true or FLAG=false, not `{setting}`");
        return Ok(super::EXIT_ERROR);
    };
    let Some((_, now, at)) = environment.flags.iter().find(|(n, _, _)| n == flag) else {
        let names: Vec<&str> = environment
            .flags
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect();
        eprintln!(
            "error: {env} has no flag `{flag}` (its flags: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        return Ok(super::EXIT_ERROR);
    };
    let next = match value.trim() {
        "true" => FlagValue::Bool(true),
        "false" => FlagValue::Bool(false),
        n => match n.trim_end_matches('%').parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => FlagValue::Percent { percent: p },
            _ => {
                eprintln!("error: `{value}` is not a percentage from 0 to 100, true or false");
                return Ok(super::EXIT_ERROR);
            }
        },
    };
    let (hosts, globs): (Vec<String>, Vec<String>) = match log {
        Some(url) => (
            super::hosts_from_log(url)?
                .into_iter()
                .filter(|(e, _)| e.as_deref() == Some(env))
                .map(|(_, h)| h)
                .collect(),
            Vec::new(),
        ),
        None => environment
            .hosts
            .iter()
            .map(|h| h.pattern.clone())
            .partition(|p| !p.contains(['*', '?', '['])),
    };
    let moved: Vec<(&str, bool)> = hosts
        .iter()
        .filter(|h| now.on(flag, h) != next.on(flag, h))
        .map(|h| (h.as_str(), next.on(flag, h)))
        .collect();
    if json {
        let out = serde_json::json!({
            "environment": env, "flag": flag, "now": now, "next": next,
            "hosts": hosts.len(),
            "changes": moved.iter().map(|(h, on)| serde_json::json!({"host": h, "on": on})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let mut out = format!(
        "{flag} in {env} ({at}): {now} → {next}: {} of {} host{} would change\n",
        moved.len(),
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    );
    for (host, on) in &moved {
        let _ = writeln!(
            out,
            "  {} {host} (turns {})",
            if *on { '+' } else { '-' },
            if *on { "on" } else { "off" }
        );
    }
    if !globs.is_empty() {
        let _ = writeln!(
            out,
            "hosts matched by {} are not listed: pass --log URL for every host the log knows",
            globs.join(", ")
        );
    }
    print!("{}", crate::report::inert(&out));
    Ok(0)
}
