//! Environment files: `manifests/<env>.yaml`, mapping host names to roles.

use std::path::Path;
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Location};
use super::node::{Key, Node};
use super::schema::Checker;

#[derive(Debug)]
pub struct Environment {
    pub name: String,
    pub file: Arc<Path>,
    pub vars: Vec<(Key, Node)>,
    pub hosts: Vec<HostEntry>,
}

/// One entry of `hosts:`: a glob on the host name, its roles and vars.
#[derive(Debug)]
pub struct HostEntry {
    pub pattern: String,
    pub glob: glob::Pattern,
    pub location: Location,
    pub roles: Vec<(String, Location)>,
    pub vars: Vec<(Key, Node)>,
}

impl HostEntry {
    pub fn matches(&self, host: &str) -> bool {
        self.glob.matches(host)
    }

    /// Whether the pattern names one host rather than a set of them.
    pub fn is_literal(&self) -> bool {
        !self.pattern.contains(['*', '?', '['])
    }
}

const ENV_KEYS: &[&str] = &["environment", "vars", "hosts"];
const HOST_KEYS: &[&str] = &["match", "roles", "vars"];

pub fn read(name: &str, root: &Node, checker: &mut Checker) -> Environment {
    let mut env = Environment {
        name: name.to_owned(),
        file: Arc::clone(checker.file),
        vars: Vec::new(),
        hosts: Vec::new(),
    };
    let Some(entries) = checker.map(root, "an environment file", None) else {
        return env;
    };
    checker.unknown_keys(entries, ENV_KEYS, "an environment file");
    for (key, value) in entries {
        match key.name.as_str() {
            "environment" => {
                if let Some(declared) = checker.string(key, value)
                    && declared != name
                {
                    checker.push(
                        Diagnostic::new(
                            checker.at(value.pos),
                            format!("this file declares environment `{declared}` but is named `{name}.yaml`"),
                        )
                        .key("environment")
                        .hint(format!("rename the file to `{declared}.yaml` or write `environment: {name}`")),
                    );
                }
            }
            "vars" => {
                if let Some(vars) = checker.map(value, "`vars`", Some("vars")) {
                    env.vars = super::role::check_var_names(vars, checker);
                }
            }
            "hosts" => {
                let Some(items) = value.as_seq() else {
                    checker.push(
                        Diagnostic::new(
                            checker.at(value.pos),
                            format!("`hosts` must be a list, found {}", value.value.kind()),
                        )
                        .key("hosts")
                        .hint("write entries like `- match: \"web-*\"` with `roles: [web]`"),
                    );
                    continue;
                };
                for item in items {
                    if let Some(entry) = read_host(item, checker) {
                        env.hosts.push(entry);
                    }
                }
            }
            _ => {}
        }
    }
    if root.get("environment").is_none() {
        checker.push(
            Diagnostic::new(
                checker.at(root.pos),
                "an environment file must say `environment: <name>`",
            )
            .key("environment")
            .hint(format!("add `environment: {name}` at the top")),
        );
    }
    env
}

fn read_host(item: &Node, checker: &mut Checker) -> Option<HostEntry> {
    let entries = checker.map(item, "a host entry", None)?;
    checker.unknown_keys(entries, HOST_KEYS, "a host entry");
    let mut pattern = None;
    let mut roles = Vec::new();
    let mut vars = Vec::new();
    for (key, value) in entries {
        match key.name.as_str() {
            "match" => {
                if let Some(text) = checker.string(key, value) {
                    match glob::Pattern::new(&text) {
                        Ok(glob) => pattern = Some((text, glob, checker.at(value.pos))),
                        Err(e) => checker.push(
                            Diagnostic::new(
                                checker.at(value.pos),
                                format!("`{text}` is not a valid glob: {e}"),
                            )
                            .key("match")
                            .hint("use `*`, `?` and `[...]`, e.g. \"web-*.prod.example.com\""),
                        ),
                    }
                }
            }
            "roles" => roles = checker.string_list(key, value).unwrap_or_default(),
            "vars" => {
                if let Some(v) = checker.map(value, "`vars`", Some("vars")) {
                    vars = super::role::check_var_names(v, checker);
                }
            }
            _ => {}
        }
    }
    let Some((pattern, glob, location)) = pattern else {
        if item.get("match").is_none() {
            checker.push(
                Diagnostic::new(checker.at(item.pos), "a host entry needs `match:`")
                    .key("match")
                    .hint("add e.g. `match: \"web-*.example.com\"`"),
            );
        }
        return None;
    };
    Some(HostEntry {
        pattern,
        glob,
        location,
        roles,
        vars,
    })
}
