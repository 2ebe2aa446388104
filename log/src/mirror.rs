//! The log's own copy of the repository (`tend log serve --source URL`):
//! a bare mirror, fetched on demand and every minute by the same git
//! runner as the agent (no hooks, no filters, no work tree). It is the
//! authority on a commit's author, date and subject, on the rollout policy
//! of each environment in that commit, and on which commit came after
//! which: a host only says which commit it fetched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::change::Change;
use super::rollouts::{CommitFacts, History};
use crate::source::Source;
use crate::source::git::Revision;

/// Commit pages read at most this many changes before the cache starts over.
const CACHED_CHANGES: usize = 256;

pub struct Mirror {
    /// Held while the mirror is in use: two servers fetching into one
    /// copy would trip over each other's locks.
    _lock: std::fs::File,
    source: Source,
    url: String,
    reference: String,
    /// The ref's commit at the last fetch.
    tip: Mutex<Option<String>>,
    /// When a fetch last succeeded (Unix seconds).
    fetched_at: Mutex<Option<i64>>,
    /// The ref's commit, for those waiting for it to move (`/v1/watch`).
    moved: tokio::sync::watch::Sender<Option<String>>,
    /// One fetch at a time; and when the last one ran.
    fetching: Mutex<Option<Instant>>,
    /// What each (environment, commit) has been found to be: commits never
    /// change, so this is never stale.
    facts: Mutex<HashMap<(String, String), CommitFacts>>,
    /// Commits asked about that a fetch did not bring, and when.
    missing: Mutex<HashMap<String, Instant>>,
    /// Each commit's own change, as read once (a few, for commit pages).
    changes: Mutex<HashMap<String, Arc<Change>>>,
    /// Who made each commit, when and why, as read once; `None`: not in
    /// the copy at the last look (forgotten at each fetch), so listings do
    /// not run git again for it on every page.
    revisions: Mutex<HashMap<String, Option<Revision>>>,
}

/// Why a commit's facts cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum Unknown {
    #[error("commit {0} is not in the log's copy of the source, even after a fetch")]
    Commit(String),
    #[error(
        "environment `{environment}` has no file in commit {commit} (manifests/{environment}.yaml)"
    )]
    Environment { environment: String, commit: String },
    #[error("the log cannot read the source: {0}")]
    Source(String),
}

/// A commit the source did not have is not fetched for again within this
/// time, so a host naming made-up commits cannot keep git busy.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

impl Mirror {
    /// Opens (creating it the first time) the mirror in `dir` and fetches.
    /// A first fetch that fails is said, not fatal: the log still stores
    /// reports, and rollouts wait for the source.
    pub fn open(dir: &Path, url: &str, reference: &str) -> Result<Mirror, String> {
        let source = Source::open_in(PathBuf::from(dir), false)?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("tend-log.lock"))
            .map_err(|e| e.to_string())?
            .into_parts()
            .0;
        if lock.try_lock().is_err() {
            return Err(format!(
                "another log server uses the copy of the source in `{}`: give each its own --mirror-dir",
                dir.display()
            ));
        }
        let mirror = Mirror {
            _lock: lock,
            source,
            url: url.to_owned(),
            reference: reference.to_owned(),
            tip: Mutex::new(None),
            fetching: Mutex::new(None),
            facts: Mutex::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            changes: Mutex::new(HashMap::new()),
            revisions: Mutex::new(HashMap::new()),
            fetched_at: Mutex::new(None),
            moved: tokio::sync::watch::Sender::new(None),
        };
        if let Err(e) = mirror.fetch() {
            tracing::warn!(error = %e, source = %url, "cannot fetch the source yet; rollouts wait for it");
            let known = mirror.source.resolve("refs/tend/fetched").ok();
            mirror.moved.send_replace(known.clone());
            *mirror.tip.lock().expect("tip") = known;
        }
        Ok(mirror)
    }

    /// Fetches the ref; the commit it points to.
    pub fn fetch(&self) -> Result<String, String> {
        let mut last = self.fetching.lock().expect("fetch lock");
        self.fetch_locked(&mut last)
    }

    /// A fetch may write objects one by one (a commit before its tree):
    /// nothing reads the mirror while it runs.
    fn fetch_locked(&self, last: &mut Option<Instant>) -> Result<String, String> {
        *last = Some(Instant::now());
        let tip = self.source.fetch(&self.url, &self.reference)?;
        let mut known = self.tip.lock().expect("tip");
        if known.as_deref() != Some(tip.as_str()) {
            tracing::info!(commit = %tip, reference = %self.reference, "the source moved");
        }
        *known = Some(tip.clone());
        *self.fetched_at.lock().expect("fetched_at") = Some(crate::now_unix());
        self.moved.send_if_modified(|seen| {
            let moved = seen.as_deref() != Some(tip.as_str());
            if moved {
                *seen = Some(tip.clone());
            }
            moved
        });
        self.revisions
            .lock()
            .expect("revisions")
            .retain(|_, r| r.is_some());
        Ok(tip)
    }

    /// The ref's commit now and each time it moves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.moved.subscribe()
    }

    /// The ref followed, its commit as last known, and when a fetch last
    /// succeeded (Unix seconds).
    pub fn head(&self) -> (&str, Option<String>, Option<i64>) {
        (
            &self.reference,
            self.tip.lock().expect("tip").clone(),
            *self.fetched_at.lock().expect("fetched_at"),
        )
    }

    fn has(&self, commit: &str) -> bool {
        commit.len() >= 7
            && commit.bytes().all(|b| b.is_ascii_hexdigit())
            && self.source.resolve(commit).is_ok_and(|c| c == commit)
    }

    /// Who made `commit`, and `environment`'s rollout policy in it; a
    /// commit the mirror lacks is fetched for once.
    pub fn facts(&self, environment: &str, commit: &str) -> Result<CommitFacts, Unknown> {
        let key = (environment.to_owned(), commit.to_owned());
        if let Some(f) = self.facts.lock().expect("facts").get(&key) {
            return Ok(f.clone());
        }
        let asked = Instant::now();
        let mut last = self.fetching.lock().expect("fetch lock");
        if let Some(f) = self.facts.lock().expect("facts").get(&key) {
            return Ok(f.clone());
        }
        self.ensure(commit, asked, &mut last)?;
        let revision = self
            .source
            .revision(commit)
            .ok_or_else(|| Unknown::Commit(commit.to_owned()))?;
        let policy = self.policy(environment, commit)?;
        let facts = CommitFacts { revision, policy };
        self.facts.lock().expect("facts").insert(key, facts.clone());
        Ok(facts)
    }

    /// Makes sure the mirror has `commit`: fetched for once, unless a
    /// fetch started after the question came (then it had the commit if
    /// the source had it), and not again for the same unknown commit
    /// within a while.
    fn ensure(
        &self,
        commit: &str,
        asked: Instant,
        last: &mut Option<Instant>,
    ) -> Result<(), Unknown> {
        if self.has(commit) {
            return Ok(());
        }
        let mut missing = self.missing.lock().expect("missing");
        missing.retain(|_, t| t.elapsed() < REFETCH_AFTER);
        let fetched_since = last.is_some_and(|t| t >= asked);
        if !fetched_since && !missing.contains_key(commit) {
            missing.insert(commit.to_owned(), Instant::now());
            drop(missing);
            if let Err(e) = self.fetch_locked(last) {
                tracing::warn!(error = %e, "cannot fetch the source");
            }
        }
        if self.has(commit) {
            Ok(())
        } else {
            Err(Unknown::Commit(commit.to_owned()))
        }
    }

    /// `commit`'s own change to the repository (for its page); a commit
    /// the mirror lacks is fetched for once.
    pub fn change(&self, commit: &str) -> Result<Arc<Change>, Unknown> {
        if let Some(c) = self.changes.lock().expect("changes").get(commit) {
            return Ok(Arc::clone(c));
        }
        let asked = Instant::now();
        let mut last = self.fetching.lock().expect("fetch lock");
        self.ensure(commit, asked, &mut last)?;
        let change =
            Arc::new(super::change::read(&self.source.repo(), commit).map_err(Unknown::Source)?);
        drop(last);
        let mut changes = self.changes.lock().expect("changes");
        if changes.len() >= CACHED_CHANGES {
            changes.clear();
        }
        changes.insert(commit.to_owned(), Arc::clone(&change));
        Ok(change)
    }

    /// Who made each of `commits`, when and why, for those the mirror has
    /// (never fetching: listings must not wait on git's server). A commit
    /// a host names that the source lacks is left out.
    pub fn revisions(&self, commits: &[&str]) -> HashMap<String, Revision> {
        let mut found = HashMap::new();
        let mut known = self.revisions.lock().expect("revisions");
        for commit in commits {
            let revision = known
                .entry((*commit).to_owned())
                .or_insert_with(|| {
                    self.has(commit)
                        .then(|| self.source.revision(commit))
                        .flatten()
                })
                .clone();
            if let Some(r) = revision {
                found.insert((*commit).to_owned(), r);
            }
        }
        found
    }

    /// The `rollout:` of `environment` in `commit`, read from the
    /// commit's `manifests/` (extracted into a temporary folder: git
    /// archive, as the agent does).
    fn policy(
        &self,
        environment: &str,
        commit: &str,
    ) -> Result<Option<crate::rollout::Policy>, Unknown> {
        let dir = tempfile::tempdir().map_err(|e| Unknown::Source(e.to_string()))?;
        crate::source::git::extract(&self.source.repo(), commit, &["manifests"], dir.path())
            .map_err(Unknown::Source)?;
        let repo =
            crate::manifest::Repo::open(dir.path()).map_err(|e| Unknown::Source(e.to_string()))?;
        let env = repo
            .environments
            .iter()
            .find(|e| e.name == environment)
            .ok_or_else(|| Unknown::Environment {
                environment: environment.to_owned(),
                commit: commit.to_owned(),
            })?;
        Ok(env.rollout.as_ref().map(|(p, _)| p.clone()))
    }
}

impl History for Mirror {
    fn descends(&self, ancestor: &str, commit: &str) -> bool {
        self.source.descends(ancestor, commit)
    }

    fn tip(&self) -> Option<String> {
        self.tip.lock().expect("tip").clone()
    }
}
