//! Planning `service` resources: compare with the host, return the operations.

use super::{Action, Missing, Op, Plan, PlanError, Planned};
use crate::provider::service::{self as provider, Init};
use crate::resource::service::ServiceSpec;

/// `notified_by`: the changed resource that asks for a restart, if any.
pub fn plan(spec: &ServiceSpec, init: Init, notified_by: Option<&str>) -> Planned {
    let name = &spec.name;
    let state = provider::observe(init, name)?;
    if !state.exists {
        let message = match init {
            Init::Systemd => {
                format!("service `{name}` does not exist: systemd has no unit `{name}`")
            }
            Init::SysV => {
                format!("service `{name}` does not exist: there is no /etc/init.d/{name}")
            }
        };
        return Err(PlanError::missing(Missing::Service(name.clone()), message));
    }
    let mut changes = Vec::new();
    let mut ops = Vec::new();
    let mut action = Action::Change;
    let op = |action| Op::Service {
        name: name.clone(),
        action,
        init,
    };
    match (spec.running, state.running) {
        (Some(true), false) => {
            changes.push("start".to_owned());
            ops.push(op(provider::Action::Start));
        }
        (Some(false), true) => {
            changes.push("stop".to_owned());
            ops.push(op(provider::Action::Stop));
        }
        // Running (as wanted, or not managed): a notification restarts it.
        (Some(true) | None, true) => {
            if let Some(by) = notified_by {
                changes.push(format!("(notified by {by})"));
                ops.push(op(provider::Action::Restart));
                action = Action::Restart;
            }
        }
        _ => {}
    }
    match (spec.enabled, state.enabled) {
        (Some(true), false) => {
            changes.push("enable".to_owned());
            ops.push(op(provider::Action::Enable));
        }
        (Some(false), true) => {
            changes.push("disable".to_owned());
            ops.push(op(provider::Action::Disable));
        }
        _ => {}
    }
    if ops.is_empty() {
        return Ok(None);
    }
    if ops.len() > 1 || !matches!(action, Action::Restart) {
        action = Action::Change;
    }
    Ok(Some(Plan {
        action,
        changes,
        diff: None,
        ops,
    }))
}
