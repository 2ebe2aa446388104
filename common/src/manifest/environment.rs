//! Environment files: `manifests/<env>.yaml`, mapping host names to roles.

use std::path::Path;
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Location};
use super::node::{Key, Node, Value};
use super::schema::Checker;
use crate::flags::FlagValue;
use crate::rollout::{DEFAULT_DEADLINE_S, HaltOn, OnHalt, Policy, Wave};

#[derive(Debug)]
pub struct Environment {
    pub name: String,
    pub file: Arc<Path>,
    pub vars: Vec<(Key, Node)>,
    pub hosts: Vec<HostEntry>,
    /// `flags:` the resources' `when: { flag: NAME }` refer to.
    pub flags: Vec<(String, FlagValue, Location)>,
    /// Where `environment:` names it.
    pub declared_at: Location,
    /// How a new commit reaches the hosts (`rollout:`), and where it is
    /// declared; none: every host applies it at once.
    pub rollout: Option<(Policy, Location)>,
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

pub(crate) const ENV_KEYS: &[&str] = &["environment", "vars", "hosts", "rollout", "flags"];
pub(crate) const ROLLOUT_KEYS: &[&str] =
    &["canary", "waves", "soak", "deadline", "halt_on", "on_halt"];
pub(crate) const HALT_KEYS: &[&str] = &["failed", "drift_after_apply"];
pub(crate) const HOST_KEYS: &[&str] = &["match", "roles", "vars"];

pub fn read(name: &str, root: &Node, checker: &mut Checker) -> Environment {
    let mut env = Environment {
        name: name.to_owned(),
        file: Arc::clone(checker.file),
        vars: Vec::new(),
        hosts: Vec::new(),
        flags: Vec::new(),
        declared_at: checker.at(root.pos),
        rollout: None,
    };
    let Some(entries) = checker.map(root, "an environment file", None) else {
        return env;
    };
    checker.unknown_keys(entries, ENV_KEYS, "an environment file");
    for (key, value) in entries {
        match key.name.as_str() {
            "environment" => {
                env.declared_at = checker.at(value.pos);
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
            "flags" => {
                if let Some(entries) = checker.map(value, "`flags`", Some("flags")) {
                    for (k, v) in entries {
                        match FlagValue::parse(&v.to_json()) {
                            Ok(flag) => env.flags.push((k.name.clone(), flag, checker.at(v.pos))),
                            Err(e) => checker.push(
                                Diagnostic::new(checker.at(v.pos), format!("flag `{}`: {e}", k.name))
                                    .key(k.name.clone())
                                    .hint("a flag is true, false, { percent: 10 } or { hosts: [\"web-3.*\"] }"),
                            ),
                        }
                    }
                }
            }
            "rollout" => {
                env.rollout = read_rollout(value, checker).map(|p| (p, checker.at(key.pos)));
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

/// `rollout:`: canary globs, waves, soak and halt_on, each checked where
/// it is written.
fn read_rollout(node: &Node, checker: &mut Checker) -> Option<Policy> {
    let entries = checker.map(node, "`rollout`", Some("rollout"))?;
    checker.unknown_keys(entries, ROLLOUT_KEYS, "`rollout`");
    let errors = checker.errors.len();
    let mut policy = Policy {
        canary: Vec::new(),
        waves: vec![Wave::Percent(100.0)],
        soak_s: 0,
        deadline_s: DEFAULT_DEADLINE_S,
        halt_on: HaltOn::default(),
        on_halt: OnHalt::Hold,
    };
    for (key, value) in entries {
        match key.name.as_str() {
            "canary" => {
                for (glob, at) in checker.string_list(key, value).unwrap_or_default() {
                    match glob::Pattern::new(&glob) {
                        Ok(_) => policy.canary.push(glob),
                        Err(e) => checker.push(
                            Diagnostic::new(at, format!("`{glob}` is not a valid glob: {e}"))
                                .key("canary")
                                .hint(
                                    "name canary hosts or globs, e.g. [\"web-1.prod.example.com\"]",
                                ),
                        ),
                    }
                }
            }
            "waves" => {
                let Some(items) = value.as_seq().filter(|i| !i.is_empty()) else {
                    checker.push(
                        Diagnostic::new(
                            checker.at(value.pos),
                            format!(
                                "`waves` must be a non-empty list, found {}",
                                value.value.kind()
                            ),
                        )
                        .key("waves")
                        .hint("write e.g. waves: [\"10%\", \"50%\", \"100%\"]"),
                    );
                    continue;
                };
                policy.waves.clear();
                for item in items {
                    let text = match &item.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(n) => n.to_string(),
                        other => other.kind().to_owned(),
                    };
                    match text.parse::<Wave>() {
                        Ok(wave) => policy.waves.push(wave),
                        Err(e) => checker.push(
                            Diagnostic::new(checker.at(item.pos), e)
                                .key("waves")
                                .hint("each wave is a share of the hosts (\"25%\") or a number of hosts (5)"),
                        ),
                    }
                }
                if let (Some(last), Some(item)) = (policy.waves.last(), items.last())
                    && *last != Wave::Percent(100.0)
                {
                    checker.push(
                        Diagnostic::new(
                            checker.at(item.pos),
                            format!(
                                "the last wave is `{last}`, so some hosts would never get a commit"
                            ),
                        )
                        .key("waves")
                        .hint("end the list with \"100%\""),
                    );
                }
            }
            "soak" => {
                if let Some(d) = duration(key.name.as_str(), value, checker, "soak: 10m (or 30s, 1h)") {
                    policy.soak_s = d;
                }
            }
            "deadline" => {
                match duration(key.name.as_str(), value, checker, "deadline: 30m") {
                    Some(0) => checker.push(
                        Diagnostic::new(checker.at(value.pos), "`deadline` cannot be 0: every admitted host would fail at once")
                            .key("deadline")
                            .hint("give an admitted host at least one interval to report, e.g. deadline: 30m"),
                    ),
                    Some(d) => policy.deadline_s = d,
                    None => {}
                }
            }
            "on_halt" => match &value.value {
                Value::Str(s) if s == "hold" => policy.on_halt = OnHalt::Hold,
                Value::Str(s) if s == "rollback" => policy.on_halt = OnHalt::Rollback,
                other => checker.push(
                    Diagnostic::new(
                        checker.at(value.pos),
                        match other {
                            Value::Str(s) => format!("`on_halt` cannot be `{s}`"),
                            other => format!("`on_halt` must be `hold` or `rollback`, found {}", other.kind()),
                        },
                    )
                    .key("on_halt")
                    .hint("hold keeps a halted commit where it is; rollback returns its hosts to the last commit that rolled out"),
                ),
            },
            "halt_on" => {
                let Some(halt) = checker.map(value, "`halt_on`", Some("halt_on")) else {
                    continue;
                };
                checker.unknown_keys(halt, HALT_KEYS, "`halt_on`");
                for (k, v) in halt {
                    let n = match v.value {
                        Value::Int(n) => u32::try_from(n).ok(),
                        _ => None,
                    };
                    let Some(n) = n else {
                        checker.push(
                            Diagnostic::new(
                                checker.at(v.pos),
                                match v.value {
                                    Value::Int(n) => format!(
                                        "`{}` cannot be {n}: it is a number of hosts, 0 or more",
                                        k.name
                                    ),
                                    _ => format!(
                                        "`{}` must be a number of hosts, found {}",
                                        k.name,
                                        v.value.kind()
                                    ),
                                },
                            )
                            .key(k.name.clone())
                            .hint("halt when this many admitted hosts meet it; 0 turns it off"),
                        );
                        continue;
                    };
                    match k.name.as_str() {
                        "failed" => policy.halt_on.failed = n,
                        "drift_after_apply" => policy.halt_on.drift_after_apply = n,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (checker.errors.len() == errors).then_some(policy)
}

/// A duration key of `rollout:` in seconds (a bare number is seconds).
fn duration(name: &str, value: &Node, checker: &mut Checker, example: &str) -> Option<u64> {
    let text = match &value.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(n) if *n >= 0 => Some(format!("{n}s")),
        _ => None,
    };
    match text.as_deref().map(humantime::parse_duration) {
        Some(Ok(d)) => Some(d.as_secs()),
        _ => {
            checker.push(
                Diagnostic::new(
                    checker.at(value.pos),
                    match &text {
                        Some(t) => format!("`{name}` cannot be `{t}`: it is not a duration"),
                        None => {
                            format!("`{name}` must be a duration, found {}", value.value.kind())
                        }
                    },
                )
                .key(name.to_owned())
                .hint(format!("write e.g. {example}")),
            );
            None
        }
    }
}
