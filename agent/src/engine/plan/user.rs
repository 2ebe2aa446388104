//! Planning `user` resources: compare with the host, return the operations.

use super::{Action, Missing, Op, Plan, PlanError, Planned};
use crate::provider::accounts;
use crate::resource::user::UserSpec;

pub fn plan(spec: &UserSpec) -> Planned {
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
        let want = want.ok_or_else(|| {
            PlanError::missing(
                Missing::Group(group.clone()),
                format!("group `{group}` does not exist"),
            )
        })?;
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
