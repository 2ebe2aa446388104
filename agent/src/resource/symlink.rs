//! `symlink`: a link and its target.

use std::path::PathBuf;

use serde::Serialize;

use super::attrs::Attrs;
use super::{Desired, PRESENT_ABSENT};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymlinkSpec {
    pub path: PathBuf,
    /// What the link points to; `None` when it must be absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
}

pub fn build(path: PathBuf, a: &mut Attrs) -> Option<Desired> {
    let present = a.state(PRESENT_ABSENT, "present") == "present";
    let target = a.string("target");
    match (&target, present) {
        (None, true) => a.error(
            "symlink",
            "a symlink needs `target`",
            "add e.g. `target: /etc/nginx/sites-available/photos`",
        ),
        (Some(_), false) => a.error(
            "target",
            "`target` has no meaning when `state: absent`",
            "remove it, or the `state` line",
        ),
        (Some(t), true) if t.is_empty() => a.error(
            "target",
            "`target` is empty",
            "name the path the link points to",
        ),
        _ => {}
    }
    Some(Desired::Symlink(SymlinkSpec {
        path,
        target: target.filter(|_| present).map(PathBuf::from),
    }))
}
