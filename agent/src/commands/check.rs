//! `tend check`: validate every environment, host entry and role, and show
//! every problem at once.

use std::path::{Path, PathBuf};

use crate::catalog::{self, Target};
use crate::facts::Facts;
use crate::manifest::diagnostic::Diagnostic;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = ".")]
    repo: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match check(&args.repo)? {
        Ok(s) => {
            println!(
                "ok: {} environments, {} host entries, {} roles checked",
                s.environments, s.host_entries, s.roles
            );
            Ok(0)
        }
        Err((repo, problems)) => {
            super::print_diagnostics(&repo, &problems);
            Ok(super::EXIT_ERROR)
        }
    }
}

pub struct Summary {
    pub environments: usize,
    pub host_entries: usize,
    pub roles: usize,
}

/// Checks the repository; `Err` holds every problem, sorted by place.
fn check(root: &Path) -> anyhow::Result<Result<Summary, (crate::manifest::Repo, Vec<Diagnostic>)>> {
    let mut repo = super::open_repo(root)?;
    let mut problems: Vec<Diagnostic> = std::mem::take(&mut repo.diagnostics);
    let machine = Facts::gather(&crate::facts::hostname());
    let mut entries = Vec::new();
    for env in &repo.environments {
        for entry in &env.hosts {
            entries.push((env.name.clone(), entry.pattern.clone()));
        }
    }
    // Literal host names must belong to one environment only.
    for env in &repo.environments {
        for entry in env.hosts.iter().filter(|h| h.is_literal()) {
            for other in repo.environments.iter().filter(|e| e.name != env.name) {
                if let Some(o) = other.hosts.iter().find(|h| h.matches(&entry.pattern)) {
                    problems.push(
                        Diagnostic::new(
                            entry.location.clone(),
                            format!(
                                "host `{}` is matched by two environments, `{}` and `{}`",
                                entry.pattern, env.name, other.name
                            ),
                        )
                        .key("match")
                        .related(
                            o.location.clone(),
                            format!("also matched by `{}`", o.pattern),
                        )
                        .hint("a host belongs to exactly one environment; make the globs disjoint"),
                    );
                }
            }
        }
    }
    for (env, pattern) in &entries {
        // Templates see this machine's facts, with the entry's pattern as
        // the host name: enough to find undefined variables.
        let facts = machine.renamed(pattern);
        let target = Target {
            environment: Some(env),
            host: pattern,
            facts: &facts,
            secrets: crate::catalog::Secrets::Placeholder,
            all_flags_on: false,
        };
        if let Err(mut found) = catalog::compile(&mut repo, &target) {
            problems.append(&mut found);
        }
        problems.append(&mut repo.diagnostics);
    }
    // Roles no environment uses are still checked for structure.
    let role_names = repo.role_names();
    for name in &role_names {
        repo.role(name)?;
    }
    problems.append(&mut repo.diagnostics);
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        Ok(Ok(Summary {
            environments: repo.environments.len(),
            host_entries: entries.len(),
            roles: role_names.len(),
        }))
    } else {
        Ok(Err((repo, problems)))
    }
}
