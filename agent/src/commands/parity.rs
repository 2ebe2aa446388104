//! `tend parity A B`: what differs between two environments, and why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::review::parity::{self, Parity};

#[derive(clap::Args)]
pub struct Args {
    env_a: String,
    env_b: String,
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    #[arg(long, value_enum, default_value_t = super::Format::Text)]
    format: super::Format,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    compare(&args.repo, &args.env_a, &args.env_b, args.format.is_json())
}

/// Exit 0 when the environments differ only in values from vars, 1 when a
/// role or resource is missing on one side (or the manifests are broken).
fn compare(repo: &Path, a: &str, b: &str, json: bool) -> anyhow::Result<u8> {
    let mut manifests = super::open_repo(repo)?;
    let report = match parity::parity(&mut manifests, a, b) {
        Ok(report) => report,
        Err(problems) => {
            super::print_diagnostics(&manifests, &problems);
            return Ok(super::EXIT_ERROR);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::report::inert(&text(&report)));
    }
    Ok(if report.broken() {
        super::EXIT_ERROR
    } else {
        0
    })
}

fn shown(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Null => "(none)".to_owned(),
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// The first line two contents differ at: both sides and `content line N`.
fn first_difference(a: &str, b: &str) -> (String, String, String) {
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => {
                let side = |l: Option<&str>| {
                    l.map_or_else(
                        || "(no line)".to_owned(),
                        |l| shown(&serde_json::Value::String(l.trim().to_owned())),
                    )
                };
                return (side(x), side(y), format!("content line {n}"));
            }
        }
    }
}

pub fn text(p: &Parity) -> String {
    let mut out = format!("parity {} ↔ {}\n", p.a, p.b);
    for r in &p.roles_only {
        let other = if r.environment == p.a { &p.b } else { &p.a };
        let _ = writeln!(
            out,
            "- roles [{}] only in {} ({}, {}); {other} has no host entry with them",
            r.roles.join(", "),
            r.environment,
            r.host_entry,
            r.at
        );
    }
    for r in &p.resources_only {
        let other = if r.environment == p.a { &p.b } else { &p.a };
        let _ = writeln!(
            out,
            "- {} only in {} (roles [{}], {}); missing in {other}",
            r.id,
            r.environment,
            r.roles.join(", "),
            r.declared_at
        );
    }
    if let Some((a, b)) = &p.rollout {
        let describe = |x: &Option<crate::rollout::Policy>| {
            x.as_ref().map_or_else(
                || "none (every host at once)".to_owned(),
                super::rollout::describe,
            )
        };
        let _ = writeln!(
            out,
            "~ rollout: {} in {} ↔ {} in {}",
            describe(a),
            p.a,
            describe(b),
            p.b
        );
    }
    for (name, x, y) in &p.flags {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(undeclared)".to_owned());
        let _ = writeln!(
            out,
            "~ flag {name}: {} in {} ↔ {} in {}",
            side(x),
            p.a,
            side(y),
            p.b
        );
    }
    for f in &p.flagged {
        let _ = writeln!(
            out,
            "~ {} only in {} (roles [{}]): gated by a flag",
            f.id,
            f.environment,
            f.roles.join(", ")
        );
    }
    let mut group = None;
    for d in &p.attributes {
        if group != Some((&d.roles, &d.entries)) {
            group = Some((&d.roles, &d.entries));
            let _ = writeln!(
                out,
                "[{}] {} ↔ {}:",
                d.roles.join(", "),
                d.entries.0,
                d.entries.1
            );
        }
        let (a, b, what) = match (&d.a, &d.b) {
            (serde_json::Value::String(x), serde_json::Value::String(y))
                if d.attribute == "content" =>
            {
                first_difference(x, y)
            }
            _ => (shown(&d.a), shown(&d.b), d.attribute.clone()),
        };
        let _ = writeln!(out, "  ~ {} {what}: {a} in {} ↔ {b} in {}", d.id, p.a, p.b);
        if d.causes.is_empty() {
            let _ = writeln!(out, "      not explained by a var");
        }
        for c in &d.causes {
            let side = |s: &Option<crate::review::parity::Setting>| {
                s.as_ref().map_or_else(
                    || "(unset)".to_owned(),
                    |s| format!("{} ({})", shown(&s.value), s.at),
                )
            };
            let _ = writeln!(out, "      var {}: {} ↔ {}", c.var, side(&c.a), side(&c.b));
        }
    }
    let _ = writeln!(
        out,
        "{} role combination{} and {} resource{} on one side only; {} attribute{} differ{}",
        p.roles_only.len(),
        if p.roles_only.len() == 1 { "" } else { "s" },
        p.resources_only.len(),
        if p.resources_only.len() == 1 { "" } else { "s" },
        p.attributes.len(),
        if p.attributes.len() == 1 { "" } else { "s" },
        if p.attributes.len() == 1 { "s" } else { "" },
    );
    out
}
