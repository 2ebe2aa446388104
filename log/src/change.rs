//! A commit's own change to the repository, as its page shows it: the
//! diff of `manifests/` and `roles/` against its first parent, read from
//! the log's mirror, with what a `sensitive` resource holds hidden — the
//! files its `source:` or `template:` names (whole), and the lines of its
//! entry in `role.yaml` — on either side of the change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::manifest::Repo;
use crate::manifest::node::Value;
use crate::source::git;

/// Git's empty tree: what a root commit is compared with.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// A page shows this many files of a commit, and this much of each.
const MAX_FILES: usize = 100;
const MAX_DIFF_BYTES: usize = 64 * 1024;
/// What a hidden line reads.
pub const HIDDEN_LINE: &str = "(sensitive: hidden)";

/// What a commit changed in the repository.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub files: Vec<ChangedFile>,
    /// Files beyond [`MAX_FILES`], named but not shown.
    pub more_files: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangedFile {
    pub path: String,
    /// Git's letter: A, M, D, T.
    pub status: String,
    /// The unified diff's hunks; `None` when the file is sensitive.
    pub diff: Option<String>,
}

/// What of one side of a change is sensitive.
#[derive(Debug, Default)]
pub struct Sensitive {
    /// Files hidden whole (a sensitive resource's `source:` or `template:`).
    files: BTreeSet<String>,
    /// Folders hidden whole: a sensitive resource names its file with a
    /// template, so any file of its role's `files/` or `templates/` may be it.
    folders: BTreeSet<String>,
    /// Line ranges (1-based, inclusive) of sensitive entries, per role file.
    lines: BTreeMap<String, Vec<(u32, u32)>>,
}

impl Sensitive {
    /// Reads what is sensitive in the repository checked out at `root`.
    pub fn of(root: &Path) -> Sensitive {
        let mut found = Sensitive::default();
        let Ok(mut repo) = Repo::open(root) else {
            return found;
        };
        for name in repo.role_names() {
            let file = format!("roles/{name}/role.yaml");
            let role = match repo.role(&name) {
                Ok(Some(role)) => role,
                // A role file that does not parse: if it mentions
                // `sensitive` anywhere, none of its lines are shown.
                _ => {
                    let text = fs_err::read_to_string(root.join(&file)).unwrap_or_default();
                    if text.contains("sensitive") {
                        found.lines.insert(file, vec![(1, u32::MAX)]);
                    }
                    continue;
                }
            };
            let starts: Vec<u32> = role.resources.iter().map(|r| r.pos.line).collect();
            for (i, decl) in role.resources.iter().enumerate() {
                let sensitive = decl
                    .attr("sensitive")
                    .is_some_and(|(_, v)| !matches!(v.value, Value::Bool(false)));
                if !sensitive {
                    continue;
                }
                // From its `- type: name` line to the next entry's (a
                // block scalar runs past its own first line).
                let end = starts.get(i + 1).map_or(u32::MAX, |next| next - 1);
                found
                    .lines
                    .entry(file.clone())
                    .or_default()
                    .push((decl.pos.line, end));
                for (key, folder) in [("source", "files"), ("template", "templates")] {
                    let Some(named) = decl.attr(key).and_then(|(_, v)| v.as_str()) else {
                        continue;
                    };
                    if named.contains("{{") {
                        found.folders.insert(format!("roles/{name}/{folder}/"));
                    } else {
                        found.files.insert(format!(
                            "roles/{name}/{folder}/{}",
                            named.trim_start_matches("./")
                        ));
                    }
                }
            }
        }
        found
    }

    fn hides_file(&self, path: &str) -> bool {
        self.files.contains(path) || self.folders.iter().any(|f| path.starts_with(f.as_str()))
    }

    fn hides_line(&self, path: &str, line: u32) -> bool {
        self.lines
            .get(path)
            .is_some_and(|ranges| ranges.iter().any(|&(a, b)| (a..=b).contains(&line)))
    }
}

/// Reads `commit`'s change from the bare repository at `repo`.
pub fn read(repo: &Path, commit: &str) -> Result<Change, String> {
    let parent = git::command(repo)
        .args(["rev-parse", "--verify", "--quiet", &format!("{commit}^1")])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let parent = if parent.status.success() {
        String::from_utf8_lossy(&parent.stdout).trim().to_owned()
    } else {
        EMPTY_TREE.to_owned()
    };
    let listed = run(
        repo,
        &[
            "diff",
            "--no-renames",
            "--name-status",
            "-z",
            &parent,
            commit,
            "--",
            "manifests",
            "roles",
        ],
    )?;
    let mut fields = listed.split('\0').filter(|f| !f.is_empty());
    let mut changed = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        changed.push((status.to_owned(), path.to_owned()));
    }
    let before = side(repo, &parent)?;
    let after = side(repo, commit)?;
    let more_files = changed.len().saturating_sub(MAX_FILES);
    let mut files = Vec::new();
    for (status, path) in changed.into_iter().take(MAX_FILES) {
        let diff = if before.hides_file(&path) || after.hides_file(&path) {
            None
        } else {
            let text = run(
                repo,
                &[
                    "diff",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    "--no-renames",
                    &parent,
                    commit,
                    "--",
                    &path,
                ],
            )?;
            Some(redact(&text, &path, &before, &after))
        };
        files.push(ChangedFile { path, status, diff });
    }
    Ok(Change { files, more_files })
}

/// What is sensitive at `rev` (its manifests and roles extracted).
fn side(repo: &Path, rev: &str) -> Result<Sensitive, String> {
    if rev == EMPTY_TREE {
        return Ok(Sensitive::default());
    }
    let present = run(
        repo,
        &["ls-tree", "--name-only", rev, "--", "manifests", "roles"],
    )?;
    let paths: Vec<&str> = present.lines().collect();
    if !paths.contains(&"manifests") || !paths.contains(&"roles") {
        return Ok(Sensitive::default());
    }
    let dir = tempfile::Builder::new()
        .prefix("tend-log-change-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    git::extract(repo, rev, &paths, dir.path())?;
    Ok(Sensitive::of(dir.path()))
}

fn run(repo: &Path, args: &[&str]) -> Result<String, String> {
    let output = git::command(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "git {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The hunks of one file's unified diff with every line of a sensitive
/// entry (old side for `-`, new side for `+`, either for context) replaced.
pub fn redact(diff: &str, path: &str, before: &Sensitive, after: &Sensitive) -> String {
    let mut out = String::new();
    let (mut old, mut new) = (0u32, 0u32);
    let mut in_hunk = false;
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            in_hunk = true;
            let mut numbers = header.split(' ').take(2).map(|part| {
                part[1..]
                    .split(',')
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0)
            });
            old = numbers.next().unwrap_or(0);
            new = numbers.next().unwrap_or(0);
            out.push_str(line);
        } else if !in_hunk {
            // The header (diff --git, index, ---, +++) is git's, not the file's.
            continue;
        } else {
            let (sign, hidden) = match line.as_bytes().first() {
                Some(b'+') => {
                    new += 1;
                    ('+', after.hides_line(path, new - 1))
                }
                Some(b'-') => {
                    old += 1;
                    ('-', before.hides_line(path, old - 1))
                }
                Some(b'\\') => {
                    out.push_str(line);
                    out.push('\n');
                    continue;
                }
                _ => {
                    old += 1;
                    new += 1;
                    (
                        ' ',
                        before.hides_line(path, old - 1) || after.hides_line(path, new - 1),
                    )
                }
            };
            if hidden {
                out.push(sign);
                out.push_str(HIDDEN_LINE);
            } else {
                out.push_str(line);
            }
        }
        out.push('\n');
        if out.len() > MAX_DIFF_BYTES {
            out.push_str("… (cut: open the commit in git for the rest)\n");
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensitive(path: &str, from: u32, to: u32) -> Sensitive {
        let mut s = Sensitive::default();
        s.lines.insert(path.to_owned(), vec![(from, to)]);
        s
    }

    #[test]
    fn lines_of_a_sensitive_entry_are_hidden_on_their_own_side() {
        let diff = "diff --git a/r b/r\nindex 1..2 100644\n--- a/r\n+++ b/r\n@@ -1,4 +1,4 @@\n resources:\n-  - file: /a\n-    content: old secret\n+  - file: /a\n+    content: new secret\n   - package: nginx\n";
        let before = sensitive("r", 2, 3);
        let after = sensitive("r", 2, 3);
        let shown = redact(diff, "r", &before, &after);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("@@ -1,4 +1,4 @@\n resources:\n-(sensitive: hidden)\n"));
        assert!(shown.ends_with("   - package: nginx\n"), "{shown}");
        // A file with nothing sensitive is shown as it is (less git's header).
        let plain = redact(diff, "other", &before, &after);
        assert!(plain.contains("+    content: new secret"));
        assert!(!plain.contains("index 1..2"));
    }
}
