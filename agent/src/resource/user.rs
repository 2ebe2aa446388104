//! `user`: a local account: uid, primary and supplementary groups, home, shell.

use serde::Serialize;

use super::group::{id, valid_account_name};
use super::{AttrSpec, AttrType, Desired, PRESENT_ABSENT, attr};
use crate::catalog::attrs::Attrs;
use crate::engine::plan::{Action, Op, Plan};
use crate::provider::accounts;

pub const ATTRIBUTES: &[AttrSpec] = &[
    attr("uid", AttrType::Int),
    attr("group", AttrType::Str),
    attr("groups", AttrType::List),
    attr("home", AttrType::Str),
    attr("manage_home", AttrType::Bool),
    attr("shell", AttrType::Str),
    attr("system", AttrType::Bool),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
];

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

pub fn plan(spec: &UserSpec) -> Result<Option<Plan>, String> {
    let name = &spec.name;
    let current = accounts::user(name)?;
    let tool = |program: &'static str, args: Vec<String>| Op::Tool { program, args };
    let Some(current) = current else {
        if !spec.present {
            return Ok(None);
        }
        let mut args = Vec::new();
        push_common(spec, &mut args);
        if spec.system {
            args.push("--system".to_owned());
        }
        args.push(
            if spec.manage_home {
                "--create-home"
            } else {
                "--no-create-home"
            }
            .to_owned(),
        );
        if spec.group.is_none() {
            // A group of the user's name, as Debian's adduser does.
            args.push("--user-group".to_owned());
        }
        args.push(name.clone());
        return Ok(Some(Plan {
            action: Action::Create,
            changes: Vec::new(),
            diff: None,
            ops: vec![tool("useradd", args)],
        }));
    };
    if !spec.present {
        return Ok(Some(Plan {
            action: Action::Remove,
            changes: Vec::new(),
            diff: None,
            ops: vec![tool("userdel", vec![name.clone()])],
        }));
    }
    let mut changes = Vec::new();
    let mut args = Vec::new();
    if let Some(uid) = spec.uid
        && uid != current.uid
    {
        changes.push(format!("uid {} -> {uid}", current.uid));
        args.extend(["--uid".to_owned(), uid.to_string()]);
    }
    if let Some(group) = &spec.group {
        let want = match group.parse::<u32>() {
            Ok(gid) => Some(gid),
            Err(_) => accounts::group_gid(group)?,
        };
        let want = want.ok_or_else(|| format!("group `{group}` does not exist"))?;
        if want != current.gid {
            changes.push(format!("group {} -> {group}", current.gid));
            args.extend(["--gid".to_owned(), group.clone()]);
        }
    }
    if let Some(groups) = &spec.groups
        && *groups != current.groups
    {
        changes.push(format!(
            "groups [{}] -> [{}]",
            current.groups.join(", "),
            groups.join(", ")
        ));
        args.extend(["--groups".to_owned(), groups.join(",")]);
    }
    if let Some(home) = &spec.home
        && *home != current.home
    {
        changes.push(format!("home {} -> {home}", current.home));
        args.extend(["--home".to_owned(), home.clone()]);
        if spec.manage_home {
            args.push("--move-home".to_owned());
        }
    }
    if let Some(shell) = &spec.shell
        && *shell != current.shell
    {
        changes.push(format!("shell {} -> {shell}", current.shell));
        args.extend(["--shell".to_owned(), shell.clone()]);
    }
    if changes.is_empty() {
        return Ok(None);
    }
    args.push(name.clone());
    Ok(Some(Plan {
        action: Action::Change,
        changes,
        diff: None,
        ops: vec![tool("usermod", args)],
    }))
}

fn push_common(spec: &UserSpec, args: &mut Vec<String>) {
    if let Some(uid) = spec.uid {
        args.extend(["--uid".to_owned(), uid.to_string()]);
    }
    if let Some(group) = &spec.group {
        args.extend(["--gid".to_owned(), group.clone()]);
    }
    if let Some(groups) = spec.groups.as_ref().filter(|g| !g.is_empty()) {
        args.extend(["--groups".to_owned(), groups.join(",")]);
    }
    if let Some(home) = &spec.home {
        args.extend(["--home-dir".to_owned(), home.clone()]);
    }
    if let Some(shell) = &spec.shell {
        args.extend(["--shell".to_owned(), shell.clone()]);
    }
}
