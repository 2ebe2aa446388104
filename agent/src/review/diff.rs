//! `tend diff REV_A REV_B`: both revisions are read straight from git's
//! objects (`git archive` of `manifests/` and `roles/` into a temporary
//! directory: the work tree is never touched), every host entry's catalog
//! is compiled at each (a glob entry once, under its glob; or the hosts
//! the central log knows, by name), and the catalogs are compared by
//! resource identity. The environments' rollout policies are compared too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::catalog::{self, Catalog, Target};
use crate::facts::Facts;
use crate::manifest::Repo;
use crate::resource::{Desired, Resource};
use crate::rollout::Policy;
use crate::source::{Revision, git};

/// One revision, read out of git.
pub struct Tree {
    pub revision: Revision,
    pub repo: Repo,
    _dir: tempfile::TempDir,
}

/// Reads `rev` of the repository at `repo_dir`.
pub fn tree(repo_dir: &Path, rev: &str) -> Result<Tree, String> {
    let revision = git::revision_of(repo_dir, &format!("{rev}^{{commit}}")).ok_or_else(|| {
        format!(
            "`{rev}` is not a commit of the repository at `{}`",
            repo_dir.display()
        )
    })?;
    let dir = tempfile::Builder::new()
        .prefix("tend-diff-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    // Only what manifests are made of; a path the commit lacks is skipped
    // (git archive refuses a pathspec that matches nothing).
    let listed = git::command(repo_dir)
        .args([
            "ls-tree",
            "--name-only",
            &revision.commit,
            "--",
            "manifests",
            "roles",
        ])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let present: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !present.iter().any(|p| p == "manifests") {
        return Err(format!(
            "commit {} has no `manifests/` folder",
            &revision.commit[..12.min(revision.commit.len())]
        ));
    }
    let paths: Vec<&str> = present.iter().map(String::as_str).collect();
    git::extract(repo_dir, &revision.commit, &paths, dir.path())
        .map_err(|e| format!("cannot read {rev}: {e}"))?;
    let repo = Repo::open(dir.path()).map_err(|e| e.to_string())?;
    Ok(Tree {
        revision,
        repo,
        _dir: dir,
    })
}

/// What changes for one resource.
#[derive(Debug, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Added {
        id: String,
        declared_at: String,
    },
    Removed {
        id: String,
    },
    Changed {
        id: String,
        declared_at: String,
        /// Attributes that differ: name, before, after (contents are in
        /// `diff`).
        attributes: Vec<(String, serde_json::Value, serde_json::Value)>,
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
    },
}

/// One host entry (or host) compared.
#[derive(Debug, Serialize)]
pub struct HostDiff {
    pub environment: String,
    /// A host name, or the glob of a host entry.
    pub host: String,
    /// Only in the second revision, or only in the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_in: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles_before: Vec<String>,
    pub roles: Vec<String>,
    pub changes: Vec<Change>,
}

/// An environment's rollout policy, before and after.
#[derive(Debug, Serialize)]
pub struct PolicyChange {
    pub environment: String,
    pub before: Option<Policy>,
    pub after: Option<Policy>,
}

#[derive(Debug, Serialize)]
pub struct Review {
    pub from: Revision,
    pub to: Revision,
    pub policies: Vec<PolicyChange>,
    /// Hosts with changes first; unchanged ones are counted.
    pub hosts: Vec<HostDiff>,
    pub unchanged: usize,
}

impl Review {
    pub fn changes_anything(&self) -> bool {
        !self.policies.is_empty() || !self.hosts.is_empty()
    }
}

/// Problems that stop a review: a revision that does not validate, its
/// errors rendered (file, line, column, the line itself, a hint).
pub struct Invalid {
    pub revision: Revision,
    pub errors: Vec<String>,
}

impl Invalid {
    fn of(tree: &Tree, problems: &[crate::manifest::diagnostic::Diagnostic]) -> Box<Invalid> {
        Box::new(Invalid {
            revision: tree.revision.clone(),
            errors: problems
                .iter()
                .map(|d| tree.repo.sources.render(d))
                .collect(),
        })
    }
}

/// Which hosts to compare.
pub enum Hosts {
    /// Every host entry of the environments (globs under their glob).
    Entries,
    /// These hosts, by name, each with its environment when known.
    Named(Vec<(Option<String>, String)>),
}

pub fn review(
    from: &mut Tree,
    to: &mut Tree,
    environment: Option<&str>,
    hosts: &Hosts,
) -> Result<Review, Box<Invalid>> {
    for tree in [&*from, &*to] {
        if !tree.repo.diagnostics.is_empty() {
            return Err(Invalid::of(tree, &tree.repo.diagnostics));
        }
    }
    let wanted = |name: &str| environment.is_none_or(|e| e == name);
    let env_names: BTreeSet<String> = [&from.repo, &to.repo]
        .iter()
        .flat_map(|r| r.environments.iter().map(|e| e.name.clone()))
        .filter(|n| wanted(n))
        .collect();
    let mut policies = Vec::new();
    for name in &env_names {
        let policy = |repo: &Repo| {
            repo.environments
                .iter()
                .find(|e| &e.name == name)
                .and_then(|e| e.rollout.as_ref().map(|(p, _)| p.clone()))
        };
        let (before, after) = (policy(&from.repo), policy(&to.repo));
        if before != after {
            policies.push(PolicyChange {
                environment: name.clone(),
                before,
                after,
            });
        }
    }
    // (environment, host) pairs to compare.
    let mut targets: Vec<(String, String)> = Vec::new();
    match hosts {
        Hosts::Entries => {
            for name in &env_names {
                let mut seen = BTreeSet::new();
                for repo in [&from.repo, &to.repo] {
                    for env in repo.environments.iter().filter(|e| &e.name == name) {
                        for entry in &env.hosts {
                            if seen.insert(entry.pattern.clone()) {
                                targets.push((name.clone(), entry.pattern.clone()));
                            }
                        }
                    }
                }
            }
        }
        Hosts::Named(named) => {
            for (env, host) in named {
                match env {
                    Some(e) if wanted(e) => targets.push((e.clone(), host.clone())),
                    Some(_) => {}
                    None => {
                        // The environment whose entries match it, at either side.
                        let found = [&to.repo, &from.repo].iter().find_map(|r| {
                            r.find_host(environment, host)
                                .ok()
                                .map(|(e, _)| e.name.clone())
                        });
                        if let Some(e) = found {
                            targets.push((e, host.clone()));
                        }
                    }
                }
            }
        }
    }
    let base = Facts::gather("tend-diff");
    let mut out = Vec::new();
    let mut unchanged = 0;
    for (env, host) in targets {
        let facts = base.renamed(&host);
        let compile = |tree: &mut Tree| -> Result<Option<Catalog>, Box<Invalid>> {
            let present = tree.repo.environments.iter().any(|e| {
                e.name == env
                    && e.hosts
                        .iter()
                        .any(|h| h.pattern == host || h.matches(&host))
            });
            if !present {
                return Ok(None);
            }
            let target = Target {
                environment: Some(&env),
                host: &host,
                facts: &facts,
                secrets: crate::catalog::Secrets::Placeholder,
                all_flags_on: false,
            };
            match catalog::compile(&mut tree.repo, &target) {
                Ok(c) => Ok(Some(c)),
                Err(problems) => Err(Invalid::of(tree, &problems)),
            }
        };
        let before = compile(from)?;
        let after = compile(to)?;
        let diff = compare(&env, &host, before.as_ref(), after.as_ref());
        if diff.changes.is_empty() && diff.only_in.is_none() {
            unchanged += 1;
        } else {
            out.push(diff);
        }
    }
    Ok(Review {
        from: from.revision.clone(),
        to: to.revision.clone(),
        policies,
        hosts: out,
        unchanged,
    })
}

/// Resources by identity, with their index in the catalog.
fn index(c: Option<&Catalog>) -> BTreeMap<String, (usize, &Resource)> {
    c.map(|c| {
        c.resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.to_string(), (i, r)))
            .collect()
    })
    .unwrap_or_default()
}

fn compare(env: &str, host: &str, before: Option<&Catalog>, after: Option<&Catalog>) -> HostDiff {
    let (old, new) = (index(before), index(after));
    let mut changes = Vec::new();
    for (id, (i, r)) in &new {
        match old.get(id) {
            None => changes.push(Change::Added {
                id: id.clone(),
                declared_at: r.origin.to_string(),
            }),
            Some((j, was)) => {
                let (a, b) = (before.expect("indexed"), after.expect("indexed"));
                if a.digests[*j] == b.digests[*i]
                    && was.require == r.require
                    && was.notify == r.notify
                    && was.before == r.before
                {
                    continue;
                }
                let (attributes, diff) = differences(was, r);
                if attributes.is_empty() && diff.is_none() {
                    continue;
                }
                changes.push(Change::Changed {
                    id: id.clone(),
                    declared_at: r.origin.to_string(),
                    attributes,
                    diff,
                });
            }
        }
    }
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        changes.push(Change::Removed { id: id.clone() });
    }
    HostDiff {
        environment: env.to_owned(),
        host: host.to_owned(),
        only_in: match (before, after) {
            (None, Some(_)) => Some("to"),
            (Some(_), None) => Some("from"),
            _ => None,
        },
        roles_before: match (before, after) {
            (Some(b), Some(a)) if b.roles != a.roles => b.roles.clone(),
            _ => Vec::new(),
        },
        roles: after
            .or(before)
            .map(|c| c.roles.clone())
            .unwrap_or_default(),
        changes,
    }
}

/// The attributes of two declarations of one resource that differ, and a
/// unified diff of a file's content (redacted when sensitive).
fn differences(
    old: &Resource,
    new: &Resource,
) -> (
    Vec<(String, serde_json::Value, serde_json::Value)>,
    Option<String>,
) {
    let fields = |r: &Resource| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(r) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (fields(old), fields(new));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let sensitive = old.sensitive || new.sensitive;
    let mut attributes = Vec::new();
    for key in keys {
        if key == "role" {
            continue;
        }
        let (x, y) = (
            a.get(key).cloned().unwrap_or(serde_json::Value::Null),
            b.get(key).cloned().unwrap_or(serde_json::Value::Null),
        );
        if x != y {
            let hide = |v: serde_json::Value| {
                if sensitive && key != "sensitive" {
                    serde_json::Value::String("(sensitive)".into())
                } else {
                    v
                }
            };
            attributes.push((key.clone(), hide(x), hide(y)));
        }
    }
    let diff = match (&old.desired, &new.desired) {
        (Desired::File(f), Desired::File(g)) if f.content != g.content => {
            let path = new
                .desired
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            Some(crate::engine::diff::unified(
                &path,
                f.content.as_deref().unwrap_or_default(),
                g.content.as_deref().unwrap_or_default(),
                sensitive,
            ))
        }
        _ => None,
    };
    (attributes, diff)
}
