//! Planning `directory` resources: compare with the host, return the operations.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{Action, Found, Observer, Op, Plan, Planned, look};
use crate::resource::directory::DirectorySpec;

const DEFAULT_MODE: u32 = 0o755;

pub fn plan(spec: &DirectorySpec, obs: &mut Observer<'_>) -> Planned {
    let path = &spec.path;
    let shown = path.display();
    let found = look(path)?;
    if !spec.present {
        return match found {
            Found::Nothing => Ok(None),
            Found::Dir(_) => Ok(Some(Plan {
                action: Action::Remove,
                changes: Vec::new(),
                diff: None,
                ops: vec![Op::Remove { path: path.clone() }],
            })),
            Found::File(_) | Found::Symlink(_) | Found::Other(_) => {
                Err(format!("`{shown}` is not a directory; refusing to remove it").into())
            }
        };
    }
    match found {
        Found::Nothing => {
            obs.check_parent(path)?;
            let (uid, gid) = obs.new_ownership(spec.owner.as_deref(), spec.group.as_deref())?;
            Ok(Some(Plan {
                action: Action::Create,
                changes: Vec::new(),
                diff: None,
                ops: vec![Op::CreateDir {
                    path: path.clone(),
                    mode: spec.mode.map_or(DEFAULT_MODE, |m| m.0),
                    uid,
                    gid,
                }],
            }))
        }
        Found::Symlink(target) => Err(format!(
            "`{shown}` is a symlink to `{}`; tend does not replace it with a directory",
            target.display()
        )
        .into()),
        Found::File(_) | Found::Other(_) => {
            Err(format!("`{shown}` exists and is not a directory").into())
        }
        Found::Dir(meta) => {
            let mut changes = Vec::new();
            let mut ops = Vec::new();
            let (uid, gid) = obs.ownership_change(
                spec.owner.as_deref(),
                spec.group.as_deref(),
                (meta.uid(), meta.gid()),
                &mut changes,
            )?;
            if uid.is_some() || gid.is_some() {
                ops.push(Op::SetOwner {
                    path: path.clone(),
                    uid,
                    gid,
                });
            }
            let current_mode = meta.mode() & 0o7777;
            if let Some(mode) = spec.mode
                && mode.0 != current_mode
            {
                changes.push(format!("mode {current_mode:04o} -> {mode}"));
                ops.push(Op::SetMode {
                    path: path.clone(),
                    mode: mode.0,
                });
            }
            if spec.purge {
                let mut unmanaged: Vec<PathBuf> = fs_err::read_dir(path)
                    .map_err(|e| e.to_string())?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| !obs.manages(p))
                    .collect();
                unmanaged.sort();
                for p in unmanaged {
                    changes.push(format!("purge {}", p.display()));
                    ops.push(Op::Remove { path: p });
                }
            }
            Ok((!ops.is_empty()).then_some(Plan {
                action: Action::Change,
                changes,
                diff: None,
                ops,
            }))
        }
    }
}
