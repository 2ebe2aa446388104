//! `tend rollout preview ENV`: the waves an environment's policy makes of
//! its hosts — those the manifest names, or every host the log knows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::rollout::{Policy, bucket};

/// `tend rollout …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Which hosts are in which wave of ENV's rollout policy: the hosts
    /// the manifest names, or with --log every host the log has heard from.
    Preview {
        env: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[command(flatten)]
        log: super::LogReadArgs,
        #[arg(long, value_enum, default_value_t = super::Format::Text)]
        format: super::Format,
    },
}

pub fn run(command: Command) -> anyhow::Result<u8> {
    let Command::Preview {
        env,
        repo,
        log,
        format,
    } = command;
    preview(&repo, &env, log.read().as_ref(), format.is_json())
}

fn preview(repo: &Path, env: &str, log: Option<&super::LogRead>, json: bool) -> anyhow::Result<u8> {
    let manifests = super::open_repo(repo)?;
    if !manifests.diagnostics.is_empty() {
        super::print_diagnostics(&manifests, &manifests.diagnostics);
        return Ok(super::EXIT_ERROR);
    }
    let Some(environment) = manifests.environments.iter().find(|e| e.name == env) else {
        let names: Vec<&str> = manifests
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        eprintln!(
            "error: no environment named `{env}` (environments: {})",
            names.join(", ")
        );
        return Ok(super::EXIT_ERROR);
    };
    let Some((policy, at)) = &environment.rollout else {
        println!("{env} has no `rollout:`: every host applies a new commit at once");
        return Ok(0);
    };
    // The hosts: from the log, or the manifest's entries that name one host.
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
    // Canaries the policy names outright are hosts too.
    let mut hosts = hosts;
    for c in &policy.canary {
        if !c.contains(['*', '?', '[']) && !hosts.contains(c) && log.is_none() {
            hosts.push(c.clone());
        }
    }
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut waves = policy.assign(env, &names);
    waves.sort_by_key(|(h, w)| (*w, bucket(env, h)));
    if json {
        let out = serde_json::json!({
            "environment": env,
            "policy": policy,
            "hosts": waves.iter().map(|(h, w)| serde_json::json!({"host": h, "wave": w, "bucket": bucket(env, h)})).collect::<Vec<_>>(),
            "globs": globs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let mut out = format!("{env}: {} ({at})\n", describe(policy));
    for wave in 0..=policy.last_wave() {
        let members: Vec<&str> = waves
            .iter()
            .filter(|(_, w)| *w == wave)
            .map(|(h, _)| *h)
            .collect();
        let label = match wave {
            0 => "canary".to_owned(),
            n => policy.waves[n as usize - 1].to_string(),
        };
        let _ = writeln!(
            out,
            "wave {wave} ({label}, {} host{}):",
            members.len(),
            if members.len() == 1 { "" } else { "s" }
        );
        for h in members {
            let _ = writeln!(out, "    {h}");
        }
    }
    if !globs.is_empty() {
        let _ = writeln!(
            out,
            "hosts matched by {} take their wave by bucket when they first ask (--log URL shows the hosts the log knows)",
            globs.join(", ")
        );
    }
    print!("{}", crate::report::inert(&out));
    Ok(0)
}

/// `canary web-1.*, waves 10% → 50% → 100%, soak 10m, deadline 30m, halt
/// on 1 failed, then hold`.
pub fn describe(policy: &Policy) -> String {
    let waves: Vec<String> = policy.waves.iter().map(ToString::to_string).collect();
    let mut text = String::new();
    if !policy.canary.is_empty() {
        let _ = write!(text, "canary {}, ", policy.canary.join(", "));
    }
    let _ = write!(
        text,
        "waves {}, soak {}, deadline {}",
        waves.join(" → "),
        humantime::format_duration(policy.soak()),
        humantime::format_duration(std::time::Duration::from_secs(policy.deadline_s))
    );
    let halt = policy.halt_on;
    let mut on = Vec::new();
    if halt.failed > 0 {
        on.push(format!("{} failed", halt.failed));
    }
    if halt.drift_after_apply > 0 {
        on.push(format!("{} drifted after apply", halt.drift_after_apply));
    }
    if on.is_empty() {
        text.push_str(", never halts");
    } else {
        let _ = write!(
            text,
            ", halt on {} then {}",
            on.join(" or "),
            policy.on_halt
        );
    }
    text
}
