//! The state directory (default `/var/lib/tend`): the run lock, the desired
//! digest of every applied resource (which tells drift from a new revision),
//! content-addressed backups of every file tend replaced or removed, and the
//! journal of where the current run creates temporary files.

use std::collections::BTreeMap;
use std::fs::TryLockError;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError, TempLog, temps};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/tend";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
const BACKUP_DIR: &str = "backup";
const TEMP_JOURNAL: &str = "temporary-files";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory `{path}`: {source}")]
    Fs { path: PathBuf, source: FsError },
    #[error(
        "`{path}` is damaged ({source}); move it away to start afresh (drift will then be reported as revision once)"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Desired digests by resource id, as of the last real run.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Applied {
    pub version: u32,
    pub resources: BTreeMap<String, crate::resource::Digest>,
}

pub struct StateDir {
    path: PathBuf,
    /// Held for the whole run; released when dropped.
    lock: Option<std::fs::File>,
    /// Where this run creates temporary files (records nothing in a dry-run).
    temps: Arc<TempLog>,
    /// Temporary files an interrupted run left: removed when the state
    /// directory was opened for a real run, only found for a dry-run.
    leftovers: Vec<PathBuf>,
}

impl StateDir {
    /// Opens the state directory for a real run: creates it (mode 0700) and
    /// takes the run lock, waiting for another run to finish. `waiting` is
    /// told who holds the lock before we wait.
    pub fn open_locked(path: &Path, waiting: impl FnOnce(&str)) -> Result<StateDir, StateError> {
        let fs = |source| StateError::Fs {
            path: path.to_path_buf(),
            source,
        };
        fsutil::ensure_private_dir(path).map_err(fs)?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| fs(e.into()))?
            .into_parts()
            .0;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                waiting(holder.trim());
                file.lock().map_err(|e| fs(e.into()))?;
            }
            Err(TryLockError::Error(e)) => return Err(fs(e.into())),
        }
        // Say who holds it, for the next run that has to wait.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let journal = path.join(TEMP_JOURNAL);
        let leftovers = temps::remove_leftovers(&journal).map_err(fs)?;
        for leftover in &leftovers {
            tracing::warn!(path = %leftover.display(), "removed a temporary file an interrupted run left");
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            lock: Some(file),
            temps: Arc::new(TempLog::new(journal)),
            leftovers,
        })
    }

    /// Opens the state directory to read only, for a dry-run: creates
    /// nothing and takes no lock.
    pub fn open_read_only(path: &Path) -> Result<StateDir, StateError> {
        let journal = path.join(TEMP_JOURNAL);
        let leftovers = temps::leftovers(&journal).map_err(|source| StateError::Fs {
            path: journal,
            source,
        })?;
        Ok(StateDir {
            path: path.to_path_buf(),
            lock: None,
            temps: Arc::new(TempLog::unrecorded()),
            leftovers,
        })
    }

    /// Temporary files an interrupted run left (removed, in a real run).
    pub fn leftovers(&self) -> &[PathBuf] {
        &self.leftovers
    }

    /// Where this run's temporary files are recorded.
    pub fn temps(&self) -> &Arc<TempLog> {
        &self.temps
    }

    /// The run is over and every temporary file it made was renamed or
    /// removed: nothing is left to clean up.
    pub fn finish(&self) -> Result<(), StateError> {
        self.temps.finish().map_err(|source| StateError::Fs {
            path: self.path.join(TEMP_JOURNAL),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the last real run applied (empty when there was none).
    ///
    /// A damaged file (which atomic writes make unlikely: a disk error, a
    /// hand edit) stops a dry-run with an error saying what to do; a real
    /// run moves it aside (`state.json.damaged`) and starts afresh, so an
    /// unattended agent never waits for a person: what it reports as drift
    /// is then reported once as revision.
    pub fn applied(&self) -> Result<Applied, StateError> {
        let file = self.path.join(STATE_FILE);
        match fs_err::read(&file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(applied) => Ok(applied),
                Err(source) if self.lock.is_some() => {
                    let aside = self.path.join(format!("{STATE_FILE}.damaged"));
                    tracing::warn!(file = %file.display(), moved_to = %aside.display(), error = %source, "the state file is damaged; starting afresh");
                    fs_err::rename(&file, &aside).map_err(|e| StateError::Fs {
                        path: file.clone(),
                        source: e.into(),
                    })?;
                    Ok(Applied::default())
                }
                Err(source) => Err(StateError::Corrupt { path: file, source }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Applied::default()),
            Err(e) => Err(StateError::Fs {
                path: file,
                source: e.into(),
            }),
        }
    }

    pub fn save_applied(&self, applied: &Applied) -> Result<(), StateError> {
        let file = self.path.join(STATE_FILE);
        let mut bytes = serde_json::to_vec(applied).expect("state serialises");
        bytes.push(b'\n');
        fsutil::atomic_write(&file, &bytes, 0o600, None, None, &self.temps)
            .map_err(|source| StateError::Fs { path: file, source })
    }

    pub fn backups(&self) -> Backups {
        Backups {
            dir: self.path.join(BACKUP_DIR),
            temps: Arc::clone(&self.temps),
        }
    }
}

/// Stores file contents under their sha256, once each.
pub struct Backups {
    dir: PathBuf,
    temps: Arc<TempLog>,
}

impl Backups {
    /// The temporary-file journal backups are written with (the run's).
    pub fn temps(&self) -> &TempLog {
        &self.temps
    }

    /// A copy of `content` written but not yet in place, for the caller
    /// to land before what replaces the original (none when one is kept
    /// already).
    pub fn stage(
        &self,
        content: &[u8],
        batch: &mut fsutil::batch::WriteBatch,
    ) -> Result<Option<fsutil::Staged>, FsError> {
        let digest = crate::resource::sha256_hex(content);
        let target = self.dir.join(&digest);
        if target.exists() {
            return Ok(None);
        }
        fsutil::ensure_private_dir(&self.dir)?;
        let dir = batch.dir(&self.dir)?;
        fsutil::stage(&dir, &target, content, 0o600, None, None, &self.temps).map(Some)
    }

    /// Keeps a copy of `content`; returns its digest (the file name).
    pub fn keep(&self, content: &[u8]) -> Result<String, FsError> {
        let digest = crate::resource::sha256_hex(content);
        let target = self.dir.join(&digest);
        if !target.exists() {
            fsutil::ensure_private_dir(&self.dir)?;
            fsutil::atomic_write(&target, content, 0o600, None, None, &self.temps)?;
        }
        Ok(digest)
    }
}
