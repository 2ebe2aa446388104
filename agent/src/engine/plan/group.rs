//! Planning `group` resources: compare with the host, return the operations.

use super::{Action, Op, Plan, Planned};
use crate::provider::accounts;
use crate::resource::group::GroupSpec;

pub fn plan(spec: &GroupSpec) -> Planned {
    let name = &spec.name;
    let current = accounts::group_gid(name)?;
    let tool = |program: &'static str, args: Vec<String>| Op::Tool { program, args };
    Ok(match (spec.present, current) {
        (false, None) => None,
        (false, Some(_)) => Some(Plan {
            action: Action::Remove,
            changes: Vec::new(),
            diff: None,
            ops: vec![tool("groupdel", vec![name.clone()])],
        }),
        (true, None) => {
            let mut args = Vec::new();
            if let Some(gid) = spec.gid {
                args.extend(["--gid".to_owned(), gid.to_string()]);
            }
            if spec.system {
                args.push("--system".to_owned());
            }
            args.push(name.clone());
            Some(Plan {
                action: Action::Create,
                changes: Vec::new(),
                diff: None,
                ops: vec![tool("groupadd", args)],
            })
        }
        (true, Some(have)) => match spec.gid {
            Some(want) if want != have => Some(Plan {
                action: Action::Change,
                changes: vec![format!("gid {have} -> {want}")],
                diff: None,
                ops: vec![tool(
                    "groupmod",
                    vec!["--gid".to_owned(), want.to_string(), name.clone()],
                )],
            }),
            _ => None,
        },
    })
}
