//! `tend parity A B` (SPEC §7): what differs between two environments.
//!
//! Host entries are paired by the roles they list. For each pair the
//! catalogs are compiled under one neutral host name (so host names, which
//! are meant to differ, do not), and compared: a role combination or a
//! resource one side lacks is a break of parity; an attribute that differs
//! is named with the vars that cause it — found by compiling the first
//! side again with each differing var set to the other side's value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::catalog::{self, Catalog, Target};
use crate::facts::Facts;
use crate::manifest::Repo;
use crate::manifest::diagnostic::{Diagnostic, Location};
use crate::manifest::node::Pos;
use crate::resource::{Desired, Resource};

/// A role combination (the roles of a host entry) only one side has.
#[derive(Debug, Serialize)]
pub struct RolesOnly {
    pub environment: String,
    pub roles: Vec<String>,
    pub host_entry: String,
    pub at: String,
}

/// A resource only one side's hosts of a role combination get.
#[derive(Debug, Serialize)]
pub struct ResourceOnly {
    pub environment: String,
    pub roles: Vec<String>,
    pub id: String,
    pub declared_at: String,
}

/// A resource only one side has, because a flag gates it.
#[derive(Debug, Serialize)]
pub struct Flagged {
    pub environment: String,
    pub roles: Vec<String>,
    pub id: String,
}

/// A var's value on one side, and where it is set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setting {
    pub value: Json,
    pub at: String,
}

/// A var that differs and changes the attribute.
#[derive(Debug, Serialize)]
pub struct Cause {
    pub var: String,
    pub a: Option<Setting>,
    pub b: Option<Setting>,
}

#[derive(Debug, Serialize)]
pub struct AttributeDiff {
    pub roles: Vec<String>,
    /// The host entries compared, one of each side.
    pub entries: (String, String),
    pub id: String,
    pub attribute: String,
    pub a: Json,
    pub b: Json,
    pub causes: Vec<Cause>,
}

#[derive(Debug, Serialize)]
pub struct Parity {
    pub a: String,
    pub b: String,
    pub roles_only: Vec<RolesOnly>,
    pub resources_only: Vec<ResourceOnly>,
    pub attributes: Vec<AttributeDiff>,
    /// Resources one side has because of its flags (`when: { flag }`).
    pub flagged: Vec<Flagged>,
    /// Flags whose values differ: name, value on each side.
    pub flags: Vec<(String, Option<String>, Option<String>)>,
    /// The environments' rollout policies, when they differ (a declared
    /// knob, not a break of parity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<(
        Option<crate::rollout::Policy>,
        Option<crate::rollout::Policy>,
    )>,
}

impl Parity {
    /// A role or resource is missing on one side (values from vars are
    /// what environments are for).
    pub fn broken(&self) -> bool {
        !self.roles_only.is_empty() || !self.resources_only.is_empty()
    }
}

/// One host entry: its roles (sorted, the pairing key), pattern, where.
struct Entry {
    roles: Vec<String>,
    pattern: String,
    at: Location,
}

fn entries(repo: &Repo, env: &str) -> Vec<Entry> {
    repo.environments
        .iter()
        .filter(|e| e.name == env)
        .flat_map(|e| &e.hosts)
        .map(|h| {
            let mut roles: Vec<String> = h.roles.iter().map(|(r, _)| r.clone()).collect();
            roles.sort();
            roles.dedup();
            Entry {
                roles,
                pattern: h.pattern.clone(),
                at: h.location.clone(),
            }
        })
        .collect()
}

/// Every var a host entry's templates see, with where its value is set:
/// role defaults < environment < host entry; and `env` itself.
fn settings(repo: &mut Repo, env: &str, pattern: &str) -> BTreeMap<String, Setting> {
    let mut out = BTreeMap::new();
    let Some(environment) = repo.environments.iter().find(|e| e.name == env) else {
        return out;
    };
    let Some(entry) = environment.hosts.iter().find(|h| h.pattern == pattern) else {
        return out;
    };
    let here =
        |file: &std::sync::Arc<std::path::Path>, pos: Pos| Location::new(file, pos).to_string();
    let env_vars: Vec<(String, Setting)> = environment
        .vars
        .iter()
        .map(|(k, v)| {
            (
                k.name.clone(),
                Setting {
                    value: v.to_json(),
                    at: here(&environment.file, v.pos),
                },
            )
        })
        .collect();
    let host_vars: Vec<(String, Setting)> = entry
        .vars
        .iter()
        .map(|(k, v)| {
            (
                k.name.clone(),
                Setting {
                    value: v.to_json(),
                    at: here(&environment.file, v.pos),
                },
            )
        })
        .collect();
    out.insert(
        "env".to_owned(),
        Setting {
            value: Json::String(env.to_owned()),
            at: environment.declared_at.to_string(),
        },
    );
    let roots = entry.roles.clone();
    if let Ok(roles) = repo.resolve_roles(&roots) {
        for role in roles {
            for (k, v) in &role.vars {
                out.insert(
                    k.name.clone(),
                    Setting {
                        value: v.to_json(),
                        at: here(&role.file, v.pos),
                    },
                );
            }
        }
    }
    out.extend(env_vars);
    out.extend(host_vars);
    out
}

fn compile(
    repo: &mut Repo,
    env: &str,
    pattern: &str,
    facts: &Facts,
    overrides: &Map<String, Json>,
    all_flags_on: bool,
) -> Result<Catalog, Vec<Diagnostic>> {
    let target = Target {
        environment: Some(env),
        host: pattern,
        facts,
        secrets: crate::catalog::Secrets::Placeholder,
        all_flags_on,
    };
    catalog::compile_with(repo, &target, overrides)
}

/// A resource's attributes as they are compared: its declaration as JSON
/// (without the role that declared it) and a file's content.
fn attributes(r: &Resource) -> BTreeMap<String, Json> {
    let mut map: BTreeMap<String, Json> = match serde_json::to_value(r) {
        Ok(Json::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    map.remove("role");
    if let Desired::File(f) = &r.desired
        && let Some(content) = &f.content
    {
        let shown = if r.sensitive {
            format!("(sensitive, {} bytes)", content.len())
        } else {
            String::from_utf8(content.clone())
                .unwrap_or_else(|_| format!("({} bytes)", content.len()))
        };
        map.insert("content".into(), Json::String(shown));
    }
    map
}

fn by_id(c: &Catalog) -> BTreeMap<String, BTreeMap<String, Json>> {
    c.resources
        .iter()
        .map(|r| (r.id.to_string(), attributes(r)))
        .collect()
}

pub fn parity(repo: &mut Repo, a: &str, b: &str) -> Result<Parity, Vec<Diagnostic>> {
    if !repo.diagnostics.is_empty() {
        return Err(std::mem::take(&mut repo.diagnostics));
    }
    for name in [a, b] {
        if !repo.environments.iter().any(|e| e.name == name) {
            let manifests: std::sync::Arc<std::path::Path> =
                std::sync::Arc::from(std::path::Path::new("manifests"));
            let names: Vec<&str> = repo.environments.iter().map(|e| e.name.as_str()).collect();
            return Err(vec![
                Diagnostic::new(
                    Location::new(&manifests, Pos::default()),
                    format!("no environment named `{name}`"),
                )
                .hint(format!("environments: {}", names.join(", "))),
            ]);
        }
    }
    let (ea, eb) = (entries(repo, a), entries(repo, b));
    let combos = |es: &[Entry]| es.iter().map(|e| e.roles.clone()).collect::<BTreeSet<_>>();
    let (ca, cb) = (combos(&ea), combos(&eb));
    let mut out = Parity {
        a: a.to_owned(),
        b: b.to_owned(),
        roles_only: Vec::new(),
        resources_only: Vec::new(),
        attributes: Vec::new(),
        flagged: Vec::new(),
        flags: Vec::new(),
        rollout: None,
    };
    let flags_of = |name: &str| -> BTreeMap<String, String> {
        repo.environments
            .iter()
            .filter(|e| e.name == name)
            .flat_map(|e| &e.flags)
            .map(|(n, v, at)| (n.clone(), format!("{v} ({at})")))
            .collect()
    };
    let (fa, fb) = (flags_of(a), flags_of(b));
    for name in fa.keys().chain(fb.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (fa.get(name), fb.get(name));
        let value =
            |s: Option<&String>| s.map(|s| s.split(" (").next().unwrap_or_default().to_owned());
        if value(x) != value(y) {
            out.flags.push((name.clone(), x.cloned(), y.cloned()));
        }
    }
    let policy = |name: &str| {
        repo.environments
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.rollout.as_ref().map(|(p, _)| p.clone()))
    };
    let (pa, pb) = (policy(a), policy(b));
    if pa != pb {
        out.rollout = Some((pa, pb));
    }
    for (env, mine, theirs, others) in [(a, &ea, &cb, b), (b, &eb, &ca, a)] {
        let _ = others;
        let mut told = BTreeSet::new();
        for e in mine.iter().filter(|e| !theirs.contains(&e.roles)) {
            if told.insert(e.roles.clone()) {
                out.roles_only.push(RolesOnly {
                    environment: env.to_owned(),
                    roles: e.roles.clone(),
                    host_entry: e.pattern.clone(),
                    at: e.at.to_string(),
                });
            }
        }
    }
    // One neutral name on both sides: host names are meant to differ.
    let facts = Facts::gather("parity-host");
    let none = Map::new();
    // Entries of one role combination are paired in order (the first of
    // each side, the second, …); a side with fewer pairs its last again.
    let mut pairs: Vec<(Vec<String>, String, String)> = Vec::new();
    for roles in ca.intersection(&cb) {
        let side = |es: &[Entry]| -> Vec<String> {
            es.iter()
                .filter(|e| &e.roles == roles)
                .map(|e| e.pattern.clone())
                .collect()
        };
        let (la, lb) = (side(&ea), side(&eb));
        for i in 0..la.len().max(lb.len()) {
            let pick = |l: &[String]| l[i.min(l.len() - 1)].clone();
            pairs.push((roles.clone(), pick(&la), pick(&lb)));
        }
    }
    let mut told: BTreeSet<(String, String)> = BTreeSet::new();
    for (roles, pa, pb) in &pairs {
        let (roles, pa, pb) = (roles, pa.as_str(), pb.as_str());
        let cat_a = compile(repo, a, pa, &facts, &none, false)?;
        let cat_b = compile(repo, b, pb, &facts, &none, false)?;
        let (ra, rb) = (by_id(&cat_a), by_id(&cat_b));
        // With every flag on: a resource both sides then have is kept
        // apart by flags only, a knob like a var.
        let all_a = by_id(&compile(repo, a, pa, &facts, &none, true)?);
        let all_b = by_id(&compile(repo, b, pb, &facts, &none, true)?);
        for (env, mine, theirs, cat) in [(a, &ra, &rb, &cat_a), (b, &rb, &ra, &cat_b)] {
            for id in mine.keys().filter(|id| !theirs.contains_key(*id)) {
                // Told once, whichever pair found it.
                if !told.insert((env.to_owned(), id.clone())) {
                    continue;
                }
                if all_a.contains_key(id) && all_b.contains_key(id) {
                    out.flagged.push(Flagged {
                        environment: env.to_owned(),
                        roles: roles.clone(),
                        id: id.clone(),
                    });
                    continue;
                }
                let declared_at = cat
                    .resources
                    .iter()
                    .find(|r| &r.id.to_string() == id)
                    .map(|r| r.origin.to_string())
                    .unwrap_or_default();
                out.resources_only.push(ResourceOnly {
                    environment: env.to_owned(),
                    roles: roles.clone(),
                    id: id.clone(),
                    declared_at,
                });
            }
        }
        let (sa, sb) = (settings(repo, a, pa), settings(repo, b, pb));
        let differing: Vec<String> = sa
            .keys()
            .chain(sb.keys())
            .filter(|k| sa.get(*k).map(|s| &s.value) != sb.get(*k).map(|s| &s.value))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Which resources each differing var moves.
        let mut moved: BTreeMap<&str, BTreeMap<String, BTreeMap<String, Json>>> = BTreeMap::new();
        for var in &differing {
            let Some(theirs) = sb.get(var) else { continue };
            let mut one = Map::new();
            one.insert(var.clone(), theirs.value.clone());
            if let Ok(c) = compile(repo, a, pa, &facts, &one, false) {
                moved.insert(var, by_id(&c));
            }
        }
        for (id, xa) in &ra {
            let Some(xb) = rb.get(id) else { continue };
            let keys: BTreeSet<&String> = xa.keys().chain(xb.keys()).collect();
            for key in keys {
                let (va, vb) = (
                    xa.get(key).cloned().unwrap_or(Json::Null),
                    xb.get(key).cloned().unwrap_or(Json::Null),
                );
                if va == vb {
                    continue;
                }
                let causes = differing
                    .iter()
                    .filter(|var| {
                        moved
                            .get(var.as_str())
                            .and_then(|m| m.get(id))
                            .and_then(|attrs| attrs.get(key))
                            .is_some_and(|v| *v != va)
                    })
                    .map(|var| Cause {
                        var: var.clone(),
                        a: sa.get(var).cloned(),
                        b: sb.get(var).cloned(),
                    })
                    .collect();
                out.attributes.push(AttributeDiff {
                    roles: roles.clone(),
                    entries: (pa.to_owned(), pb.to_owned()),
                    id: id.clone(),
                    attribute: key.clone(),
                    a: va,
                    b: vb,
                    causes,
                });
            }
        }
    }
    Ok(out)
}
