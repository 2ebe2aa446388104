//! The watches hosts hold (`GET /v1/watch`): who is waiting on this
//! server, and the wakes an operator sends them (`tend-log wake ENV
//! [--match GLOB]`, "run now" for a whole environment or part of it)
//! and the rollout gate sends them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Hosts to wake: an operator's "run now" for an environment (or the
/// hosts of it whose names match a glob), or the hosts the rollout gate
/// wants to hear from (a wave that includes them opened, a rollback).
#[derive(Debug, Clone)]
pub struct Wake {
    pub environment: String,
    pub who: Who,
    pub why: Why,
}

#[derive(Debug, Clone)]
pub enum Who {
    /// Every host of the environment, or those whose names match.
    Matching(Option<glob::Pattern>),
    /// These hosts.
    Hosts(Arc<std::collections::BTreeSet<String>>),
}

/// What a woken watch answers, as `why`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// An operator (`tend-log wake`): a full cycle, after the host's jitter.
    Wake,
    /// The gate: the host has the commit already and only asks again.
    Rollout,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Wake => "wake",
            Why::Rollout => "rollout",
        }
    }
}

impl Wake {
    pub fn includes(&self, host: &str, environment: &str) -> bool {
        environment == self.environment
            && match &self.who {
                Who::Matching(pattern) => pattern
                    .as_ref()
                    .is_none_or(|p| crate::identity::host_matches(p, host)),
                Who::Hosts(hosts) => hosts.contains(host),
            }
    }
}

pub struct Watches {
    /// Each held watch: its host and environment.
    held: Mutex<HashMap<u64, (String, String)>>,
    next: AtomicU64,
    wakes: tokio::sync::broadcast::Sender<Wake>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            wakes: tokio::sync::broadcast::Sender::new(1024),
        }
    }
}

/// A watch being held; dropping it (answered, or the client went away)
/// takes it off the list.
pub struct Held {
    watches: Arc<Watches>,
    id: u64,
    pub wakes: tokio::sync::broadcast::Receiver<Wake>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.watches.held.lock().expect("watches").remove(&self.id);
    }
}

impl Watches {
    pub fn hold(self: &Arc<Self>, host: &str, environment: &str) -> Held {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        // Subscribed before it is listed: a wake that counts it reaches it.
        let wakes = self.wakes.subscribe();
        self.held
            .lock()
            .expect("watches")
            .insert(id, (host.to_owned(), environment.to_owned()));
        Held {
            watches: Arc::clone(self),
            id,
            wakes,
        }
    }

    /// Wakes the matching watches held here; how many hosts that is.
    pub fn wake(&self, wake: Wake) -> usize {
        let woken: std::collections::BTreeSet<String> = self
            .held
            .lock()
            .expect("watches")
            .values()
            .filter(|(host, env)| wake.includes(host, env))
            .map(|(host, _)| host.clone())
            .collect();
        let _ = self.wakes.send(wake);
        woken.len()
    }

    /// Watches held now.
    pub fn len(&self) -> usize {
        self.held.lock().expect("watches").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_counts_and_reaches_the_matching_hosts_only() {
        let watches = Arc::new(Watches::default());
        let mut web = watches.hold("web-1.prod", "production");
        let mut db = watches.hold("db-1.prod", "production");
        let mut staging = watches.hold("web-1.staging", "staging");
        let wake = Wake {
            environment: "production".into(),
            who: Who::Matching(Some(glob::Pattern::new("web-*").unwrap())),
            why: Why::Wake,
        };
        assert_eq!(watches.wake(wake), 1);
        // Every held watch hears of it and keeps it only if it is included.
        let heard = web.wakes.try_recv().unwrap();
        assert!(heard.includes("web-1.prod", "production"));
        assert!(!heard.includes("db-1.prod", "production"));
        assert!(!heard.includes("web-1.staging", "staging"));
        assert!(db.wakes.try_recv().is_ok() && staging.wakes.try_recv().is_ok());
        drop(web);
        assert_eq!(watches.len(), 2);
        let all = Wake {
            environment: "production".into(),
            who: Who::Matching(None),
            why: Why::Wake,
        };
        assert_eq!(watches.wake(all), 1);
        // The gate's wakes name hosts.
        let named = Wake {
            environment: "production".into(),
            who: Who::Hosts(Arc::new(["db-1.prod".to_owned()].into())),
            why: Why::Rollout,
        };
        assert!(named.includes("db-1.prod", "production"));
        assert!(!named.includes("db-2.prod", "production"));
        assert_eq!(watches.wake(named), 1);
    }
}
