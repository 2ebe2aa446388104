//! A small builder for running the real `tend` binary against a temporary
//! repository, target tree and state directory.

#![allow(dead_code)]

pub mod browser;
pub mod receiver;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const HOST: &str = "test-host";

/// The project's root: the workspace, which is also the example repository.
pub fn project() -> &'static str {
    static ROOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = tests.parent().expect("tests/ is in the workspace");
        root.to_str().expect("a UTF-8 path").to_owned()
    })
}

/// A binary the workspace builds (`tend`, `tend-log`), beside this test's
/// own build directory: `target/<profile>/NAME`. Cargo builds only the test
/// package's dependencies as libraries, so `scripts/test` builds the
/// binaries first; a binary older than its sources is refused rather than
/// tested.
pub fn bin(name: &str) -> &'static Path {
    static BINS: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    let (tend, tend_log) = BINS.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's own path");
        // target/<profile>/deps/integration-HASH
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let workspace = Path::new(project());
        let built = |name: &str, crates: &[&str]| {
            let path = dir.join(name);
            let built = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| {
                    panic!(
                        "{} is missing: build the binaries first \
                     (`cargo build --workspace --bins`, as scripts/test does)",
                        path.display()
                    )
                });
            for krate in crates {
                if let Some(newer) =
                    newest_source(&workspace.join(krate)).filter(|(t, _)| *t > built)
                {
                    panic!(
                        "{} is older than {}: build the binaries first \
                         (`cargo build --workspace --bins`, as scripts/test does)",
                        path.display(),
                        newer.1.display()
                    );
                }
            }
            path
        };
        (
            built("tend", &["agent", "common"]),
            built("tend-log", &["log", "common"]),
        )
    });
    match name {
        "tend" => tend,
        "tend-log" => tend_log,
        other => panic!("no binary {other} in the workspace"),
    }
}

/// The most recently modified file under `dir` (its Cargo.toml and src/).
fn newest_source(dir: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack = vec![dir.join("src"), dir.join("Cargo.toml")];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(t) = meta.modified()
            && newest.as_ref().is_none_or(|(n, _)| t > *n)
        {
            newest = Some((t, path));
        }
    }
    newest
}

pub struct Test {
    _dir: tempfile::TempDir,
    pub repo: PathBuf,
    /// Where the resources of the test's manifests live.
    pub root: PathBuf,
    pub state: PathBuf,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The summary line of a converge listing.
    pub fn summary(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    /// Asserts that stdout contains `text`, showing stdout when not.
    #[track_caller]
    pub fn shows(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks `{text}`:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Test {
    /// A repository with one environment `test` whose host `test-host` gets
    /// role `main`; `{{root}}` is the target tree.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        for d in [repo.join("roles"), repo.join("manifests"), root.clone()] {
            fs_err::create_dir_all(&d).unwrap();
        }
        let test = Test {
            _dir: dir,
            repo,
            root,
            state,
        };
        test.env(&format!(
            "environment: test\nvars:\n  root: {}\nhosts:\n  - match: \"{HOST}\"\n    roles: [main]\n",
            test.root.display()
        ));
        test
    }

    /// Writes `roles/<name>/role.yaml`.
    pub fn role(&self, name: &str, yaml: &str) -> &Self {
        self.file(&format!("roles/{name}/role.yaml"), yaml)
    }

    /// Writes the `test` environment file.
    pub fn env(&self, yaml: &str) -> &Self {
        self.file("manifests/test.yaml", yaml)
    }

    /// Writes any file of the repository.
    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let path = self.repo.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, content).unwrap();
        self
    }

    /// A path in the target tree.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `tend converge` on the test host, with `--detailed-exitcodes`.
    pub fn converge(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "converge",
            "--repo",
            self.repo.to_str().unwrap(),
            "--host",
            HOST,
            "--state-dir",
            self.state.to_str().unwrap(),
            "--detailed-exitcodes",
        ];
        args.extend_from_slice(extra);
        tend(&args)
    }

    pub fn dry_run(&self) -> Run {
        self.converge(&["--dry-run"])
    }

    /// `tend check` on the test repository.
    pub fn check(&self) -> Run {
        tend(&["check", "--repo", self.repo.to_str().unwrap()])
    }

    /// Replaces the test's temporary paths so output can be snapshotted.
    pub fn scrub(&self, text: &str) -> String {
        let text = text
            .replace(self.root.to_str().unwrap(), "[ROOT]")
            .replace(self.repo.to_str().unwrap(), "[REPO]");
        scrub_durations(&text)
    }
}

pub fn tend(args: &[&str]) -> Run {
    let out = Command::new(crate::support::bin("tend"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TEND_STATE_DIR")
        .output()
        .expect("run tend");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `in 13 ms` -> `in [N] ms`.
pub fn scrub_durations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" in ") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(" ms") {
            out.push_str("[N]");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// Everything about a tree a person could notice: for each path its type,
/// mode, owner, group, mtime and content (or link target).
pub fn tree_state(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let meta = fs_err::symlink_metadata(path).unwrap();
    let kind = if meta.is_symlink() {
        format!("link {}", fs_err::read_link(path).unwrap().display())
    } else if meta.is_dir() {
        "dir".to_owned()
    } else {
        let bytes = fs_err::read(path).unwrap();
        format!("file {}", tend::resource::sha256_hex(&bytes))
    };
    out.insert(
        path.strip_prefix(root).unwrap().to_path_buf(),
        format!(
            "{kind} mode {:o} uid {} gid {} mtime {}.{}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.mtime_nsec()
        ),
    );
    if meta.is_dir() {
        for entry in fs_err::read_dir(path).unwrap() {
            walk(root, &entry.unwrap().path(), out);
        }
    }
}

/// A system user (and its group) for ownership tests. Tests run as root in CI.
pub fn test_user() -> (&'static str, u32, u32) {
    const NAME: &str = "tend-test";
    static CREATE: std::sync::Once = std::sync::Once::new();
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "ownership tests need root (CI runs as root)"
    );
    CREATE.call_once(|| {
        if nix::unistd::User::from_name(NAME).unwrap().is_none() {
            let status = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    NAME,
                ])
                .status()
                .expect("run useradd");
            // 9: created meanwhile by another test process.
            assert!(
                status.success() || status.code() == Some(9),
                "useradd failed"
            );
        }
    });
    let user = nix::unistd::User::from_name(NAME)
        .unwrap()
        .expect("test user exists");
    (NAME, user.uid.as_raw(), user.gid.as_raw())
}
