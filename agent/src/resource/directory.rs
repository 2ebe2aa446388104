//! `directory`: existence, mode and ownership; with `purge`, nothing inside
//! that the catalog does not manage.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::Serialize;

use super::{AttrSpec, AttrType, Desired, Mode, PRESENT_ABSENT, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::plan::{Action, Found, Observer, Op, Plan, look};

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("mode", AttrType::Mode),
    attr("owner", AttrType::Str),
    attr("group", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
    attr("purge", AttrType::Bool),
];

const DEFAULT_MODE: u32 = 0o755;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectorySpec {
    pub path: PathBuf,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub purge: bool,
}

pub fn build(path: PathBuf, a: &mut Attrs) -> Option<Desired> {
    let present = a.state(PRESENT_ABSENT, "present") == "present";
    let purge = a.bool("purge").unwrap_or(false);
    if purge && !present {
        a.error(
            "purge",
            "`purge` has no meaning when `state: absent`",
            "remove `purge`; an absent directory goes with everything in it",
        );
    }
    Some(Desired::Directory(DirectorySpec {
        path,
        present,
        mode: a.mode("mode"),
        owner: a.string("owner"),
        group: a.string("group"),
        purge,
    }))
}

pub fn plan(spec: &DirectorySpec, obs: &mut Observer) -> Result<Option<Plan>, String> {
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
            Found::File(_) | Found::Symlink(_) | Found::Other(_) => Err(format!(
                "`{shown}` is not a directory; refusing to remove it"
            )),
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
        )),
        Found::File(_) | Found::Other(_) => Err(format!("`{shown}` exists and is not a directory")),
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
