//! Staged rollouts (SPEC §8): how a new commit reaches an environment's
//! hosts in waves — the canary first, then growing shares — and when it
//! must stop. This module is the policy and the arithmetic both sides
//! share: the environment file declares a [`Policy`], the log server
//! decides admissions with it, `tend rollout preview` shows it.
//!
//! A host's place is its bucket, the first 64 bits of
//! sha256(environment, host): stable across runs and servers, and
//! monotone — a wave that admits a share of the hosts admits the hosts
//! with the lowest buckets, so a larger share only ever adds hosts.

pub mod gate;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The `rollout:` of an environment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Globs on host names: wave 0, before everyone else.
    #[serde(default)]
    pub canary: Vec<String>,
    /// Cumulative shares of the other hosts; the last is everyone.
    pub waves: Vec<Wave>,
    /// How long a wave must run clean before the next opens.
    #[serde(default)]
    pub soak_s: u64,
    /// An admitted host with no report on the commit this long after its
    /// admission counts as failed.
    #[serde(default = "default_deadline")]
    pub deadline_s: u64,
    #[serde(default)]
    pub halt_on: HaltOn,
    #[serde(default)]
    pub on_halt: OnHalt,
}

pub const DEFAULT_DEADLINE_S: u64 = 30 * 60;

fn default_deadline() -> u64 {
    DEFAULT_DEADLINE_S
}

/// What the hosts that applied a halted commit do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnHalt {
    /// Keep converging it.
    #[default]
    Hold,
    /// Converge the last commit whose rollout completed (or the one they
    /// had before).
    Rollback,
}

impl std::fmt::Display for OnHalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnHalt::Hold => "hold",
            OnHalt::Rollback => "rollback",
        })
    }
}

/// A wave's reach: a share of the environment's (non-canary) hosts or a
/// number of them, counted from the lowest bucket up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wave {
    Percent(f64),
    Count(u64),
}

impl std::fmt::Display for Wave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wave::Percent(p) => write!(f, "{p}%"),
            Wave::Count(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for Wave {
    type Err = String;
    fn from_str(text: &str) -> Result<Wave, String> {
        let text = text.trim();
        if let Some(p) = text.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Wave::Percent(p)),
                _ => Err(format!(
                    "`{text}` is not a share: write a percentage above 0 and at most 100, like \"10%\""
                )),
            };
        }
        match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Wave::Count(n)),
            _ => Err(format!(
                "`{text}` is neither a share (\"10%\") nor a number of hosts (5)"
            )),
        }
    }
}

impl Serialize for Wave {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Wave::Percent(_) => s.serialize_str(&self.to_string()),
            Wave::Count(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Wave {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Wave, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) if n > 0 => Ok(Wave::Count(n)),
            Raw::Count(_) => Err(serde::de::Error::custom("a wave of 0 hosts")),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// What halts a rollout: at least this many admitted hosts whose runs of
/// the commit failed (or that refused it), or that drifted after applying
/// it. 0 turns a condition off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaltOn {
    #[serde(default = "one")]
    pub failed: u32,
    #[serde(default)]
    pub drift_after_apply: u32,
}

fn one() -> u32 {
    1
}

impl Default for HaltOn {
    fn default() -> Self {
        HaltOn {
            failed: 1,
            drift_after_apply: 0,
        }
    }
}

impl Policy {
    pub fn soak(&self) -> Duration {
        Duration::from_secs(self.soak_s)
    }

    /// The last wave's number (the canary is wave 0).
    pub fn last_wave(&self) -> u32 {
        u32::try_from(self.waves.len()).unwrap_or(u32::MAX)
    }

    pub fn is_canary(&self, host: &str) -> bool {
        self.canary
            .iter()
            .any(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches(host)))
    }

    /// How many of `n` non-canary hosts waves 1..=k reach together, for
    /// each k: never fewer than the wave before, and the last reaches all.
    pub fn reach(&self, n: u64) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.waves.len());
        let mut before = 0;
        for wave in &self.waves {
            let size = match *wave {
                // At least one host per share, so "10%" of 5 hosts is 1.
                Wave::Percent(p) => ((p / 100.0) * n as f64).ceil() as u64,
                Wave::Count(c) => c,
            };
            before = size.clamp(before, n);
            out.push(before);
        }
        if let Some(last) = out.last_mut() {
            *last = n;
        }
        out
    }

    /// The wave of the non-canary host at `rank` (0 = lowest bucket) among
    /// `n`.
    pub fn wave_of_rank(&self, rank: u64, n: u64) -> u32 {
        let reach = self.reach(n.max(rank + 1));
        let i = reach
            .iter()
            .position(|&r| rank < r)
            .unwrap_or(reach.len() - 1);
        u32::try_from(i + 1).unwrap_or(u32::MAX)
    }

    /// Every host's wave: canaries 0, the rest by bucket.
    pub fn assign<'h>(&self, environment: &str, hosts: &[&'h str]) -> Vec<(&'h str, u32)> {
        let mut others: Vec<(i64, &str)> = Vec::new();
        let mut out = Vec::with_capacity(hosts.len());
        for &host in hosts {
            if self.is_canary(host) {
                out.push((host, 0));
            } else {
                others.push((bucket(environment, host), host));
            }
        }
        others.sort_unstable();
        let n = others.len() as u64;
        for (rank, (_, host)) in others.into_iter().enumerate() {
            out.push((host, self.wave_of_rank(rank as u64, n)));
        }
        out
    }
}

/// A host's place in an environment's waves: the first 64 bits of
/// sha256(environment, NUL, host), as a signed number so databases store it
/// as it sorts (the top bit is dropped).
pub fn bucket(environment: &str, host: &str) -> i64 {
    let mut hash = Sha256::new();
    hash.update(environment.as_bytes());
    hash.update([0]);
    hash.update(host.as_bytes());
    let digest = hash.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    i64::try_from(n >> 1).expect("63 bits fit")
}

/// What an agent sends to `POST /v1/rollouts/admit`: who asks about
/// which commit. Everything else (the policy, the commit's author and
/// date, its place in the history) the log reads from its own mirror of
/// the repository, never from a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmitRequest {
    pub environment: String,
    pub commit: String,
    pub host: String,
}

/// The log's answer.
pub use gate::Answer as Admission;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(waves: &[&str]) -> Policy {
        Policy {
            canary: vec!["web-1.*".into()],
            waves: waves.iter().map(|w| w.parse().unwrap()).collect(),
            soak_s: 0,
            deadline_s: DEFAULT_DEADLINE_S,
            halt_on: HaltOn::default(),
            on_halt: OnHalt::Hold,
        }
    }

    #[test]
    fn waves_parse_and_print_back() {
        assert_eq!("10%".parse::<Wave>(), Ok(Wave::Percent(10.0)));
        assert_eq!("5".parse::<Wave>(), Ok(Wave::Count(5)));
        assert!("0%".parse::<Wave>().is_err());
        assert!("120%".parse::<Wave>().is_err());
        assert!("ten".parse::<Wave>().is_err());
        let p = policy(&["10%", "3", "100%"]);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""waves":["10%",3,"100%"]"#), "{json}");
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }

    #[test]
    fn a_small_share_of_a_small_fleet_is_still_one_host() {
        let p = policy(&["10%", "50%", "100%"]);
        assert_eq!(p.reach(5), vec![1, 3, 5]);
        assert_eq!(p.reach(0), vec![0, 0, 0]);
        // A count beyond the fleet is the fleet; a short last wave still
        // reaches everyone.
        assert_eq!(policy(&["2", "50"]).reach(10), vec![2, 10]);
        assert_eq!(policy(&["50%", "20%"]).reach(10), vec![5, 10]);
    }

    #[test]
    fn canaries_come_first_and_the_rest_by_bucket() {
        let p = policy(&["25%", "100%"]);
        let hosts: Vec<String> = (1..=9).map(|i| format!("web-{i}.prod")).collect();
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let waves = p.assign("production", &names);
        assert_eq!(waves.iter().find(|(h, _)| *h == "web-1.prod").unwrap().1, 0);
        let first: Vec<&str> = waves
            .iter()
            .filter(|(_, w)| *w == 1)
            .map(|(h, _)| *h)
            .collect();
        assert_eq!(first.len(), 2, "25% of 8 hosts: {waves:?}");
        let lowest = names
            .iter()
            .filter(|h| **h != "web-1.prod")
            .map(|h| bucket("production", h))
            .min()
            .unwrap();
        assert!(first.iter().any(|h| bucket("production", h) == lowest));
    }

    #[test]
    fn buckets_spread_evenly_and_differ_between_environments() {
        let mut tenths = [0usize; 10];
        let mut same = 0;
        for i in 0..10_000 {
            let host = format!("app-{i}.example.com");
            let b = bucket("production", &host);
            assert!(b >= 0);
            tenths[(b as u64 / (u64::MAX / 2 / 10 + 1)) as usize] += 1;
            same += usize::from(b == bucket("staging", &host));
        }
        for (i, n) in tenths.iter().enumerate() {
            assert!((850..=1150).contains(n), "tenth {i} has {n}: {tenths:?}");
        }
        assert_eq!(same, 0);
    }

    proptest! {
        #[test]
        fn a_hosts_bucket_is_stable(env in "[a-z]{1,12}", host in "[a-z0-9.-]{1,40}") {
            prop_assert_eq!(bucket(&env, &host), bucket(&env, &host));
        }

        /// Raising a share (or adding a host that lands later) never takes
        /// a host out of the waves it was in.
        #[test]
        fn waves_are_monotone(n in 1u64..500, a in 1u32..100, b in 1u32..100, rank in 0u64..500) {
            let rank = rank % n;
            let (lo, hi) = (a.min(b), a.max(b));
            let low = policy(&[&format!("{lo}%"), "100%"]);
            let high = policy(&[&format!("{hi}%"), "100%"]);
            if low.wave_of_rank(rank, n) == 1 {
                prop_assert_eq!(high.wave_of_rank(rank, n), 1);
            }
            // Waves open in order: a lower rank is never in a later wave.
            if rank > 0 {
                prop_assert!(low.wave_of_rank(rank - 1, n) <= low.wave_of_rank(rank, n));
            }
        }

        #[test]
        fn every_host_gets_a_wave_and_the_last_wave_holds_everyone(
            hosts in proptest::collection::btree_set("[a-z]{1,8}", 1..60),
            share in 1u32..100,
        ) {
            let p = policy(&[&format!("{share}%"), "100%"]);
            let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let waves = p.assign("prod", &names);
            prop_assert_eq!(waves.len(), names.len());
            prop_assert!(waves.iter().all(|(_, w)| *w <= p.last_wave()));
            // A larger share reaches a superset of the hosts.
            let wider = policy(&[&format!("{}%", (share + 10).min(100)), "100%"]);
            let first: std::collections::BTreeSet<&str> =
                waves.iter().filter(|(_, w)| *w <= 1).map(|(h, _)| *h).collect();
            let wider_first: std::collections::BTreeSet<&str> = wider
                .assign("prod", &names)
                .into_iter()
                .filter(|(_, w)| *w <= 1)
                .map(|(h, _)| h)
                .collect();
            prop_assert!(first.is_subset(&wider_first));
        }
    }
}
