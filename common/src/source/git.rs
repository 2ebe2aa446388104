//! The one place tend runs `git`. Inherited `GIT_*` variables are cleared so
//! that a hook or a surrounding checkout never redirects it.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The commit a run's manifests come from: who, when and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub commit: String,
    pub author: String,
    pub committed_at: String,
    pub subject: String,
}

/// A `git` command run in `dir`, with a clean environment.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("-C").arg(dir);
    cmd
}

/// The revision checked out at `repo`, when it is inside a git work tree.
pub fn revision(repo: &Path) -> Option<Revision> {
    // Avoid a process spawn for directories that are not checkouts.
    let absolute = fs_err::canonicalize(repo).ok()?;
    if !absolute.ancestors().any(|d| d.join(".git").exists()) {
        return None;
    }
    revision_of(repo, "HEAD")
}

/// Who made `rev` of the repository at `repo`, when and why.
pub fn revision_of(repo: &Path, rev: &str) -> Option<Revision> {
    let output = command(repo)
        .args([
            "log",
            "-1",
            "--no-show-signature",
            "--format=%H%x00%an <%ae>%x00%ct%x00%s",
            rev,
            "--",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.trim_end_matches('\n').split('\0');
    let commit = fields.next()?.to_owned();
    let author = fields.next()?.to_owned();
    let seconds: u64 = fields.next()?.parse().ok()?;
    let subject = fields.next().unwrap_or("").to_owned();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    Some(Revision {
        commit,
        author,
        committed_at: humantime::format_rfc3339_seconds(when).to_string(),
        subject,
    })
}

/// Writes the tree of `rev` (only `paths` of it, when given) into `into`
/// with `git archive | tar -x`: a plain tree straight from git's objects,
/// no .git, no work tree touched, nothing of the repository's own config
/// followed (no hooks, no filters run from the commit).
pub fn extract(repo: &Path, rev: &str, paths: &[&str], into: &Path) -> Result<(), String> {
    let mut archive = command(repo)
        .args(["archive", "--format=tar", rev, "--"])
        .args(paths)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let stdout = archive.stdout.take().expect("piped");
    let untar = std::process::Command::new("tar")
        .args(["-x", "--no-same-owner", "-C"])
        .arg(into)
        .stdin(stdout)
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let archived = archive
        .wait_with_output()
        .map_err(|e| format!("git archive: {e}"))?;
    if !archived.status.success() || !untar.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&archived.stderr).trim(),
            String::from_utf8_lossy(&untar.stderr).trim()
        ));
    }
    Ok(())
}
