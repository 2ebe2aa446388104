//! A commit's effect across its hosts, as its page shows it: each resource
//! it changed with the hosts it changed on, one representative diff (the
//! most common) and the hosts whose diff differs; and the failures still
//! standing, with their error.

use std::collections::BTreeMap;

use crate::report::{Cause, Report, Status};

/// One resource the commit changed.
#[derive(Debug, PartialEq)]
pub struct Effect {
    pub resource: String,
    /// Hosts it changed on, sorted.
    pub hosts: Vec<String>,
    /// What it did, most common first: the first is the representative.
    pub variants: Vec<Variant>,
}

/// One way the resource changed, and the hosts it changed that way on.
#[derive(Debug, PartialEq)]
pub struct Variant {
    /// The diff, or the attributes changed when there is no diff.
    pub text: String,
    pub hosts: Vec<String>,
}

/// A resource failing on a host in its latest run of the commit.
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub host: String,
    pub report: String,
    pub resource: String,
    pub error: String,
}

/// Groups the commit's changes: `first_changes` holds, per host, its
/// earliest run of the commit that changed something (what the commit did
/// there); a change counts when its cause is the revision, not drift.
pub fn group(first_changes: &[Report]) -> Vec<Effect> {
    let mut by_resource: BTreeMap<&str, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for report in first_changes {
        for r in &report.resources {
            let is_effect = r.status == Status::Changed && r.cause != Some(Cause::Drift);
            if !is_effect {
                continue;
            }
            let text = r.diff.clone().unwrap_or_else(|| {
                let action = r.action.map(|a| crate::store::word(&a));
                let mut what = action.unwrap_or_else(|| "change".to_owned());
                if !r.changes.is_empty() {
                    what = format!("{what}: {}", r.changes.join(", "));
                }
                what
            });
            by_resource
                .entry(r.id.as_str())
                .or_default()
                .entry(text)
                .or_default()
                .push(report.host.clone());
        }
    }
    let mut effects: Vec<Effect> = by_resource
        .into_iter()
        .map(|(resource, texts)| {
            let mut variants: Vec<Variant> = texts
                .into_iter()
                .map(|(text, mut hosts)| {
                    hosts.sort();
                    hosts.dedup();
                    Variant { text, hosts }
                })
                .collect();
            // Most hosts first; the same count in text order (stable).
            variants.sort_by_key(|v| std::cmp::Reverse(v.hosts.len()));
            let mut hosts: Vec<String> = variants.iter().flat_map(|v| v.hosts.clone()).collect();
            hosts.sort();
            hosts.dedup();
            Effect {
                resource: resource.to_owned(),
                hosts,
                variants,
            }
        })
        .collect();
    effects.sort_by(|a, b| {
        b.hosts
            .len()
            .cmp(&a.hosts.len())
            .then_with(|| a.resource.cmp(&b.resource))
    });
    effects
}

/// The failures of each host's latest run of the commit.
pub fn failures(latest: &[Report]) -> Vec<Failure> {
    let mut out: Vec<Failure> = latest
        .iter()
        .flat_map(|report| {
            report
                .resources
                .iter()
                .filter(|r| r.status == Status::Failed)
                .map(|r| Failure {
                    host: report.host.clone(),
                    report: report.id.clone(),
                    resource: r.id.clone(),
                    error: r.error.clone().unwrap_or_else(|| "failed".to_owned()),
                })
        })
        .collect();
    out.sort_by(|a, b| (&a.host, &a.resource).cmp(&(&b.host, &b.resource)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, resources: serde_json::Value) -> Report {
        serde_json::from_value(serde_json::json!({
            "id": format!("{host}-1"), "host": host, "environment": "production", "roles": [],
            "mode": "apply", "source_stale": false, "started_at": "2026-12-04T10:00:00Z",
            "duration_ms": 1, "status": "changed",
            "summary": {"total": 1, "changed": 1, "drift": 0, "failed": 0, "unchanged": 0},
            "resources": resources
        }))
        .unwrap()
    }

    fn changed(id: &str, diff: &str) -> serde_json::Value {
        serde_json::json!({"id": id, "status": "changed", "cause": "revision", "action": "change",
                           "changes": ["content"], "diff": diff, "duration_ms": 1})
    }

    #[test]
    fn hosts_changed_alike_share_one_diff_and_the_odd_ones_are_named() {
        let mut reports: Vec<Report> = (1..=11)
            .map(|i| {
                report(
                    &format!("web-{i:02}"),
                    serde_json::json!([changed("file:/etc/r", "-a\n+b\n")]),
                )
            })
            .collect();
        reports.push(report(
            "web-12",
            serde_json::json!([changed("file:/etc/r", "-a\n+c\n")]),
        ));
        // Drift is the host's doing, not the commit's.
        reports.push(report(
            "web-13",
            serde_json::json!([{"id": "file:/etc/r", "status": "changed", "cause": "drift", "diff": "x", "duration_ms": 1}]),
        ));
        let effects = group(&reports);
        assert_eq!(effects.len(), 1);
        assert_eq!(effects[0].hosts.len(), 12);
        assert_eq!(effects[0].variants[0].text, "-a\n+b\n");
        assert_eq!(effects[0].variants[0].hosts.len(), 11);
        assert_eq!(effects[0].variants[1].hosts, vec!["web-12".to_owned()]);
    }

    #[test]
    fn failures_keep_their_error() {
        let reports = vec![report(
            "web-3",
            serde_json::json!([{"id": "service:nginx", "status": "failed", "error": "exit 1: bad config", "duration_ms": 1}]),
        )];
        let f = failures(&reports);
        assert_eq!(f[0].host, "web-3");
        assert_eq!(f[0].error, "exit 1: bad config");
    }
}
