//! Directories opened by an openat chain: each component of the path is
//! opened relative to the one before, without following symlinks, except
//! a link root owns (as `/lib -> usr/lib` on Debian). Writes then go
//! through the directory's descriptor, so a link that another user swaps in
//! after a check can never redirect them: the check and the use are one.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

use super::FsError;

/// Links followed in one path at most, as the kernel's own limit.
const MAX_LINKS: usize = 40;

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Opens `dir` (absolute, or relative to the working directory) by an
/// openat chain; refuses a symlink on the way that root does not own.
pub fn open_dir(dir: &Path) -> Result<OwnedFd, FsError> {
    let start = if dir.is_absolute() { "/" } else { "." };
    let open_start = |start: &str| {
        openat(AT_FDCWD, start, dir_flags(), Mode::empty()).map_err(|e| FsError::Sys {
            what: "cannot open the directory",
            path: PathBuf::from(start),
            source: e,
        })
    };
    let mut fd = open_start(start)?;
    // The real path walked so far (links resolved), for messages and `..`.
    let mut walked = PathBuf::from(start);
    let mut todo = parts(dir);
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            if walked.pop() && !walked.as_os_str().is_empty() {
                fd = open_dir(&walked)?;
            } else {
                fd = openat(&fd, "..", dir_flags(), Mode::empty()).map_err(|e| FsError::Sys {
                    what: "cannot open the directory",
                    path: walked.join(".."),
                    source: e,
                })?;
                walked.push("..");
            }
            continue;
        }
        let here = walked.join(&part);
        match openat(&fd, part.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(next) => {
                fd = next;
                walked = here;
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st =
                    fstatat(&fd, part.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| {
                        FsError::Sys {
                            what: "cannot inspect",
                            path: here.clone(),
                            source: e,
                        }
                    })?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                    return Err(FsError::Sys {
                        what: "not a directory:",
                        path: here,
                        source: Errno::ENOTDIR,
                    });
                }
                if st.st_uid != 0 {
                    return Err(FsError::UnsafeLink {
                        link: here,
                        owner: st.st_uid,
                    });
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(FsError::Sys {
                        what: "too many links on the way to",
                        path: dir.to_path_buf(),
                        source: Errno::ELOOP,
                    });
                }
                let target = readlinkat(&fd, part.as_os_str()).map_err(|e| FsError::Sys {
                    what: "cannot read the link",
                    path: here.clone(),
                    source: e,
                })?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    fd = open_start("/")?;
                    walked = PathBuf::from("/");
                }
                for p in parts(&target).into_iter().rev() {
                    todo.push_front(p);
                }
            }
            Err(e) => {
                return Err(FsError::Sys {
                    what: "cannot open the directory",
                    path: here,
                    source: e,
                });
            }
        }
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_roots_links_and_refuses_anyone_elses() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs_err::create_dir_all(real.join("inner")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("by-root")).unwrap();
        assert!(open_dir(&dir.path().join("by-root/inner")).is_ok());
        let theirs = dir.path().join("by-user");
        std::os::unix::fs::symlink(&real, &theirs).unwrap();
        nix::unistd::fchownat(
            AT_FDCWD,
            &theirs,
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        match open_dir(&theirs.join("inner")) {
            Err(FsError::UnsafeLink { owner, .. }) => assert_eq!(owner, 65534),
            other => panic!("{other:?}"),
        }
        // `..` inside a link target, and a relative start.
        std::os::unix::fs::symlink("real/../real/inner", dir.path().join("dotted")).unwrap();
        assert!(open_dir(&dir.path().join("dotted")).is_ok());
        assert!(open_dir(Path::new(".")).is_ok());
    }
}
