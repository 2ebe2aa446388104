//! The executor: carries out planned operations. Only a real run makes one,
//! so a dry-run has no way to change the host.

use std::collections::HashSet;
use std::path::PathBuf;

use super::plan::Op;
use crate::fsutil::{self, FsError};
use crate::state::Backups;

pub struct Executor {
    backups: Backups,
    /// Parent directories already checked for unsafe symlinks in this run.
    checked: HashSet<PathBuf>,
}

impl Executor {
    pub fn new(backups: Backups) -> Self {
        Self {
            backups,
            checked: HashSet::new(),
        }
    }

    pub fn execute(&mut self, op: &Op) -> Result<(), FsError> {
        let path = match op {
            Op::WriteFile { path, .. }
            | Op::SetMode { path, .. }
            | Op::SetOwner { path, .. }
            | Op::CreateDir { path, .. }
            | Op::Symlink { path, .. }
            | Op::Remove { path } => path,
        };
        fsutil::check_parents(path, &mut self.checked)?;
        match op {
            Op::WriteFile {
                path,
                content,
                mode,
                uid,
                gid,
            } => {
                self.back_up(path)?;
                fsutil::atomic_write(path, content, *mode, *uid, *gid)
            }
            Op::SetMode { path, mode } => fsutil::set_mode(path, *mode),
            Op::SetOwner { path, uid, gid } => fsutil::set_owner(path, *uid, *gid),
            Op::CreateDir {
                path,
                mode,
                uid,
                gid,
            } => fsutil::create_dir(path, *mode, *uid, *gid),
            Op::Symlink { path, target } => {
                self.back_up(path)?;
                fsutil::replace_symlink(path, target)
            }
            Op::Remove { path } => {
                self.back_up(path)?;
                fsutil::remove(path)
            }
        }
    }

    /// Keeps the content of every regular file at or below `path` before it
    /// is replaced or removed.
    fn back_up(&self, path: &std::path::Path) -> Result<(), FsError> {
        match fs_err::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
            Ok(_) => fsutil::walk_files(path, &mut |file| {
                let content = fsutil::read_nofollow(file, 0)?;
                self.backups.keep(&content)?;
                tracing::debug!(path = %file.display(), "backed up");
                Ok(())
            }),
        }
    }
}
