//! Converging this host: the catalog (cached or compiled), the state
//! directory's lock, the engine's run, what it recorded, the report and its
//! way to the central log. `tend converge` and the agent both run it.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::catalog::{self, Catalog, Target, cache};
use crate::engine::{self, apply::Executor};
use crate::report::send::Sender;
use crate::report::spool::Spool;
use crate::report::{Report, RunMode, Status};
use crate::state::{Applied, StateDir};

pub struct Options<'a> {
    pub repo: &'a Path,
    pub environment: Option<&'a str>,
    pub host: Option<&'a str>,
    pub dry_run: bool,
    pub state_dir: PathBuf,
    /// Compile the catalog even when the cached one is valid.
    pub no_cache: bool,
    /// The central log to send the report to, and the file with this
    /// host's token.
    pub report_to: Option<crate::report::send::Endpoint>,
    /// Where the manifests came from, when the agent fetched them (else the
    /// revision is read from the repository when it is a git checkout).
    pub source: Option<SourceInfo>,
}

/// What the agent knows of the commit a run converges.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    pub revision: Option<crate::source::Revision>,
    pub stale: bool,
    pub age_s: Option<u64>,
    pub rejected: Option<crate::report::Rejected>,
    /// What the rollout gate said of the newest commit.
    pub rollout: Option<crate::report::RolloutNote>,
    /// The agent's interval, for the log to tell silent hosts.
    pub interval_s: Option<u64>,
    /// Why the source could not be fetched this cycle.
    pub fetch_error: Option<String>,
}

fn spool(state: &StateDir) -> Spool {
    Spool::new(state.path().join("spool"))
}

/// Sends the report to the central log, after the run: a real run's
/// report and any earlier ones waiting in the spool; a dry-run's report
/// directly (a dry-run writes nothing, not even to the spool). Problems
/// are warnings: a report that cannot be sent never fails a converge.
pub fn deliver(options: &Options, report: &Report) {
    let Some(endpoint) = &options.report_to else {
        return;
    };
    if let Err(e) = crate::report::enroll::ensure(endpoint, &report.host, &report.environment) {
        tracing::warn!(error = %e, "cannot enroll with the log");
    }
    let sender = match Sender::new(endpoint) {
        Ok(sender) => sender,
        Err(e) => {
            tracing::warn!(error = %e, "the report was not sent");
            eprintln!("warning: the report was not sent: {e}");
            return;
        }
    };
    if options.dry_run {
        let body = serde_json::to_vec(report).expect("a report serialises");
        if let Err(e) = sender.post(&body) {
            eprintln!("warning: the report was not sent: {e:?}");
        }
        return;
    }
    let spool = Spool::new(options.state_dir.join("spool"));
    // A report the spool had no room for (a full state directory) goes
    // straight to the log, once: better than not at all.
    let suffix = format!("-{}.json", report.id);
    let spooled = spool
        .pending()
        .iter()
        .any(|p| p.to_string_lossy().ends_with(&suffix));
    if !spooled {
        let body = serde_json::to_vec(report).expect("a report serialises");
        if let Err(e) = sender.post(&body) {
            eprintln!("warning: the report could be neither spooled nor sent: {e:?}");
        }
    }
    let round = spool.deliver(&sender);
    tracing::debug!(
        sent = round.sent,
        waiting = round.waiting,
        set_aside = round.set_aside,
        "reports delivered"
    );
    if let Some(e) = round.error {
        eprintln!(
            "warning: {} report{} waiting to be sent ({e}); the next run sends {}",
            round.waiting,
            if round.waiting == 1 { " is" } else { "s are" },
            if round.waiting == 1 { "it" } else { "them" }
        );
    }
    if round.set_aside > 0 {
        eprintln!(
            "warning: {} report{} set aside (refused by the log, or damaged); kept in `{}`",
            round.set_aside,
            if round.set_aside == 1 { "" } else { "s" },
            options.state_dir.join("spool/set-aside").display()
        );
    }
}

pub enum Outcome {
    /// The manifests did not compile; nothing was touched.
    Invalid(
        crate::manifest::Repo,
        Vec<crate::manifest::diagnostic::Diagnostic>,
    ),
    Ran(Box<Report>),
}

pub fn converge(options: &Options) -> anyhow::Result<Outcome> {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let (host, facts) = crate::facts::host_and_facts(options.host);
    let key = if options.no_cache {
        None
    } else {
        cache::Key::new(options.repo, options.environment, &facts)
    };
    let cached = key
        .as_ref()
        .and_then(|key| cache::load(&options.state_dir, key));
    let compiled = cached.is_none();
    let catalog = match cached {
        Some(catalog) => {
            tracing::debug!(
                elapsed_ms = clock.elapsed().as_millis(),
                "catalog from the cache"
            );
            catalog
        }
        None => {
            let mut repo = crate::manifest::Repo::open(options.repo)?;
            let target = Target {
                environment: options.environment,
                host: &host,
                facts: &facts,
                secrets: crate::catalog::Secrets::Read,
                all_flags_on: false,
            };
            match catalog::compile(&mut repo, &target) {
                Ok(c) => c,
                Err(problems) => return Ok(Outcome::Invalid(repo, problems)),
            }
        }
    };
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis(),
        resources = catalog.resources.len(),
        "catalog ready"
    );
    let report = if options.dry_run {
        let state = StateDir::open_read_only(&options.state_dir)?;
        let previous = state.applied()?;
        let outcomes = engine::run(&catalog, &previous, None);
        finish(&catalog, options, &state, outcomes, started_at, clock)
    } else {
        let state = StateDir::open_locked(&options.state_dir, |holder| {
            eprintln!(
                "waiting for another tend run to finish (lock `{}` held by {holder})",
                options.state_dir.join("lock").display()
            );
        })?;
        if let (true, Some(key)) = (compiled, &key)
            && let Err(e) = cache::store(state.path(), key, &catalog, state.temps())
        {
            tracing::warn!(error = %e, "could not keep the compiled catalog");
        }
        let previous = state.applied()?;
        let mut executor = Executor::new(state.backups());
        let outcomes = engine::run(&catalog, &previous, Some(&mut executor));
        tracing::debug!(elapsed_ms = clock.elapsed().as_millis(), "converged");
        if let Some(applied) = applied_after(&previous, &catalog, &outcomes) {
            state.save_applied(&applied)?;
        }
        let mut report = finish(&catalog, options, &state, outcomes, started_at, clock);
        if options.report_to.is_some() {
            // Spooled before it is sent, so that it survives a crash or a
            // log that is down; sent after the results are shown.
            if let Err(e) = spool(&state).put(&mut report, state.temps()) {
                tracing::warn!(error = %e, "could not spool the report");
            }
        }
        state.finish()?;
        report
    };
    Ok(Outcome::Ran(Box::new(report)))
}

/// What the state directory records after a run: the desired digest of
/// every resource that converged; a failed one keeps what it had. `None`
/// when that is what it records already (the common case: nothing to write).
fn applied_after(
    previous: &Applied,
    catalog: &Catalog,
    outcomes: &[engine::Outcome],
) -> Option<Applied> {
    let id = |outcome: &engine::Outcome| catalog.resources[outcome.index].id.to_string();
    let recorded = |outcome: &engine::Outcome, id: &str| {
        if outcome.status == Status::Failed {
            previous.resources.get(id)
        } else {
            Some(&catalog.digests[outcome.index])
        }
    };
    let unchanged = previous.version == 1
        && outcomes.len() == catalog.resources.len()
        && previous.resources.len() == outcomes.len()
        && outcomes.iter().all(|o| {
            let id = id(o);
            let digest = recorded(o, &id);
            digest.is_some() && previous.resources.get(&id) == digest
        });
    if unchanged {
        return None;
    }
    let mut applied = Applied {
        version: 1,
        ..Applied::default()
    };
    let mut handled = vec![false; catalog.resources.len()];
    for outcome in outcomes {
        handled[outcome.index] = true;
        let id = id(outcome);
        if let Some(&digest) = recorded(outcome, &id) {
            applied.resources.insert(id, digest);
        }
    }
    // A run stopped early: what it did not reach keeps what it had.
    for (index, _) in handled.iter().enumerate().filter(|(_, h)| !**h) {
        let id = catalog.resources[index].id.to_string();
        if let Some(&digest) = previous.resources.get(&id) {
            applied.resources.insert(id, digest);
        }
    }
    Some(applied)
}

fn finish(
    catalog: &Catalog,
    options: &Options,
    state: &StateDir,
    outcomes: Vec<engine::Outcome>,
    started_at: SystemTime,
    clock: Instant,
) -> Report {
    let not_reached = catalog.resources.len() - outcomes.len();
    let resources: Vec<_> = outcomes.into_iter().filter_map(|o| o.report).collect();
    let mut summary = Report::summarise(&resources, catalog.resources.len() - not_reached);
    summary.total += not_reached;
    summary.not_reached = not_reached;
    Report {
        id: uuid::Uuid::new_v4().to_string(),
        host: catalog.host.clone(),
        environment: catalog.environment.clone(),
        roles: catalog.roles.clone(),
        mode: if options.dry_run {
            RunMode::DryRun
        } else {
            RunMode::Apply
        },
        revision: match &options.source {
            Some(source) => source.revision.clone(),
            None => crate::source::git::revision(options.repo),
        },
        source_stale: options.source.as_ref().is_some_and(|s| s.stale),
        source_age_s: options.source.as_ref().and_then(|s| s.age_s),
        rejected: options.source.as_ref().and_then(|s| s.rejected.clone()),
        never_converged: None,
        rollout: options.source.as_ref().and_then(|s| s.rollout.clone()),
        interval_s: options.source.as_ref().and_then(|s| s.interval_s),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        status: Report::status_of(&summary),
        summary,
        reports_dropped: 0,
        leftovers_removed: state
            .leftovers()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        resources,
    }
}

/// A run that converged nothing because the host has no commit it may
/// apply (the one it fetched does not compile, and none ever did): its
/// report still goes to the log, so the refusal counts and the host is
/// seen. Spooled, then sent, like every run's.
pub fn report_unconverged(
    options: &Options,
    host: &str,
    environment: &str,
    never_converged: Option<String>,
) -> anyhow::Result<Report> {
    let started_at = SystemTime::now();
    let state = StateDir::open_locked(&options.state_dir, |_| {})?;
    let source = options.source.clone().unwrap_or_default();
    let mut report = Report {
        id: uuid::Uuid::new_v4().to_string(),
        host: host.to_owned(),
        environment: environment.to_owned(),
        roles: Vec::new(),
        mode: RunMode::Apply,
        revision: None,
        source_stale: source.stale,
        source_age_s: source.age_s,
        rejected: source.rejected,
        never_converged,
        rollout: source.rollout,
        interval_s: source.interval_s,
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_ms: 0,
        status: Status::Unchanged,
        summary: crate::report::Summary::default(),
        reports_dropped: 0,
        leftovers_removed: Vec::new(),
        resources: Vec::new(),
    };
    if options.report_to.is_some()
        && let Err(e) = spool(&state).put(&mut report, state.temps())
    {
        tracing::warn!(error = %e, "could not spool the report");
    }
    state.finish()?;
    deliver(options, &report);
    Ok(report)
}
