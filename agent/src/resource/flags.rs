//! `flags`: a JSON file of booleans, each flag of `values` resolved for
//! this host (SPEC §2). It is a file to the engine: written atomically,
//! its changes shown as a diff.

use std::path::PathBuf;

use super::Desired;
use super::attrs::Attrs;
use super::file::FileSpec;
use crate::flags::FlagValue;
use crate::manifest::diagnostic::Diagnostic;

pub fn build(path: PathBuf, a: &mut Attrs) -> Option<Desired> {
    let host = a
        .renderer
        .data()
        .get("host")
        .and_then(|h| h.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned();
    let Some((_, values)) = a.decl.attr("values") else {
        a.error(
            "flags",
            "a flags file needs `values`",
            "add e.g. `values: { new_uploader: true, search_v2: { percent: 10 } }`",
        );
        return None;
    };
    let Some(entries) = values.as_map() else {
        a.error(
            "values",
            "`values` must be a mapping of flag names to values",
            "write `values: { name: true }`",
        );
        return None;
    };
    let mut resolved = serde_json::Map::new();
    let mut problems = Vec::new();
    for (key, node) in entries {
        match FlagValue::parse(&node.to_json()) {
            Ok(value) => {
                resolved.insert(
                    key.name.clone(),
                    serde_json::Value::Bool(value.on(&key.name, &host)),
                );
            }
            Err(e) => problems.push((a.at(node), key.name.clone(), e)),
        }
    }
    for (at, key, e) in problems {
        a.errors.push(
            Diagnostic::new(at, format!("flag `{key}`: {e}"))
                .key(key)
                .hint("a flag is true, false, { percent: 10 } or { hosts: [\"web-3.*\"] }"),
        );
    }
    let mut content = serde_json::to_string_pretty(&resolved).expect("JSON serialises");
    content.push('\n');
    Some(Desired::File(FileSpec {
        path,
        content: Some(content.into_bytes()),
        from: Some("flags".to_owned()),
        mode: a.mode("mode"),
        owner: a.string("owner"),
        group: a.string("group"),
    }))
}
