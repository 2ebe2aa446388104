//! The dashboard: server-rendered HTML, no scripts, readable by anyone who
//! can reach the log. Every value that comes from a report (host names,
//! commit subjects, diffs) is untrusted and escaped.

use std::fmt::Write as _;

use super::rollouts::RolloutRow;
use super::store::{CommitRow, HostRow, ReportRow};

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A path segment for a link (ids and commits are hex or uuids; anything
/// else is percent-encoded).
fn seg(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// How long ago, for people ("4 min ago"), from seconds.
pub fn ago(seconds: i64) -> String {
    let (n, unit) = match seconds.abs() {
        s if s < 60 => (s, "s"),
        s if s < 3600 => (s / 60, "min"),
        s if s < 86_400 => (s / 3600, "h"),
        s => (s / 86_400, if s / 86_400 == 1 { "day" } else { "days" }),
    };
    if seconds < 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

/// A duration for people ("42 min").
pub fn span(seconds: i64) -> String {
    ago(seconds.max(0)).trim_end_matches(" ago").to_owned()
}

/// An RFC 3339 time shown relative to now, the absolute time on hover
/// (and to machines, in `datetime`).
fn time(rfc3339: &str) -> String {
    let then = super::store::unix(rfc3339);
    let relative = if then == 0 {
        rfc3339.to_owned()
    } else {
        ago(super::now_unix() - then)
    };
    format!(
        "<time datetime=\"{0}\" title=\"{0}\">{1}</time>",
        esc(rfc3339),
        esc(&relative)
    )
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
.changed{color:#0a5}.drift{color:#b60}.failed{color:#c00;font-weight:bold}.silent{color:#c00}.refused{color:#a0a;font-weight:bold}.never_converged{color:#c00}\
pre{background:#f6f6f6;padding:.6em;overflow:auto}code{font-size:.95em}a{color:#036}\
nav{display:flex;justify-content:space-between}form.out{display:inline}.login{max-width:28em}\
.login input{width:100%;font:inherit;padding:.3em}.error{color:#c00}";

/// The sign-in page: a viewer's or operator's token, once, for a session.
pub fn login(error: Option<&str>, next: &str) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\">{}</p>", esc(e))
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · tend</title><style>{STYLE}</style></head>\n<body class=\"login\"><h1>tend log</h1>{error}\n<form method=\"post\" action=\"/login\"><p><label for=\"token\">A viewer's or operator's token (<code>tend log token create --viewer NAME</code>)</label></p><p><input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" autofocus></p><input type=\"hidden\" name=\"next\" value=\"{}\"><p><button>Sign in</button></p></form></body></html>\n",
        esc(next)
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · tend</title><style>{STYLE}</style></head>\n<body><nav><a href=\"/\">tend log</a> <form method=\"post\" action=\"/logout\" class=\"out\"><button>Sign out</button></form></nav>\n<h1>{}</h1>\n{body}</body></html>\n",
        esc(title),
        esc(title)
    )
}

fn status_cell(status: &str) -> String {
    format!("<td class=\"{0}\">{0}</td>", esc(status))
}

/// The rollouts table: where each commit is in its waves, and for a
/// halted one which host, which resource, and who committed it.
fn rollouts_table(b: &mut String, rollouts: &[RolloutRow]) {
    b.push_str("<table id=\"rollouts\"><tr><th>environment</th><th>commit</th><th>author</th><th>subject</th><th>state</th><th>wave</th><th>admitted</th><th>reported</th><th>why</th></tr>");
    for r in rollouts {
        let rollback = match r.rollback_to.as_deref() {
            Some("") => "; rolled back to each host's previous commit".to_owned(),
            Some(to) => format!("; rolled back to <code>{}</code>", esc(short(to))),
            None => String::new(),
        };
        let holding = if r.holding.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = r.holding.iter().map(|h| esc(&h.host)).collect();
            let more = r.holding_count.saturating_sub(names.len());
            format!(
                "waiting for {}{}",
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        let why = match (&r.halted_by, &r.superseded_by, &r.note) {
            (Some(h), _, _) if r.state == "halted" => format!(
                "{} on <a href=\"/reports/{}\">{}</a>: <code>{}</code>: {}{rollback}",
                esc(&h.condition),
                seg(&h.report),
                esc(&h.host),
                esc(&h.resource),
                esc(&h.error)
            ),
            (_, Some(by), _) if r.state == "superseded" => {
                format!("superseded by <code>{}</code>", esc(short(by)))
            }
            (_, _, Some(note)) if holding.is_empty() => esc(note),
            (_, _, Some(note)) => format!("{}; {holding}", esc(note)),
            _ => holding,
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td><a href=\"/commits/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{} of {}</td><td>{} of {}</td><td>{}</td><td>{why}</td></tr>",
            esc(&r.environment),
            seg(&r.commit),
            esc(short(&r.commit)),
            esc(&r.author),
            esc(&r.subject),
            if r.state == "halted" { "failed" } else { "" },
            esc(&r.state),
            r.wave,
            r.waves,
            r.admitted,
            r.hosts,
            r.reported
        );
    }
    b.push_str("</table>");
}

pub fn home(commits: &[CommitRow], hosts: &[HostRow], rollouts: &[RolloutRow]) -> String {
    let mut b = String::new();
    let count = |s: &str| hosts.iter().filter(|h| h.status == s).count();
    let silent = hosts.iter().filter(|h| h.silent).count();
    let _ = write!(
        b,
        "<p id=\"summary\">{} hosts: {} unchanged, {} changed, {} drift, {} failed{}; {} silent.</p>",
        hosts.len(),
        count("unchanged"),
        count("changed"),
        count("drift"),
        count("failed"),
        match count("refused") {
            0 => String::new(),
            n => format!(", {n} refusing a commit"),
        },
        silent
    );
    if !rollouts.is_empty() {
        b.push_str("<h2>Rollouts</h2>");
        rollouts_table(&mut b, rollouts);
    }
    b.push_str("<h2>Deploy log</h2><table id=\"deploys\"><tr><th>last applied</th><th>commit</th><th>author</th><th>subject</th><th>hosts</th><th>changed</th><th>failed</th><th>pending</th><th>lead time (first / last host)</th></tr>");
    for c in commits {
        let refused = if c.hosts_refused > 0 {
            format!(
                " <span class=\"refused\">does not compile: refused by {} host{}</span>",
                c.hosts_refused,
                if c.hosts_refused == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td><a href=\"/commits/{}\"><code>{}</code></a></td><td>{}</td><td>{}{refused}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            time(&c.last_applied),
            seg(&c.commit),
            esc(short(&c.commit)),
            esc(c.author.as_deref().unwrap_or("")),
            esc(c.subject.as_deref().unwrap_or("")),
            c.hosts,
            c.hosts_changed,
            if c.hosts_failed > 0 { "failed" } else { "" },
            c.hosts_failed,
            c.hosts_pending,
            lead_cell(c)
        );
    }
    b.push_str("</table><h2>Hosts</h2><table id=\"hosts\"><tr><th>host</th><th>environment</th><th>status</th><th>commit</th><th>drift</th><th>failed</th><th>last run</th></tr>");
    let mut sorted: Vec<&HostRow> = hosts.iter().collect();
    // Failed first, then drift, changed, unchanged: what needs eyes on top.
    let rank = |s: &str| match s {
        "failed" => 0,
        "refused" => 1,
        "drift" => 2,
        "changed" => 3,
        _ => 4,
    };
    sorted.sort_by_key(|h| (rank(&h.status), h.host.clone()));
    for h in sorted {
        let _ = write!(
            b,
            "<tr><td><a href=\"/hosts/{}\">{}</a>{}</td><td>{}</td>{}<td><code>{}</code></td><td>{}</td><td>{}</td><td><a href=\"/reports/{}\">{}</a>{}</td></tr>",
            seg(&h.host),
            esc(&h.host),
            h.re_enrolled_unix.map_or(String::new(), |t| format!(
                " <small class=\"re-enrolled\">re-enrolled at {}</small>",
                esc(&super::identity::when(t))
            )),
            esc(&h.environment),
            status_cell(&h.status),
            esc(h.commit.as_deref().map_or("", short)),
            h.drift,
            h.failed,
            seg(&h.last_report),
            time(&h.last_started_at),
            if h.silent {
                " <span class=\"silent\">silent</span>"
            } else {
                ""
            }
        );
    }
    b.push_str("</table>");
    let drifted: Vec<&HostRow> = hosts.iter().filter(|h| h.drift > 0).collect();
    b.push_str("<h2>Drift</h2>");
    if drifted.is_empty() {
        b.push_str("<p id=\"drift\">No host drifted in its last run.</p>");
    } else {
        b.push_str("<ul id=\"drift\">");
        for h in drifted {
            let _ = write!(
                b,
                "<li><a href=\"/reports/{}\">{}</a>: {} resource{} drifted</li>",
                seg(&h.last_report),
                esc(&h.host),
                h.drift,
                if h.drift == 1 { "" } else { "s" }
            );
        }
        b.push_str("</ul>");
    }
    page("Hosts and deploys", &b)
}

/// "3 min / 42 min": from the commit to its first host, and to its last.
fn lead_cell(c: &CommitRow) -> String {
    match (c.lead_first_s, c.lead_last_s) {
        (Some(first), Some(last)) => format!("{} / {}", span(first), span(last)),
        _ => String::new(),
    }
}

/// A commit's lead time over its hosts: first, p50, p95, last (seconds).
pub fn lead_over_hosts(
    committed_at: &str,
    reports: &[ReportRow],
    commit: &str,
) -> Option<[i64; 4]> {
    let committed = super::store::unix(committed_at);
    if committed == 0 {
        return None;
    }
    let mut first_run: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for r in reports
        .iter()
        .filter(|r| r.commit.as_deref() == Some(commit) && r.refused_commit.is_none())
    {
        let t = super::store::unix(&r.started_at);
        let e = first_run.entry(r.host.as_str()).or_insert(t);
        *e = (*e).min(t);
    }
    let mut leads: Vec<i64> = first_run.values().map(|t| t - committed).collect();
    leads.sort_unstable();
    let at = |p: f64| leads[((leads.len() - 1) as f64 * p).round() as usize];
    (!leads.is_empty()).then(|| [leads[0], at(0.5), at(0.95), leads[leads.len() - 1]])
}

/// A commit's page; `refusal` is the `rejected` part of a report that
/// refused it (who made it, what it says, and the errors).
pub fn commit(
    commit: &str,
    reports: &[ReportRow],
    rollouts: &[RolloutRow],
    refusal: Option<&serde_json::Value>,
    committed_at: Option<&str>,
) -> String {
    let mut b = String::new();
    if let Some(rejected) = refusal {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
        let refusing: std::collections::BTreeSet<&str> = reports
            .iter()
            .filter(|r| r.refused_commit.as_deref() == Some(commit))
            .map(|r| r.host.as_str())
            .collect();
        let _ = write!(
            b,
            "<p id=\"commit\"><code>{}</code> by {}: {}</p><h2>Does not compile</h2><p id=\"refused\" class=\"refused\">refused by {} host{}: {}</p><ul id=\"refusal\">",
            esc(commit),
            esc(&s(&rejected["author"])),
            esc(&s(&rejected["subject"])),
            refusing.len(),
            if refusing.len() == 1 { "" } else { "s" },
            esc(&refusing.iter().copied().collect::<Vec<_>>().join(", "))
        );
        let errors = rejected["errors"].as_array().cloned().unwrap_or_default();
        if errors.is_empty() {
            let _ = write!(b, "<li>{}</li>", esc(&s(&rejected["reason"])));
        }
        for e in &errors {
            let _ = write!(b, "<li><code>{}</code></li>", esc(&s(e)));
        }
        b.push_str("</ul>");
    } else if let Some(first) = reports.first() {
        let _ = write!(
            b,
            "<p id=\"commit\"><code>{}</code> by {}: {}</p>",
            esc(commit),
            esc(first.author.as_deref().unwrap_or("")),
            esc(first.subject.as_deref().unwrap_or(""))
        );
    }
    if let Some([first, p50, p95, last]) =
        committed_at.and_then(|at| lead_over_hosts(at, reports, commit))
    {
        let _ = write!(
            b,
            "<p id=\"lead\">Lead time, from the commit to each host's first run of it: first {}, p50 {}, p95 {}, last {}.</p>",
            span(first),
            span(p50),
            span(p95),
            span(last)
        );
    }
    if !rollouts.is_empty() {
        b.push_str("<h2>Rollout</h2>");
        rollouts_table(&mut b, rollouts);
    }
    b.push_str("<table id=\"reports\"><tr><th>started</th><th>host</th><th>status</th><th>changed</th><th>drift</th><th>failed</th></tr>");
    for r in reports {
        let _ = write!(
            b,
            "<tr><td><a href=\"/reports/{}\">{}</a></td><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(&r.id),
            time(&r.started_at),
            esc(&r.host),
            status_cell(&r.status),
            r.changed,
            r.drift,
            r.failed
        );
    }
    b.push_str("</table>");
    page(&format!("Commit {}", short(commit)), &b)
}

/// A host's page: its last run, whether it was rebuilt, its history as a
/// picture (one bar a run, coloured by status; a mark where its commit
/// changed), and its runs.
pub fn host(name: &str, row: Option<&HostRow>, runs: &[ReportRow]) -> String {
    let mut b = String::new();
    if let Some(h) = row {
        let _ = write!(
            b,
            "<p id=\"host\">{} in {}: {} on <code>{}</code>, last run {}{}{}</p>",
            esc(&h.host),
            esc(&h.environment),
            esc(&h.status),
            esc(h.commit.as_deref().map_or("", short)),
            time(&h.last_started_at),
            if h.silent {
                " <span class=\"silent\">silent</span>"
            } else {
                ""
            },
            h.re_enrolled_unix.map_or(String::new(), |t| format!(
                "; re-enrolled at {}",
                esc(&super::identity::when(t))
            ))
        );
    }
    b.push_str("<h2>History</h2>");
    b.push_str(&history_svg(runs));
    b.push_str("<h2>Runs</h2><table id=\"runs\"><tr><th>started</th><th>status</th><th>commit</th><th>changed</th><th>drift</th><th>failed</th></tr>");
    for r in runs {
        let commit = r
            .refused_commit
            .as_deref()
            .or(r.commit.as_deref())
            .unwrap_or("");
        let _ = write!(
            b,
            "<tr><td><a href=\"/reports/{}\">{}</a></td>{}<td><a href=\"/commits/{}\"><code>{}</code></a> {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(&r.id),
            time(&r.started_at),
            status_cell(&r.status),
            seg(commit),
            esc(short(commit)),
            esc(r.subject.as_deref().unwrap_or("")),
            r.changed,
            r.drift,
            r.failed
        );
    }
    b.push_str("</table>");
    page(&format!("Host {name}"), &b)
}

/// The colour of a run's status in pictures.
fn colour(status: &str) -> &'static str {
    match status {
        "failed" => "#c00",
        "refused" => "#a0a",
        "drift" => "#d80",
        "changed" => "#0a5",
        _ => "#bbb",
    }
}

/// A host's runs, oldest first, as one bar each (its status) with a mark
/// where the commit changed; every text escaped (SVG is XML).
fn history_svg(runs: &[ReportRow]) -> String {
    const WIDTH: usize = 1200;
    const HEIGHT: usize = 60;
    let mut svg = format!(
        "<svg id=\"history\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"runs by status, oldest first\">"
    );
    let n = runs.len().max(1);
    let step = WIDTH as f64 / n as f64;
    let mut previous: Option<&str> = None;
    for (i, r) in runs.iter().rev().enumerate() {
        let x = i as f64 * step;
        let _ = write!(
            svg,
            "<rect class=\"run\" x=\"{x:.1}\" y=\"12\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"><title>{} {}</title></rect>",
            (step - 1.0).max(1.0),
            HEIGHT - 12,
            colour(&r.status),
            esc(&r.started_at),
            esc(&r.status)
        );
        let commit = r.commit.as_deref().unwrap_or("");
        if previous.is_some_and(|p| p != commit) || (previous.is_none() && !commit.is_empty()) {
            let _ = write!(
                svg,
                "<line class=\"commit\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{HEIGHT}\" stroke=\"#036\" stroke-width=\"2\"><title>{} {}</title></line>",
                esc(short(commit)),
                esc(r.subject.as_deref().unwrap_or(""))
            );
        }
        previous = Some(commit);
    }
    svg.push_str("</svg>");
    svg
}

pub fn report(report: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mut b = String::new();
    if let Some(why) = report["never_converged"].as_str() {
        let _ = write!(
            b,
            "<p id=\"never-converged\" class=\"never_converged\">never converged: {}</p>",
            esc(why)
        );
    }
    let rev = &report["revision"];
    let _ = write!(
        b,
        "<p id=\"run\">{} in {} at {}: <span class=\"{}\">{}</span>{}</p>",
        esc(&s(&report["host"])),
        esc(&s(&report["environment"])),
        esc(&s(&report["started_at"])),
        esc(&s(&report["status"])),
        esc(&s(&report["status"])),
        if rev.is_object() {
            format!(
                "; commit <a href=\"/commits/{}\"><code>{}</code></a> by {}: {}",
                seg(&s(&rev["commit"])),
                esc(short(&s(&rev["commit"]))),
                esc(&s(&rev["author"])),
                esc(&s(&rev["subject"]))
            )
        } else {
            String::new()
        }
    );
    if let Some(r) = report["rejected"].as_object() {
        let _ = write!(
            b,
            "<p class=\"failed\">Commit <code>{}</code> by {} was not applied: {}</p>",
            esc(short(
                r.get("commit").and_then(|v| v.as_str()).unwrap_or("")
            )),
            esc(r.get("author").and_then(|v| v.as_str()).unwrap_or("")),
            esc(r.get("reason").and_then(|v| v.as_str()).unwrap_or(""))
        );
    }
    b.push_str("<table id=\"resources\"><tr><th>resource</th><th>status</th><th>what</th></tr>");
    for r in report["resources"].as_array().into_iter().flatten() {
        let mut what = String::new();
        if let Some(changes) = r["changes"].as_array() {
            let list: Vec<String> = changes.iter().map(s).collect();
            what.push_str(&esc(&list.join(", ")));
        }
        for key in ["error", "depends_on"] {
            if let Some(text) = r[key].as_str() {
                let _ = write!(what, " {}", esc(text));
            }
        }
        for key in ["diff", "output"] {
            if let Some(text) = r[key].as_str() {
                let _ = write!(what, "<pre>{}</pre>", esc(text));
            }
        }
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td class=\"{}\">{}{}</td><td>{what}</td></tr>",
            esc(&s(&r["id"])),
            esc(&s(&r["status"])),
            esc(&s(&r["status"])),
            r["cause"]
                .as_str()
                .map_or_else(String::new, |c| format!(" ({})", esc(c)))
        );
    }
    b.push_str("</table>");
    page(&format!("Run on {}", s(&report["host"])), &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}

#[cfg(test)]
mod time_tests {
    use super::ago;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(5), "5 s ago");
        assert_eq!(ago(4 * 60 + 59), "4 min ago");
        assert_eq!(ago(3 * 3600), "3 h ago");
        assert_eq!(ago(86_400), "1 day ago");
        assert_eq!(ago(9 * 86_400), "9 days ago");
        assert_eq!(ago(-120), "in 2 min");
    }
}
