//! The run report: what a converge found and did, as JSON for the central
//! log and as the plan/apply listing people read; and the client both the
//! agent and the log's commands speak to the log with.

pub mod client;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::source::git::Revision;

/// Text for a terminal with its control characters shown, not obeyed: a
/// host name, a commit subject or a file's diff may carry escape sequences
/// (or bidirectional overrides) that would otherwise rewrite an operator's
/// screen or hide what a line says. Newlines and tabs stay.
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hostile(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// What happens to the resource as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Change,
    Remove,
    /// A service restarted because something it is notified by changed.
    Restart,
    /// An exec command run.
    Run,
}

impl Action {
    pub fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Change | Action::Restart => '~',
            Action::Remove => '-',
            Action::Run => '>',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    Apply,
    DryRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unchanged,
    Changed,
    Drift,
    Failed,
    /// Dry-run only: the state depends on a change that was not made.
    Unknown,
}

impl Status {
    /// Whether the resource changed (or, in a dry-run, would or might).
    pub fn is_change(self) -> bool {
        matches!(self, Status::Changed | Status::Drift | Status::Unknown)
    }
}

/// Why a resource differed from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The desired state changed (a new commit, other vars, a new host).
    Revision,
    /// The desired state is what was applied last time: the host changed.
    Drift,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub changed: usize,
    pub drift: usize,
    pub failed: usize,
    pub unchanged: usize,
    /// Dry-run only: resources whose state depends on a change not made.
    #[serde(default)]
    pub unknown: usize,
    /// Resources a run stopped early (SIGTERM) did not reach.
    #[serde(skip_serializing_if = "is_zero_usize", default)]
    pub not_reached: usize,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceReport {
    pub id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cause: Option<Cause>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// What an exec printed (the end of it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub output: Option<String>,
    /// For `unknown`: the change it waits for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub depends_on: Option<String>,
    pub duration_ms: u64,
}

impl ResourceReport {
    pub fn new(id: String) -> Self {
        Self {
            id,
            status: Status::Unchanged,
            cause: None,
            action: None,
            changes: Vec::new(),
            diff: None,
            error: None,
            output: None,
            depends_on: None,
            duration_ms: 0,
        }
    }
}

/// A commit the agent fetched but did not apply: who made it, what it is,
/// and why it was refused (with the manifest errors, file:line:col first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    #[serde(flatten)]
    pub revision: Revision,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<String>,
}

/// What the rollout gate said of a new commit (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutNote {
    pub commit: String,
    pub decision: Decision,
    pub reason: String,
    /// The host's wave, when the log said.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wave: Option<u32>,
    /// When the log asked to be asked again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The log admitted the host: this run applies the commit.
    Admitted,
    /// Not this host's turn (or the rollout is halted): this run converges
    /// the commit the host had.
    Waiting,
    /// No log to ask, `--rollout-offline hold`: the host keeps its commit.
    Held,
    /// No log to ask, `--rollout-offline proceed`: the commit is applied.
    Proceeded,
    /// The rollout halted under `on_halt: rollback`: this run converges
    /// the commit the log named instead.
    #[serde(rename = "rolled_back")]
    RolledBack,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    pub host: String,
    pub environment: String,
    pub roles: Vec<String>,
    pub mode: RunMode,
    pub revision: Option<Revision>,
    /// The source could not be fetched: this run converged the last commit
    /// known to be good.
    pub source_stale: bool,
    /// Seconds since the source was last fetched (agent runs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_age_s: Option<u64>,
    /// A newer commit that was fetched and not applied, and why.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rejected: Option<Rejected>,
    /// A commit under a rollout policy: whether this host was let in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollout: Option<RolloutNote>,
    /// This host never converged, and why (its source cannot be fetched
    /// yet): a run that did nothing, so the log knows the host exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub never_converged: Option<String>,
    /// The agent's interval (agent runs): the log calls a host silent after
    /// two of them without a report.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interval_s: Option<u64>,
    pub started_at: String,
    pub duration_ms: u64,
    pub status: Status,
    pub summary: Summary,
    /// Reports the spool had to drop for room since the last one that was
    /// spooled: never lost silently.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub reports_dropped: u64,
    /// Temporary files an interrupted run left, removed before this run (in
    /// a dry-run: that the next real run will remove).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub leftovers_removed: Vec<String>,
    /// Every resource that did not end unchanged, in the order applied.
    pub resources: Vec<ResourceReport>,
}

impl Report {
    /// The run's status: failures first, then drift (so that drift is never
    /// hidden by a change made in the same run), then changes.
    pub fn status_of(summary: &Summary) -> Status {
        if summary.failed > 0 {
            Status::Failed
        } else if summary.drift > 0 {
            Status::Drift
        } else if summary.changed > 0 {
            Status::Changed
        } else {
            Status::Unchanged
        }
    }

    pub fn summarise(resources: &[ResourceReport], total: usize) -> Summary {
        let count = |s| resources.iter().filter(|r| r.status == s).count();
        let (changed, drift, failed, unknown) = (
            count(Status::Changed),
            count(Status::Drift),
            count(Status::Failed),
            count(Status::Unknown),
        );
        Summary {
            total,
            changed,
            drift,
            failed,
            unchanged: total - changed - drift - failed - unknown,
            unknown,
            not_reached: 0,
        }
    }

    /// The listing: a line per resource that differs, diffs indented below
    /// it, and a summary line.
    pub fn to_text(&self) -> String {
        let dry = self.mode == RunMode::DryRun;
        let mut out = String::new();
        if self.source_stale {
            let age = self.source_age_s.map_or_else(
                || "never fetched".to_owned(),
                |s| {
                    format!(
                        "last fetched {} ago",
                        humantime::format_duration(std::time::Duration::from_secs(s))
                    )
                },
            );
            let commit = self
                .revision
                .as_ref()
                .map_or("?", |r| r.commit.get(..12).unwrap_or(&r.commit));
            let _ = writeln!(
                out,
                "! source unreachable ({age}): converging the last good commit {commit}"
            );
        }
        if let Some(r) = &self.rejected {
            let _ = writeln!(
                out,
                "! commit {} by {} ({}) was not applied: {}",
                r.revision.commit.get(..12).unwrap_or(&r.revision.commit),
                r.revision.author,
                r.revision.subject,
                r.reason
            );
            for e in &r.errors {
                let _ = writeln!(out, "    {e}");
            }
        }
        if let Some(r) = &self.rollout {
            let word = match r.decision {
                Decision::Admitted => "admitted",
                Decision::Waiting => "waiting",
                Decision::Held => "held back",
                Decision::Proceeded => "applied without the log",
                Decision::RolledBack => "rolled back",
            };
            let _ = writeln!(
                out,
                "! rollout of {}: {word}: {}",
                r.commit.get(..12).unwrap_or(&r.commit),
                r.reason
            );
        }
        if !self.leftovers_removed.is_empty() {
            let n = self.leftovers_removed.len();
            let _ = writeln!(
                out,
                "{} {n} temporary file{} an interrupted run left:",
                if dry { "would remove" } else { "removed" },
                if n == 1 { "" } else { "s" }
            );
            for path in &self.leftovers_removed {
                let _ = writeln!(out, "    {path}");
            }
        }
        for r in &self.resources {
            if r.status == Status::Failed {
                let _ = writeln!(
                    out,
                    "! {}: failed: {}",
                    r.id,
                    r.error.as_deref().unwrap_or("unknown error")
                );
                continue;
            }
            if r.status == Status::Unknown {
                let _ = writeln!(
                    out,
                    "? {}: unknown (depends on {})",
                    r.id,
                    r.depends_on.as_deref().unwrap_or("an earlier change")
                );
                continue;
            }
            let Some(action) = r.action else { continue };
            let verb = match (action, dry) {
                (Action::Create, false) => "created",
                (Action::Change, false) => "changed",
                (Action::Remove, false) => "removed",
                (Action::Create, true) => "would create",
                (Action::Change, true) => "would change",
                (Action::Remove, true) => "would remove",
                (Action::Restart, false) => "restarted",
                (Action::Restart, true) => "would restart",
                (Action::Run, false) => "ran",
                (Action::Run, true) => "would run",
            };
            let details = if r.changes.is_empty() {
                String::new()
            } else {
                format!(" {}", r.changes.join(", "))
            };
            let cause = match r.cause {
                Some(Cause::Drift) => "drift",
                _ => "revision",
            };
            let _ = writeln!(out, "{} {}: {verb}{details} ({cause})", action.sign(), r.id);
            for text in [&r.diff, &r.output].into_iter().flatten() {
                for line in text.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        let s = &self.summary;
        let _ = if dry {
            writeln!(
                out,
                "{} would change, {} drift would be corrected, {} failed, {} unchanged{} in {} ms (dry-run: nothing was touched)",
                s.changed,
                s.drift,
                s.failed,
                s.unchanged,
                if s.unknown > 0 {
                    format!(", {} unknown", s.unknown)
                } else {
                    String::new()
                },
                self.duration_ms
            )
        } else {
            writeln!(
                out,
                "{} changed, {} drift corrected, {} failed, {} unchanged{} in {} ms",
                s.changed,
                s.drift,
                s.failed,
                s.unchanged,
                if s.not_reached > 0 {
                    format!(", {} not reached (stopped)", s.not_reached)
                } else {
                    String::new()
                },
                self.duration_ms
            )
        };
        out
    }

    /// Puppet's detailed exit codes: 0 nothing to do, 2 changes (made, or
    /// that a dry-run would make), 4 failures, 6 both.
    pub fn detailed_exit_code(&self) -> u8 {
        let changes = self.summary.changed + self.summary.drift + self.summary.unknown > 0;
        let failures = self.summary.failed > 0;
        u8::from(changes) * 2 + u8::from(failures) * 4
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
