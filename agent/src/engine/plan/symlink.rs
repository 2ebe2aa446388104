//! Planning `symlink` resources: compare with the host, return the operations.

use super::{Action, Found, Observer, Op, Plan, Planned, look};
use crate::resource::symlink::SymlinkSpec;

pub fn plan(spec: &SymlinkSpec, obs: &mut Observer<'_>) -> Planned {
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
                Err(format!("`{shown}` is not a symlink; refusing to remove it").into())
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
            )
            .into());
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
