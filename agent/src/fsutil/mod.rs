//! The only place tend writes to the file system.
//!
//! Writes are atomic (a temporary file in the same directory, fsync, rename,
//! fsync of the directory), never follow a symlink at the final path, and
//! refuse to pass through a parent directory that is a symlink someone other
//! than root could have planted.

pub mod batch;
pub mod dirfd;
pub mod temps;

use std::collections::HashSet;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{Gid, Uid};
pub use temps::TempLog;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("refusing to write through `{link}`: it is a symlink owned by uid {owner}, not root")]
    UnsafeLink { link: PathBuf, owner: u32 },
    #[error("`{0}` has no parent directory")]
    NoParent(PathBuf),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{what} `{path}`: {source}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
}

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> FsError + 'a {
    move |source| FsError::Sys {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks the directories above `path`: a symlink among them is followed
/// only when root owns it (as `/lib -> usr/lib` on Debian). Directories
/// already checked in this run are remembered in `checked`.
pub fn check_parents(path: &Path, checked: &mut HashSet<PathBuf>) -> Result<(), FsError> {
    let mut missing = Vec::new();
    let mut dir = path.parent();
    while let Some(d) = dir {
        if checked.contains(d) {
            break;
        }
        missing.push(d.to_path_buf());
        dir = d.parent();
    }
    // Walk from the top so a planted link is found before what is below it.
    for d in missing.into_iter().rev() {
        match fs_err::symlink_metadata(&d) {
            Ok(meta) if meta.file_type().is_symlink() && meta.uid() != 0 => {
                return Err(FsError::UnsafeLink {
                    link: d,
                    owner: meta.uid(),
                });
            }
            Ok(_) => {
                checked.insert(d);
            }
            // Not there (yet): nothing below it can be a link.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A fresh name for a temporary file replacing `path`: the run's marker
/// (what the journal of temporary files looks for) and a random tail.
fn temp_name(temps: &TempLog, path: &Path) -> String {
    format!(
        "{}{}",
        temps.prefix(path),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// Replaces (or creates) `path` with `content`, `mode` and ownership, so that
/// a reader sees the old file or the new one, never a half-written one. A
/// symlink at `path` is replaced, not written through; the directory is
/// reached by an openat chain (see [`dirfd`]) and every step after is
/// relative to it, so no link swapped in meanwhile can redirect the write.
/// Durable when it returns: the file, then the directory, are synced. A run
/// writing many files uses [`batch::WriteBatch`], which lands them the same
/// way in parallel and syncs each directory once.
pub fn atomic_write(
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    temps: &TempLog,
) -> Result<(), FsError> {
    let (dir, _) = dir_and_name(path)?;
    let dir_fd = std::sync::Arc::new(dirfd::open_dir(dir)?);
    stage(&dir_fd, path, content, mode, uid, gid, temps)?.land()?;
    sync_fd(&dir_fd, dir)
}

/// A new file written under a temporary name beside `path`, with its mode
/// and owner set, not yet synced nor in place.
pub struct Staged {
    dir_fd: std::sync::Arc<std::os::fd::OwnedFd>,
    tmp_name: String,
    path: PathBuf,
    file: std::fs::File,
}

/// Writes `content` to a temporary file in the directory `dir_fd` (that of
/// `path`, opened by the openat chain), recorded in the run's journal of
/// temporary files first.
pub fn stage(
    dir_fd: &std::sync::Arc<std::os::fd::OwnedFd>,
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    temps: &TempLog,
) -> Result<Staged, FsError> {
    use nix::fcntl::openat;
    use nix::sys::stat::Mode;
    let (dir, _) = dir_and_name(path)?;
    temps.record(dir)?;
    let tmp_name = temp_name(temps, path);
    let tmp_path = dir.join(&tmp_name);
    let fd = openat(
        dir_fd,
        tmp_name.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("cannot create a temporary file in `{}`: {e}", dir.display()),
        )
    })?;
    let staged = Staged {
        dir_fd: std::sync::Arc::clone(dir_fd),
        tmp_name,
        path: path.to_path_buf(),
        file: std::fs::File::from(fd),
    };
    let written = (|| -> Result<(), FsError> {
        let mut file = &staged.file;
        file.write_all(content).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing `{}`: {e}", tmp_path.display()))
        })?;
        if uid.is_some() || gid.is_some() {
            nix::unistd::fchown(file.as_fd(), uid.map(Uid::from_raw), gid.map(Gid::from_raw))
                .map_err(sys("cannot change the owner of", path))?;
        }
        // After chown, which clears setuid bits.
        chmod(file, path, mode)
    })();
    match written {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

impl Staged {
    /// Syncs the file's data, then renames it over the path: whatever
    /// happens (a crash, a power cut), the path holds the old content or
    /// the whole new one. The directory entry is durable once the
    /// directory is synced (the caller's).
    pub fn land(self) -> Result<(), FsError> {
        let path = self.path.clone();
        let landed = (|| -> Result<(), FsError> {
            self.file.sync_all().map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot sync `{}`: {e}", path.display()))
            })?;
            let name = path
                .file_name()
                .ok_or_else(|| FsError::NoParent(path.clone()))?;
            nix::fcntl::renameat(&*self.dir_fd, self.tmp_name.as_str(), &*self.dir_fd, name)
                .map_err(sys("cannot replace", &path))?;
            Ok(())
        })();
        if landed.is_err() {
            self.discard();
        }
        landed
    }

    /// The directory the file lands in, to sync once it has.
    pub fn dir(&self) -> (&Path, &std::sync::Arc<std::os::fd::OwnedFd>) {
        let dir = dir_and_name(&self.path).map_or(Path::new("."), |(d, _)| d);
        (dir, &self.dir_fd)
    }

    /// Removes the temporary file: it will not land.
    pub fn discard(&self) {
        let _ = nix::unistd::unlinkat(
            &*self.dir_fd,
            self.tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Syncs a directory by its descriptor; `dir` is for the message.
pub fn sync_fd(fd: &std::os::fd::OwnedFd, dir: &Path) -> Result<(), FsError> {
    nix::unistd::fsync(fd).map_err(|e| {
        FsError::Io(std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("cannot sync `{}`: {e}", dir.display()),
        ))
    })
}

/// Makes a directory entry change durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    let d = fs_err::File::open(dir)?;
    d.sync_all()?;
    Ok(())
}

/// Opens an existing file or directory without following a final symlink.
fn open_nofollow(path: &Path) -> Result<std::fs::File, FsError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot open `{}`: {e}", path.display())).into()
        })
}

/// Opens an existing entry to change it: its directory by the openat chain,
/// the entry itself without following a symlink.
fn open_to_change(path: &Path) -> Result<std::fs::File, FsError> {
    let (dir, name) = dir_and_name(path)?;
    let dir_fd = dirfd::open_dir(dir)?;
    let fd = nix::fcntl::openat(
        &dir_fd,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("cannot open", path))?;
    Ok(std::fs::File::from(fd))
}

/// A path's directory (`.` for a bare name) and last component.
fn dir_and_name(path: &Path) -> Result<(&Path, &std::ffi::OsStr), FsError> {
    let name = path
        .file_name()
        .ok_or_else(|| FsError::NoParent(path.to_path_buf()))?;
    let dir = path
        .parent()
        .ok_or_else(|| FsError::NoParent(path.to_path_buf()))?;
    Ok((
        if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        },
        name,
    ))
}

pub fn set_mode(path: &Path, mode: u32) -> Result<(), FsError> {
    chmod(&open_to_change(path)?, path, mode)
}

/// Sets the mode of an open file; `path` is for the error message.
fn chmod(file: &std::fs::File, path: &Path, mode: u32) -> Result<(), FsError> {
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot set the mode of `{}`: {e}", path.display()),
            )
        })?;
    Ok(())
}

pub fn set_owner(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), FsError> {
    let file = open_to_change(path)?;
    // fchown clears setuid/setgid bits: put the mode back as it was.
    let mode = file.metadata()?.mode() & 0o7777;
    nix::unistd::fchown(file.as_fd(), uid.map(Uid::from_raw), gid.map(Gid::from_raw))
        .map_err(sys("cannot change the owner of", path))?;
    if mode & 0o6000 != 0 {
        chmod(&file, path, mode)?;
    }
    Ok(())
}

pub fn create_dir(
    path: &Path,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), FsError> {
    let (dir, name) = dir_and_name(path)?;
    let dir_fd = dirfd::open_dir(dir)?;
    // Private until its owner and mode are set.
    nix::sys::stat::mkdirat(
        &dir_fd,
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )
    .map_err(sys("cannot create the directory", path))?;
    let fd = nix::fcntl::openat(
        &dir_fd,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("cannot open", path))?;
    let new_dir = std::fs::File::from(fd);
    if uid.is_some() || gid.is_some() {
        nix::unistd::fchown(
            new_dir.as_fd(),
            uid.map(Uid::from_raw),
            gid.map(Gid::from_raw),
        )
        .map_err(sys("cannot change the owner of", path))?;
    }
    // Set explicitly: mkdir's mode is filtered through the umask.
    chmod(&new_dir, path, mode)?;
    std::fs::File::from(dir_fd).sync_all()?;
    Ok(())
}

/// Creates or replaces the symlink at `path` atomically, in a directory
/// reached by the openat chain.
pub fn replace_symlink(path: &Path, target: &Path, temps: &TempLog) -> Result<(), FsError> {
    let (dir, name) = dir_and_name(path)?;
    let dir_fd = dirfd::open_dir(dir)?;
    temps.record(dir)?;
    let tmp_name = temp_name(temps, path);
    nix::unistd::symlinkat(target, &dir_fd, tmp_name.as_str())
        .map_err(sys("cannot create a link in", dir))?;
    if let Err(e) = nix::fcntl::renameat(&dir_fd, tmp_name.as_str(), &dir_fd, name) {
        let _ = nix::unistd::unlinkat(
            &dir_fd,
            tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        return Err(sys("cannot replace", path)(e));
    }
    std::fs::File::from(dir_fd).sync_all()?;
    Ok(())
}

/// Removes a file, symlink or whole directory tree; never follows symlinks.
/// The directory is reached by the openat chain and a tree is walked by
/// descriptors, so a link swapped in anywhere meanwhile cannot point the
/// removal elsewhere.
pub fn remove(path: &Path) -> Result<(), FsError> {
    let (dir, name) = dir_and_name(path)?;
    let dir_fd = dirfd::open_dir(dir)?;
    remove_at(&dir_fd, name, path)?;
    std::fs::File::from(dir_fd).sync_all()?;
    Ok(())
}

/// Removes `name` in the open directory `dir`; `path` is for messages.
fn remove_at(dir: &impl AsFd, name: &std::ffi::OsStr, path: &Path) -> Result<(), FsError> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::{SFlag, fstatat};
    use nix::unistd::{UnlinkatFlags, unlinkat};
    let st =
        fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys("cannot inspect", path))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(sys("cannot remove", path));
    }
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("cannot open", path))?;
    let mut inner = nix::dir::Dir::from_fd(fd).map_err(sys("cannot read", path))?;
    // Names first, removals after: a directory is not changed while read.
    let mut names = Vec::new();
    for entry in inner.iter() {
        let entry = entry.map_err(sys("cannot read", path))?;
        let entry_name = entry.file_name().to_bytes();
        if entry_name != b"." && entry_name != b".." {
            names.push(std::ffi::OsString::from_vec(entry_name.to_vec()));
        }
    }
    for entry_name in names {
        remove_at(&inner, &entry_name, &path.join(&entry_name))?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(sys("cannot remove", path))
}

/// Calls `f` with every regular file at or below `path` (not following
/// symlinks), for backing files up before they are removed.
pub fn walk_files(
    path: &Path,
    f: &mut dyn FnMut(&Path) -> Result<(), FsError>,
) -> Result<(), FsError> {
    let meta = fs_err::symlink_metadata(path)?;
    if meta.is_file() {
        return f(path);
    }
    if meta.is_dir() {
        for entry in fs_err::read_dir(path)? {
            walk_files(&entry?.path(), f)?;
        }
    }
    Ok(())
}

/// Reads a regular file without following a final symlink; `expected` is
/// the size it probably has (one allocation, one read, when right).
pub fn read_nofollow(path: &Path, expected: usize) -> Result<Vec<u8>, FsError> {
    use std::io::Read as _;
    let mut file = open_nofollow(path)?;
    let mut buf = Vec::with_capacity(expected + 1);
    file.read_to_end(&mut buf)
        .map_err(|e| std::io::Error::new(e.kind(), format!("reading `{}`: {e}", path.display())))?;
    Ok(buf)
}

/// The sha256 of a regular file, read in pieces without following a final
/// symlink (a large file is never held whole).
pub fn sha256_nofollow(path: &Path) -> Result<[u8; 32], FsError> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = open_nofollow(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| {
            std::io::Error::new(e.kind(), format!("reading `{}`: {e}", path.display()))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Creates a private directory (and its parents) if needed.
pub fn ensure_private_dir(path: &Path) -> Result<(), FsError> {
    if !path.is_dir() {
        fs_err::create_dir_all(path)?;
        set_mode(path, 0o700)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs_err::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        atomic_write(&link, b"new", 0o640, None, None, &TempLog::unrecorded()).unwrap();
        assert_eq!(fs_err::read(&victim).unwrap(), b"keep");
        assert_eq!(fs_err::read(&link).unwrap(), b"new");
        let meta = fs_err::symlink_metadata(&link).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        let leftovers: Vec<_> = fs_err::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 2, "no temporary file is left behind");
    }

    /// Another user swaps `parent` for their link to `elsewhere` and back,
    /// as fast as they can, until the returned guard is dropped.
    struct Flipper {
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Flipper {
        fn start(parent: &Path, elsewhere: &Path) -> Self {
            let dir = parent.parent().unwrap();
            let held = dir.join("held.real");
            // The user's link, made once (a user's links are theirs from
            // the start: it is owned before it is ever in place).
            let link = dir.join("users-link");
            std::os::unix::fs::symlink(elsewhere, &link).unwrap();
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &link,
                Some(Uid::from_raw(65534)),
                None,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let thread = {
                let (parent, stop) = (parent.to_path_buf(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // The real directory out, the user's link in, and back.
                        if std::fs::rename(&parent, &held).is_ok() {
                            let _ = std::fs::rename(&link, &parent);
                            let _ = std::fs::rename(&parent, &link);
                            let _ = std::fs::rename(&held, &parent);
                        }
                    }
                })
            };
            Flipper {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Flipper {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap();
            }
        }
    }

    /// Files are written into a directory another user keeps swapping for
    /// a link: no write ever lands elsewhere (each is made in the real
    /// directory or refused).
    #[test]
    fn a_parent_swapped_for_a_users_link_never_redirects_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("conf");
        let elsewhere = dir.path().join("elsewhere");
        fs_err::create_dir_all(&parent).unwrap();
        fs_err::create_dir_all(&elsewhere).unwrap();
        let flipper = Flipper::start(&parent, &elsewhere);
        let mut written = 0;
        for i in 0..2000 {
            if atomic_write(
                &parent.join(format!("f{i}")),
                b"x",
                0o644,
                None,
                None,
                &TempLog::unrecorded(),
            )
            .is_ok()
            {
                written += 1;
            }
        }
        drop(flipper);
        assert_eq!(
            fs_err::read_dir(&elsewhere).unwrap().count(),
            0,
            "a write went through the user's link"
        );
        assert!(written > 0, "no write got through at all");
    }

    /// The same race for removals: the files of the same names elsewhere
    /// all survive.
    #[test]
    fn a_parent_swapped_for_a_users_link_never_redirects_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("conf");
        let elsewhere = dir.path().join("elsewhere");
        fs_err::create_dir_all(&parent).unwrap();
        fs_err::create_dir_all(&elsewhere).unwrap();
        for i in 0..2000 {
            fs_err::write(parent.join(format!("f{i}")), b"managed").unwrap();
            fs_err::write(elsewhere.join(format!("f{i}")), b"theirs").unwrap();
            fs_err::create_dir_all(parent.join(format!("d{i}/sub"))).unwrap();
            fs_err::create_dir_all(elsewhere.join(format!("d{i}/sub"))).unwrap();
        }
        let flipper = Flipper::start(&parent, &elsewhere);
        let mut removed = 0;
        for i in 0..2000 {
            let name = if i % 2 == 0 {
                format!("f{i}")
            } else {
                format!("d{i}")
            };
            if remove(&parent.join(name)).is_ok() {
                removed += 1;
            }
        }
        drop(flipper);
        for i in 0..2000 {
            assert!(
                elsewhere.join(format!("f{i}")).is_file()
                    && elsewhere.join(format!("d{i}/sub")).is_dir(),
                "a removal went through the user's link (entry {i})"
            );
        }
        assert!(removed > 0, "no removal got through at all");
    }

    /// A tree with links in it: the links go, never what they point at.
    #[test]
    fn removing_a_tree_removes_its_links_not_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs_err::create_dir_all(outside.join("deep")).unwrap();
        fs_err::write(outside.join("deep/keep"), b"keep").unwrap();
        let tree = dir.path().join("tree");
        fs_err::create_dir_all(tree.join("a/b")).unwrap();
        fs_err::write(tree.join("a/b/file"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/to-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("deep/keep"), tree.join("a/b/to-file")).unwrap();
        remove(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs_err::read(outside.join("deep/keep")).unwrap(), b"keep");
        // A link itself is removed as a link.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        remove(&link).unwrap();
        assert!(fs_err::symlink_metadata(&link).is_err());
        assert!(outside.join("deep/keep").is_file());
    }
}
