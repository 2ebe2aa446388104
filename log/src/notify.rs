//! `--notify URL`: a chat message (Slack-compatible `{"text": …}`) when runs
//! change, drift or fail, and when a rollout halts. Runs of one commit
//! that land within a window make one message, not one per host. Sending
//! happens beside ingestion, one message at a time, retried with backoff
//! when the chat service is down, never holding a report.
//!
//! Bounded: events wait in a queue of their own (full: dropped, logged),
//! a window's events become one message per commit, and messages wait in
//! a bounded outbox. Halts have an outbox of their own that is sent
//! first, so no flood of runs can push a halt out. Every text is escaped
//! for Slack (`&`, `<`, `>`): a commit subject cannot ping `<!channel>`
//! or hide a link.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::sync::mpsc;

/// One stored run worth telling people about.
#[derive(Debug, Clone)]
pub struct Event {
    pub host: String,
    pub status: String,
    pub commit: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    /// The first failed resource and its error, for failed runs.
    pub failure: Option<String>,
}

#[derive(Clone)]
pub struct Notifier {
    events: mpsc::Sender<Event>,
    halts: mpsc::Sender<String>,
}

/// Messages of runs waiting to be sent; more are dropped.
const OUTBOX: usize = 256;
/// Halt messages waiting to be sent (one per halted rollout).
const HALTS: usize = 1024;

impl Notifier {
    /// Starts the notifier tasks on the current runtime.
    pub fn start(url: String, window: Duration) -> Notifier {
        let (events, queue) = mpsc::channel(10_000);
        let (summaries, outbox) = mpsc::channel(OUTBOX);
        let (halts, halt_box) = mpsc::channel(HALTS);
        tokio::spawn(run(window, queue, summaries));
        tokio::spawn(send_forever(url, halt_box, outbox));
        Notifier { events, halts }
    }

    /// A halted rollout: sent before any waiting message of runs. From
    /// any thread; never waits.
    pub fn alert(&self, text: String) {
        if self.halts.try_send(text).is_err() {
            tracing::error!("the chat's halt queue is full; a halt message was dropped");
        }
    }

    /// Never waits: a full queue drops the event.
    pub fn tell(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            tracing::warn!("the notification queue is full; an event was dropped");
        }
    }
}

/// Commits whose refusal was told (each once per server); forgotten past
/// this many.
const TOLD_REFUSALS: usize = 10_000;

async fn run(window: Duration, mut queue: mpsc::Receiver<Event>, outbox: mpsc::Sender<String>) {
    let mut told_refused: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some(first) = queue.recv().await {
        // Gather what lands within the window, by commit.
        let mut by_commit: BTreeMap<Option<String>, Vec<Event>> = BTreeMap::new();
        by_commit
            .entry(first.commit.clone())
            .or_default()
            .push(first);
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, queue.recv()).await {
            by_commit
                .entry(event.commit.clone())
                .or_default()
                .push(event);
        }
        for (commit, events) in by_commit {
            let (refused, runs): (Vec<Event>, Vec<Event>) =
                events.into_iter().partition(|e| e.status == "refused");
            let mut texts = Vec::new();
            if let Some(commit) = commit.filter(|_| !refused.is_empty()) {
                // Hosts refuse a broken commit every cycle: told once.
                if told_refused.len() >= TOLD_REFUSALS {
                    told_refused.clear();
                }
                if told_refused.insert(commit) {
                    texts.push(refusal_message(&refused));
                }
            }
            if !runs.is_empty() {
                texts.push(message(&runs));
            }
            for text in texts {
                if outbox.try_send(text).is_err() {
                    tracing::warn!("the chat outbox is full; a message of runs was dropped");
                }
            }
        }
    }
}

/// One message at a time, halts first.
async fn send_forever(
    url: String,
    mut halts: mpsc::Receiver<String>,
    mut outbox: mpsc::Receiver<String>,
) {
    loop {
        let text = tokio::select! {
            biased;
            Some(text) = halts.recv() => text,
            Some(text) = outbox.recv() => text,
            else => return,
        };
        send_with_retries(&url, &text).await;
    }
}

/// Text as Slack shows it literally: `&`, `<` and `>` escaped, so `<!channel>`
/// and `<https://…|label>` from a commit subject stay text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `commit 9f3c0a1b2c by Ana Diaz (web: 8 workers): 12 hosts — 10 changed,
/// 1 drift, 1 failed: web-3 (service:nginx: …)`.
pub fn message(events: &[Event]) -> String {
    let first = &events[0];
    let mut text = match &first.commit {
        Some(c) => format!(
            "commit {} by {} ({})",
            c.get(..10).unwrap_or(c),
            first.author.as_deref().unwrap_or("?"),
            first.subject.as_deref().unwrap_or("")
        ),
        None => "runs without a commit".to_owned(),
    };
    let count = |s: &str| events.iter().filter(|e| e.status == s).count();
    let _ = write!(
        text,
        ": {} host{}: {} changed, {} drift, {} failed",
        events.len(),
        if events.len() == 1 { "" } else { "s" },
        count("changed"),
        count("drift"),
        count("failed")
    );
    let failed: Vec<String> = events
        .iter()
        .filter(|e| e.status == "failed")
        .take(5)
        .map(|e| match &e.failure {
            Some(f) => format!("{} ({f})", e.host),
            None => e.host.clone(),
        })
        .collect();
    if !failed.is_empty() {
        let _ = write!(text, ": failed on {}", failed.join(", "));
    }
    text
}

/// `commit 1a2b3c4d5e by Cy Okafor (base: broken banner) does not compile:
/// roles/base/role.yaml:3:11: …; refused by 5 hosts`.
pub fn refusal_message(events: &[Event]) -> String {
    let first = &events[0];
    let commit = first.commit.as_deref().unwrap_or("?");
    let hosts: std::collections::BTreeSet<&str> = events.iter().map(|e| e.host.as_str()).collect();
    format!(
        "commit {} by {} ({}) does not compile: {}; refused by {} host{}",
        commit.get(..10).unwrap_or(commit),
        first.author.as_deref().unwrap_or("?"),
        first.subject.as_deref().unwrap_or(""),
        first.failure.as_deref().unwrap_or("?"),
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    )
}

/// `rollout of 9f3c0a1b2c (web: 8 workers) by Ana Diaz in production
/// HALTED at wave 0: failed on web-1: package:nginx: …`.
pub fn halt_message(r: &super::rollouts::RolloutRow) -> String {
    let mut text = format!(
        "rollout of {} ({}) by {} in {} HALTED at wave {} of {}",
        r.commit.get(..10).unwrap_or(&r.commit),
        r.subject,
        r.author,
        r.environment,
        r.wave,
        r.waves
    );
    if let Some(h) = &r.halted_by {
        let _ = write!(
            text,
            ": {} on {}: {}: {}",
            h.condition, h.host, h.resource, h.error
        );
    }
    match r.rollback_to.as_deref() {
        Some(to) => {
            let to = if to.is_empty() {
                "their previous commits".to_owned()
            } else {
                to.get(..10).unwrap_or(to).to_owned()
            };
            let _ = write!(
                text,
                ". No more hosts get it, and those that have it roll back to {to}; `tend log rollout resume {}` or push a fix.",
                r.environment
            );
        }
        None => {
            let _ = write!(
                text,
                ". No more hosts get it; `tend log rollout resume {0}` or push a fix.",
                r.environment
            );
        }
    }
    text
}

async fn send_with_retries(url: &str, text: &str) {
    let body = serde_json::json!({ "text": escape(text) }).to_string();
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=6 {
        let (url2, body2) = (url.to_owned(), body.clone());
        let sent = tokio::task::spawn_blocking(move || post(&url2, &body2)).await;
        match sent {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::warn!(attempt, error = %e, "the chat webhook did not take a message")
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, "the chat webhook did not take a message")
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 3).min(Duration::from_secs(300));
    }
    tracing::error!("gave up on a chat message after 6 tries");
}

fn post(url: &str, body: &str) -> Result<(), String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false);
    if url.starts_with("https://") {
        config = config.tls_config(crate::report::client::tls_config(None)?);
    }
    let agent: ureq::Agent = config.build().into();
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        code => Err(format!("{url} answered {code}")),
    }
}
