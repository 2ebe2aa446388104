//! Converging a catalog: observe each resource in order, plan, and (in a
//! real run) apply the plan. A failed resource fails itself and whatever
//! requires it; everything else still converges.

pub mod apply;
pub mod diff;
mod packages;
pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use crate::catalog::Catalog;
use crate::report::{Cause, ResourceReport, Status};
use crate::resource::{Desired, Digest};
use crate::state::Applied;
use apply::Executor;
use plan::{Missing, Observer, Op, Plan, Planned};

/// The outcome of one resource in a run; its desired digest is
/// `catalog.digests[index]`.
pub struct Outcome {
    pub index: usize,
    pub status: Status,
    /// What happened, for every resource that did not end unchanged (a
    /// large unchanged catalog keeps no report per resource).
    pub report: Option<ResourceReport>,
}

/// Set (from a signal handler too) to stop a run after the resource in
/// progress: the rest are left for the next run.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks the run in progress to stop after its current resource. Safe to
/// call from a signal handler.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Runs the catalog. With an executor the plan is applied; without one
/// (dry-run) nothing on the host is touched. When a stop is requested, the
/// run ends after the resource in progress and returns the outcomes so far.
pub fn run(catalog: &Catalog, previous: &Applied, executor: Option<&mut Executor>) -> Vec<Outcome> {
    let managed = catalog.managed_paths();
    let mut run = Run::new(catalog, previous, executor, &managed);
    for (position, &index) in catalog.order.iter().enumerate() {
        if stop_requested() {
            tracing::warn!(
                left = catalog.order.len() - position,
                "stopping: the remaining resources are left for the next run"
            );
            break;
        }
        run.plan_paths_ahead(position);
        run.settle_for(index);
        let started = Instant::now();
        let mut report = run.resource(index, &catalog.digests[index]);
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if report.status != Status::Unchanged {
            tracing::debug!(resource = %report.id, status = ?report.status, "resource");
        }
        run.status[index] = Some(report.status);
        run.outcomes.push(Outcome {
            index,
            status: report.status,
            report: (report.status != Status::Unchanged).then_some(report),
        });
    }
    // Every file in place and its directory synced before the run's state
    // (written by the caller) says so.
    if let Some(executor) = run.executor.as_deref_mut() {
        let failed = executor.sync();
        let _ = run.mark_failed(failed, None);
    }
    run.outcomes
}

/// One run over a catalog: what has been planned, applied and found so far.
struct Run<'a> {
    catalog: &'a Catalog,
    previous: &'a Applied,
    /// `None` in a dry-run.
    executor: Option<&'a mut Executor>,
    observer: Observer<'a>,
    managed: &'a BTreeSet<&'a Path>,
    workers: usize,
    /// Path resources planned ahead in parallel, while nothing was applied.
    ahead: HashMap<usize, Planned>,
    ahead_until: usize,
    applied_any: bool,
    packages: packages::Packages,
    /// Each resource's status once it has been handled.
    status: Vec<Option<Status>>,
    /// Unit files written since systemd last re-read them.
    units_changed: bool,
    outcomes: Vec<Outcome>,
}

impl<'a> Run<'a> {
    fn new(
        catalog: &'a Catalog,
        previous: &'a Applied,
        executor: Option<&'a mut Executor>,
        managed: &'a BTreeSet<&'a Path>,
    ) -> Self {
        let dry_run = executor.is_none();
        Run {
            catalog,
            previous,
            executor,
            observer: Observer::new(managed),
            managed,
            workers: std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(4),
            ahead: HashMap::new(),
            ahead_until: 0,
            applied_any: false,
            packages: packages::Packages::new(dry_run),
            status: vec![None; catalog.resources.len()],
            units_changed: false,
            outcomes: Vec::with_capacity(catalog.resources.len()),
        }
    }

    fn dry_run(&self) -> bool {
        self.executor.is_none()
    }

    /// Until something is applied, observing path resources does not depend
    /// on the order: plan the next stretch of them on all cores.
    fn plan_paths_ahead(&mut self, position: usize) {
        if self.applied_any || self.workers < 2 || position < self.ahead_until {
            return;
        }
        let order = &self.catalog.order;
        self.ahead_until = (position + LOOKAHEAD).min(order.len());
        self.ahead.extend(plan_paths_ahead(
            self.catalog,
            &order[position..self.ahead_until],
            self.managed,
            self.workers,
        ));
    }

    /// Handles one resource: skip it if what it requires failed, plan it,
    /// and in a real run apply the plan.
    fn resource(&mut self, index: usize, digest: &Digest) -> ResourceReport {
        let catalog = self.catalog;
        let mut report = ResourceReport::new(catalog.resources[index].id.to_string());
        if let Some(dep) = self.failed_requirement(index) {
            report.status = Status::Failed;
            report.error = Some(format!(
                "not applied: it requires `{}`, which failed",
                catalog.resources[dep].id
            ));
            return report;
        }
        let notified_by = self.changed_notifier(index);
        let planned = match self.ahead.remove(&index) {
            Some(planned) if !self.applied_any => planned,
            _ => self.plan(index, notified_by.as_deref()),
        };
        if self.dry_run() {
            let waits_for = self.waits_for(index, &planned);
            if !waits_for.is_empty() {
                report.status = Status::Unknown;
                report.depends_on = Some(self.names(&waits_for));
                return report;
            }
        }
        match planned {
            Err(e) => {
                report.status = Status::Failed;
                report.error = Some(e.message);
            }
            Ok(None) => report.status = Status::Unchanged,
            Ok(Some(plan)) => self.change(index, plan, notified_by.is_some(), digest, &mut report),
        }
        report
    }

    fn failed_requirement(&self, index: usize) -> Option<usize> {
        self.catalog.requires[index]
            .iter()
            .copied()
            .find(|&d| self.status[d] == Some(Status::Failed))
    }

    /// The first resource that notifies this one and changed.
    fn changed_notifier(&self, index: usize) -> Option<String> {
        self.catalog.notifiers[index]
            .iter()
            .find(|&&n| self.status[n].is_some_and(Status::is_change))
            .map(|&n| self.catalog.resources[n].id.to_string())
    }

    fn plan(&mut self, index: usize, notified_by: Option<&str>) -> Planned {
        let resource = &self.catalog.resources[index];
        match &resource.desired {
            Desired::File(_) | Desired::Directory(_) | Desired::Symlink(_) => {
                plan_path(resource, &mut self.observer)
            }
            Desired::Package(p) => plan::package::plan(p, self.packages.facts(self.catalog)?),
            Desired::Service(s) => plan::service::plan(s, self.observer.init(), notified_by),
            Desired::User(u) => plan::user::plan(u),
            Desired::Group(g) => plan::group::plan(g),
            Desired::Exec(e) => plan::exec::plan(e, notified_by),
        }
    }

    /// In a dry-run, the earlier changes (not made) that decide what this
    /// resource would find, so that it is listed as unknown rather than
    /// guessed: what it requires, when that is a package or a command (they
    /// can change anything), or when planning failed or reads the host (exec
    /// guards); and for a precondition that failed (a missing parent, owner,
    /// unit or package version), any earlier change that could meet it.
    /// Empty when the plan stands as it is.
    fn waits_for(&self, index: usize, planned: &Planned) -> Vec<usize> {
        let catalog = self.catalog;
        let pending = |d: usize| self.status[d].is_some_and(Status::is_change);
        let broad = |d: usize| {
            matches!(
                catalog.resources[d].desired,
                Desired::Package(_) | Desired::Exec(_)
            )
        };
        let mut required: Vec<usize> = catalog.requires[index]
            .iter()
            .copied()
            .filter(|&d| pending(d))
            .collect();
        // Packages and commands first: they are the likelier cause.
        required.sort_by_key(|&d| !broad(d));
        let earlier = |cures: &dyn Fn(usize) -> bool| -> Vec<usize> {
            catalog
                .order
                .iter()
                .copied()
                .take_while(|&d| d != index)
                .filter(|&d| pending(d) && cures(d))
                .collect()
        };
        match (planned, &catalog.resources[index].desired) {
            (Err(e), _) => {
                let cures = |d: usize| {
                    e.missing
                        .as_ref()
                        .is_some_and(|m| could_create(&catalog.resources[d].desired, m))
                };
                let required_cures: Vec<usize> =
                    required.iter().copied().filter(|&d| cures(d)).collect();
                if !required_cures.is_empty() {
                    required_cures
                } else if !required.is_empty() {
                    required
                } else {
                    earlier(&cures)
                }
            }
            (Ok(_), Desired::Exec(exec)) if exec.has_guards() => {
                if required.is_empty() {
                    earlier(&|d| guard_reads(exec, &catalog.resources[d].desired))
                } else {
                    required
                }
            }
            _ => required.into_iter().filter(|&d| broad(d)).collect(),
        }
    }

    /// `a, b, c and 2 more`.
    fn names(&self, indices: &[usize]) -> String {
        const SHOWN: usize = 3;
        let mut text = indices
            .iter()
            .take(SHOWN)
            .map(|&d| self.catalog.resources[d].id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if indices.len() > SHOWN {
            text.push_str(&format!(" and {} more", indices.len() - SHOWN));
        }
        text
    }

    /// Records a planned change and, in a real run, makes it.
    fn change(
        &mut self,
        index: usize,
        plan: Plan,
        notified: bool,
        digest: &Digest,
        report: &mut ResourceReport,
    ) {
        let cause = self.cause(index, &plan, notified, digest);
        report.status = match cause {
            Cause::Drift => Status::Drift,
            Cause::Revision => Status::Changed,
        };
        report.cause = Some(cause);
        report.action = Some(plan.action);
        report.changes = plan.changes;
        report.diff = plan.diff;
        if self.dry_run() {
            return;
        }
        // From here on the host differs from what was planned ahead.
        self.applied_any = true;
        self.ahead.clear();
        // What a sensitive resource's commands print or say may carry its
        // secrets: reports get neither.
        let sensitive = self.catalog.resources[index].sensitive;
        match self.apply(index, &plan.ops) {
            Ok(output) if sensitive => {
                report.output = output.map(|_| "(sensitive: output hidden)".to_owned());
            }
            Ok(output) => report.output = output,
            Err(e) => {
                report.status = Status::Failed;
                report.error = Some(if sensitive {
                    tracing::warn!(resource = %self.catalog.resources[index].id, "a sensitive resource failed; details are not reported");
                    "failed (sensitive: details hidden)".to_owned()
                } else {
                    e
                });
            }
        }
        if matches!(
            self.catalog.resources[index].desired,
            Desired::User(_) | Desired::Group(_)
        ) {
            self.observer.forget_accounts();
        }
    }

    /// Drift when the desired state is what was applied last time; a
    /// restart (or a notified exec) has the cause of what asked for it.
    fn cause(&self, index: usize, plan: &Plan, notified: bool, digest: &Digest) -> Cause {
        let restarted =
            plan.action == plan::Action::Restart || (plan.action == plan::Action::Run && notified);
        let drifted = if restarted {
            self.catalog.notifiers[index].iter().all(|&n| {
                !self.status[n].is_some_and(Status::is_change)
                    || self.status[n] == Some(Status::Drift)
            })
        } else {
            let id = self.catalog.resources[index].id.to_string();
            self.previous.resources.get(&id) == Some(digest)
        };
        if drifted {
            Cause::Drift
        } else {
            Cause::Revision
        }
    }

    /// Waits for the files on their way before a resource that could see
    /// them missing: one that requires or is notified by a resource whose
    /// files are not in place yet (a failure there skips it, as it would
    /// have), and any that reads the host beyond its own path while
    /// planning (an exec's guards, a directory it purges, packages,
    /// services, accounts). Files and plain directories go on.
    fn settle_for(&mut self, index: usize) {
        let Some(executor) = self.executor.as_deref_mut() else {
            return;
        };
        let own_path_only = match &self.catalog.resources[index].desired {
            Desired::File(_) | Desired::Symlink(_) => true,
            Desired::Directory(d) => !d.purge,
            _ => false,
        };
        let waits = !own_path_only
            || self.catalog.requires[index]
                .iter()
                .chain(&self.catalog.notifiers[index])
                .any(|&d| executor.pending(d));
        if waits {
            let failed = executor.settle();
            let _ = self.mark_failed(failed, None);
        }
    }

    /// Marks the resources whose files did not land as failed; the error of
    /// `current` (the resource being applied) is returned instead.
    fn mark_failed(
        &mut self,
        failed: Vec<(usize, String)>,
        current: Option<usize>,
    ) -> Result<(), String> {
        let mut mine = Ok(());
        for (index, error) in failed {
            let error = if self.catalog.resources[index].sensitive {
                "failed (sensitive: details hidden)".to_owned()
            } else {
                error
            };
            if Some(index) == current {
                mine = Err(error);
                continue;
            }
            tracing::warn!(resource = %self.catalog.resources[index].id, error = %error, "a file written did not land");
            self.status[index] = Some(Status::Failed);
            if let Some(outcome) = self.outcomes.iter_mut().find(|o| o.index == index) {
                outcome.status = Status::Failed;
                if let Some(report) = &mut outcome.report {
                    report.status = Status::Failed;
                    report.error = Some(error);
                }
            }
        }
        mine
    }

    /// Carries out one resource's operations; returns the output to report
    /// (an exec's), or the reason it failed. Files go to the executor's
    /// batch; anything else waits until the files before it are in place
    /// (a command, a service or a package may read them).
    fn apply(&mut self, index: usize, ops: &[Op]) -> Result<Option<String>, String> {
        let mut output = None;
        for op in ops {
            if !matches!(op, Op::WriteFile { .. } | Op::CreateDir { .. }) {
                let failed = self
                    .executor
                    .as_deref_mut()
                    .expect("only a real run applies")
                    .settle();
                self.mark_failed(failed, Some(index))?;
            }
            let executor = self
                .executor
                .as_deref_mut()
                .expect("only a real run applies");
            match op {
                Op::WriteFile { .. } => {
                    executor.write(index, op)?;
                    if op
                        .path()
                        .is_some_and(|p| p.to_string_lossy().contains("/systemd/"))
                    {
                        self.units_changed = true;
                    }
                }
                Op::InstallPackage { .. } | Op::RemovePackage { .. } => {
                    self.packages
                        .apply(self.catalog, index, &self.status, executor)?;
                }
                Op::Service { init, .. } => {
                    if self.units_changed && *init == crate::provider::service::Init::Systemd {
                        crate::provider::service::daemon_reload()?;
                        self.units_changed = false;
                    }
                    output = executor.execute(op)?.or(output);
                }
                _ => {
                    output = executor.execute(op)?.or(output);
                    if op
                        .path()
                        .is_some_and(|p| p.to_string_lossy().contains("/systemd/"))
                    {
                        self.units_changed = true;
                    }
                }
            }
        }
        Ok(output)
    }
}

/// Whether an earlier change of `earlier` could create what a resource found
/// missing.
fn could_create(earlier: &Desired, missing: &Missing) -> bool {
    let path = earlier.path();
    match (earlier, missing) {
        // A command can do anything; a package can create directories,
        // system users and groups, and units.
        (Desired::Exec(_), _) => true,
        (Desired::Package(_), Missing::Candidate(_)) => false,
        (Desired::Package(_), _) => true,
        // A symlink or directory at the missing directory or above it.
        (Desired::File(_), Missing::Parent(_)) => false,
        (_, Missing::Parent(dir)) => {
            path.is_some_and(|p| dir.starts_with(p))
                || matches!(earlier, Desired::User(u) if u.manage_home
                    && u.home.as_deref().is_some_and(|h| dir.starts_with(h)))
        }
        (Desired::User(u), Missing::User(name)) => u.name == *name,
        // useradd makes a group of the user's name when it is given none.
        (Desired::User(u), Missing::Group(name)) => u.name == *name && u.group.is_none(),
        (Desired::Group(g), Missing::Group(name)) => g.name == *name,
        (_, Missing::Service(_)) => path.is_some_and(|p| {
            p.starts_with("/etc/init.d") || p.to_string_lossy().contains("/systemd/")
        }),
        (_, Missing::Candidate(_)) => path.is_some_and(|p| p.starts_with("/etc/apt")),
        _ => false,
    }
}

/// Whether an exec's guards may read what an earlier change (not required)
/// makes: a package (it brings commands and files guards test), a path the
/// guards name, or what an earlier exec says it creates. Execs whose guards
/// read each other's effects otherwise should `require` each other.
fn guard_reads(exec: &crate::resource::exec::ExecSpec, earlier: &Desired) -> bool {
    let path = match earlier {
        Desired::Package(_) => return true,
        Desired::Exec(other) => other.creates.as_deref(),
        _ => earlier.path(),
    };
    let Some(path) = path else {
        return false;
    };
    let text = path.to_string_lossy();
    exec.creates.as_deref() == Some(path)
        || [&exec.unless, &exec.onlyif]
            .into_iter()
            .flatten()
            .any(|guard| guard.contains(text.as_ref()))
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
    managed: &BTreeSet<&Path>,
    workers: usize,
) -> Vec<(usize, Planned)> {
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
                    let mut observer = Observer::new(managed);
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

fn plan_path(resource: &crate::resource::Resource, observer: &mut Observer) -> Planned {
    match &resource.desired {
        Desired::File(f) => plan::file::plan(f, resource.sensitive, observer),
        Desired::Directory(d) => plan::directory::plan(d, observer),
        Desired::Symlink(s) => plan::symlink::plan(s, observer),
        _ => Err("not a path resource".to_owned().into()),
    }
}
