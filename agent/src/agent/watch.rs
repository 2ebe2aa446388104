//! The agent's watch on the log (SPEC §9): one long-poll, `GET
//! /v1/watch?after=COMMIT` with the host's token, held by a thread of its
//! own. When the log says the ref moved, the agent runs a cycle after its
//! jitter (stable per host, inside `--watch-splay`), so that a push
//! reaches the fleet in seconds while the git server sees the fetches
//! spread; when the log's rollout wants to hear from it (its wave opened,
//! a rollback), after a tenth of that. The watch only wakes the agent: the cycle still fetches from
//! the source and decides for itself, and the interval schedule still
//! runs (drift is corrected on time with or without a log).

use std::path::PathBuf;
use std::time::Duration;

use crate::report::send::Endpoint;

/// How long the agent waits for an answer: the log holds a watch up to
/// 50 s, and then answers "nothing yet".
const REQUEST_TIMEOUT: Duration = Duration::from_secs(70);
/// Longest pause between attempts after failures (the log is down).
const MOST_BACKOFF: Duration = Duration::from_secs(60);

/// The ref's commit as the log said when it woke this host for a rollout.
/// A wave's hosts fetched that commit when they were told "not yet": when
/// the last fetch brought it, the cycle asks the gate without fetching
/// again, so a wave of thousands opening costs the git server nothing.
/// A log that said wrong only delays a fetch to the next cycle: what is
/// applied is still what this host fetched itself.
static ROLLOUT_TIP: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Takes what [`ROLLOUT_TIP`] holds (once: the next cycle fetches).
pub fn take_rollout_tip() -> Option<String> {
    ROLLOUT_TIP.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Starts the watch; `wake` is called (after the jitter) each time the
/// log's ref moves to a commit the agent has not been woken for yet.
pub fn spawn(log: Endpoint, first_known: Option<String>, jitter: Duration, wake: fn()) {
    let spawned = std::thread::Builder::new()
        .name("tend-watch".into())
        .spawn(move || watch_forever(&log, first_known, jitter, wake));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the watch on the log; cycles follow the interval");
    }
}

fn watch_forever(log: &Endpoint, mut after: Option<String>, jitter: Duration, wake: fn()) {
    let mut failures = 0u32;
    // Built once (it reads the system's CA bundle), again after a failure.
    let mut client = None;
    loop {
        let asked = match &client {
            Some(client) => ask(client, log, after.as_deref()),
            None => {
                crate::report::client::Client::new(&log.url, log.ca.as_deref(), REQUEST_TIMEOUT)
                    .and_then(|built| ask(client.insert(built), log, after.as_deref()))
            }
        };
        if asked.is_err() {
            client = None;
        }
        match asked {
            Ok(Some(Answer::Moved(commit))) => {
                failures = 0;
                tracing::info!(commit = %commit, jitter_ms = jitter.as_millis() as u64, "the log says the source moved");
                std::thread::sleep(jitter);
                wake();
                after = Some(commit);
            }
            Ok(Some(Answer::Rollout(tip))) => {
                failures = 0;
                *ROLLOUT_TIP.lock().unwrap_or_else(|e| e.into_inner()) = tip;
                // It has the commit and asks the gate without fetching, so
                // a tenth of the jitter spreads the questions enough.
                let short = jitter / 10;
                tracing::info!(
                    jitter_ms = short.as_millis() as u64,
                    "the log's rollout wants to hear from this host (a wave opened, or a rollback)"
                );
                std::thread::sleep(short);
                wake();
            }
            Ok(Some(Answer::Woken)) => {
                failures = 0;
                tracing::info!(
                    jitter_ms = jitter.as_millis() as u64,
                    "an operator woke this host through the log"
                );
                std::thread::sleep(jitter);
                wake();
            }
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                let pause = backoff(failures);
                // Once, not every retry: a log that is down is said by the cycles.
                if failures == 1 {
                    tracing::warn!(error = %e, retry_in_s = pause.as_secs(), "the watch on the log broke");
                }
                std::thread::sleep(pause);
            }
        }
    }
}

/// 1, 2, 4 … 60 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MOST_BACKOFF)
}

/// Why the log answered a watch.
enum Answer {
    /// The ref is at this commit, which the agent was not woken for yet.
    Moved(String),
    /// An operator asked for a cycle now (`tend-log wake`).
    Woken,
    /// The gate wants to hear from this host: a wave that includes it
    /// opened, or the rollout it applied halted with a rollback. With the
    /// commit the log's copy of the ref is at.
    Rollout(Option<String>),
}

/// One long-poll: what the log said, or `None` (nothing yet).
fn ask(
    client: &crate::report::client::Client,
    log: &Endpoint,
    after: Option<&str>,
) -> Result<Option<Answer>, String> {
    // Read each time: enrollment or a rotation may write it meanwhile.
    let token = read_token(&log.token_file)?;
    let url = client.url("/v1/watch");
    let mut request = client
        .agent
        .get(&url)
        .header("Authorization", format!("Bearer {token}"));
    if let Some(after) = after {
        request = request.query("after", after);
    }
    let mut response = request.call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{url} answered {status}: {}", body.trim()));
    }
    let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    if !answer["moved"].as_bool().unwrap_or(false) {
        return Ok(None);
    }
    if answer["why"] == "wake" {
        return Ok(Some(Answer::Woken));
    }
    if answer["why"] == "rollout" {
        let tip = answer["commit"].as_str().map(str::to_owned);
        return Ok(Some(Answer::Rollout(tip)));
    }
    Ok(answer["commit"]
        .as_str()
        .filter(|c| Some(*c) != after)
        .map(|c| Answer::Moved(c.to_owned())))
}

fn read_token(file: &PathBuf) -> Result<String, String> {
    let text = fs_err::read_to_string(file).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("`{}` is empty", file.display()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        let pauses: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
