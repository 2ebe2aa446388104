//! Planning `file` resources: compare with the host, return the operations.

use std::os::unix::fs::MetadataExt;

use super::{Action, Found, Observer, Op, Plan, Planned, look};
use crate::engine::diff;
use crate::resource::file::FileSpec;

/// Mode of a new file when the manifest names none.
const DEFAULT_MODE: u32 = 0o644;

pub fn plan(spec: &FileSpec, sensitive: bool, obs: &mut Observer<'_>) -> Planned {
    let path = &spec.path;
    let shown = path.display().to_string();
    let found = look(path)?;
    let Some(content) = &spec.content else {
        return match found {
            Found::Nothing => Ok(None),
            Found::File(_) | Found::Symlink(_) => Ok(Some(Plan {
                action: Action::Remove,
                changes: Vec::new(),
                diff: None,
                ops: vec![Op::Remove { path: path.clone() }],
            })),
            Found::Dir(_) => Err(format!(
                "`{shown}` is a directory; a `file` resource does not remove directories"
            )
            .into()),
            Found::Other(kind) => Err(format!("`{shown}` is a {kind}, not a file").into()),
        };
    };
    let mut changes = Vec::new();
    match found {
        Found::Nothing | Found::Symlink(_) => {
            let action = if matches!(found, Found::Nothing) {
                obs.check_parent(path)?;
                Action::Create
            } else {
                changes.push("symlink -> file".to_owned());
                Action::Change
            };
            let (uid, gid) = obs.new_ownership(spec.owner.as_deref(), spec.group.as_deref())?;
            Ok(Some(Plan {
                action,
                changes,
                diff: Some(diff::unified(&shown, b"", content, sensitive)),
                ops: vec![Op::WriteFile {
                    path: path.clone(),
                    content: content.clone(),
                    mode: spec.mode.map_or(DEFAULT_MODE, |m| m.0),
                    uid,
                    gid,
                }],
            }))
        }
        Found::Dir(_) => Err(format!("`{shown}` is a directory, not a file").into()),
        Found::Other(kind) => Err(format!("`{shown}` is a {kind}, not a file").into()),
        Found::File(meta) => {
            let current_mode = meta.mode() & 0o7777;
            // Compare bytes only when the sizes agree; read at most once.
            let current = if usize::try_from(meta.len()).ok() == Some(content.len()) {
                Some(crate::fsutil::read_nofollow(path, content.len()).map_err(|e| e.to_string())?)
            } else {
                None
            };
            let same_content = current.as_deref() == Some(content.as_slice());
            let mut diff_text = None;
            if !same_content {
                changes.push("content".to_owned());
                let current = match current {
                    Some(c) => c,
                    None => crate::fsutil::read_nofollow(path, 0).map_err(|e| e.to_string())?,
                };
                diff_text = Some(diff::unified(&shown, &current, content, sensitive));
            }
            let mode = spec.mode.map_or(current_mode, |m| m.0);
            if mode != current_mode {
                changes.push(format!("mode {:04o} -> {mode:04o}", current_mode));
            }
            let (uid, gid) = obs.ownership_change(
                spec.owner.as_deref(),
                spec.group.as_deref(),
                (meta.uid(), meta.gid()),
                &mut changes,
            )?;
            if changes.is_empty() {
                return Ok(None);
            }
            let ops = if same_content {
                let mut ops = Vec::new();
                if uid.is_some() || gid.is_some() {
                    ops.push(Op::SetOwner {
                        path: path.clone(),
                        uid,
                        gid,
                    });
                }
                if mode != current_mode {
                    ops.push(Op::SetMode {
                        path: path.clone(),
                        mode,
                    });
                }
                ops
            } else {
                vec![Op::WriteFile {
                    path: path.clone(),
                    content: content.clone(),
                    mode,
                    uid: uid.or(Some(meta.uid())),
                    gid: gid.or(Some(meta.gid())),
                }]
            };
            Ok(Some(Plan {
                action: Action::Change,
                changes,
                diff: diff_text,
                ops,
            }))
        }
    }
}
