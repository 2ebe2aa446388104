//! `service`: running or stopped, enabled at boot or not; restarted when a
//! resource that notifies it changed.

use serde::Serialize;

use super::{AttrSpec, AttrType, Desired, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::plan::{Action, Op, Plan};
use crate::provider::service::{self as provider, Init};

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("state", AttrType::OneOf(&["running", "stopped"])),
    attr("enabled", AttrType::Bool),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

pub fn build(name: String, a: &mut Attrs) -> Option<Desired> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        a.error(
            "service",
            format!("`{name}` is not a service name"),
            "write the unit or init script name, e.g. `nginx`",
        );
    }
    let running = a
        .has("state")
        .then(|| a.state(&["running", "stopped"], "running") == "running");
    let enabled = a.bool("enabled");
    Some(Desired::Service(ServiceSpec {
        name,
        running,
        enabled,
    }))
}

/// `notified_by`: the changed resource that asks for a restart, if any.
pub fn plan(
    spec: &ServiceSpec,
    init: Init,
    notified_by: Option<&str>,
) -> Result<Option<Plan>, String> {
    let name = &spec.name;
    let state = provider::observe(init, name)?;
    if !state.exists {
        return Err(match init {
            Init::Systemd => {
                format!("service `{name}` does not exist: systemd has no unit `{name}`")
            }
            Init::SysV => {
                format!("service `{name}` does not exist: there is no /etc/init.d/{name}")
            }
        });
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
