//! `file`: a regular file's bytes, mode and ownership.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::Serialize;

use super::{AttrSpec, AttrType, Desired, Mode, PRESENT_ABSENT, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::diff;
use crate::engine::plan::{Action, Found, Observer, Op, Plan, look};

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("content", AttrType::Str),
    attr("template", AttrType::Str),
    attr("source", AttrType::Str),
    attr("vars", AttrType::Vars),
    attr("mode", AttrType::Mode),
    attr("owner", AttrType::Str),
    attr("group", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
    attr("sensitive", AttrType::Bool),
];

/// Mode of a new file when the manifest names none.
const DEFAULT_MODE: u32 = 0o644;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileSpec {
    pub path: PathBuf,
    /// The bytes the file must hold; `None` when it must be absent.
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    /// Where the content comes from, for people reading a catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

pub fn build(path: PathBuf, a: &mut Attrs) -> Option<Desired> {
    let state = a.state(PRESENT_ABSENT, "present");
    a.extra_vars = a.vars("vars");
    let sources: Vec<&str> = ["content", "template", "source"]
        .into_iter()
        .filter(|k| a.has(k))
        .collect();
    let mut content = None;
    let mut from = None;
    if state == "absent" {
        if let Some(k) = sources.first() {
            a.error(
                k,
                format!("`{k}` has no meaning when `state: absent`"),
                "remove it, or the `state` line",
            );
        }
    } else {
        match sources.as_slice() {
            [] => a.error(
                "file",
                "a file needs `content`, `template` or `source`",
                "add one of them, or `state: absent` to remove the file",
            ),
            ["content"] => content = a.string("content").map(String::into_bytes),
            ["template"] => {
                let rel = a.string("template")?;
                content = a.template("template", &rel).map(String::into_bytes);
                from = Some(format!("template {rel}"));
            }
            ["source"] => {
                let rel = a.string("source")?;
                content = a.source("source", &rel);
                from = Some(format!("source {rel}"));
            }
            [other] => unreachable!("`{other}` is not a content attribute"),
            [_, second, ..] => a.error(
                second,
                format!("a file takes exactly one of `content`, `template` and `source`; this one has {}", sources.join(" and ")),
                "keep the one you mean",
            ),
        }
    }
    let spec = FileSpec {
        path,
        content,
        from,
        mode: a.mode("mode"),
        owner: a.string("owner"),
        group: a.string("group"),
    };
    Some(Desired::File(spec))
}

pub fn plan(spec: &FileSpec, sensitive: bool, obs: &mut Observer) -> Result<Option<Plan>, String> {
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
            )),
            Found::Other(kind) => Err(format!("`{shown}` is a {kind}, not a file")),
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
        Found::Dir(_) => Err(format!("`{shown}` is a directory, not a file")),
        Found::Other(kind) => Err(format!("`{shown}` is a {kind}, not a file")),
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
