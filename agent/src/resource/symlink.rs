//! `symlink`: a link and its target.

use std::path::PathBuf;

use serde::Serialize;

use super::{AttrSpec, AttrType, Desired, PRESENT_ABSENT, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::plan::{Action, Found, Observer, Op, Plan, look};

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("target", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
];

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

pub fn plan(spec: &SymlinkSpec, obs: &mut Observer) -> Result<Option<Plan>, String> {
    let path = &spec.path;
    let shown = path.display();
    let found = look(path)?;
    let Some(target) = &spec.target else {
        return match found {
            Found::Nothing => Ok(None),
            Found::Symlink(_) => Ok(Some(Plan {
                action: Action::Remove,
                changes: Vec::new(),
                diff: None,
                ops: vec![Op::Remove { path: path.clone() }],
            })),
            Found::File(_) | Found::Dir(_) | Found::Other(_) => {
                Err(format!("`{shown}` is not a symlink; refusing to remove it"))
            }
        };
    };
    let (action, changes) = match found {
        Found::Symlink(current) if current == *target => return Ok(None),
        Found::Symlink(current) => (
            Action::Change,
            vec![format!(
                "target {} -> {}",
                current.display(),
                target.display()
            )],
        ),
        Found::Nothing => {
            obs.check_parent(path)?;
            (Action::Create, Vec::new())
        }
        Found::File(_) => (Action::Change, vec!["file -> symlink".to_owned()]),
        Found::Dir(_) | Found::Other(_) => {
            return Err(format!(
                "`{shown}` exists and is not a symlink or a file; refusing to replace it"
            ));
        }
    };
    Ok(Some(Plan {
        action,
        changes,
        diff: None,
        ops: vec![Op::Symlink {
            path: path.clone(),
            target: target.clone(),
        }],
    }))
}
