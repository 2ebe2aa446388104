//! `user`: a local account: uid, primary and supplementary groups, home, shell.

use serde::Serialize;

use super::attrs::Attrs;
use super::group::{id, valid_account_name};
use super::{Desired, PRESENT_ABSENT};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSpec {
    pub name: String,
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The primary group, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Supplementary groups, sorted; `None` leaves them alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub manage_home: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

pub fn build(name: String, a: &mut Attrs) -> Option<Desired> {
    if !valid_account_name(&name) {
        a.error(
            "user",
            format!("`{name}` is not a valid user name"),
            "use lower case letters, digits, `_` and `-`, starting with a letter",
        );
    }
    let present = a.state(PRESENT_ABSENT, "present") == "present";
    let uid = id(a, "uid");
    let groups = a.strings("groups").map(|mut g| {
        g.sort();
        g.dedup();
        g
    });
    Some(Desired::User(UserSpec {
        name,
        present,
        uid,
        group: a.string("group"),
        groups,
        home: a.string("home"),
        manage_home: a.bool("manage_home").unwrap_or(false),
        shell: a.string("shell"),
        system: a.bool("system").unwrap_or(false),
    }))
}
