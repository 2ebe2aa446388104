//! The temporary files tend creates next to the files it replaces.
//!
//! A file is replaced by writing a temporary file in the same directory and
//! renaming it over the old one. A run killed between the two would leave
//! the temporary file for ever, and in /etc that is not harmless (a daemon
//! reading `*.conf`, `run-parts`, a configuration directory read whole). So
//! before a run creates its first temporary file in a directory it records
//! that directory, durably, in a journal in the state directory; every
//! temporary name carries the run's marker. A run that finishes removes the
//! journal. The next run after one that did not removes, in the recorded
//! directories, exactly the files that carry a recorded marker.

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{FsError, sync_dir};

/// Records where a run creates temporary files.
pub struct TempLog {
    /// `None`: nothing is recorded (a dry-run writes nothing; unit tests).
    journal: Option<PathBuf>,
    run: String,
    state: Mutex<Journal>,
}

#[derive(Default)]
struct Journal {
    file: Option<std::fs::File>,
    dirs: HashSet<PathBuf>,
}

impl TempLog {
    /// A log for a run whose journal is `journal` (in the state directory).
    pub fn new(journal: PathBuf) -> Self {
        Self {
            journal: Some(journal),
            ..Self::unrecorded()
        }
    }

    /// A log that records nothing.
    pub fn unrecorded() -> Self {
        let mut run = uuid::Uuid::new_v4().simple().to_string();
        run.truncate(12);
        Self {
            journal: None,
            run,
            state: Mutex::new(Journal::default()),
        }
    }

    /// The start of a temporary name for `path`: `.<name>.tend-<run>-`.
    pub fn prefix(&self, path: &Path) -> String {
        let stem = path
            .file_name()
            .map_or_else(|| "tend".into(), |n| n.to_string_lossy());
        format!(".{stem}{}", marker(&self.run))
    }

    /// Makes sure the journal says this run may create temporary files in
    /// `dir` before the first one is created there.
    pub fn record(&self, dir: &Path) -> Result<(), FsError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.dirs.contains(dir) {
            return Ok(());
        }
        if state.file.is_none() {
            let mut file = fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(journal)?
                .into_parts()
                .0;
            file.write_all(&record("run", self.run.as_bytes()))?;
            file.sync_all()?;
            // The journal's own name must last as long as what it records.
            if let Some(parent) = journal.parent() {
                sync_dir(parent)?;
            }
            state.file = Some(file);
        }
        let file = state.file.as_mut().expect("opened above");
        file.write_all(&record("dir", dir.as_os_str().as_bytes()))?;
        file.sync_all()?;
        state.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// The run created all its temporary files and renamed or removed each:
    /// the journal is no longer needed.
    pub fn finish(&self) -> Result<(), FsError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.file.take().is_some() {
            fs_err::remove_file(journal)?;
        }
        state.dirs.clear();
        Ok(())
    }
}

fn marker(run: &str) -> String {
    format!(".tend-{run}-")
}

fn record(kind: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(kind.len() + payload.len() + 2);
    bytes.extend_from_slice(kind.as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(payload);
    bytes.push(0);
    bytes
}

/// The temporary files that runs recorded in `journal` left behind (none
/// when there is no journal: the last run finished).
pub fn leftovers(journal: &Path) -> Result<Vec<PathBuf>, FsError> {
    let bytes = match fs_err::read(journal) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut markers = Vec::new();
    let mut dirs = Vec::new();
    // A record cut short by a crash has no terminating NUL: it is ignored,
    // and nothing was created under it (records are synced first).
    let mut records: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    records.pop();
    for record in records {
        let Some(space) = record.iter().position(|&b| b == b' ') else {
            continue;
        };
        let (kind, payload) = (&record[..space], &record[space + 1..]);
        match kind {
            b"run" => markers.push(marker(&String::from_utf8_lossy(payload))),
            b"dir" => dirs.push(PathBuf::from(std::ffi::OsStr::from_bytes(payload))),
            _ => {}
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut found = Vec::new();
    for dir in dirs {
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = name.starts_with('.') && markers.iter().any(|m| name.contains(m.as_str()));
            if ours && !entry.file_type()?.is_dir() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Removes what [`leftovers`] finds, then the journal; returns what was removed.
pub fn remove_leftovers(journal: &Path) -> Result<Vec<PathBuf>, FsError> {
    let found = leftovers(journal)?;
    let mut dirs = HashSet::new();
    for path in &found {
        match fs_err::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    match fs_err::remove_file(journal) {
        Ok(()) => Ok(found),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(found),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_a_recorded_run_are_found_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let work = dir.path().join("etc");
        fs_err::create_dir(&work).unwrap();
        let log = TempLog::new(journal.clone());
        log.record(&work).unwrap();
        let ours = work.join(format!("{}abc123", log.prefix(&work.join("motd"))));
        fs_err::write(&ours, b"half").unwrap();
        // Another program's hidden file, and a name tend used before.
        fs_err::write(work.join(".motd.swp"), b"x").unwrap();
        fs_err::write(work.join(".motd.tend-XYZ"), b"x").unwrap();
        assert_eq!(leftovers(&journal).unwrap(), vec![ours.clone()]);
        assert_eq!(remove_leftovers(&journal).unwrap(), vec![ours.clone()]);
        assert!(!ours.exists() && !journal.exists());
        assert!(work.join(".motd.swp").exists());
        // A finished run leaves no journal.
        let log = TempLog::new(journal.clone());
        log.record(&work).unwrap();
        assert!(journal.exists());
        log.finish().unwrap();
        assert!(!journal.exists());
        assert!(leftovers(&journal).unwrap().is_empty());
    }
}
