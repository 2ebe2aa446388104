//! Where the manifests come from: a git repository, fetched with the
//! system `git` into the state directory, each commit checked out into a
//! folder of its own (only ever read, never written by hand), so that the
//! last commit known to be good stays at hand while a new one is judged.

pub mod git;

use std::path::{Path, PathBuf};

pub use git::Revision;

/// The fetched repository: `<state-dir>/source/repo.git` (bare) and
/// `<state-dir>/source/checkouts/<commit>`.
pub struct Source {
    dir: PathBuf,
    /// The first fetch brings one commit (a host needs no more); the
    /// log's mirror wants the whole history, to answer ancestry.
    shallow: bool,
}

/// The ref a fetch stores what it fetched under.
const FETCHED: &str = "refs/tend/fetched";

impl Source {
    /// Opens (creating it the first time) the source kept in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Source, String> {
        Source::open_in(state_dir.join("source"), true)
    }

    /// A source in `dir` itself; `shallow` as [`Source::shallow`].
    pub fn open_in(dir: PathBuf, shallow: bool) -> Result<Source, String> {
        let repo = dir.join("repo.git");
        if !repo.join("HEAD").is_file() {
            fs_err::create_dir_all(&repo).map_err(|e| e.to_string())?;
            run(&repo, &["init", "--quiet", "--bare"])?;
        }
        fs_err::create_dir_all(dir.join("checkouts")).map_err(|e| e.to_string())?;
        Ok(Source { dir, shallow })
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.join("repo.git")
    }

    /// Fetches `reference` (a branch, tag or commit) from `url`; returns the
    /// commit it names.
    ///
    /// The first fetch is shallow (the one commit); later ones bring the
    /// commits since the last one fetched, which is all the history the
    /// ancestry check needs.
    pub fn fetch(&self, url: &str, reference: &str) -> Result<String, String> {
        self.remove_stale_locks();
        let refspec = format!("+{reference}:{FETCHED}");
        let mut args = vec!["fetch", "--quiet", "--no-tags", "--force"];
        if self.shallow && self.resolve(FETCHED).is_err() {
            args.push("--depth=1");
        }
        args.extend(["--", url, &refspec]);
        run(&self.repo(), &args)?;
        self.resolve(FETCHED)
    }

    /// The commit the last fetch brought, if any (no fetch now).
    pub fn fetched(&self) -> Option<String> {
        self.resolve(FETCHED).ok()
    }

    /// Fetches one commit by its id (one the ref no longer points to: a
    /// rollback's target).
    pub fn fetch_commit(&self, url: &str, commit: &str) -> Result<(), String> {
        if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{commit}` is not a commit id"));
        }
        run(
            &self.repo(),
            &["fetch", "--quiet", "--no-tags", "--", url, commit],
        )
        .map(|_| ())
    }

    /// Lock files a git killed in mid-fetch left: they would make every
    /// later fetch fail. Only called while the agent's own lock is held,
    /// so no other git works in this repository. Objects are not locked,
    /// so their many folders are not walked.
    fn remove_stale_locks(&self) {
        fn walk(dir: &Path) {
            let Ok(entries) = fs_err::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() && entry.file_name() != "objects" => walk(&path),
                    Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "lock") => {
                        tracing::warn!(file = %path.display(), "removed a lock file a killed git left");
                        let _ = fs_err::remove_file(&path);
                    }
                    _ => {}
                }
            }
        }
        walk(&self.repo());
    }

    /// The commit `rev` names in the fetched repository.
    pub fn resolve(&self, rev: &str) -> Result<String, String> {
        let out = run(
            &self.repo(),
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        )?;
        Ok(out.trim().to_owned())
    }

    /// The files of `commit`, checked out once into a folder of their own.
    pub fn checkout(&self, commit: &str) -> Result<PathBuf, String> {
        if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{commit}` is not a commit id"));
        }
        let target = self.dir.join("checkouts").join(commit);
        if target.is_dir() {
            return Ok(target);
        }
        let partial = self
            .dir
            .join("checkouts")
            .join(format!(".partial-{commit}"));
        let _ = fs_err::remove_dir_all(&partial);
        fs_err::create_dir_all(&partial).map_err(|e| e.to_string())?;
        if let Err(e) = git::extract(&self.repo(), commit, &[], &partial) {
            let _ = fs_err::remove_dir_all(&partial);
            return Err(format!("cannot check out {commit}: {e}"));
        }
        fs_err::rename(&partial, &target).map_err(|e| e.to_string())?;
        Ok(target)
    }

    /// Who made `commit`, when and why.
    pub fn revision(&self, commit: &str) -> Option<Revision> {
        git::revision_of(&self.repo(), commit)
    }

    /// Whether `git verify-commit` accepts the commit's signature; the
    /// error says what gpg said.
    pub fn verify(&self, commit: &str) -> Result<(), String> {
        run(&self.repo(), &["verify-commit", commit]).map(|_| ())
    }

    /// Whether `commit` is `ancestor` or descends from it.
    pub fn descends(&self, ancestor: &str, commit: &str) -> bool {
        git::command(&self.repo())
            .args(["merge-base", "--is-ancestor", ancestor, commit])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Removes checkouts other than `keep`.
    pub fn prune(&self, keep: &[&str]) {
        let Ok(entries) = fs_err::read_dir(self.dir.join("checkouts")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !keep.iter().any(|k| name.to_str() == Some(k)) {
                let _ = fs_err::remove_dir_all(entry.path());
            }
        }
    }
}

/// Runs `git -C repo args…`; its stdout, or what it said on failure.
fn run(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = git::command(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`git {}` failed: {}",
            args.first().copied().unwrap_or_default(),
            said.trim()
        ))
    }
}
