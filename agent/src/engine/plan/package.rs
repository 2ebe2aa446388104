//! Planning `package` resources: compare with the host, return the operations.

use std::collections::HashMap;

use super::{Action, Missing, Op, Plan, PlanError, Planned};
use crate::provider::apt;
use crate::resource::package::{Ensure, PackageSpec};

/// What dpkg and apt say about the packages of a run, asked once.
#[derive(Debug, Default)]
pub struct Facts {
    pub installed: HashMap<String, String>,
    pub policy: HashMap<String, apt::Policy>,
}

impl Facts {
    /// One `dpkg-query` for all packages, and one `apt-cache policy` for
    /// those whose state depends on what apt could install.
    pub fn gather(specs: &[&PackageSpec], cache: apt::Cache) -> Result<Facts, String> {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let installed = apt::installed(&names)?;
        let ask: Vec<&str> = specs
            .iter()
            .filter(|s| match s.state {
                Ensure::Absent => false,
                Ensure::Latest => true,
                Ensure::Installed => match (&s.version, installed.get(&s.name)) {
                    (_, None) => true,
                    (Some(want), Some(have)) => want != have,
                    (None, Some(_)) => false,
                },
            })
            .map(|s| s.name.as_str())
            .collect();
        let mut policy = apt::policy(&ask, cache)?;
        // For what apt cannot install, its own explanation (rare: one more call).
        let stuck: Vec<&str> = ask
            .iter()
            .copied()
            .filter(|n| policy.get(*n).is_none_or(|p| p.candidate.is_none()))
            .collect();
        if !stuck.is_empty() {
            for (name, message) in apt::why_not_installable(&stuck)? {
                policy.entry(name).or_default().message = Some(message);
            }
        }
        Ok(Facts { installed, policy })
    }
}

pub fn plan(spec: &PackageSpec, facts: &Facts) -> Planned {
    let name = &spec.name;
    let have = facts.installed.get(name);
    let install = |spec_text: String, action: Action, changes: Vec<String>| {
        Ok(Some(Plan {
            action,
            changes,
            diff: None,
            ops: vec![Op::InstallPackage {
                name: name.clone(),
                spec: spec_text,
            }],
        }))
    };
    let no_candidate = || {
        let apt_says = facts
            .policy
            .get(name)
            .and_then(|p| p.message.as_deref())
            .unwrap_or("no version of it can be installed");
        PlanError::missing(
            Missing::Candidate(name.clone()),
            format!(
                "package `{name}` has no installation candidate: apt says \"{apt_says}\" (check the name, the apt sources, or run `apt-get update`)"
            ),
        )
    };
    match spec.state {
        Ensure::Absent => Ok(have.map(|version| Plan {
            action: Action::Remove,
            changes: vec![format!("version {version}")],
            diff: None,
            ops: vec![Op::RemovePackage { name: name.clone() }],
        })),
        Ensure::Installed => match (&spec.version, have) {
            (None, Some(_)) => Ok(None),
            (Some(want), Some(have)) if want == have => Ok(None),
            (want, have) => {
                let policy = facts.policy.get(name);
                let target = match want {
                    Some(want) => {
                        if !policy.is_some_and(|p| p.versions.iter().any(|v| v == want)) {
                            let known = policy.map(|p| p.versions.join(", ")).unwrap_or_default();
                            return Err(PlanError::missing(
                                Missing::Candidate(name.clone()),
                                format!(
                                    "package `{name}` has no version `{want}`{}",
                                    if known.is_empty() {
                                        String::new()
                                    } else {
                                        format!(" (apt knows: {known})")
                                    }
                                ),
                            ));
                        }
                        want.clone()
                    }
                    None => policy
                        .and_then(|p| p.candidate.clone())
                        .ok_or_else(no_candidate)?,
                };
                let spec_text = if want.is_some() {
                    format!("{name}={target}")
                } else {
                    name.clone()
                };
                match have {
                    None => install(spec_text, Action::Create, vec![format!("version {target}")]),
                    Some(have) => install(
                        spec_text,
                        Action::Change,
                        vec![format!("version {have} -> {target}")],
                    ),
                }
            }
        },
        Ensure::Latest => {
            let candidate = facts
                .policy
                .get(name)
                .and_then(|p| p.candidate.clone())
                .ok_or_else(no_candidate)?;
            match have {
                Some(have) if *have == candidate => Ok(None),
                Some(have) => install(
                    name.clone(),
                    Action::Change,
                    vec![format!("version {have} -> {candidate}")],
                ),
                None => install(
                    name.clone(),
                    Action::Create,
                    vec![format!("install {candidate}")],
                ),
            }
        }
    }
}
