//! `exec`: a command run when its guards say so, or when notified.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{AttrSpec, AttrType, Desired, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::plan::{Action, Op, Plan};
use crate::provider;

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("command", AttrType::Str),
    attr("creates", AttrType::Str),
    attr("unless", AttrType::Str),
    attr("onlyif", AttrType::Str),
    attr("refresh_only", AttrType::Bool),
    attr("timeout", AttrType::Int),
    attr("cwd", AttrType::Str),
];

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

/// Runs a command through `sh -c` (guards and the command itself).
pub fn shell(
    command: &str,
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<provider::Output, String> {
    let mut cmd = provider::command("sh");
    cmd.arg("-c").arg(command);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    provider::run(&mut cmd, timeout)
}

/// Evaluates the guards (read-only checks, also in a dry-run) and decides.
pub fn plan(spec: &ExecSpec, notified_by: Option<&str>) -> Result<Option<Plan>, String> {
    if spec.refresh_only && notified_by.is_none() {
        return Ok(None);
    }
    let why = notified_by.map_or_else(
        || "guards allow".to_owned(),
        |by| format!("notified by {by}"),
    );
    if let Some(path) = &spec.creates
        && fs_err::symlink_metadata(path).is_ok()
    {
        return Ok(None);
    }
    let guard = |command: &str| -> Result<bool, String> {
        let out = shell(command, spec.cwd.as_deref(), spec.timeout())?;
        if out.timed_out {
            return Err(out.failure(&format!("guard `{command}`")));
        }
        Ok(out.success())
    };
    if let Some(unless) = &spec.unless
        && guard(unless)?
    {
        return Ok(None);
    }
    if let Some(onlyif) = &spec.onlyif
        && !guard(onlyif)?
    {
        return Ok(None);
    }
    Ok(Some(Plan {
        action: Action::Run,
        changes: vec![why],
        diff: None,
        ops: vec![Op::Exec {
            command: spec.command.clone(),
            cwd: spec.cwd.clone(),
            timeout: spec.timeout(),
        }],
    }))
}
