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
    let then = super::clock::unix(rfc3339);
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
.login input{width:100%;font:inherit;padding:.3em}.error{color:#c00}\
.add{color:#070;background:#e6f6e6}.del{color:#a00;background:#fbe9e9}.hunk{color:#666}.claim{color:#a60}\
@media print{nav form{display:none}details{display:block}pre{white-space:pre-wrap}}";

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

pub fn home(
    commits: &[CommitRow],
    hosts: &[HostRow],
    rollouts: &[RolloutRow],
    hours: &[super::hourly::Hour],
    now: i64,
) -> String {
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
    b.push_str("<h2>Runs per hour, last 7 days</h2>");
    b.push_str(&week_svg(hours, commits, now));
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
                esc(&super::clock::rfc3339(t))
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
    let committed = super::clock::unix(committed_at);
    if committed == 0 {
        return None;
    }
    let mut first_run: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for r in reports
        .iter()
        .filter(|r| r.commit.as_deref() == Some(commit) && r.refused_commit.is_none())
    {
        let t = super::clock::unix(&r.started_at);
        let e = first_run.entry(r.host.as_str()).or_insert(t);
        *e = (*e).min(t);
    }
    let mut leads: Vec<i64> = first_run.values().map(|t| t - committed).collect();
    leads.sort_unstable();
    let at = |p: f64| leads[((leads.len() - 1) as f64 * p).round() as usize];
    (!leads.is_empty()).then(|| [leads[0], at(0.5), at(0.95), leads[leads.len() - 1]])
}

/// What a commit's page shows, gathered by the server.
pub struct CommitView<'a> {
    pub commit: &'a str,
    /// Its deploy-log row: who made it, when and why, from the log's copy
    /// of the source when it has the commit (`from_source`), else as its
    /// hosts said.
    pub row: Option<&'a CommitRow>,
    /// Its change to the repository: `None` when the log has no source.
    pub change: Option<Result<std::sync::Arc<super::change::Change>, String>>,
    /// Its runs, newest first (up to the page's limit).
    pub runs: &'a [ReportRow],
    /// Whether there are more runs than `runs`.
    pub more_runs: bool,
    pub effects: &'a [super::effect::Effect],
    /// Of how many hosts' first changing runs the effects were read.
    pub effects_read: usize,
    pub effects_of: usize,
    pub failures: &'a [super::effect::Failure],
    pub rollouts: &'a [RolloutRow],
    /// Each rolled-out host's wave.
    pub waves: &'a std::collections::HashMap<String, u32>,
    /// `rejected` of a run that refused it: who made it, what it says, the errors.
    pub refusal: Option<&'a serde_json::Value>,
    /// Hosts of its environments still on another commit (when it is the
    /// newest their environment runs).
    pub pending: &'a [String],
}

/// A commit's page: who made it and what it changed in the repository;
/// its effect across hosts (grouped by resource) and its failures; the
/// hosts reaching it over time, wave by wave; the hosts pending and
/// refusing; each host's latest run of it.
pub fn commit(v: &CommitView) -> String {
    let commit = v.commit;
    let mut b = String::new();
    if let Some(r) = v.row {
        let _ = write!(
            b,
            "<p id=\"commit\"><code>{}</code> by {}: {} <span class=\"when\">committed {}</span>{}</p>",
            esc(commit),
            esc(r.author.as_deref().unwrap_or("")),
            esc(r.subject.as_deref().unwrap_or("")),
            time(r.committed_at.as_deref().unwrap_or("")),
            if r.from_source {
                ""
            } else {
                " <span class=\"claim\">(as its hosts said: the log has no copy of it from the source)</span>"
            }
        );
    }
    if let Some(rejected) = v.refusal {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
        let refusing: std::collections::BTreeSet<&str> = v
            .runs
            .iter()
            .filter(|r| r.refused_commit.as_deref() == Some(commit))
            .map(|r| r.host.as_str())
            .collect();
        let _ = write!(
            b,
            "<h2>Does not compile</h2><p id=\"refused\" class=\"refused\">refused by {} host{}: {}</p><ul id=\"refusal\">",
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
    }
    if let Some([first, p50, p95, last]) = v
        .row
        .and_then(|r| r.committed_at.as_deref())
        .and_then(|at| lead_over_hosts(at, v.runs, commit))
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
    change_section(&mut b, v.change.as_ref());
    effect_section(&mut b, v);
    b.push_str("<h2>Hosts reaching it</h2>");
    b.push_str(&reaching_svg(commit, v.runs, v.waves));
    if !v.rollouts.is_empty() {
        b.push_str("<h2>Rollout</h2>");
        rollouts_table(&mut b, v.rollouts);
    }
    if !v.pending.is_empty() {
        let _ = write!(
            b,
            "<p id=\"pending\">Pending on {} host{}: {}</p>",
            v.pending.len(),
            if v.pending.len() == 1 { "" } else { "s" },
            host_links(v.pending.iter().map(String::as_str))
        );
    }
    latest_runs_table(&mut b, commit, v.runs, v.more_runs);
    page(&format!("Commit {}", short(commit)), &b)
}

/// A diff for a page: each line escaped, added and removed lines marked.
fn diff_html(text: &str) -> String {
    let mut out = String::from("<pre class=\"diff\">");
    for line in text.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => "add",
            Some(b'-') if !line.starts_with("---") => "del",
            Some(b'@') => "hunk",
            _ => "",
        };
        if class.is_empty() {
            out.push_str(&esc(line));
        } else {
            let _ = write!(out, "<span class=\"{class}\">{}</span>", esc(line));
        }
        out.push('\n');
    }
    out.push_str("</pre>");
    out
}

fn host_links<'a>(hosts: impl Iterator<Item = &'a str>) -> String {
    hosts
        .map(|h| format!("<a href=\"/hosts/{}\">{}</a>", seg(h), esc(h)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The commit's own diff of manifests and roles.
fn change_section(
    b: &mut String,
    change: Option<&Result<std::sync::Arc<super::change::Change>, String>>,
) {
    b.push_str("<h2>Change</h2>");
    match change {
        None => b.push_str("<p id=\"change\">The log has no copy of the source: start it with <code>--source URL</code> to see what commits change.</p>"),
        Some(Err(e)) => {
            let _ = write!(b, "<p id=\"change\" class=\"error\">{}</p>", esc(e));
        }
        Some(Ok(change)) if change.files.is_empty() => {
            b.push_str("<p id=\"change\">No change to <code>manifests/</code> or <code>roles/</code>.</p>");
        }
        Some(Ok(change)) => {
            b.push_str("<div id=\"change\">");
            for f in &change.files {
                let what = match f.status.as_str() {
                    "A" => "added",
                    "D" => "deleted",
                    _ => "changed",
                };
                let _ = write!(
                    b,
                    "<h3 class=\"file\"><code>{}</code> {what}</h3>",
                    esc(&f.path)
                );
                match &f.diff {
                    Some(d) => b.push_str(&diff_html(d)),
                    None => b.push_str(
                        "<p class=\"hidden\">(sensitive: its content is not shown)</p>",
                    ),
                }
            }
            if change.more_files > 0 {
                let _ = write!(b, "<p>and {} more files</p>", change.more_files);
            }
            b.push_str("</div>");
        }
    }
}

/// Each resource the commit changed, with one diff for the hosts that
/// changed alike and the others named; then the failures standing.
fn effect_section(b: &mut String, v: &CommitView) {
    b.push_str("<h2>Effect</h2>");
    if v.effects_read < v.effects_of {
        let _ = write!(
            b,
            "<p>From the first {} of {} hosts that changed.</p>",
            v.effects_read, v.effects_of
        );
    }
    if v.effects.is_empty() {
        b.push_str("<p id=\"effects\">No resource changed because of this commit.</p>");
    } else {
        b.push_str("<div id=\"effects\">");
        for e in v.effects {
            let _ = write!(
                b,
                "<div class=\"effect\"><h3><code>{}</code>: changed on {} host{}</h3>",
                esc(&e.resource),
                e.hosts.len(),
                if e.hosts.len() == 1 { "" } else { "s" }
            );
            if let Some(first) = e.variants.first() {
                b.push_str(&diff_html(&first.text));
            }
            if e.variants.len() > 1 {
                let _ = write!(b, "<p class=\"differs\">Differs on: ");
                let others: Vec<&str> = e.variants[1..]
                    .iter()
                    .flat_map(|o| o.hosts.iter().map(String::as_str))
                    .collect();
                b.push_str(&host_links(others.into_iter()));
                b.push_str("</p>");
                for other in &e.variants[1..] {
                    let _ = write!(
                        b,
                        "<details><summary>on {}</summary>{}</details>",
                        esc(&other.hosts.join(", ")),
                        diff_html(&other.text)
                    );
                }
            }
            b.push_str("</div>");
        }
        b.push_str("</div>");
    }
    if !v.failures.is_empty() {
        b.push_str("<h2>Failing</h2><table id=\"failures\"><tr><th>host</th><th>resource</th><th>error</th></tr>");
        for f in v.failures {
            let _ = write!(
                b,
                "<tr><td><a href=\"/reports/{}\">{}</a></td><td><code>{}</code></td><td class=\"failed\">{}</td></tr>",
                seg(&f.report),
                esc(&f.host),
                esc(&f.resource),
                esc(&f.error)
            );
        }
        b.push_str("</table>");
    }
}

/// Each host's latest run of the commit; older runs behind a link.
fn latest_runs_table(b: &mut String, commit: &str, runs: &[ReportRow], more: bool) {
    let mut seen = std::collections::HashSet::new();
    let mut older = 0;
    b.push_str("<h2>Hosts</h2><table id=\"reports\"><tr><th>host</th><th>latest run</th><th>status</th><th>changed</th><th>drift</th><th>failed</th></tr>");
    for r in runs {
        if !seen.insert(r.host.as_str()) {
            older += 1;
            continue;
        }
        let _ = write!(
            b,
            "<tr><td><a href=\"/hosts/{}\">{}</a></td><td><a href=\"/reports/{}\">{}</a></td>{}<td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(&r.host),
            esc(&r.host),
            seg(&r.id),
            time(&r.started_at),
            status_cell(&r.status),
            r.changed,
            r.drift,
            r.failed
        );
    }
    b.push_str("</table>");
    if older > 0 || more {
        let _ = write!(
            b,
            "<p><a id=\"older\" href=\"/commits/{}/runs\">{}{} older runs</a></p>",
            seg(commit),
            older,
            if more { "+" } else { "" }
        );
    }
}

/// Every run of a commit, newest first.
pub fn commit_runs(commit: &str, runs: &[ReportRow], more: bool) -> String {
    let mut b = format!(
        "<p><a href=\"/commits/{}\">back to the commit</a></p>",
        seg(commit)
    );
    b.push_str("<table id=\"reports\"><tr><th>started</th><th>host</th><th>status</th><th>changed</th><th>drift</th><th>failed</th></tr>");
    for r in runs {
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
    if more {
        let _ = write!(
            b,
            "<p>The newest {} runs; <code>tend log show --commit {}</code> lists them all.</p>",
            runs.len(),
            esc(commit)
        );
    }
    page(&format!("Runs of commit {}", short(commit)), &b)
}

/// Colours of waves: the canary, then each wave.
const WAVE_COLOURS: [&str; 6] = ["#c60", "#036", "#08a", "#0a5", "#7a3", "#555"];

/// The hosts reaching a commit over time: one dot a host at its first run
/// of the commit (x: time, y: how many had it by then), coloured by its
/// rollout wave; every text escaped.
fn reaching_svg(
    commit: &str,
    runs: &[ReportRow],
    waves: &std::collections::HashMap<String, u32>,
) -> String {
    const WIDTH: f64 = 1200.0;
    const HEIGHT: f64 = 240.0;
    const PAD: f64 = 30.0;
    let mut first: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for r in runs
        .iter()
        .filter(|r| r.commit.as_deref() == Some(commit) && r.refused_commit.is_none())
    {
        let t = super::clock::unix(&r.started_at);
        let e = first.entry(r.host.as_str()).or_insert(t);
        *e = (*e).min(t);
    }
    let mut reached: Vec<(i64, &str)> = first.into_iter().map(|(h, t)| (t, h)).collect();
    reached.sort_unstable();
    let mut svg = format!(
        "<svg id=\"reaching\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"hosts reaching the commit over time\"><rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\" stroke=\"#ddd\"/>"
    );
    let (Some(&(start, _)), Some(&(end, _))) = (reached.first(), reached.last()) else {
        svg.push_str("<text x=\"20\" y=\"40\">No host has run it yet.</text></svg>");
        return svg;
    };
    let n = reached.len();
    let span_s = (end - start).max(1) as f64;
    let x = |t: i64| PAD + (t - start) as f64 / span_s * (WIDTH - 2.0 * PAD);
    let y = |i: usize| HEIGHT - PAD - (i as f64 / n as f64) * (HEIGHT - 2.0 * PAD);
    let _ = write!(
        svg,
        "<text x=\"{PAD}\" y=\"{}\" font-size=\"12\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">+{} · {n} host{}</text>",
        HEIGHT - 8.0,
        esc(&super::clock::rfc3339(start)),
        WIDTH - PAD,
        HEIGHT - 8.0,
        esc(&span(end - start)),
        if n == 1 { "" } else { "s" }
    );
    for (i, (t, host)) in reached.iter().enumerate() {
        let wave = waves.get(*host).copied();
        let colour = wave.map_or("#036", |w| {
            WAVE_COLOURS[(w as usize).min(WAVE_COLOURS.len() - 1)]
        });
        let label = match wave {
            Some(0) => " (canary)".to_owned(),
            Some(w) => format!(" (wave {w})"),
            None => String::new(),
        };
        let _ = write!(
            svg,
            "<circle class=\"host\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{}{} at {}</title></circle>",
            x(*t),
            y(i + 1),
            esc(host),
            esc(&label),
            esc(&super::clock::rfc3339(*t))
        );
    }
    svg.push_str("</svg>");
    svg
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
                esc(&super::clock::rfc3339(t))
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
        "failed" | "never_converged" => "#c00",
        "refused" => "#a0a",
        "drift" => "#d80",
        "changed" => "#0a5",
        _ => "#bbb",
    }
}

/// Statuses stacked in this order, bottom up.
const STACK: [&str; 6] = [
    "unchanged",
    "changed",
    "drift",
    "failed",
    "refused",
    "never_converged",
];

/// The last 7 days' runs per hour, stacked by status, with a mark per
/// commit where its first host ran it; every text escaped.
fn week_svg(hours: &[super::hourly::Hour], commits: &[CommitRow], now: i64) -> String {
    const WIDTH: f64 = 1200.0;
    const HEIGHT: f64 = 200.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 20.0;
    const SLOTS: i64 = 168;
    let last_hour = now.div_euclid(3600);
    let first_hour = last_hour - (SLOTS - 1);
    let mut per_hour: std::collections::BTreeMap<i64, Vec<(&str, i64)>> =
        std::collections::BTreeMap::new();
    for h in hours
        .iter()
        .filter(|h| h.hour >= first_hour && h.hour <= last_hour)
    {
        per_hour
            .entry(h.hour)
            .or_default()
            .push((h.status.as_str(), h.runs));
    }
    let most = per_hour
        .values()
        .map(|v| v.iter().map(|(_, n)| n).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / SLOTS as f64;
    let scale = (HEIGHT - TOP - BOTTOM) / most as f64;
    let mut svg = format!(
        "<svg id=\"week\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" aria-label=\"runs per hour by status over the last 7 days, with a mark per commit\"><rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\" stroke=\"#ddd\"/><text x=\"4\" y=\"12\" font-size=\"11\">{most} runs/h</text>"
    );
    // A tick and a date at each day's start (UTC).
    for day in 0..=7 {
        let hour = (first_hour.div_euclid(24) + day) * 24;
        if hour < first_hour {
            continue;
        }
        let x = (hour - first_hour) as f64 * slot;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"#666\">{}</text>",
            HEIGHT - BOTTOM,
            x + 2.0,
            HEIGHT - 6.0,
            esc(super::clock::rfc3339(hour * 3600).get(..10).unwrap_or(""))
        );
    }
    for (hour, statuses) in &per_hour {
        let x = (hour - first_hour) as f64 * slot;
        let mut y = HEIGHT - BOTTOM;
        for status in STACK {
            let Some(&(_, runs)) = statuses.iter().find(|(s, _)| *s == status) else {
                continue;
            };
            let h = runs as f64 * scale;
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {runs} {status}</title></rect>",
                (slot - 0.5).max(0.5),
                colour(status),
                esc(&super::clock::rfc3339(hour * 3600))
            );
        }
    }
    for c in commits {
        let t = super::clock::unix(&c.first_applied);
        if t < first_hour * 3600 || t > now {
            continue;
        }
        let x = (t - first_hour * 3600) as f64 / 3600.0 * slot;
        let _ = write!(
            svg,
            "<a href=\"/commits/{}\"><line class=\"deploy\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#036\" stroke-width=\"2\"><title>{} by {}: {}</title></line></a>",
            seg(&c.commit),
            HEIGHT - BOTTOM,
            esc(short(&c.commit)),
            esc(c.author.as_deref().unwrap_or("")),
            esc(c.subject.as_deref().unwrap_or(""))
        );
    }
    svg.push_str("</svg>");
    svg
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
