//! `exec`: a command run when its guards say so, or when notified.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Desired;
use super::attrs::Attrs;

const DEFAULT_TIMEOUT_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecSpec {
    pub name: String,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creates: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onlyif: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refresh_only: bool,
    pub timeout_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

impl ExecSpec {
    /// Whether its decision reads the host (and so may depend on what an
    /// earlier resource would change).
    pub fn has_guards(&self) -> bool {
        self.creates.is_some() || self.unless.is_some() || self.onlyif.is_some()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

pub fn build(name: String, a: &mut Attrs) -> Option<Desired> {
    let command = a.string("command").unwrap_or_else(|| name.clone());
    if command.trim().is_empty() {
        a.error(
            "command",
            "the command is empty",
            "write the shell command to run",
        );
    }
    let creates = a.string("creates").map(PathBuf::from);
    if creates.as_ref().is_some_and(|p| !p.is_absolute()) {
        a.error(
            "creates",
            "`creates` must be an absolute path",
            "write e.g. creates: /var/lib/app/.initialised",
        );
    }
    let cwd = a.string("cwd").map(PathBuf::from);
    let (unless, onlyif) = (a.string("unless"), a.string("onlyif"));
    let refresh_only = a.bool("refresh_only").unwrap_or(false);
    if creates.is_none() && unless.is_none() && onlyif.is_none() && !refresh_only {
        a.error(
            "exec",
            "this exec has no guard, so it would run on every converge",
            "add `creates`, `unless` or `onlyif`, or `refresh_only: true` to run it when notified",
        );
    }
    Some(Desired::Exec(ExecSpec {
        name,
        command,
        creates,
        unless,
        onlyif,
        refresh_only,
        timeout_secs: a.int("timeout").unwrap_or(DEFAULT_TIMEOUT_SECS),
        cwd,
    }))
}
