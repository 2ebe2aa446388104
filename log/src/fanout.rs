//! Wakes reach every watch, whichever log server holds it (SPEC §9). A
//! server wakes the watches it holds itself and tells the others sharing
//! its database (PostgreSQL's LISTEN/NOTIFY, through the store): that the
//! ref moved (each fetches its own mirror, believing its own fetch), that
//! the gate wants to hear from some hosts (a wave opened, a rollback, a
//! resume), or that an operator woke an environment.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::mirror::Mirror;
use super::store::Store;
use super::watches::{Wake, Watches, Who, Why};

/// What one server tells the others.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// The ref moved to `commit`: fetch now rather than at the next poll.
    Source { origin: u64, commit: String },
    /// Wake these hosts, or those matching `pattern` (all without one).
    Wake {
        origin: u64,
        environment: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hosts: Option<Vec<String>>,
        why: Why,
    },
}

/// PostgreSQL's limit on a payload is 8,000 bytes: long lists of hosts
/// go in several messages below it.
const MOST_PAYLOAD: usize = 7_000;

pub struct Fanout {
    /// This server, so that it skips what it published itself.
    origin: u64,
    store: Arc<dyn Store>,
    watches: Arc<Watches>,
    mirror: Option<Arc<Mirror>>,
}

impl Fanout {
    /// Starts handing the gate's wakes to the watches, listening to the
    /// other servers, and telling them when this server's mirror moves.
    pub fn start(
        store: Arc<dyn Store>,
        watches: Arc<Watches>,
        mirror: Option<Arc<Mirror>>,
    ) -> std::io::Result<Arc<Fanout>> {
        let fanout = Arc::new(Fanout {
            origin: rand_origin(),
            store,
            watches,
            mirror,
        });
        let gate = Arc::clone(&fanout);
        std::thread::Builder::new()
            .name("log-wakes".into())
            .spawn(move || {
                loop {
                    for wake in gate.store.next_wakes() {
                        let hosts: BTreeSet<String> = wake.hosts.into_iter().collect();
                        let woken = gate.wake(&wake.environment, Who::Hosts(Arc::new(hosts)), Why::Rollout);
                        tracing::debug!(environment = %wake.environment, woken, "hosts woken for the rollout");
                    }
                }
            })?;
        let hearing = Arc::clone(&fanout);
        let shared = fanout
            .store
            .listen(Box::new(move |payload| hearing.heard(&payload)));
        if shared && let Some(mirror) = fanout.mirror.clone() {
            let telling = Arc::clone(&fanout);
            let mut heads = mirror.subscribe();
            tokio::spawn(async move {
                heads.borrow_and_update();
                while heads.changed().await.is_ok() {
                    let Some(commit) = heads.borrow_and_update().clone() else {
                        continue;
                    };
                    let message = Message::Source {
                        origin: telling.origin,
                        commit,
                    };
                    let telling = Arc::clone(&telling);
                    let _ = tokio::task::spawn_blocking(move || telling.tell(&message)).await;
                }
            });
        }
        Ok(fanout)
    }

    /// Wakes the matching watches held here and on every other server;
    /// how many this server woke.
    pub fn wake(&self, environment: &str, who: Who, why: Why) -> usize {
        let woken = self.watches.wake(Wake {
            environment: environment.to_owned(),
            who: who.clone(),
            why,
        });
        for message in wake_messages(self.origin, environment, &who, why) {
            self.tell(&message);
        }
        woken
    }

    fn tell(&self, message: &Message) {
        let text = serde_json::to_string(message).expect("serialises");
        if let Err(e) = self.store.publish(&text) {
            tracing::warn!(error = %e, "cannot tell the other log servers");
        }
    }

    /// What another server published.
    fn heard(&self, payload: &str) {
        let message: Message = match serde_json::from_str(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "a message from another log server that this one cannot read");
                return;
            }
        };
        match message {
            Message::Source { origin, commit } if origin != self.origin => {
                let Some(mirror) = &self.mirror else {
                    return;
                };
                if mirror.head().1.as_deref() == Some(commit.as_str()) {
                    return;
                }
                // Its own fetch, believed for itself; its watches hear of
                // it from the mirror.
                if let Err(e) = mirror.fetch() {
                    tracing::warn!(error = %e, "another log server saw the ref move; cannot fetch the source");
                }
            }
            Message::Wake {
                origin,
                environment,
                pattern,
                hosts,
                why,
            } if origin != self.origin => {
                let who = match (hosts, pattern) {
                    (Some(hosts), _) => Who::Hosts(Arc::new(hosts.into_iter().collect())),
                    (None, Some(p)) => match glob::Pattern::new(&p) {
                        Ok(p) => Who::Matching(Some(p)),
                        Err(_) => return,
                    },
                    (None, None) => Who::Matching(None),
                };
                self.watches.wake(Wake {
                    environment,
                    who,
                    why,
                });
            }
            _ => {}
        }
    }
}

/// The messages that carry a wake, each under PostgreSQL's limit.
fn wake_messages(origin: u64, environment: &str, who: &Who, why: Why) -> Vec<Message> {
    let message = |pattern: Option<String>, hosts: Option<Vec<String>>| Message::Wake {
        origin,
        environment: environment.to_owned(),
        pattern,
        hosts,
        why,
    };
    match who {
        Who::Matching(pattern) => vec![message(
            pattern.as_ref().map(|p| p.as_str().to_owned()),
            None,
        )],
        Who::Hosts(hosts) => {
            let room = MOST_PAYLOAD.saturating_sub(environment.len() + 120);
            let mut out = Vec::new();
            let mut chunk: Vec<String> = Vec::new();
            let mut size = 0;
            for host in hosts.iter() {
                if !chunk.is_empty() && size + host.len() + 3 > room {
                    out.push(message(None, Some(std::mem::take(&mut chunk))));
                    size = 0;
                }
                size += host.len() + 3;
                chunk.push(host.clone());
            }
            if !chunk.is_empty() {
                out.push(message(None, Some(chunk)));
            }
            out
        }
    }
}

fn rand_origin() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_of_thousands_of_hosts_goes_in_messages_under_the_payload_limit() {
        let hosts: BTreeSet<String> = (0..5_000)
            .map(|i| format!("web-{i:05}.production.example.com"))
            .collect();
        let messages = wake_messages(
            7,
            "production",
            &Who::Hosts(Arc::new(hosts.clone())),
            Why::Rollout,
        );
        assert!(messages.len() > 1);
        let mut carried = BTreeSet::new();
        for m in &messages {
            let text = serde_json::to_string(m).unwrap();
            assert!(text.len() < 8_000, "{} bytes", text.len());
            let back: Message = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, m);
            if let Message::Wake { hosts: Some(h), .. } = back {
                carried.extend(h);
            }
        }
        assert_eq!(carried, hosts);
        let all = wake_messages(7, "staging", &Who::Matching(None), Why::Wake);
        assert_eq!(all.len(), 1);
    }
}
