//! `directory`: existence, mode and ownership; with `purge`, nothing inside
//! that the catalog does not manage.

use std::path::PathBuf;

use serde::Serialize;

use super::attrs::Attrs;
use super::{Desired, Mode, PRESENT_ABSENT};

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
