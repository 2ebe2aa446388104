//! Feature flags and gradual knobs (SPEC §2): a flag is `true`/`false`,
//! `{ percent: N }` or `{ hosts: [globs] }`, resolved for one host.
//!
//! A host's bucket for a flag comes from sha256(flag, NUL, host): stable,
//! independent between flags, and monotone — raising N only ever adds
//! hosts, since a host is on when its bucket is below N.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FlagValue {
    Bool(bool),
    Percent { percent: f64 },
    Hosts { hosts: Vec<String> },
}

impl FlagValue {
    /// Reads a flag's value from its manifest form (as JSON).
    pub fn parse(value: &serde_json::Value) -> Result<FlagValue, String> {
        use serde_json::Value;
        let hint = "a flag is true, false, { percent: 10 } or { hosts: [\"web-3.*\"] }";
        match value {
            Value::Bool(b) => Ok(FlagValue::Bool(*b)),
            Value::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((k, v)) if k == "percent" => match v.as_f64() {
                    Some(p) if (0.0..=100.0).contains(&p) => Ok(FlagValue::Percent { percent: p }),
                    _ => Err(format!(
                        "`percent` must be a number from 0 to 100, found {v}"
                    )),
                },
                Some((k, Value::Array(items))) if k == "hosts" => {
                    let mut hosts = Vec::new();
                    for item in items {
                        let Some(glob) = item.as_str() else {
                            return Err(format!("`hosts` lists globs (strings), found {item}"));
                        };
                        glob::Pattern::new(glob)
                            .map_err(|e| format!("`{glob}` is not a valid glob: {e}"))?;
                        hosts.push(glob.to_owned());
                    }
                    Ok(FlagValue::Hosts { hosts })
                }
                Some((k, _)) => Err(format!("unknown flag form `{k}`")),
                None => Err(hint.to_owned()),
            },
            other => Err(format!("not a flag value: {other}")),
        }
    }

    /// Whether the flag is on for `host`.
    pub fn on(&self, flag: &str, host: &str) -> bool {
        match self {
            FlagValue::Bool(b) => *b,
            FlagValue::Percent { percent } => bucket(flag, host) < *percent,
            FlagValue::Hosts { hosts } => hosts
                .iter()
                .any(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches(host))),
        }
    }
}

impl std::fmt::Display for FlagValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagValue::Bool(b) => write!(f, "{b}"),
            FlagValue::Percent { percent } => write!(f, "{percent}%"),
            FlagValue::Hosts { hosts } => write!(f, "hosts {}", hosts.join(", ")),
        }
    }
}

/// A host's place for a flag, from 0 (inclusive) to 100 (exclusive).
pub fn bucket(flag: &str, host: &str) -> f64 {
    let mut hash = Sha256::new();
    hash.update(flag.as_bytes());
    hash.update([0]);
    hash.update(host.as_bytes());
    let digest = hash.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_parse_from_their_manifest_form() {
        let j = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        assert_eq!(FlagValue::parse(&j("true")), Ok(FlagValue::Bool(true)));
        assert_eq!(
            FlagValue::parse(&j(r#"{"percent": 10}"#)),
            Ok(FlagValue::Percent { percent: 10.0 })
        );
        assert_eq!(
            FlagValue::parse(&j(r#"{"hosts": ["web-3.*"]}"#)),
            Ok(FlagValue::Hosts {
                hosts: vec!["web-3.*".into()]
            })
        );
        assert!(FlagValue::parse(&j(r#"{"percent": 120}"#)).is_err());
        assert!(
            FlagValue::parse(&j(r#"{"percnt": 10}"#))
                .unwrap_err()
                .contains("unknown flag form")
        );
        assert!(FlagValue::parse(&j(r#""yes""#)).is_err());
        let hosts = FlagValue::parse(&j(r#"{"hosts": ["web-3.*"]}"#)).unwrap();
        assert!(hosts.on("x", "web-3.prod") && !hosts.on("x", "web-4.prod"));
    }

    /// Over 10,000 synthetic names, N% of them are on, within 2 points.
    #[test]
    fn a_percentage_reaches_that_share_of_ten_thousand_hosts() {
        for percent in [1.0, 10.0, 25.0, 50.0, 90.0] {
            let flag = FlagValue::Percent { percent };
            let on = (0..10_000)
                .filter(|i| flag.on("search_v2", &format!("host-{i}.example.com")))
                .count();
            let share = on as f64 / 100.0;
            assert!((share - percent).abs() <= 2.0, "{percent}%: {share}%");
        }
    }

    proptest! {
        /// Raising N never turns a host off.
        #[test]
        fn raising_the_percentage_never_removes_a_host(
            host in "[a-z0-9.-]{1,40}",
            flag in "[a-z_]{1,20}",
            a in 0.0f64..=100.0,
            b in 0.0f64..=100.0,
        ) {
            let (low, high) = (a.min(b), a.max(b));
            let at = |percent: f64| FlagValue::Percent { percent }.on(&flag, &host);
            if at(low) {
                prop_assert!(at(high));
            }
            prop_assert!(!at(0.0));
            prop_assert!(at(100.0));
            let bucket = bucket(&flag, &host);
            prop_assert!((0.0..100.0).contains(&bucket));
        }
    }
}
