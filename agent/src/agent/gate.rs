//! The rollout gate, from the host's side (SPEC §8): before applying a
//! commit it has not applied, an agent whose environment declares
//! `rollout:` (in that commit) asks the log whether it is its turn. With
//! no log to ask, `--rollout-offline` decides: hold (keep the commit it
//! has) or proceed (take the new one). Either way the report says so.

use std::path::Path;

use crate::report::send::Sender;
use crate::report::{Decision, RolloutNote};
use crate::rollout::{Admission, AdmitRequest};

/// What to do with the log out of reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offline {
    /// Keep converging the commit the host has.
    #[default]
    Hold,
    /// Apply the new commit anyway.
    Proceed,
}

impl std::str::FromStr for Offline {
    type Err = String;
    fn from_str(s: &str) -> Result<Offline, String> {
        match s {
            "hold" => Ok(Offline::Hold),
            "proceed" => Ok(Offline::Proceed),
            _ => Err(format!("`{s}` is neither `hold` nor `proceed`")),
        }
    }
}

/// The gate's word on a commit.
pub enum Gate {
    /// Apply it (with what the gate said, when there was a policy).
    Apply(Option<RolloutNote>),
    /// Keep the commit the host has, for now.
    Wait(RolloutNote),
    /// Converge this other commit: the rollout halted and rolls back.
    Rollback(String, RolloutNote),
}

/// Asks the log whether `host` may apply the commit checked out at
/// `checkout`. A commit without a policy for this host's environment (or
/// whose manifests do not load: converging it will say why) needs no
/// asking.
pub fn ask(settings: &super::Settings, host: &str, checkout: &Path, commit: &str) -> Gate {
    let Ok(repo) = crate::manifest::Repo::open(checkout) else {
        return Gate::Apply(None);
    };
    let Ok((env, _)) = repo.find_host(settings.environment.as_deref(), host) else {
        return Gate::Apply(None);
    };
    if env.rollout.is_none() {
        return Gate::Apply(None);
    }
    let note = |decision, reason: String| RolloutNote {
        commit: commit.to_owned(),
        decision,
        reason,
        wave: None,
        retry_after_s: None,
    };
    let offline = |why: String| match settings.rollout_offline {
        Offline::Hold => Gate::Wait(note(
            Decision::Held,
            format!("{why}; keeping the current commit (--rollout-offline hold)"),
        )),
        Offline::Proceed => Gate::Apply(Some(note(
            Decision::Proceeded,
            format!("{why}; applying it without admission (--rollout-offline proceed)"),
        ))),
    };
    let Some(endpoint) = &settings.log else {
        return offline(format!(
            "environment `{}` rolls out in waves and no --log is set to ask",
            env.name
        ));
    };
    match crate::report::enroll::ensure(endpoint, host, &env.name) {
        Ok(true) => tracing::info!(host, environment = %env.name, "enrolled with the log"),
        Ok(false) => {}
        Err(e) => return offline(format!("cannot enroll with the log: {e}")),
    }
    let sender = match Sender::new(endpoint) {
        Ok(sender) => sender,
        Err(e) => return offline(format!("cannot ask the log: {e}")),
    };
    let request = AdmitRequest {
        environment: env.name.clone(),
        commit: commit.to_owned(),
        host: host.to_owned(),
    };
    let body = serde_json::to_vec(&request).expect("a request serialises");
    match sender.ask("/v1/rollouts/admit", &body) {
        // Only a log out of reach is "offline": any answer, even a 5xx,
        // is the log's word, and holds.
        Err(e) => offline(format!("the log is out of reach ({e})")),
        Ok((status, text)) if status != 200 => {
            let mut n = note(
                Decision::Held,
                format!(
                    "the log answered {status} ({}); keeping the current commit",
                    error_text(&text)
                ),
            );
            // The log may lack the commit for a moment (its copy of the
            // source lags the push): it says when to ask again.
            n.retry_after_s = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["retry_after_s"].as_u64());
            Gate::Wait(n)
        }
        Ok((_, text)) => match serde_json::from_str::<Admission>(&text) {
            Err(e) => Gate::Wait(note(
                Decision::Held,
                format!("the log's answer is not an admission ({e}); keeping the current commit"),
            )),
            Ok(answer) => {
                let decision = match (&answer.rollback_to, answer.admitted) {
                    (Some(_), _) => Decision::RolledBack,
                    (None, true) => Decision::Admitted,
                    (None, false) => Decision::Waiting,
                };
                let mut n = note(decision, answer.reason);
                n.wave = answer.host_wave;
                n.retry_after_s = answer.retry_after_s;
                match answer.rollback_to {
                    Some(to) => Gate::Rollback(to, n),
                    None if answer.admitted => Gate::Apply(Some(n)),
                    None => Gate::Wait(n),
                }
            }
        },
    }
}

/// The `error` of a JSON error body, or the body itself.
fn error_text(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.trim().to_owned())
}
