//! Planning `exec` resources: compare with the host, return the operations.

use super::{Action, Op, Plan, Planned};
use crate::provider;
use crate::resource::exec::ExecSpec;

/// Evaluates the guards (read-only checks, also in a dry-run) and decides.
pub fn plan(spec: &ExecSpec, notified_by: Option<&str>) -> Planned {
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
        let out = provider::shell(command, spec.cwd.as_deref(), spec.timeout())?;
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
