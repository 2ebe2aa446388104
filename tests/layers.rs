//! The architecture, checked: modules import only from the layers below
//! them, so the agent, the log server and rollouts can be added on top
//! without tying the core in a knot.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of agent/src and common/src (the crate both the
/// agent and the log build on; its modules are re-exported by the agent's
/// crate under the same names) and the modules it may import from.
/// From the bottom up: manifest (syntax, positions, schema) → template →
/// resource (typed desired state) → catalog (one host) → engine (plan and
/// apply) → commands; providers, the file writer and the state directory
/// are leaves the engine uses.
const ALLOWED: &[(&str, &[&str])] = &[
    ("rollout", &[]),
    ("flags", &[]),
    ("manifest", &["rollout", "flags"]),
    ("facts", &[]),
    ("fsutil", &[]),
    ("provider", &[]),
    ("source", &[]),
    ("template", &["manifest"]),
    ("resource", &["manifest", "template", "flags"]),
    (
        "catalog",
        &[
            "manifest", "template", "resource", "facts", "fsutil", "flags",
        ],
    ),
    ("report", &["source", "fsutil"]),
    ("state", &["fsutil", "resource"]),
    (
        "engine",
        &[
            "catalog", "resource", "report", "provider", "fsutil", "state",
        ],
    ),
    (
        "review",
        &[
            "manifest", "catalog", "resource", "facts", "source", "engine", "rollout",
        ],
    ),
    (
        "converge",
        &[
            "manifest", "catalog", "engine", "report", "state", "source", "facts", "fsutil",
        ],
    ),
    (
        "agent",
        &[
            "converge", "source", "report", "state", "fsutil", "facts", "manifest", "engine",
            "rollout",
        ],
    ),
];

/// The log crate (log/src) from the bottom up: the SQL both stores
/// speak and the clock → the records kept in it (tokens, rollouts, the
/// hourly tally) → the store → what is read from the source (mirror,
/// change) and from the runs (effect, metrics) → pages and the HTTP
/// server → commands. The shared crate's modules (report, rollout,
/// source, manifest, hex) may be used anywhere.
const SHARED: &[&str] = &["report", "rollout", "source", "manifest", "hex"];
const LOG_ALLOWED: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("sql", &[]),
    ("parked", &[]),
    ("listen", &["parked"]),
    ("pg_tls", &[]),
    ("settings", &[]),
    ("watches", &["identity"]),
    ("identity", &["clock", "sql", "new_token", "token_hash"]),
    ("hourly", &["sql"]),
    ("rollouts", &["clock", "sql"]),
    ("store", &["clock", "sql", "rollouts"]),
    ("sqlite", &["clock", "sql", "rollouts", "store", "hourly"]),
    (
        "postgres",
        &["clock", "sql", "rollouts", "store", "hourly", "pg_tls"],
    ),
    ("notify", &["rollouts"]),
    ("change", &[]),
    ("mirror", &["change", "rollouts", "now_unix"]),
    ("fanout", &["mirror", "store", "watches"]),
    ("effect", &["store"]),
    ("metrics", &[]),
    (
        "dashboard",
        &[
            "clock", "change", "effect", "hourly", "rollouts", "store", "ago", "now_unix",
        ],
    ),
    (
        "http",
        &[
            "clock",
            "watches",
            "fanout",
            "parked",
            "dashboard",
            "effect",
            "hourly",
            "identity",
            "listen",
            "metrics",
            "mirror",
            "notify",
            "rollouts",
            "sql",
            "store",
            "ServeOptions",
            "now_unix",
        ],
    ),
];

fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// What a file names with `crate::X` (and, for a file at the top of its
/// crate, `super::X`, the same thing).
fn imports(text: &str, top_level: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut uses: Vec<(usize, usize)> = text
        .match_indices("crate::")
        .map(|(i, m)| (i, m.len()))
        .collect();
    if top_level {
        uses.extend(
            text.match_indices("super::")
                .filter(|(i, _)| !text[*i..].starts_with("super::*"))
                .map(|(i, m)| (i, m.len())),
        );
    }
    for (i, len) in uses {
        let rest = &text[i + len..];
        // Doc links are not imports.
        let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
        if text[line_start..i].trim_start().starts_with("//") {
            continue;
        }
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        match rest.strip_prefix('{') {
            // `use crate::{a, b::c}`
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(group.split(',').map(ident).filter(|n| !n.is_empty()));
            }
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn check_layers(src: &Path, allowed_table: &[(&str, &[&str])], shared: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    walk(src, &mut files);
    assert!(!files.is_empty(), "no sources in {}", src.display());
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let module = module_of(rel);
        let Some((_, allowed)) = allowed_table.iter().find(|(m, _)| *m == module) else {
            // commands, lib.rs and main.rs sit on top.
            continue;
        };
        // Tests inside a file may use the modules its tests need.
        let text = fs_err::read_to_string(file).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        for used in imports(text, rel.components().count() == 1) {
            if used != module
                && !allowed.contains(&used.as_str())
                && !shared.contains(&used.as_str())
            {
                wrong.push(format!("{} uses crate::{used}", src.join(rel).display()));
            }
        }
    }
    wrong
}

#[test]
fn modules_import_only_from_layers_below() {
    let root = Path::new(crate::support::project());
    let mut wrong = check_layers(&root.join("agent/src"), ALLOWED, &[]);
    wrong.extend(check_layers(&root.join("common/src"), ALLOWED, &[]));
    wrong.extend(check_layers(&root.join("log/src"), LOG_ALLOWED, SHARED));
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

/// The crates one package links (its normal dependencies, transitively),
/// as `cargo tree` resolves them from Cargo.lock.
fn linked(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(crate::support::project())
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_host_links_no_server_and_the_server_no_engine() {
    let host = linked("tend");
    assert!(
        host.contains("tend-common") && host.contains("ureq"),
        "{host:?}"
    );
    for server_side in [
        "tokio",
        "axum",
        "hyper",
        "rusqlite",
        "libsqlite3-sys",
        "postgres",
        "tend-log",
    ] {
        assert!(
            !host.contains(server_side),
            "the host binary links {server_side}"
        );
    }
    let log = linked("tend-log");
    assert!(
        log.contains("tend-common") && log.contains("axum"),
        "{log:?}"
    );
    for host_side in ["tend", "handlebars"] {
        assert!(!log.contains(host_side), "the log server links {host_side}");
    }
}
