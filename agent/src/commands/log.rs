//! `tend log …`: the central log's commands live in their own binary,
//! `tend-log` (its own package: the host's `tend` links no server). This
//! runs it with the same arguments, found beside this binary or on PATH.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The arguments of `tend-log` (see `tend-log --help`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

const BINARY: &str = "tend-log";

pub fn run(args: Args) -> anyhow::Result<u8> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BINARY)));
    let Some(binary) = find(beside.as_deref(), std::env::var_os("PATH").as_deref()) else {
        anyhow::bail!(
            "`tend log` runs `{BINARY}`, which is neither beside this binary nor on PATH: \
             install the tend-log package (`apt install ./tend-log_*.deb`), or build it \
             (`cargo build --release` builds both binaries)"
        );
    };
    // exec: the server's signals, exit code and terminal are its own.
    let error = std::process::Command::new(&binary)
        .arg0(BINARY)
        .args(&args.args)
        .exec();
    Err(anyhow::anyhow!("{}: {error}", binary.display()))
}

/// `tend-log` beside this binary first (the same build or package), then
/// on PATH.
fn find(beside: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(p) = beside.filter(|p| executable(p)) {
        return Some(p.to_owned());
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(BINARY))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(BINARY);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn beside_the_binary_comes_before_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let beside = exe(a.path());
        let on_path = exe(b.path());
        let path = std::env::join_paths([b.path()]).unwrap();
        assert_eq!(find(Some(&beside), Some(&path)), Some(beside.clone()));
        assert_eq!(
            find(Some(&a.path().join("none")), Some(&path)),
            Some(on_path)
        );
        assert_eq!(find(None, None), None);
    }

    #[test]
    fn a_file_that_is_not_executable_is_not_found() {
        let a = tempfile::tempdir().unwrap();
        let p = a.path().join(BINARY);
        std::fs::write(&p, "").unwrap();
        let path = std::env::join_paths([a.path()]).unwrap();
        assert_eq!(find(None, Some(&path)), None);
    }
}
