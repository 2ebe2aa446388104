//! `service`: running or stopped, enabled at boot or not; restarted when a
//! resource that notifies it changed.

use serde::Serialize;

use super::Desired;
use super::attrs::Attrs;

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
