//! Plans: what a resource needs, as typed operations.
//!
//! Converge always builds a plan first. A dry-run prints it; a real run hands
//! the very same operations to [`super::apply::Executor`]. Nothing here
//! changes the host.

pub mod directory;
pub mod exec;
pub mod file;
pub mod group;
pub mod package;
pub mod service;
pub mod symlink;
pub mod user;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

pub use crate::report::Action;

/// The difference between a resource and the host, and how to remove it.
#[derive(Debug)]
pub struct Plan {
    pub action: Action,
    /// What differs, for people: `content`, `mode 0644 -> 0600`.
    pub changes: Vec<String>,
    /// A unified diff of file contents (already redacted when sensitive).
    pub diff: Option<String>,
    pub ops: Vec<Op>,
}

/// Why a resource could not be planned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    pub message: String,
    /// The precondition that failed, when a change earlier in the run could
    /// meet it (a dry-run, which makes none, then says "unknown").
    pub missing: Option<Missing>,
}

/// Something a resource needs from the host that an earlier change may create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A parent directory.
    Parent(PathBuf),
    User(String),
    Group(String),
    /// A service's unit file or init script.
    Service(String),
    /// A version of a package that apt could install (sources, lists).
    Candidate(String),
}

impl PlanError {
    pub fn missing(missing: Missing, message: String) -> Self {
        Self {
            message,
            missing: Some(missing),
        }
    }
}

impl From<String> for PlanError {
    fn from(message: String) -> Self {
        Self {
            message,
            missing: None,
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What planning one resource gives: nothing to do, a plan, or why not.
pub type Planned = Result<Option<Plan>, PlanError>;

/// One change to the host. Executed only by the executor.
#[derive(Debug)]
pub enum Op {
    /// Replace (or create) a file atomically with this content, mode and owner.
    WriteFile {
        path: PathBuf,
        content: Vec<u8>,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    SetMode {
        path: PathBuf,
        mode: u32,
    },
    SetOwner {
        path: PathBuf,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    CreateDir {
        path: PathBuf,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    /// Create or replace a symlink atomically.
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    /// Remove a file, a symlink or a directory tree (files backed up first).
    Remove {
        path: PathBuf,
    },
    /// Install, upgrade or pin a package (`spec` is `name` or
    /// `name=version`). All of a run's installs go in one apt transaction.
    InstallPackage {
        name: String,
        spec: String,
    },
    /// Remove a package, in one transaction with the run's other removals.
    RemovePackage {
        name: String,
    },
    Service {
        name: String,
        action: crate::provider::service::Action,
        init: crate::provider::service::Init,
    },
    /// A system tool with its arguments (useradd, groupmod, ...).
    Tool {
        program: &'static str,
        args: Vec<String>,
    },
    /// An exec resource's command, through `sh -c`.
    Exec {
        command: String,
        cwd: Option<PathBuf>,
        timeout: std::time::Duration,
    },
}

impl Op {
    /// The path a file-system operation writes, if it is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Op::WriteFile { path, .. }
            | Op::SetMode { path, .. }
            | Op::SetOwner { path, .. }
            | Op::CreateDir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Remove { path } => Some(path),
            _ => None,
        }
    }
}

/// Read-only access to the host while planning, with the look-ups a large
/// catalog repeats (user and group names) cached.
pub struct Observer<'a> {
    init: Option<crate::provider::service::Init>,
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
    user_names: HashMap<u32, String>,
    group_names: HashMap<u32, String>,
    /// Every path the catalog manages, for `purge`.
    managed: &'a BTreeSet<&'a Path>,
}

impl<'a> Observer<'a> {
    pub fn new(managed: &'a BTreeSet<&'a Path>) -> Self {
        Self {
            init: None,
            users: HashMap::new(),
            groups: HashMap::new(),
            user_names: HashMap::new(),
            group_names: HashMap::new(),
            managed,
        }
    }

    /// The uid of a user name (or of a number written as the name).
    pub fn uid(&mut self, name: &str) -> Result<u32, PlanError> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let found = *self.users.entry(name.to_owned()).or_insert_with(|| {
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        });
        found.ok_or_else(|| {
            PlanError::missing(
                Missing::User(name.to_owned()),
                format!("user `{name}` does not exist"),
            )
        })
    }

    pub fn gid(&mut self, name: &str) -> Result<u32, PlanError> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let found = *self.groups.entry(name.to_owned()).or_insert_with(|| {
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        });
        found.ok_or_else(|| {
            PlanError::missing(
                Missing::Group(name.to_owned()),
                format!("group `{name}` does not exist"),
            )
        })
    }

    pub fn user_name(&mut self, uid: u32) -> String {
        self.user_names
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name)
            })
            .clone()
    }

    pub fn group_name(&mut self, gid: u32) -> String {
        self.group_names
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| gid.to_string(), |g| g.name)
            })
            .clone()
    }

    /// The init system, detected once per run.
    pub fn init(&mut self) -> crate::provider::service::Init {
        *self
            .init
            .get_or_insert_with(crate::provider::service::Init::detect)
    }

    /// Forgets cached user and group look-ups (after a user or group changed).
    pub fn forget_accounts(&mut self) {
        self.users.clear();
        self.groups.clear();
        self.user_names.clear();
        self.group_names.clear();
    }

    /// Whether the catalog manages `path` or anything below it.
    pub fn manages(&self, path: &Path) -> bool {
        self.managed
            .range(path..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }

    /// Checks ownership wanted by a resource against what a path has, adding
    /// the human-readable changes and returning the ids to set, if any differ.
    pub fn ownership_change(
        &mut self,
        owner: Option<&str>,
        group: Option<&str>,
        current: (u32, u32),
        changes: &mut Vec<String>,
    ) -> Result<(Option<u32>, Option<u32>), PlanError> {
        let mut uid = None;
        let mut gid = None;
        if let Some(owner) = owner {
            let want = self.uid(owner)?;
            if want != current.0 {
                let was = self.user_name(current.0);
                changes.push(format!("owner {was} -> {owner}"));
                uid = Some(want);
            }
        }
        if let Some(group) = group {
            let want = self.gid(group)?;
            if want != current.1 {
                let was = self.group_name(current.1);
                changes.push(format!("group {was} -> {group}"));
                gid = Some(want);
            }
        }
        Ok((uid, gid))
    }

    /// The uid and gid a new path gets: the named ones, else none (the
    /// creating process's).
    pub fn new_ownership(
        &mut self,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(Option<u32>, Option<u32>), PlanError> {
        let uid = owner.map(|o| self.uid(o)).transpose()?;
        let gid = group.map(|g| self.gid(g)).transpose()?;
        Ok((uid, gid))
    }

    /// A new path needs its parent: either it exists or the catalog creates it.
    pub fn check_parent(&self, path: &Path) -> Result<(), PlanError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        if parent.is_dir() || self.managed.contains(parent) {
            return Ok(());
        }
        Err(PlanError::missing(
            Missing::Parent(parent.to_path_buf()),
            format!(
                "parent directory `{}` does not exist; declare it with `directory: {}`",
                parent.display(),
                parent.display()
            ),
        ))
    }
}

/// What is at a path, without following a final symlink.
pub enum Found {
    Nothing,
    File(std::fs::Metadata),
    Dir(std::fs::Metadata),
    Symlink(PathBuf),
    Other(&'static str),
}

pub fn look(path: &Path) -> Result<Found, String> {
    use std::os::unix::fs::FileTypeExt;
    match fs_err::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => Err(format!(
            "a parent of `{}` is not a directory",
            path.display()
        )),
        Err(e) => Err(e.to_string()),
        Ok(meta) => {
            let ft = meta.file_type();
            Ok(if ft.is_file() {
                Found::File(meta)
            } else if ft.is_dir() {
                Found::Dir(meta)
            } else if ft.is_symlink() {
                Found::Symlink(fs_err::read_link(path).map_err(|e| e.to_string())?)
            } else if ft.is_fifo() {
                Found::Other("named pipe")
            } else if ft.is_socket() {
                Found::Other("socket")
            } else {
                Found::Other("device")
            })
        }
    }
}
