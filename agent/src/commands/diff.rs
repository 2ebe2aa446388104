//! `tend diff REV_A REV_B`: what a change would do, host by host, before
//! it merges.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::review::diff::{self, Change, Hosts, Review};

#[derive(clap::Args)]
pub struct Args {
    /// The revision before the change (a commit, branch or tag).
    rev_a: String,
    /// The revision after it.
    rev_b: String,
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Only this environment.
    #[arg(long)]
    env: Option<String>,
    /// Only this host, by name.
    #[arg(long)]
    host: Option<String>,
    /// Every host the central log has heard from (instead of the host
    /// entries).
    #[command(flatten)]
    log: super::LogReadArgs,
    #[arg(long, value_enum, default_value_t = super::Format::Text)]
    format: super::Format,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    review(
        &args.repo,
        (&args.rev_a, &args.rev_b),
        args.env.as_deref(),
        args.host.as_deref(),
        args.log.read().as_ref(),
        args.format.is_json(),
    )
}

/// Exit 0 when nothing would change, 2 when something would, 1 when a
/// revision does not validate.
fn review(
    repo: &Path,
    revs: (&str, &str),
    environment: Option<&str>,
    host: Option<&str>,
    log: Option<&super::LogRead>,
    json: bool,
) -> anyhow::Result<u8> {
    let hosts = match (host, log) {
        (Some(h), _) => Hosts::Named(vec![(None, h.to_owned())]),
        (None, Some(url)) => Hosts::Named(super::hosts_from_log(url)?),
        (None, None) => Hosts::Entries,
    };
    let mut from = diff::tree(repo, revs.0).map_err(anyhow::Error::msg)?;
    let mut to = diff::tree(repo, revs.1).map_err(anyhow::Error::msg)?;
    let review = match diff::review(&mut from, &mut to, environment, &hosts) {
        Ok(review) => review,
        Err(invalid) => {
            let r = &invalid.revision;
            eprintln!(
                "error: {} ({}: {}) does not validate:",
                short(&r.commit),
                r.author,
                r.subject
            );
            for e in &invalid.errors {
                eprintln!("{e}");
            }
            return Ok(super::EXIT_ERROR);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&review)?);
    } else {
        print!("{}", crate::report::inert(&text(&review)));
    }
    Ok(if review.changes_anything() { 2 } else { 0 })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

pub fn text(review: &Review) -> String {
    let mut out = String::new();
    let (a, b) = (&review.from, &review.to);
    let _ = writeln!(out, "diff {} → {}", short(&a.commit), short(&b.commit));
    let _ = writeln!(
        out,
        "  from {}, {}: {}",
        a.author, a.committed_at, a.subject
    );
    let _ = writeln!(
        out,
        "  to   {}, {}: {}",
        b.author, b.committed_at, b.subject
    );
    for p in &review.policies {
        let describe = |p: &Option<crate::rollout::Policy>| {
            p.as_ref().map_or_else(
                || "none (every host at once)".to_owned(),
                super::rollout::describe,
            )
        };
        let _ = writeln!(
            out,
            "~ rollout of {}: {} → {}",
            p.environment,
            describe(&p.before),
            describe(&p.after)
        );
    }
    for h in &review.hosts {
        let roles = h.roles.join(", ");
        let _ = match h.only_in {
            Some("to") => writeln!(
                out,
                "{} {}: new host entry [{roles}]",
                h.environment, h.host
            ),
            Some(_) => writeln!(out, "{} {}: host entry removed", h.environment, h.host),
            None if !h.roles_before.is_empty() => writeln!(
                out,
                "{} {}: roles [{}] → [{roles}]",
                h.environment,
                h.host,
                h.roles_before.join(", ")
            ),
            None => writeln!(out, "{} {} [{roles}]:", h.environment, h.host),
        };
        for c in &h.changes {
            match c {
                Change::Added { id, declared_at } => {
                    let _ = writeln!(out, "  + {id} ({declared_at})");
                }
                Change::Removed { id } => {
                    let _ = writeln!(out, "  - {id}");
                }
                Change::Changed {
                    id,
                    declared_at,
                    attributes,
                    diff,
                } => {
                    let what: Vec<String> = attributes
                        .iter()
                        .map(|(k, x, y)| format!("{k}: {} → {}", value(x), value(y)))
                        .collect();
                    let what = if what.is_empty() {
                        "content".to_owned()
                    } else {
                        what.join(", ")
                    };
                    let _ = writeln!(out, "  ~ {id} ({declared_at}): {what}");
                    for line in diff.iter().flat_map(|d| d.lines()) {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
        }
    }
    let n = review.hosts.len();
    let _ = writeln!(
        out,
        "{n} host{} would change, {} unchanged{}",
        if n == 1 { "" } else { "s" },
        review.unchanged,
        if review.policies.is_empty() {
            String::new()
        } else {
            format!(
                "; {} rollout polic{} changed",
                review.policies.len(),
                if review.policies.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            )
        }
    );
    out
}
