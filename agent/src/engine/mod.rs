//! Converging a catalog: observe each resource in order, plan, and (in a
//! real run) apply the plan. A failed resource fails itself and whatever
//! requires it; everything else still converges.

pub mod apply;
pub mod diff;
pub mod plan;

use std::time::Instant;

use crate::catalog::Catalog;
use crate::report::{Cause, ResourceReport, Status};
use crate::resource::Desired;
use crate::state::Applied;
use apply::Executor;
use plan::{Observer, Plan};

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
    let mut observer = Observer::new(catalog.managed_paths());
    let mut failed = vec![false; catalog.resources.len()];
    let mut outcomes = Vec::with_capacity(catalog.resources.len());
    for &index in &catalog.order {
        let resource = &catalog.resources[index];
        let started = Instant::now();
        let digest = resource.desired_digest();
        let mut report = ResourceReport::new(resource.id.to_string());
        if let Some(&dep) = catalog.requires[index].iter().find(|&&d| failed[d]) {
            report.status = Status::Failed;
            report.error = Some(format!(
                "not applied: it requires `{}`, which failed",
                catalog.resources[dep].id
            ));
            failed[index] = true;
        } else {
            match plan(&resource.desired, resource.sensitive, &mut observer) {
                Err(e) => {
                    report.status = Status::Failed;
                    report.error = Some(e);
                }
                Ok(None) => report.status = Status::Unchanged,
                Ok(Some(plan)) => {
                    let cause = if previous.resources.get(&report.id) == Some(&digest) {
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
                    report.diff = plan.diff;
                    report.changes = plan.changes;
                    if let Some(executor) = executor.as_deref_mut() {
                        for op in &plan.ops {
                            if let Err(e) = executor.execute(op) {
                                report.status = Status::Failed;
                                report.error = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
            }
            failed[index] = report.status == Status::Failed;
        }
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if report.status != Status::Unchanged {
            tracing::info!(resource = %report.id, status = ?report.status, "resource");
        }
        outcomes.push(Outcome {
            index,
            report,
            digest,
        });
    }
    outcomes
}

fn plan(
    desired: &Desired,
    sensitive: bool,
    observer: &mut Observer,
) -> Result<Option<Plan>, String> {
    match desired {
        Desired::File(f) => crate::resource::file::plan(f, sensitive, observer),
        Desired::Directory(d) => crate::resource::directory::plan(d, observer),
        Desired::Symlink(s) => crate::resource::symlink::plan(s, observer),
    }
}
