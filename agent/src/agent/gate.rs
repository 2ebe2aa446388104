//! The rollout gate, from the host's side (SPEC §8): before applying a
//! commit it has not applied, an agent whose environment declares
//! `rollout:` (in that commit) asks the log whether it is its turn. With
//! no log to ask, `--rollout-offline` decides: hold (keep the commit it
//! has) or proceed (take the new one). Either way the report says so.

use std::path::Path;

use crate::report::send::Sender;
use crate::report::{Decision, RolloutNote};
use crate::rollout::{Admission, AdmitRequest};
use crate::source::Revision;

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
}

/// Asks the log whether `host` may apply the commit checked out at
/// `checkout`. A commit without a policy for this host's environment (or
/// whose manifests do not load: converging it will say why) needs no
/// asking.
pub fn ask(settings: &super::Settings, host: &str, checkout: &Path, revision: &Revision) -> Gate {
    let Ok(repo) = crate::manifest::Repo::open(checkout) else {
        return Gate::Apply(None);
    };
    let Ok((env, _)) = repo.find_host(settings.environment.as_deref(), host) else {
        return Gate::Apply(None);
    };
    let Some((policy, _)) = &env.rollout else {
        return Gate::Apply(None);
    };
    let note = |decision, reason: String| RolloutNote {
        commit: revision.commit.clone(),
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
    let Some((url, token_file)) = &settings.log else {
        return offline(format!(
            "environment `{}` rolls out in waves and no --log is set to ask",
            env.name
        ));
    };
    let sender = match Sender::new(url, token_file) {
        Ok(sender) => sender,
        Err(e) => return offline(format!("cannot ask the log: {e}")),
    };
    let request = AdmitRequest {
        environment: env.name.clone(),
        commit: revision.commit.clone(),
        host: host.to_owned(),
        policy: policy.clone(),
        author: revision.author.clone(),
        subject: revision.subject.clone(),
        committed_at: revision.committed_at.clone(),
        interval_s: Some(settings.interval.as_secs()),
    };
    let body = serde_json::to_vec(&request).expect("a request serialises");
    match sender.ask("/v1/rollouts/admit", &body) {
        Err(e) => offline(format!("the log is out of reach ({e})")),
        Ok((status, text)) if status == 408 || status == 429 || status >= 500 => {
            offline(format!("the log answered {status}: {}", text.trim()))
        }
        // A refusal (a bad token, say) is not the log being away: never a
        // way around the gate.
        Ok((status, text)) if status != 200 => Gate::Wait(note(
            Decision::Held,
            format!("the log refused to answer ({status}): {}", text.trim()),
        )),
        Ok((_, text)) => match serde_json::from_str::<Admission>(&text) {
            Err(e) => offline(format!("the log's answer is not an admission ({e})")),
            Ok(answer) => {
                let mut n = note(
                    if answer.admitted {
                        Decision::Admitted
                    } else {
                        Decision::Waiting
                    },
                    answer.reason,
                );
                n.wave = answer.host_wave;
                n.retry_after_s = answer.retry_after_s;
                if answer.admitted {
                    Gate::Apply(Some(n))
                } else {
                    Gate::Wait(n)
                }
            }
        },
    }
}
