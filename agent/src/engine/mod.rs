//! Converging a catalog: observe each resource in order, plan, and (in a
//! real run) apply the plan. A failed resource fails itself and whatever
//! requires it; everything else still converges.

pub mod apply;
pub mod diff;
mod packages;
pub mod plan;

use std::collections::HashMap;
use std::time::Instant;

use crate::catalog::Catalog;
use crate::report::{Cause, ResourceReport, Status};
use crate::resource::{self, Desired};
use crate::state::Applied;
use apply::Executor;
use plan::{Observer, Op, Plan};

/// The outcome of one resource in a run.
pub struct Outcome {
    pub index: usize,
    pub report: ResourceReport,
    /// The desired digest, recorded as applied when the resource converged.
    pub digest: String,
}

/// Runs the catalog. With an executor the plan is applied; without one
/// (dry-run) nothing on the host is touched.
pub fn run(
    catalog: &Catalog,
    previous: &Applied,
    mut executor: Option<&mut Executor>,
) -> Vec<Outcome> {
    let dry_run = executor.is_none();
    let managed = std::sync::Arc::new(catalog.managed_paths());
    let mut observer = Observer::new(std::sync::Arc::clone(&managed));
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(4);
    // Path resources planned ahead in parallel, while nothing was applied.
    let mut ahead: HashMap<usize, Result<Option<Plan>, String>> = HashMap::new();
    let mut ahead_until = 0;
    let mut applied_any = false;
    let mut packages = packages::Packages::default();
    let mut status: Vec<Option<Status>> = vec![None; catalog.resources.len()];
    // Unit files written since systemd last re-read them.
    let mut units_changed = false;
    let mut outcomes = Vec::with_capacity(catalog.resources.len());
    for (position, &index) in catalog.order.iter().enumerate() {
        if !applied_any && workers > 1 && position >= ahead_until {
            ahead_until = (position + LOOKAHEAD).min(catalog.order.len());
            ahead.extend(plan_paths_ahead(
                catalog,
                &catalog.order[position..ahead_until],
                &managed,
                workers,
            ));
        }
        let resource = &catalog.resources[index];
        let started = Instant::now();
        let digest = resource.desired_digest();
        let mut report = ResourceReport::new(resource.id.to_string());
        let requires = &catalog.requires[index];
        if let Some(&dep) = requires
            .iter()
            .find(|&&d| status[d] == Some(Status::Failed))
        {
            report.status = Status::Failed;
            report.error = Some(format!(
                "not applied: it requires `{}`, which failed",
                catalog.resources[dep].id
            ));
        } else {
            let notified_by = catalog.notifiers[index]
                .iter()
                .find(|&&n| status[n].is_some_and(Status::is_change))
                .map(|&n| catalog.resources[n].id.to_string());
            let planned = match ahead.remove(&index) {
                Some(planned) if !applied_any => planned,
                _ => plan(
                    catalog,
                    index,
                    &mut observer,
                    &mut packages,
                    notified_by.as_deref(),
                ),
            };
            // A dry-run cannot see what an earlier change would make of the
            // host: say so instead of guessing. Packages and commands can
            // change anything; other changes matter where planning failed
            // (a missing parent, owner or unit) or an exec guard reads the host.
            let broad = |d: usize| {
                matches!(
                    catalog.resources[d].desired,
                    Desired::Package(_) | Desired::Exec(_)
                )
            };
            let pending = requires
                .iter()
                .copied()
                .filter(|&d| dry_run && status[d].is_some_and(Status::is_change))
                .min_by_key(|&d| !broad(d));
            let reads_changed_host = match (&resource.desired, &planned) {
                (_, Err(_)) => true,
                (Desired::Exec(e), _) => e.has_guards() || pending.is_some_and(broad),
                _ => pending.is_some_and(broad),
            };
            match (pending, planned) {
                (Some(dep), _) if reads_changed_host => {
                    report.status = Status::Unknown;
                    report.depends_on = Some(catalog.resources[dep].id.to_string());
                }
                (_, Err(e)) => {
                    report.status = Status::Failed;
                    report.error = Some(e);
                }
                (_, Ok(None)) => report.status = Status::Unchanged,
                (_, Ok(Some(plan))) => {
                    let notified = plan.action == plan::Action::Restart
                        || (plan.action == plan::Action::Run && notified_by.is_some());
                    let cause = if notified {
                        // A restart (or a notified exec) has the cause of
                        // the change that asked for it.
                        let drifted = catalog.notifiers[index].iter().all(|&n| {
                            !status[n].is_some_and(Status::is_change)
                                || status[n] == Some(Status::Drift)
                        });
                        if drifted {
                            Cause::Drift
                        } else {
                            Cause::Revision
                        }
                    } else if previous.resources.get(&report.id) == Some(&digest) {
                        Cause::Drift
                    } else {
                        Cause::Revision
                    };
                    report.status = match cause {
                        Cause::Drift => Status::Drift,
                        Cause::Revision => Status::Changed,
                    };
                    report.cause = Some(cause);
                    report.action = Some(plan.action);
                    report.changes = plan.changes;
                    report.diff = plan.diff;
                    if let Some(executor) = executor.as_deref_mut() {
                        // From here on the host differs from what was planned ahead.
                        applied_any = true;
                        ahead.clear();
                        let applied = apply(
                            catalog,
                            index,
                            &plan.ops,
                            executor,
                            &mut packages,
                            &status,
                            &mut units_changed,
                        );
                        match applied {
                            Ok(output) => report.output = output,
                            Err(e) => {
                                report.status = Status::Failed;
                                report.error = Some(e);
                            }
                        }
                        if matches!(resource.desired, Desired::User(_) | Desired::Group(_)) {
                            observer.forget_accounts();
                        }
                    }
                }
            }
        }
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if report.status != Status::Unchanged {
            tracing::info!(resource = %report.id, status = ?report.status, "resource");
        }
        status[index] = Some(report.status);
        outcomes.push(Outcome {
            index,
            report,
            digest,
        });
    }
    outcomes
}

/// How many resources are planned ahead at a time: enough to keep the
/// workers busy, few enough to hold little memory on a first run (planning
/// ahead stops at the first change applied).
const LOOKAHEAD: usize = 1024;

/// Plans the file, directory and symlink resources among `indices` in
/// parallel. Until something is applied, observing them does not depend on
/// the order, and on an unchanged host it is most of the run.
fn plan_paths_ahead(
    catalog: &Catalog,
    indices: &[usize],
    managed: &std::sync::Arc<std::collections::BTreeSet<std::path::PathBuf>>,
    workers: usize,
) -> Vec<(usize, Result<Option<Plan>, String>)> {
    let paths: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| catalog.resources[i].desired.path().is_some())
        .collect();
    if paths.is_empty() {
        return Vec::new();
    }
    let per_worker = paths.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per_worker)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut observer = Observer::new(std::sync::Arc::clone(managed));
                    chunk
                        .iter()
                        .map(|&i| (i, plan_path(&catalog.resources[i], &mut observer)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a planning thread panicked"))
            .collect()
    })
}

fn plan_path(
    resource: &crate::resource::Resource,
    observer: &mut Observer,
) -> Result<Option<Plan>, String> {
    match &resource.desired {
        Desired::File(f) => resource::file::plan(f, resource.sensitive, observer),
        Desired::Directory(d) => resource::directory::plan(d, observer),
        Desired::Symlink(s) => resource::symlink::plan(s, observer),
        _ => Err("not a path resource".to_owned()),
    }
}

fn plan(
    catalog: &Catalog,
    index: usize,
    observer: &mut Observer,
    packages: &mut packages::Packages,
    notified_by: Option<&str>,
) -> Result<Option<Plan>, String> {
    let resource = &catalog.resources[index];
    match &resource.desired {
        Desired::File(_) | Desired::Directory(_) | Desired::Symlink(_) => {
            plan_path(resource, observer)
        }
        Desired::Package(p) => resource::package::plan(p, packages.facts(catalog)?),
        Desired::Service(s) => resource::service::plan(s, observer.init(), notified_by),
        Desired::User(u) => resource::user::plan(u),
        Desired::Group(g) => resource::group::plan(g),
        Desired::Exec(e) => resource::exec::plan(e, notified_by),
    }
}

/// Carries out one resource's operations; returns the output to report
/// (an exec's), or the reason it failed.
fn apply(
    catalog: &Catalog,
    index: usize,
    ops: &[Op],
    executor: &mut Executor,
    packages: &mut packages::Packages,
    status: &[Option<Status>],
    units_changed: &mut bool,
) -> Result<Option<String>, String> {
    let mut output = None;
    for op in ops {
        match op {
            Op::InstallPackage { .. } | Op::RemovePackage { .. } => {
                packages.apply(catalog, index, status, executor)?;
            }
            Op::Service { init, .. } => {
                if *units_changed && *init == crate::provider::service::Init::Systemd {
                    crate::provider::service::daemon_reload()?;
                    *units_changed = false;
                }
                output = executor.execute(op)?.or(output);
            }
            _ => {
                output = executor.execute(op)?.or(output);
                if op
                    .path()
                    .is_some_and(|p| p.to_string_lossy().contains("/systemd/"))
                {
                    *units_changed = true;
                }
            }
        }
    }
    Ok(output)
}
