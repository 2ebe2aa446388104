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
    // The log reads its own copy of the repository (the git runner) and
    // the environment files in it (a commit's rollout policy).
    (
        "log",
        &["report", "resource", "rollout", "source", "manifest"],
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

fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Doc links are not imports.
        let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
        if text[line_start..i].trim_start().starts_with("//") {
            continue;
        }
        out.insert(name);
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

#[test]
fn modules_import_only_from_layers_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for src in ["agent/src", "common/src"] {
        let mut found = Vec::new();
        walk(&root.join(src), &mut found);
        files.extend(found.into_iter().map(|f| (root.join(src), f)));
    }
    assert!(
        files
            .iter()
            .any(|(_, f)| f.ends_with("common/src/manifest/mod.rs"))
    );
    let mut wrong = Vec::new();
    for (src, file) in &files {
        let rel = file.strip_prefix(src).unwrap();
        let module = module_of(rel);
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == module) else {
            // commands, lib.rs and main.rs sit on top.
            continue;
        };
        for used in imports(&fs_err::read_to_string(file).unwrap()) {
            if used != module && !allowed.contains(&used.as_str()) {
                wrong.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}
