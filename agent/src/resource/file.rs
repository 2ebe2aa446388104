//! `file`: a regular file's bytes, mode and ownership.

use std::path::PathBuf;

use serde::Serialize;

use super::attrs::Attrs;
use super::{Desired, Mode, PRESENT_ABSENT};

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
