//! The watches hosts hold (`GET /v1/watch`): who is waiting on this
//! server, and the wakes an operator sends them (`tend-log wake ENV
//! [--match GLOB]`, "run now" for a whole environment or part of it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An operator's "run now": the hosts of `environment` whose names match
/// `pattern` (all of them without one).
#[derive(Debug, Clone)]
pub struct Wake {
    pub environment: String,
    pub pattern: Option<glob::Pattern>,
}

impl Wake {
    pub fn includes(&self, host: &str, environment: &str) -> bool {
        environment == self.environment
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| crate::identity::host_matches(p, host))
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
            wakes: tokio::sync::broadcast::Sender::new(64),
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
            pattern: Some(glob::Pattern::new("web-*").unwrap()),
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
            pattern: None,
        };
        assert_eq!(watches.wake(all), 1);
    }
}
