//! The pull agent: every cycle it fetches the source, judges the new commit
//! (signature, ancestry, and whether it compiles for this host), converges
//! the newest good commit, and sends the report. A commit that fails any of
//! these is never applied: the host stays on the last good one, and the
//! report says which commit was refused, who made it and why.

pub mod gate;
pub mod memory;
pub mod metrics;
pub mod schedule;
pub mod settings;
pub mod signals;
pub mod watch;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::converge::{self, Outcome, SourceInfo};
use crate::report::{Rejected, Report};
use crate::source::{Revision, Source};
use memory::Memory;

/// Everything the agent is told (flags, or /etc/tend/agent.yaml).
#[derive(Debug, Clone)]
pub struct Settings {
    /// A git URL (any transport the system git supports).
    pub source: String,
    /// A branch, tag or commit.
    pub reference: String,
    pub interval: Duration,
    pub splay: Duration,
    pub state_dir: PathBuf,
    /// The central log, this host's token for it (or a join token to get
    /// one with), and a private CA to trust.
    pub log: Option<crate::report::send::Endpoint>,
    pub environment: Option<String>,
    pub host: Option<String>,
    /// Apply only commits `git verify-commit` accepts.
    pub require_signed: bool,
    /// Apply a commit that does not descend from the last one applied.
    pub allow_rewind: bool,
    /// Under a rollout policy with no log to ask: hold or proceed.
    pub rollout_offline: gate::Offline,
    /// Woken by the log's watch, the agent cycles after a stable per-host
    /// jitter inside this.
    pub watch_splay: Duration,
}

/// How a cycle ended.
pub enum Cycle {
    /// Converged (the newest good commit); the report was spooled and sent.
    Ran(Box<Report>),
    /// An operator disabled the agent: nothing was done.
    Disabled(String),
    /// No commit could be applied: none fetched, or none good yet.
    NothingToApply(String),
    /// The last good commit itself no longer compiles (a changed fact, a
    /// host entry gone): nothing was touched.
    Invalid(
        crate::manifest::Repo,
        Vec<crate::manifest::diagnostic::Diagnostic>,
    ),
}

impl Cycle {
    /// One line for `systemctl status`.
    pub fn summary(&self) -> String {
        match self {
            Cycle::Ran(report) => {
                let commit = report.revision.as_ref().map_or("", |r| r.commit.as_str());
                format!(
                    "{} at {}: {} changed, {} drift, {} failed",
                    serde_json::to_value(report.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    commit.get(..10).unwrap_or(commit),
                    report.summary.changed,
                    report.summary.drift,
                    report.summary.failed
                )
            }
            Cycle::Disabled(reason) => format!("disabled: {reason}"),
            Cycle::NothingToApply(why) => format!("nothing to apply: {why}"),
            Cycle::Invalid(_, problems) => {
                format!(
                    "the last good commit no longer compiles ({} problems)",
                    problems.len()
                )
            }
        }
    }
}

/// One cycle: fetch, judge, converge, report. Cycles of two agent
/// processes on one host (the service and an operator's `--once`) take
/// turns.
pub fn cycle(settings: &Settings) -> anyhow::Result<Cycle> {
    let _turn = take_turn(&settings.state_dir)?;
    let mut memory = Memory::load(&settings.state_dir)?;
    if let Some(reason) = &memory.disabled {
        tracing::warn!(reason = %reason, "the agent is disabled; nothing converged");
        return Ok(Cycle::Disabled(reason.clone()));
    }
    let source = Source::open(&settings.state_dir).map_err(anyhow::Error::msg)?;
    let now = memory::now();
    // Woken for a rollout with the commit this host fetched last: ask the
    // gate about it without fetching again (see `watch::take_rollout_tip`).
    let (fetched, fetching) = match watch::take_rollout_tip() {
        Some(tip) if source.fetched().as_deref() == Some(tip.as_str()) => {
            tracing::debug!(commit = %tip, "woken for a rollout: the commit fetched last is the ref's");
            (Ok(tip), false)
        }
        _ => (source.fetch(&settings.source, &settings.reference), true),
    };
    let stale = match &fetched {
        Ok(_) => {
            if fetching {
                memory.last_fetch = Some(now);
            }
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, source = %settings.source, "cannot fetch the source; staying on the last good commit");
            true
        }
    };
    let mut info = SourceInfo {
        revision: None,
        stale,
        age_s: memory.last_fetch.map(|t| now.saturating_sub(t)),
        rejected: None,
        rollout: None,
        interval_s: Some(settings.interval.as_secs()),
        fetch_error: fetched.as_ref().err().map(ToString::to_string),
    };
    let fetched = fetched.ok();
    let host = settings.host.clone().unwrap_or_else(crate::facts::hostname);
    let candidate = fetched
        .clone()
        .filter(|c| memory.last_good.as_ref() != Some(c));
    if let Some(commit) = candidate {
        match trust(settings, &source, &memory, &commit) {
            Err(reason) => info.rejected = Some(rejected(&source, &commit, reason, Vec::new())),
            Ok(()) => {
                let checkout = source.checkout(&commit).map_err(anyhow::Error::msg)?;
                info.revision = source.revision(&commit);
                match gate::ask(settings, &host, &checkout, &commit) {
                    gate::Gate::Apply(note) => info.rollout = note,
                    gate::Gate::Wait(note) => {
                        tracing::info!(commit = %commit, decision = ?note.decision, reason = %note.reason, "rollout: not applying the new commit yet");
                        info.rollout = Some(note);
                        return stay(settings, &source, &mut memory, info);
                    }
                    gate::Gate::Rollback(to, note) => {
                        info.rollout = Some(note);
                        return roll_back(settings, &source, &mut memory, info, &commit, &to);
                    }
                }
                match converge::converge(&options(settings, &checkout, &info))? {
                    Outcome::Ran(report) => {
                        return finish(settings, &source, &mut memory, &commit, report);
                    }
                    Outcome::Invalid(_, problems) => {
                        let errors = problems
                            .iter()
                            .map(|d| format!("{}: {}", d.location, d.message))
                            .collect();
                        info.rejected = Some(rejected(
                            &source,
                            &commit,
                            format!(
                                "it does not compile for this host ({} problems)",
                                problems.len()
                            ),
                            errors,
                        ));
                        info.revision = None;
                    }
                }
            }
        }
        if let Some(r) = &info.rejected {
            tracing::warn!(commit = %r.revision.commit, author = %r.revision.author, reason = %r.reason, "a new commit was not applied");
        }
    } else if let Some(tip) = &fetched
        && let Ok(checkout) = source.checkout(tip)
    {
        // The commit this host runs may since have halted under
        // `on_halt: rollback`: only the log knows.
        if let gate::Gate::Rollback(to, note) = gate::ask(settings, &host, &checkout, tip) {
            info.rollout = Some(note);
            return roll_back(settings, &source, &mut memory, info, tip, &to);
        }
    }
    stay(settings, &source, &mut memory, info)
}

/// Converges the last good commit (drift is corrected while a new commit
/// is refused, or waits for its turn).
fn stay(
    settings: &Settings,
    source: &Source,
    memory: &mut Memory,
    mut info: SourceInfo,
) -> anyhow::Result<Cycle> {
    let Some(good) = memory.last_good.clone() else {
        if let Some(r) = &info.rejected {
            // Never converged, and the commit it fetched is refused: the
            // log still hears of it (the refusal counts against the
            // commit, and the host exists).
            let host = settings.host.clone().unwrap_or_else(crate::facts::hostname);
            match refusing_environment(settings, source, &r.revision.commit, &host) {
                Some(environment) => {
                    if let Err(e) = converge::report_unconverged(
                        &options(settings, Path::new(""), &info),
                        &host,
                        &environment,
                        None,
                    ) {
                        tracing::warn!(error = %format!("{e:#}"), "cannot report the refusal");
                    }
                }
                None => tracing::warn!(
                    "the refusal is not reported: this host's environment is unknown (give --env)"
                ),
            }
        }
        let why = match (&info.rejected, &info.rollout) {
            (Some(r), _) => format!(
                "commit {} was not applied ({}), and no earlier commit was ever good",
                r.revision.commit, r.reason
            ),
            (None, Some(r)) => format!(
                "commit {} is not this host's to apply yet ({}), and no earlier commit was ever applied",
                r.commit, r.reason
            ),
            (None, None) => match &info.fetch_error {
                Some(e) => format!(
                    "the source `{}` could not be fetched yet: {e}",
                    settings.source
                ),
                None => format!("the source `{}` could not be fetched yet", settings.source),
            },
        };
        if info.rejected.is_none() && info.rollout.is_none() {
            // Never converged, and nothing fetched: the log still hears
            // of the host, and why (its environment must be given: there
            // is no manifest to read it from).
            let host = settings.host.clone().unwrap_or_else(crate::facts::hostname);
            match &settings.environment {
                Some(environment) => {
                    if let Err(e) = converge::report_unconverged(
                        &options(settings, Path::new(""), &info),
                        &host,
                        environment,
                        Some(why.clone()),
                    ) {
                        tracing::warn!(error = %format!("{e:#}"), "cannot report that the host never converged");
                    }
                }
                None => tracing::warn!(
                    "that this host never converged is not reported: its environment is unknown (give --env)"
                ),
            }
        }
        memory.save(&settings.state_dir)?;
        return Ok(Cycle::NothingToApply(why));
    };
    let checkout = source.checkout(&good).map_err(anyhow::Error::msg)?;
    info.revision = source.revision(&good);
    match converge::converge(&options(settings, &checkout, &info))? {
        Outcome::Ran(report) => finish(settings, source, memory, &good, report),
        Outcome::Invalid(repo, problems) => {
            memory.save(&settings.state_dir)?;
            Ok(Cycle::Invalid(repo, problems))
        }
    }
}

/// The environment a host that never converged belongs to: `--env`, or
/// the one whose host entries match it in the refused commit (its
/// environment files may still load when a role does not).
fn refusing_environment(
    settings: &Settings,
    source: &Source,
    commit: &str,
    host: &str,
) -> Option<String> {
    if let Some(env) = &settings.environment {
        return Some(env.clone());
    }
    let checkout = source.checkout(commit).ok()?;
    let repo = crate::manifest::Repo::open(&checkout).ok()?;
    let mut matching = repo
        .environments
        .iter()
        .filter(|e| e.hosts.iter().any(|h| h.matches(host)));
    let env = matching.next()?;
    matching.next().is_none().then(|| env.name.clone())
}

/// Converges `to` instead of `fetched`: the log decided a rollback of a
/// halted commit (not a rewind of the source, so no `--allow-rewind` is
/// asked for). The log may only send a host back in the history it
/// fetched, and with `--require-signed` only to a signed commit: else the
/// host keeps what it has.
fn roll_back(
    settings: &Settings,
    source: &Source,
    memory: &mut Memory,
    mut info: SourceInfo,
    fetched: &str,
    to: &str,
) -> anyhow::Result<Cycle> {
    if source.resolve(to).is_err()
        && let Err(e) = source.fetch_commit(&settings.source, to)
    {
        tracing::warn!(commit = %to, error = %e, "cannot fetch the commit to roll back to");
    }
    let allowed = if !source.descends(to, fetched) {
        Err(format!("it is not an ancestor of {fetched}"))
    } else if settings.require_signed {
        source
            .verify(to)
            .map_err(|e| format!("its signature is not trusted ({e})"))
    } else {
        Ok(())
    };
    let checkout = match allowed.and_then(|()| source.checkout(to)) {
        Ok(checkout) => checkout,
        Err(e) => {
            tracing::warn!(commit = %to, error = %e, "cannot roll back; keeping the current commit");
            if let Some(note) = &mut info.rollout {
                note.reason = format!("{}; not rolled back to {to}: {e}", note.reason);
            }
            return stay(settings, source, memory, info);
        }
    };
    tracing::warn!(commit = %to, reason = %info.rollout.as_ref().map_or("", |n| n.reason.as_str()), "rolling back");
    info.revision = source.revision(to);
    match converge::converge(&options(settings, &checkout, &info))? {
        Outcome::Ran(report) => finish(settings, source, memory, to, report),
        Outcome::Invalid(repo, problems) => {
            memory.save(&settings.state_dir)?;
            Ok(Cycle::Invalid(repo, problems))
        }
    }
}

/// Holds `<state-dir>/agent.lock` for a cycle (released on every exit,
/// even SIGKILL: it is a flock).
fn take_turn(state_dir: &Path) -> anyhow::Result<std::fs::File> {
    crate::fsutil::ensure_private_dir(state_dir)?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("agent.lock"))?
        .into_parts()
        .0;
    if file.try_lock().is_err() {
        tracing::info!("another agent cycle is running on this host; waiting for it");
        file.lock()?;
    }
    Ok(file)
}

/// `--require-signed` and the ancestry of the last commit applied.
fn trust(
    settings: &Settings,
    source: &Source,
    memory: &Memory,
    commit: &str,
) -> Result<(), String> {
    if settings.require_signed {
        source
            .verify(commit)
            .map_err(|e| format!("its signature is not trusted ({e})"))?;
    }
    if let Some(last) = &memory.last_applied
        && !settings.allow_rewind
        && !source.descends(last, commit)
    {
        return Err(format!(
            "it does not descend from {last}, the last commit applied (a rollback or rewritten history; pass --allow-rewind to accept it)"
        ));
    }
    Ok(())
}

fn rejected(source: &Source, commit: &str, reason: String, errors: Vec<String>) -> Rejected {
    Rejected {
        revision: source.revision(commit).unwrap_or_else(|| Revision {
            commit: commit.to_owned(),
            author: String::new(),
            committed_at: String::new(),
            subject: String::new(),
        }),
        reason,
        errors,
    }
}

fn options<'a>(
    settings: &'a Settings,
    checkout: &'a Path,
    info: &SourceInfo,
) -> converge::Options<'a> {
    converge::Options {
        repo: checkout,
        environment: settings.environment.as_deref(),
        host: settings.host.as_deref(),
        dry_run: false,
        state_dir: settings.state_dir.clone(),
        no_cache: false,
        report_to: settings.log.clone(),
        source: Some(info.clone()),
    }
}

fn finish(
    settings: &Settings,
    source: &Source,
    memory: &mut Memory,
    commit: &str,
    report: Box<Report>,
) -> anyhow::Result<Cycle> {
    memory.last_good = Some(commit.to_owned());
    memory.last_applied = Some(commit.to_owned());
    memory.last_run = Some(memory::LastRun {
        at: memory::now(),
        commit: commit.to_owned(),
        status: report.status,
        duration_ms: report.duration_ms,
        stale: report.source_stale,
    });
    memory.save(&settings.state_dir)?;
    source.prune(&[commit]);
    let options = options(settings, Path::new(""), &SourceInfo::default());
    converge::deliver(&options, &report);
    Ok(Cycle::Ran(report))
}

/// The agent's life: a cycle at the host's slot of every interval (its
/// offset inside the splay), another at once on SIGHUP; on SIGTERM or
/// SIGINT the resource in progress finishes and the agent returns.
pub fn serve(settings: &Settings) -> anyhow::Result<()> {
    let signals = signals::Signals::install()?;
    let systemd = watchdog::Notifier::from_env();
    let host = settings.host.clone().unwrap_or_else(crate::facts::hostname);
    let offset = schedule::offset(&host, settings.splay);
    tracing::info!(
        host = %host,
        source = %settings.source,
        interval_s = settings.interval.as_secs(),
        offset_s = offset.as_secs(),
        "agent started"
    );
    // The first cycle comes after the host's offset, so a fleet started at
    // once (a reboot, a package upgrade) does not fetch at once either.
    let mut next_at = since_epoch() + offset;
    // Reports waiting in the spool are retried before the next cycle, with
    // exponential backoff and jitter: (when, attempt).
    let mut retry: Option<(Duration, u32)> = None;
    // Cycles in a row whose fetch failed.
    let mut fetch_failures = 0u32;
    if let Some(log) = &settings.log {
        let known = Memory::load(&settings.state_dir)
            .ok()
            .and_then(|m| m.last_applied);
        let jitter = schedule::offset(&format!("watch:{host}"), settings.watch_splay);
        watch::spawn(log.clone(), known, jitter, signals::wake_for_watch);
    }
    systemd.ready("waiting for the first cycle");
    loop {
        let mut memory = Memory::load(&settings.state_dir)?;
        memory.next_run = Some(next_at.as_secs() + u64::from(next_at.subsec_nanos() > 0));
        memory.save(&settings.state_dir)?;
        let wake_at = retry.map_or(next_at, |(at, _)| at.min(next_at));
        let woke = wait(&signals, &systemd, wake_at);
        if woke == signals::Wake::Terminate {
            tracing::info!("agent stopping");
            systemd.stopping();
            return Ok(());
        }
        if woke == signals::Wake::Time
            && let Some((at, attempt)) = retry
            && at < next_at
        {
            retry = deliver_waiting(settings).then(|| {
                let backoff = backoff(attempt + 1, settings.interval, &host);
                (since_epoch() + backoff, attempt + 1)
            });
            continue;
        }
        systemd.status("running a cycle");
        let outcome = {
            let _busy = systemd.busy(watchdog::HUNG_AFTER);
            run_cycle(settings)
        };
        // What the cycle allocated (catalog, plan, diffs) is freed, but
        // glibc keeps the pages: give them back, so that an agent waiting
        // out its interval holds only what it needs.
        // SAFETY: malloc_trim only releases free memory; it takes no
        // pointer and is safe to call at any time.
        unsafe {
            nix::libc::malloc_trim(0);
        }
        systemd.status(&match &outcome {
            Ok(cycle) => format!("last cycle: {}", cycle.summary()),
            Err(e) => format!("last cycle failed: {e}"),
        });
        if signals.terminating() {
            tracing::info!("agent stopping");
            systemd.stopping();
            return Ok(());
        }
        next_at = schedule::next_run(since_epoch(), settings.interval, offset);
        // A commit waiting for its wave: ask again when the log said (a
        // soak's end), if that comes before the next slot.
        if let Ok(Cycle::Ran(report)) = &outcome
            && let Some(note) = &report.rollout
            && note.decision != crate::report::Decision::Admitted
            && let Some(after) = note.retry_after_s
        {
            next_at = next_at.min(since_epoch() + Duration::from_secs(after.max(5)));
        }
        // The source could not be fetched (the git server busy, a network
        // cut): try again after 30 s, 1 min, 2 min … (jittered, at most an
        // interval), not a whole interval later; a wave waiting on this
        // host, or a push it was woken for, is not held that long.
        let unfetched = match &outcome {
            Ok(Cycle::Ran(report)) => report.source_stale,
            Ok(Cycle::NothingToApply(_)) => true,
            _ => false,
        };
        if unfetched {
            next_at =
                next_at.min(since_epoch() + backoff(fetch_failures, settings.interval, &host));
            fetch_failures = fetch_failures.saturating_add(1);
        } else {
            fetch_failures = 0;
        }
        retry =
            waiting(settings).then(|| (since_epoch() + backoff(0, settings.interval, &host), 0));
    }
}

/// Waits for `wake_at` (since the epoch) or a signal, pinging systemd's
/// watchdog on the way: waiting is progress.
fn wait(
    signals: &signals::Signals,
    systemd: &watchdog::Notifier,
    wake_at: Duration,
) -> signals::Wake {
    loop {
        let left = wake_at.saturating_sub(since_epoch());
        let step = systemd.ping_every().map_or(left, |every| left.min(every));
        let woke = signals.wait(step);
        systemd.ping();
        if woke != signals::Wake::Time || step == left {
            return woke;
        }
    }
}

/// Whether reports wait in the spool.
fn waiting(settings: &Settings) -> bool {
    settings.log.is_some()
        && !crate::report::spool::Spool::new(settings.state_dir.join("spool"))
            .pending()
            .is_empty()
}

/// Sends what waits in the spool; whether some still wait.
fn deliver_waiting(settings: &Settings) -> bool {
    let Some(endpoint) = &settings.log else {
        return false;
    };
    let spool = crate::report::spool::Spool::new(settings.state_dir.join("spool"));
    enroll_for_waiting(endpoint, &spool);
    match crate::report::send::Sender::new(endpoint) {
        Ok(sender) => {
            let round = spool.deliver(&sender);
            tracing::info!(
                sent = round.sent,
                waiting = round.waiting,
                "retried sending reports"
            );
            round.waiting > 0
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot send reports");
            true
        }
    }
}

/// Enrolls, when the host has no token yet, as the host and in the
/// environment of the oldest report waiting.
fn enroll_for_waiting(
    endpoint: &crate::report::send::Endpoint,
    spool: &crate::report::spool::Spool,
) {
    if endpoint.enroll_token_file.is_none() || endpoint.token_file.exists() {
        return;
    }
    let Some(first) = spool.pending().into_iter().next() else {
        return;
    };
    let Ok(report) = fs_err::read(&first)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Report>(&b).map_err(|e| e.to_string()))
    else {
        return;
    };
    match crate::report::enroll::ensure(endpoint, &report.host, &report.environment) {
        Ok(true) => {
            tracing::info!(host = %report.host, environment = %report.environment, "enrolled with the log")
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot enroll with the log"),
    }
}

/// 30 s × 2^attempt, at most the interval, times a jitter between 0.5 and
/// 1.5 (from the host name and the clock), so hosts that lost the log
/// together do not come back together.
fn backoff(attempt: u32, interval: Duration, host: &str) -> Duration {
    let base = Duration::from_secs(30)
        .saturating_mul(1 << attempt.min(16))
        .min(interval);
    let seed = schedule::offset(host, Duration::from_secs(1)).as_nanos()
        ^ u128::from(since_epoch().subsec_nanos());
    let jitter = 0.5 + (seed % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// One cycle with its log line and metrics; problems are logged (and
/// returned), never fatal to the agent.
pub fn run_cycle(settings: &Settings) -> anyhow::Result<Cycle> {
    let started = std::time::Instant::now();
    let outcome = cycle(settings);
    let memory = Memory::load(&settings.state_dir).unwrap_or_default();
    let spool = crate::report::spool::Spool::new(settings.state_dir.join("spool"));
    let report = match &outcome {
        Ok(Cycle::Ran(report)) => Some(report.as_ref()),
        _ => None,
    };
    let snapshot = metrics::Snapshot {
        report,
        source_age_s: memory.last_fetch.map(|t| memory::now().saturating_sub(t)),
        spool: &spool,
        disabled: memory.disabled.is_some(),
    };
    if let Err(e) = metrics::write(&settings.state_dir, &snapshot) {
        tracing::warn!(error = %e, "cannot write the metrics file");
    }
    let elapsed_ms = started.elapsed().as_millis();
    match &outcome {
        Ok(Cycle::Ran(r)) => tracing::info!(
            commit = %r.revision.as_ref().map_or("", |v| v.commit.as_str()),
            status = ?r.status,
            changed = r.summary.changed,
            drift = r.summary.drift,
            failed = r.summary.failed,
            stale = r.source_stale,
            rejected = %r.rejected.as_ref().map_or("", |x| x.revision.commit.as_str()),
            elapsed_ms,
            "cycle"
        ),
        Ok(Cycle::Disabled(reason)) => {
            tracing::warn!(reason = %reason, "cycle skipped: the agent is disabled")
        }
        Ok(Cycle::NothingToApply(why)) => tracing::error!(reason = %why, "cycle: nothing to apply"),
        Ok(Cycle::Invalid(_, problems)) => tracing::error!(
            problems = problems.len(),
            "cycle: the last good commit no longer compiles for this host; nothing touched"
        ),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "cycle failed"),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_interval() {
        let interval = Duration::from_secs(30 * 60);
        for attempt in 0..12 {
            let base = (30.0 * f64::from(1u32 << attempt)).min(1800.0);
            let got = backoff(attempt, interval, "web-1").as_secs_f64();
            assert!(
                got >= base * 0.5 && got <= base * 1.5,
                "attempt {attempt}: {got} s for a base of {base} s"
            );
        }
        let spread: std::collections::BTreeSet<u128> = (0..50)
            .map(|i| backoff(0, interval, &format!("host-{i}")).as_millis())
            .collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
    }
}
