//! Users and groups: looked up in-process (getpwnam, getgrnam), changed with
//! the system's useradd, usermod, userdel, groupadd, groupmod and groupdel.

use super::{TOOL_TIMEOUT, command, run};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// Names of the supplementary groups.
    pub groups: Vec<String>,
}

pub fn user(name: &str) -> Result<Option<User>, String> {
    let Some(u) = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up user `{name}`: {e}"))?
    else {
        return Ok(None);
    };
    let cname =
        std::ffi::CString::new(name).map_err(|_| format!("`{name}` contains a NUL byte"))?;
    let gids = nix::unistd::getgrouplist(&cname, u.gid)
        .map_err(|e| format!("cannot list the groups of `{name}`: {e}"))?;
    let mut groups: Vec<String> = gids
        .into_iter()
        .filter(|g| *g != u.gid)
        .filter_map(|g| {
            nix::unistd::Group::from_gid(g)
                .ok()
                .flatten()
                .map(|g| g.name)
        })
        .collect();
    groups.sort();
    groups.dedup();
    Ok(Some(User {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        home: u.dir.to_string_lossy().into_owned(),
        shell: u.shell.to_string_lossy().into_owned(),
        groups,
    }))
}

pub fn group_gid(name: &str) -> Result<Option<u32>, String> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(|e| format!("cannot look up group `{name}`: {e}"))
}

/// Runs one of the account tools with its arguments.
pub fn tool(program: &str, args: &[String]) -> Result<(), String> {
    let out = run(command(program).args(args), TOOL_TIMEOUT)?;
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(program))
    }
}
