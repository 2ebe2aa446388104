//! The files of one run, made durable together. A first run writes
//! thousands of files, and syncing each file and then its directory one
//! after another makes the run wait on the disk twice per file. Here each
//! file is still written under a temporary name, synced, and only then
//! renamed into place (so a crash or a power cut leaves the old content or
//! the whole new one, never a torn file), but several files are synced
//! and renamed at once on a few threads (the journal commits them
//! together), and each directory is synced once, before the run's state
//! says the files are there.
//!
//! The caller decides when the files must be in place: [`WriteBatch::settle`]
//! before anything that could read them (a command, a service, a package,
//! a removal) or that depends on them, [`WriteBatch::sync`] before the
//! state file is written.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use super::{FsError, Staged, dirfd, sync_fd};

/// Files synced and renamed at once: enough to keep the disk's queue
/// full, few enough to cost nothing when idle (they start with the
/// first file).
const WORKERS: usize = 8;

/// Files that land in order, all or none past the first failure: a
/// backup of the old content, then the file replacing it.
struct Job {
    tag: usize,
    files: Vec<Staged>,
}

type Landed = (usize, Result<(), FsError>);

#[derive(Default)]
pub struct WriteBatch {
    jobs: Option<mpsc::Sender<Job>>,
    landed: Option<mpsc::Receiver<Landed>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Jobs not yet landed, by tag (a resource may write more than one).
    in_flight: HashMap<usize, usize>,
    /// Directories opened since the last settle, by path: one openat chain
    /// each, not one per file.
    open: HashMap<PathBuf, Arc<OwnedFd>>,
    /// Directories whose entries changed since they were last synced, with
    /// the tags of what changed them.
    unsynced: HashMap<PathBuf, (Arc<OwnedFd>, Vec<usize>)>,
    /// Failures of jobs landed without a worker.
    failed_inline: Vec<(usize, FsError)>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// The directory `dir`, opened by the openat chain (once until the
    /// next settle: only new files are written in between, so it is still
    /// the directory it was).
    pub fn dir(&mut self, dir: &Path) -> Result<Arc<OwnedFd>, FsError> {
        if let Some(fd) = self.open.get(dir) {
            return Ok(Arc::clone(fd));
        }
        let fd = Arc::new(dirfd::open_dir(dir)?);
        self.open.insert(dir.to_path_buf(), Arc::clone(&fd));
        Ok(fd)
    }

    /// Lands `files` (in this order) on a worker; `tag` names them in
    /// what [`WriteBatch::settle`] returns.
    pub fn submit(&mut self, tag: usize, files: Vec<Staged>) {
        for file in &files {
            let (dir, fd) = file.dir();
            self.unsynced
                .entry(dir.to_path_buf())
                .or_insert_with(|| (Arc::clone(fd), Vec::new()))
                .1
                .push(tag);
        }
        *self.in_flight.entry(tag).or_default() += 1;
        let job = Job { tag, files };
        let job = match self.sender() {
            Some(jobs) => jobs.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        // No worker could be started: land it here.
        if let Some(job) = job {
            let outcome = land_all(job.files);
            landed_one(&mut self.in_flight, job.tag);
            if let Err(e) = outcome {
                self.failed_inline.push((job.tag, e));
            }
        }
    }

    /// Whether files tagged `tag` are still on their way.
    pub fn pending(&self, tag: usize) -> bool {
        self.in_flight.contains_key(&tag)
    }

    /// Waits until every file submitted is in place; what failed, by tag.
    pub fn settle(&mut self) -> Vec<(usize, FsError)> {
        let mut failed = std::mem::take(&mut self.failed_inline);
        if let Some(landed) = &self.landed {
            while !self.in_flight.is_empty() {
                let Ok((tag, outcome)) = landed.recv() else {
                    break;
                };
                landed_one(&mut self.in_flight, tag);
                if let Err(e) = outcome {
                    failed.push((tag, e));
                }
            }
        }
        self.open.clear();
        failed
    }

    /// Settles, then syncs each directory that changed, once: after this
    /// the files are on disk under their names. What failed, by tag.
    pub fn sync(&mut self) -> Vec<(usize, FsError)> {
        let mut failed = self.settle();
        for (dir, (fd, tags)) in std::mem::take(&mut self.unsynced) {
            if let Err(e) = sync_fd(&fd, &dir) {
                let text = e.to_string();
                failed.extend(
                    tags.into_iter()
                        .map(|t| (t, FsError::Io(std::io::Error::other(text.clone())))),
                );
            }
        }
        failed
    }

    fn sender(&mut self) -> Option<&mpsc::Sender<Job>> {
        if self.jobs.is_none() {
            let (jobs, queue) = mpsc::channel::<Job>();
            let (landed, done) = mpsc::channel::<Landed>();
            let queue = Arc::new(Mutex::new(queue));
            for n in 0..WORKERS {
                let queue = Arc::clone(&queue);
                let landed = landed.clone();
                let worker = std::thread::Builder::new()
                    .name(format!("tend-sync-{n}"))
                    .spawn(move || {
                        loop {
                            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok(job) = next else {
                                return;
                            };
                            if landed.send((job.tag, land_all(job.files))).is_err() {
                                return;
                            }
                        }
                    });
                match worker {
                    Ok(w) => self.workers.push(w),
                    Err(e) => tracing::debug!(error = %e, "cannot start a sync worker"),
                }
            }
            if self.workers.is_empty() {
                return None;
            }
            self.jobs = Some(jobs);
            self.landed = Some(done);
        }
        self.jobs.as_ref()
    }
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        // Whatever was submitted lands (or is discarded) before the run ends.
        let _ = self.sync();
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// One job of `tag` landed.
fn landed_one(in_flight: &mut HashMap<usize, usize>, tag: usize) {
    if let Some(left) = in_flight.get_mut(&tag) {
        *left -= 1;
        if *left == 0 {
            in_flight.remove(&tag);
        }
    }
}

/// Lands each file in order; past a failure the rest are discarded.
fn land_all(files: Vec<Staged>) -> Result<(), FsError> {
    let mut files = files.into_iter();
    for file in files.by_ref() {
        if let Err(e) = file.land() {
            for rest in files {
                rest.discard();
            }
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::{TempLog, stage};
    use std::os::unix::fs::PermissionsExt as _;

    fn staged(batch: &mut WriteBatch, temps: &TempLog, path: &Path, text: &str) -> Staged {
        let dir = batch.dir(path.parent().unwrap()).unwrap();
        stage(&dir, path, text.as_bytes(), 0o640, None, None, temps).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_land_whole_in_their_places_once_settled_and_leave_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        fs_err::create_dir_all(&a).unwrap();
        fs_err::create_dir_all(&b).unwrap();
        fs_err::write(a.join("0.conf"), "old").unwrap();
        let temps = TempLog::unrecorded();
        let mut batch = WriteBatch::new();
        for i in 0..200 {
            let dir = if i % 2 == 0 { &a } else { &b };
            let file = staged(
                &mut batch,
                &temps,
                &dir.join(format!("{i}.conf")),
                &format!("new {i}"),
            );
            batch.submit(i, vec![file]);
        }
        assert!(batch.sync().is_empty());
        assert!((0..200).all(|i| !batch.pending(i)));
        assert_eq!(names(&a).len(), 100);
        assert_eq!(names(&b).len(), 100);
        for i in 0..200 {
            let path = if i % 2 == 0 { &a } else { &b }.join(format!("{i}.conf"));
            assert_eq!(fs_err::read_to_string(&path).unwrap(), format!("new {i}"));
            let mode = fs_err::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o640);
        }
    }

    #[test]
    fn a_file_that_cannot_land_is_named_and_a_failed_backup_keeps_the_old_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        fs_err::write(dir.join("kept.conf"), "old").unwrap();
        let temps = TempLog::unrecorded();
        let mut batch = WriteBatch::new();
        // Its temporary file vanishes before it lands.
        let lost = staged(&mut batch, &temps, &dir.join("lost.conf"), "new");
        fs_err::remove_file(dir.join(&lost.tmp_name)).unwrap();
        batch.submit(7, vec![lost]);
        // A backup that cannot land, then the file it would have kept.
        let backup = staged(&mut batch, &temps, &dir.join("backup"), "old");
        fs_err::remove_file(dir.join(&backup.tmp_name)).unwrap();
        let replacing = staged(&mut batch, &temps, &dir.join("kept.conf"), "new");
        batch.submit(8, vec![backup, replacing]);
        let good = staged(&mut batch, &temps, &dir.join("good.conf"), "new");
        batch.submit(9, vec![good]);
        let failed: Vec<usize> = batch.sync().into_iter().map(|(tag, _)| tag).collect();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed.contains(&7) && failed.contains(&8), "{failed:?}");
        assert_eq!(
            fs_err::read_to_string(dir.join("kept.conf")).unwrap(),
            "old"
        );
        assert_eq!(
            fs_err::read_to_string(dir.join("good.conf")).unwrap(),
            "new"
        );
        // No temporary file is left behind.
        assert_eq!(names(dir), ["good.conf", "kept.conf"]);
    }
}
