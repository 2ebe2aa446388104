//! The executor: carries out planned operations. Only a real run makes one,
//! so a dry-run has no way to change the host.

use std::collections::HashSet;
use std::path::PathBuf;

use super::plan::Op;
use crate::fsutil::{self, FsError};
use crate::provider::{accounts, apt, service};
use crate::state::Backups;

pub struct Executor {
    backups: Backups,
    /// Files written and on their way into place (see [`Executor::settle`]).
    batch: fsutil::batch::WriteBatch,
    /// Parent directories already checked for unsafe symlinks in this run.
    checked: HashSet<PathBuf>,
    /// Whether `apt-get update` already ran in this run.
    updated: bool,
}

impl Executor {
    pub fn new(backups: Backups) -> Self {
        Self {
            backups,
            batch: fsutil::batch::WriteBatch::new(),
            checked: HashSet::new(),
            updated: false,
        }
    }

    /// Writes a file of resource `tag` and hands it to the batch, which
    /// puts it in place (after its backup) while the run goes on. Its
    /// failures come from [`Executor::settle`]; other operations are only
    /// carried out after a settle.
    pub fn write(&mut self, tag: usize, op: &Op) -> Result<(), String> {
        let Op::WriteFile {
            path,
            content,
            mode,
            uid,
            gid,
        } = op
        else {
            return self.execute(op).map(|_| ());
        };
        let staged = (|| -> Result<Vec<fsutil::Staged>, FsError> {
            fsutil::check_parents(path, &mut self.checked)?;
            let mut files = Vec::with_capacity(2);
            if let Some(old) = self.old_content(path)? {
                files.extend(self.backups.stage(&old, &mut self.batch).map_err(|e| {
                    FsError::Io(std::io::Error::other(format!(
                        "the old content of `{}` could not be backed up, so it is left as it is: {e}",
                        path.display()
                    )))
                })?);
            }
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = self.batch.dir(dir.unwrap_or(std::path::Path::new(".")))?;
            let file = fsutil::stage(&dir, path, content, *mode, *uid, *gid, self.backups.temps());
            match file {
                Ok(file) => files.push(file),
                Err(e) => {
                    for f in &files {
                        f.discard();
                    }
                    return Err(e);
                }
            }
            Ok(files)
        })()
        .map_err(|e| e.to_string())?;
        self.batch.submit(tag, staged);
        Ok(())
    }

    /// Whether files of resource `tag` are still on their way into place.
    pub fn pending(&self, tag: usize) -> bool {
        self.batch.pending(tag)
    }

    /// Waits until the files handed to the batch are in place; what
    /// failed, by resource.
    pub fn settle(&mut self) -> Vec<(usize, String)> {
        text(self.batch.settle())
    }

    /// Settles, and syncs each directory written to: the files are on disk
    /// under their names, and the run's state may say so.
    pub fn sync(&mut self) -> Vec<(usize, String)> {
        text(self.batch.sync())
    }

    /// The content of the regular file at `path`, to back up before it is
    /// replaced; none when nothing is there.
    fn old_content(&self, path: &std::path::Path) -> Result<Option<Vec<u8>>, FsError> {
        match fs_err::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
            Ok(meta) if meta.is_file() => Ok(Some(fsutil::read_nofollow(path, 0)?)),
            // A symlink or directory in the way: kept the slow way.
            Ok(_) => {
                self.back_up(path)?;
                Ok(None)
            }
        }
    }

    /// Carries out one operation. Returns output worth reporting (an exec's).
    pub fn execute(&mut self, op: &Op) -> Result<Option<String>, String> {
        if let Some(path) = op.path() {
            fsutil::check_parents(path, &mut self.checked).map_err(|e| e.to_string())?;
        }
        let fs = |r: Result<(), FsError>| r.map(|()| None).map_err(|e| e.to_string());
        match op {
            Op::WriteFile {
                path,
                content,
                mode,
                uid,
                gid,
            } => {
                fs(self.back_up(path))?;
                fs(fsutil::atomic_write(
                    path,
                    content,
                    *mode,
                    *uid,
                    *gid,
                    self.backups.temps(),
                ))
            }
            Op::SetMode { path, mode } => fs(fsutil::set_mode(path, *mode)),
            Op::SetOwner { path, uid, gid } => fs(fsutil::set_owner(path, *uid, *gid)),
            Op::CreateDir {
                path,
                mode,
                uid,
                gid,
            } => fs(fsutil::create_dir(path, *mode, *uid, *gid)),
            Op::Symlink { path, target } => {
                fs(self.back_up(path))?;
                fs(fsutil::replace_symlink(path, target, self.backups.temps()))
            }
            Op::Remove { path } => {
                fs(self.back_up(path))?;
                fs(fsutil::remove(path))
            }
            Op::Service { name, action, init } => service::act(*init, name, *action).map(|()| None),
            Op::Tool { program, args } => accounts::tool(program, args).map(|()| None),
            Op::Exec {
                command,
                cwd,
                timeout,
            } => {
                let out = crate::provider::shell(command, cwd.as_deref(), *timeout)?;
                if out.success() {
                    Ok(Some(out.text))
                } else {
                    Err(out.failure(&format!("`{command}`")))
                }
            }
            Op::InstallPackage { .. } | Op::RemovePackage { .. } => {
                Err("packages are applied in transactions, not one by one".to_owned())
            }
        }
    }

    /// One apt transaction for `batch` (index, name, spec). When it fails,
    /// each package is tried alone so that the failure lands on the package
    /// that caused it. Returns each package's outcome.
    pub fn packages(
        &mut self,
        install: bool,
        batch: &[(usize, String, String)],
    ) -> Vec<(usize, Result<(), String>)> {
        let specs: Vec<String> = batch.iter().map(|(_, _, spec)| spec.clone()).collect();
        let transaction = self.apt(install, &specs);
        if transaction.as_ref().is_ok_and(|o| !o.success()) && batch.len() > 1 {
            tracing::warn!(
                packages = specs.len(),
                "the package transaction failed; trying each package alone"
            );
            return batch
                .iter()
                .map(|(i, name, spec)| (*i, self.one_package(install, name, spec)))
                .collect();
        }
        let names: Vec<&str> = batch.iter().map(|(_, name, _)| name.as_str()).collect();
        let installed = apt::installed(&names);
        batch
            .iter()
            .map(|(i, name, spec)| {
                let result = match (&transaction, &installed) {
                    (Err(e), _) | (_, Err(e)) => Err(e.clone()),
                    (Ok(out), Ok(now)) => check(install, name, spec, now, out),
                };
                (*i, result)
            })
            .collect()
    }

    fn one_package(&mut self, install: bool, name: &str, spec: &str) -> Result<(), String> {
        let out = self.apt(install, &[spec.to_owned()])?;
        let now = apt::installed(&[name])?;
        check(install, name, spec, &now, &out)
    }

    /// Runs apt; if it could not fetch a package file, the lists are stale:
    /// update them once per run and try again.
    fn apt(&mut self, install: bool, specs: &[String]) -> Result<crate::provider::Output, String> {
        let run = |specs: &[String]| {
            if install {
                apt::install(specs)
            } else {
                apt::remove(specs)
            }
        };
        let out = run(specs)?;
        if !out.success()
            && !self.updated
            && (out.text.contains("Failed to fetch") || out.text.contains("Unable to fetch"))
        {
            self.updated = true;
            let update = apt::update()?;
            if !update.success() {
                return Err(update.failure("apt-get update"));
            }
            return run(specs);
        }
        Ok(out)
    }

    /// Keeps the content of every regular file at or below `path` before it
    /// is replaced or removed.
    fn back_up(&self, path: &std::path::Path) -> Result<(), FsError> {
        match fs_err::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
            Ok(_) => fsutil::walk_files(path, &mut |file| {
                let content = fsutil::read_nofollow(file, 0)?;
                // Never replace what could not be kept: say why it stays.
                self.backups.keep(&content).map_err(|e| {
                    FsError::Io(std::io::Error::other(format!(
                        "the old content of `{}` could not be backed up, so it is left as it is: {e}",
                        file.display()
                    )))
                })?;
                tracing::debug!(path = %file.display(), "backed up");
                Ok(())
            }),
        }
    }
}

/// Whether a package ended as asked, judged by dpkg after the transaction.
fn check(
    install: bool,
    name: &str,
    spec: &str,
    now: &std::collections::HashMap<String, String>,
    out: &crate::provider::Output,
) -> Result<(), String> {
    let ok = match (install, now.get(name), spec.split_once('=')) {
        (true, Some(have), Some((_, want))) => have == want,
        (true, Some(_), None) => true,
        (false, None, _) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(out.failure(if install {
            "apt-get install"
        } else {
            "apt-get remove"
        }))
    }
}

fn text(failed: Vec<(usize, FsError)>) -> Vec<(usize, String)> {
    failed
        .into_iter()
        .map(|(t, e)| (t, e.to_string()))
        .collect()
}
