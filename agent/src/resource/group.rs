//! `group`: a local group and its gid.

use serde::Serialize;

use super::attrs::Attrs;
use super::{Desired, PRESENT_ABSENT};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

/// User and group names as useradd accepts them.
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

pub fn id(a: &mut Attrs, key: &str) -> Option<u32> {
    let n = a.int(key)?;
    match u32::try_from(n) {
        Ok(id) => Some(id),
        Err(_) => {
            a.error(
                key,
                format!("`{key}` {n} is too large"),
                "ids are below 4294967295",
            );
            None
        }
    }
}

pub fn build(name: String, a: &mut Attrs) -> Option<Desired> {
    if !valid_account_name(&name) {
        a.error(
            "group",
            format!("`{name}` is not a valid group name"),
            "use lower case letters, digits, `_` and `-`, starting with a letter",
        );
    }
    let present = a.state(PRESENT_ABSENT, "present") == "present";
    let gid = id(a, "gid");
    let system = a.bool("system").unwrap_or(false);
    Some(Desired::Group(GroupSpec {
        name,
        present,
        gid,
        system,
    }))
}
