//! The deploy log answers who changed what, where, and what went wrong:
//! refused commits (SPEC §5, §6) through the real server, its listings,
//! `tend log show`, the chat and the dashboard in Chromium.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::git;
use crate::log_server::{Db, LogServer, signed_in};
use crate::support::receiver::Receiver;
use crate::support::tend;

const GOOD: &str = "9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123";
const BROKEN: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

/// A run of `host` on the good commit; refusing the broken one when
/// `refuses`.
fn run(host: &str, id: &str, refuses: bool) -> String {
    let mut report = json!({
        "id": id, "host": host, "environment": "production", "roles": ["base"], "mode": "apply",
        "revision": {"commit": GOOD, "author": "Ana Diaz <ana@example.com>",
                     "committed_at": "2026-12-01T10:00:00Z", "subject": "base: motd"},
        "source_stale": false, "started_at": "2026-12-04T10:00:00Z", "duration_ms": 4,
        "status": "unchanged",
        "summary": {"total": 3, "changed": 0, "drift": 0, "failed": 0, "unchanged": 3, "unknown": 0},
        "resources": []
    });
    if refuses {
        report["rejected"] = json!({
            "commit": BROKEN, "author": "Cy Okafor <cy@example.com>",
            "committed_at": "2026-12-04T09:58:00Z", "subject": "base: broken <banner>",
            "reason": "it does not compile for this host (1 problems)",
            "errors": ["roles/base/role.yaml:3:11: unknown key `contnet` (did you mean `content`?)"]
        });
    }
    report.to_string()
}

fn refused_commits_show_everywhere_once(store: Db) {
    let chat = Receiver::start();
    let hook = format!("{}/hook", chat.url);
    let (log, _pg) = LogServer::start_on(store, &["--notify", &hook, "--notify-window", "300ms"]);
    let hosts: Vec<String> = (1..=7).map(|i| format!("web-{i}.prod")).collect();
    let tokens: Vec<String> = hosts
        .iter()
        .map(|h| {
            fs_err::read_to_string(log.token(h, "production"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    // Five hosts refuse the broken commit, twice each (every cycle); two
    // run the good one.
    for round in 0..2 {
        for (i, (host, token)) in hosts.iter().zip(&tokens).enumerate() {
            let body = run(host, &format!("{host}-{round}"), i < 5);
            let (code, answer) = log.post(Some(token), body.as_bytes());
            assert_eq!(code, 201, "{answer}");
        }
        std::thread::sleep(Duration::from_millis(600));
    }
    // Listings: a status of its own.
    let (_, page) = log.get("/v1/reports?status=refused&limit=100");
    let refused = page["reports"].as_array().unwrap();
    assert_eq!(refused.len(), 10, "{page}");
    assert!(refused.iter().all(|r| r["refused_commit"] == BROKEN));
    let (_, page) = log.get(&format!("/v1/reports?commit={BROKEN}&limit=100"));
    assert_eq!(page["reports"].as_array().unwrap().len(), 10);
    let (_, hosts_now) = log.get("/v1/hosts");
    let statuses: Vec<&str> = hosts_now["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "refused").count(),
        5,
        "{hosts_now}"
    );
    // The deploy log: the broken commit with its author, subject and count.
    let (_, commits) = log.get("/v1/commits");
    let broken: &Value = commits["commits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["commit"] == BROKEN)
        .unwrap_or_else(|| panic!("{commits}"));
    assert_eq!(broken["author"], "Cy Okafor <cy@example.com>");
    assert_eq!(broken["subject"], "base: broken <banner>");
    assert_eq!(broken["hosts_refused"], 5);
    assert_eq!(broken["hosts"], 0);
    let good = commits["commits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["commit"] == GOOD)
        .unwrap();
    assert_eq!(good["hosts"], 7);
    assert_eq!(good["hosts_refused"], 0);
    // Lead time: committed 2026-12-01T10:00, first run on every host
    // 2026-12-04T10:00; each host counted once in the histogram.
    assert_eq!(good["lead_first_s"], 3 * 86_400);
    assert_eq!(good["lead_last_s"], 3 * 86_400);
    let (_, metrics) = log.get("/metrics");
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("tend_log_lead_time_seconds_count 7\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tend_log_lead_time_seconds_bucket{le=\"86400\"} 0\n"),
        "{metrics}"
    );
    // `tend log show --status refused`.
    let viewer = log.viewer.display().to_string();
    let shown = tend(&[
        "log",
        "show",
        "--server",
        &log.url,
        "--token-file",
        &viewer,
        "--status",
        "refused",
    ]);
    shown.expect_code(0).shows("refused 1a2b3c4d5e");
    assert_eq!(
        shown.stdout.matches("refused").count(),
        20,
        "{}",
        shown.stdout
    );
    // Chat: once for the commit, with the error and the count.
    let deadline = Instant::now() + Duration::from_secs(10);
    while chat.received().is_empty() {
        assert!(Instant::now() < deadline, "no chat message");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    let texts: Vec<String> = chat
        .received()
        .iter()
        .map(|m| m.body["text"].as_str().unwrap().to_owned())
        .filter(|t| t.contains("does not compile"))
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(
        texts[0],
        "commit 1a2b3c4d5e by Cy Okafor &lt;cy@example.com&gt; (base: broken &lt;banner&gt;) does not compile: roles/base/role.yaml:3:11: unknown key `contnet` (did you mean `content`?); refused by 5 hosts"
    );
    // The dashboard, as a browser shows it.
    let mut browser = signed_in(&log);
    let home = browser.open(&format!("{}/", log.url), &format!("refused-home-{store:?}"));
    assert!(
        home.contains("does not compile: refused by 5 hosts"),
        "{home}"
    );
    assert!(home.contains("base: broken &lt;banner&gt;"), "{home}");
    assert!(home.contains("5 refusing a commit"), "{home}");
    let page = browser.open(
        &format!("{}/commits/{BROKEN}", log.url),
        &format!("refused-commit-{store:?}"),
    );
    assert!(page.contains("Cy Okafor &lt;cy@example.com&gt;"), "{page}");
    assert!(page.contains("refused by 5 hosts"), "{page}");
    assert!(
        page.contains("roles/base/role.yaml:3:11: unknown key `contnet`"),
        "{page}"
    );
    let page = browser.open(
        &format!("{}/commits/{GOOD}", log.url),
        &format!("lead-time-{store:?}"),
    );
    assert!(
        page.contains("first 3 days, p50 3 days, p95 3 days, last 3 days"),
        "{page}"
    );
    assert!(home.contains("3 days / 3 days"), "{home}");
}

#[test]
fn a_commit_that_does_not_compile_shows_as_refused_everywhere_on_sqlite() {
    refused_commits_show_everywhere_once(Db::Sqlite);
}

#[test]
fn a_commit_that_does_not_compile_shows_as_refused_everywhere_on_postgres() {
    refused_commits_show_everywhere_once(Db::Postgres);
}

/// Grafana's JSON data source draws tend's commits on any graph: the
/// connection test, and annotations in the exact shape it reads (epoch
/// milliseconds, a region per commit, title, text and tags).
#[test]
fn grafana_reads_the_commits_as_annotations() {
    let log = LogServer::start(&[]);
    let token = fs_err::read_to_string(log.token("web-1.prod", "production")).unwrap();
    for (id, started) in [
        ("g1", "2026-12-04T10:00:00Z"),
        ("g2", "2026-12-04T10:20:00Z"),
    ] {
        let mut body: Value = serde_json::from_str(&run("web-1.prod", id, false)).unwrap();
        body["started_at"] = json!(started);
        let (code, _) = log.post(Some(token.trim()), body.to_string().as_bytes());
        assert_eq!(code, 201);
    }
    let viewer = fs_err::read_to_string(&log.viewer).unwrap();
    let (code, health) = log.get_as(Some(viewer.trim()), "/grafana");
    assert_eq!(code, 200, "{health}");
    // Anonymous: refused like every read.
    assert_eq!(log.get_as(None, "/grafana").0, 401);
    // What Grafana posts when a dashboard shows 09:00 to 12:00.
    let request = json!({
        "range": {"from": "2026-12-04T09:00:00.000Z", "to": "2026-12-04T12:00:00.000Z",
                  "raw": {"from": "now-3h", "to": "now"}},
        "annotation": {"name": "deploys", "datasource": "tend", "enable": true, "iconColor": "blue", "query": ""},
        "variables": {}
    });
    let (code, marks) = log.post_to(
        "/grafana/annotations",
        Some(viewer.trim()),
        request.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{marks}");
    let marks = marks.as_array().unwrap();
    assert_eq!(marks.len(), 1, "{marks:?}");
    let mark = &marks[0];
    assert_eq!(mark["time"], 1_796_378_400_000_i64);
    assert_eq!(mark["timeEnd"], 1_796_379_600_000_i64);
    assert_eq!(mark["isRegion"], true);
    assert_eq!(
        mark["title"],
        "commit 9f3c0a1b2c by Ana Diaz <ana@example.com>"
    );
    assert!(
        mark["text"]
            .as_str()
            .unwrap()
            .starts_with("base: motd: 1 hosts"),
        "{mark}"
    );
    assert!(
        mark["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string)
    );
    assert_eq!(mark["annotation"]["name"], "deploys");
    // Outside the range: nothing.
    let earlier = json!({"range": {"from": "2026-12-03T00:00:00Z", "to": "2026-12-03T12:00:00Z"}, "annotation": {}});
    let (_, none) = log.post_to(
        "/grafana/annotations",
        Some(viewer.trim()),
        earlier.to_string().as_bytes(),
    );
    assert_eq!(none, json!([]));
}

/// A host's page: its runs, its history as a picture with every text
/// escaped, and times relative with the absolute time on hover.
#[test]
fn a_host_page_shows_its_history() {
    let log = LogServer::start(&[]);
    let token = fs_err::read_to_string(log.token("web-2.prod", "production")).unwrap();
    for (i, refuses) in [false, true, false].into_iter().enumerate() {
        let mut body: Value =
            serde_json::from_str(&run("web-2.prod", &format!("h{i}"), refuses)).unwrap();
        body["revision"]["subject"] = json!(format!("base: <script>alert({i})</script>"));
        let (code, _) = log.post(Some(token.trim()), body.to_string().as_bytes());
        assert_eq!(code, 201);
    }
    let mut browser = signed_in(&log);
    let page = browser.open(&format!("{}/hosts/web-2.prod", log.url), "host-page");
    assert!(page.contains("<svg id=\"history\""), "{page}");
    assert_eq!(page.matches("class=\"run\"").count(), 3, "{page}");
    assert_eq!(page.matches("class=\"commit\"").count(), 1, "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(0)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("title=\"2026-12-04T10:00:00Z\""), "{page}");
    assert!(
        page.contains("days ago") || page.contains("h ago"),
        "{page}"
    );
    assert!(page.contains(">refused<"), "{page}");
}

/// A host whose source cannot be fetched and that never converged still
/// reports, saying why, so the log knows it exists.
#[test]
fn a_host_that_never_converged_still_appears_and_says_why() {
    let log = LogServer::start(&[]);
    let token = log.token("web-new.prod", "production");
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(crate::support::bin("tend"))
        .arg("agent")
        .arg("--config")
        .arg(dir.path().join("none.yaml"))
        .arg("--source")
        .arg(dir.path().join("no-such-repository"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--host", "web-new.prod", "--env", "production", "--once"])
        .args(["--log", &log.url, "--token-file"])
        .arg(&token)
        .env_remove("TEND_STATE_DIR")
        .output()
        .unwrap();
    assert_ne!(run.status.code(), Some(0), "{run:?}");
    let (_, page) = log.get("/v1/reports?host=web-new.prod");
    let reports = page["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{page}");
    assert_eq!(reports[0]["status"], "never_converged");
    let id = reports[0]["id"].as_str().unwrap();
    let (_, body) = log.get(&format!("/v1/reports/{id}"));
    let why = body["never_converged"].as_str().unwrap();
    assert!(why.contains("could not be fetched yet"), "{why}");
    assert!(why.contains("no-such-repository"), "{why}");
    let (_, hosts) = log.get("/v1/hosts");
    assert_eq!(hosts["hosts"][0]["host"], "web-new.prod");
    assert_eq!(hosts["hosts"][0]["status"], "never_converged");
    let mut browser = signed_in(&log);
    let page = browser.open(&format!("{}/reports/{id}", log.url), "never-converged");
    assert!(page.contains("never converged: the source"), "{page}");
}

/// A small fleet of real agents (one state and target directory each)
/// pulling one git remote that the log mirrors.
struct Fleet {
    dir: tempfile::TempDir,
    remote: std::path::PathBuf,
    root: std::path::PathBuf,
    log: LogServer,
    hosts: Vec<String>,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let root = dir.path().join("root");
        fs_err::create_dir_all(&remote).unwrap();
        fs_err::create_dir_all(&root).unwrap();
        git(&remote, &["init", "--quiet", "--initial-branch=main"]);
        let source = remote.display().to_string();
        let log = LogServer::start(&["--source", &source, "--ref", "main"]);
        let hosts = (1..=n).map(|i| format!("web-{i:02}.prod")).collect();
        Fleet {
            dir,
            remote,
            root,
            log,
            hosts,
        }
    }

    /// Commits `files` (path, text) by `author` with `subject`.
    fn commit(&self, author: &str, subject: &str, files: &[(&str, String)]) -> String {
        for (rel, text) in files {
            let path = self.remote.join(rel);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        }
        git(&self.remote, &["add", "-A"]);
        let name = format!("user.name={author}");
        git(
            &self.remote,
            &[
                "-c",
                &name,
                "-c",
                "user.email=dev@example.com",
                "commit",
                "--quiet",
                "-m",
                subject,
            ],
        );
        git(&self.remote, &["rev-parse", "HEAD"])
    }

    /// Where every host's files are: each agent runs in a mount namespace
    /// of its own with its host's folder of `root` mounted here, so that a
    /// resource has one name across the fleet, as on real hosts.
    fn mount_point(&self) -> std::path::PathBuf {
        self.dir.path().join("host")
    }

    /// One agent cycle on every host.
    fn converge_all(&self) {
        fs_err::create_dir_all(self.mount_point()).unwrap();
        for host in &self.hosts {
            let token = self.log.token(host, "prod");
            let own = self.root.join(host);
            fs_err::create_dir_all(&own).unwrap();
            let out = std::process::Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
                .arg("sh")
                .arg(&own)
                .arg(self.mount_point())
                .arg(crate::support::bin("tend"))
                .arg("agent")
                .arg("--config")
                .arg(self.dir.path().join("no-settings.yaml"))
                .arg("--source")
                .arg(&self.remote)
                .arg("--state-dir")
                .arg(self.dir.path().join("state").join(host))
                .args([
                    "--host",
                    host,
                    "--log",
                    &self.log.url,
                    "--once",
                    "--token-file",
                ])
                .arg(token)
                .env_remove("TEND_STATE_DIR")
                .output()
                .unwrap();
            assert!(
                out.status.code().is_some(),
                "{host}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The environment and the role of the commit page's fleet: every host
/// gets `app.conf` (web-12 with a timeout of its own) and a key from
/// `files/` that is sensitive, and a sensitive inline file.
fn fleet_files(root: &std::path::Path, timeout: u32, secret: &str) -> Vec<(&'static str, String)> {
    let env = format!(
        "environment: prod\nvars:\n  root: {}\n  timeout: {timeout}\nhosts:\n  - match: \"web-12.prod\"\n    roles: [web]\n    vars: {{ timeout: {} }}\n  - match: \"web-0?.prod\"\n    roles: [web]\n  - match: \"web-1[013].prod\"\n    roles: [web]\n",
        root.display(),
        timeout * 2
    );
    let role = "resources:\n  - file: \"{{root}}/app.conf\"\n    content: \"timeout = {{timeout}}\\n\"\n  - file: \"{{root}}/key.pem\"\n    source: key.pem\n    sensitive: true\n  - file: \"{{root}}/inline.pem\"\n    sensitive: true\n    content: |\n      INLINE-"
        .to_owned()
        + secret
        + "\n";
    vec![
        ("manifests/prod.yaml", env),
        ("roles/web/role.yaml", role),
        ("roles/web/files/key.pem", format!("KEY-{secret}\n")),
    ]
}

/// A commit's page answers "what": the commit's own diff from the log's
/// mirror with sensitive content hidden, its effect grouped by resource
/// (one diff for the hosts that changed alike, the others named), a
/// failure's error inline, lead time, the hosts reaching it as a picture,
/// and each host's latest run with older runs behind a link.
#[test]
fn a_commit_page_says_what_the_commit_changed_and_did() {
    let fleet = Fleet::new(13);
    let files = |timeout, secret| fleet_files(&fleet.mount_point(), timeout, secret);
    fleet.commit("Ana Diaz", "web: app.conf", &files(30, "ONE"));
    fleet.converge_all();
    // web-13's app.conf becomes a directory: the next change fails there.
    let conf = fleet.root.join("web-13.prod/app.conf");
    fs_err::remove_file(&conf).unwrap();
    fs_err::create_dir(&conf).unwrap();
    let c2 = fleet.commit("Bo Chen", "web: timeout <b>45</b>", &files(45, "TWO"));
    fleet.converge_all();
    fleet.converge_all();
    let mut browser = signed_in(&fleet.log);
    let page = browser.open(&format!("{}/commits/{c2}", fleet.log.url), "commit-what");
    // Who, from the source; the subject escaped.
    assert!(
        page.contains("by Bo Chen &lt;dev@example.com&gt;: web: timeout &lt;b&gt;45&lt;/b&gt;"),
        "{page}"
    );
    assert!(!page.contains("as its hosts said"), "{page}");
    // The commit's own change, secrets hidden on both sides.
    let change = between(&page, "id=\"change\"", "<h2>Effect");
    assert!(change.contains("manifests/prod.yaml"), "{change}");
    assert!(
        change.contains(&diff_lines("  timeout: 30", "  timeout: 45")),
        "{change}"
    );
    assert!(
        change.contains("roles/web/files/key.pem</code> changed</h3><p class=\"hidden\">"),
        "{change}"
    );
    assert!(change.contains("(sensitive: hidden)"), "{change}");
    for secret in ["KEY-", "INLINE-", "ONE", "TWO"] {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    // The effect, grouped: app.conf on 12 hosts, one diff, web-12 apart.
    let effects = between(&page, "id=\"effects\"", "<h2>Failing");
    let app_conf = format!("file:{}/app.conf", fleet.mount_point().display());
    let group = effects
        .split("class=\"effect\"")
        .find(|e| e.contains(&app_conf))
        .unwrap_or_else(|| panic!("{effects}"));
    assert!(group.contains("changed on 12 hosts"), "{group}");
    assert_eq!(group.matches("<pre class=\"diff\">").count(), 2, "{group}");
    assert!(
        group.contains(&diff_lines("timeout = 30", "timeout = 45")),
        "{group}"
    );
    assert!(
        group.contains("Differs on: <a href=\"/hosts/web-12.prod\">web-12.prod</a>"),
        "{group}"
    );
    assert!(
        group.contains(&diff_lines("timeout = 60", "timeout = 90")),
        "{group}"
    );
    // The failure, with its error inline.
    let failures = between(&page, "id=\"failures\"", "</table>");
    assert!(failures.contains("web-13.prod"), "{failures}");
    assert!(failures.contains("class=\"failed\""), "{failures}");
    assert!(failures.contains("app.conf"), "{failures}");
    // Lead time; hosts reaching it (13 dots); latest run per host.
    assert!(page.contains("id=\"lead\""), "{page}");
    let svg = between(&page, "<svg id=\"reaching\"", "</svg>");
    assert_eq!(svg.matches("class=\"host\"").count(), 13, "{svg}");
    let hosts = between(&page, "<table id=\"reports\"", "</table>");
    assert_eq!(hosts.matches("<tr>").count(), 14, "{hosts}");
    assert!(page.contains("13 older runs"), "{page}");
    let runs = browser.open(
        &format!("{}/commits/{c2}/runs", fleet.log.url),
        "commit-runs",
    );
    assert_eq!(
        between(&runs, "<table id=\"reports\"", "</table>")
            .matches("<tr>")
            .count(),
        27
    );
}

/// A line removed and one added, as a page marks them.
fn diff_lines(removed: &str, added: &str) -> String {
    format!("<span class=\"del\">-{removed}</span>\n<span class=\"add\">+{added}</span>")
}

fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("no {from} in {text}"));
    let rest = &text[start..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// The front page draws the last 7 days' runs per hour, stacked by status,
/// with a mark per commit (its title escaped: SVG is XML).
#[test]
fn the_front_page_draws_a_week_of_runs_with_a_mark_per_commit() {
    let log = LogServer::start(&[]);
    let now = std::time::SystemTime::now();
    let at = |hours_ago: u64| {
        humantime::format_rfc3339_seconds(now - Duration::from_secs(hours_ago * 3600)).to_string()
    };
    let commit = |n: u8| format!("{n:x}").repeat(40);
    // (host, hours ago, status, commit, subject)
    let runs = [
        ("web-1.prod", 2, "unchanged", 0xa, "web: calm"),
        ("web-2.prod", 2, "unchanged", 0xa, "web: calm"),
        ("web-3.prod", 2, "unchanged", 0xa, "web: calm"),
        (
            "web-1.prod",
            30,
            "changed",
            0xb,
            "web: </title><script>alert(1)</script>",
        ),
        (
            "web-2.prod",
            30,
            "changed",
            0xb,
            "web: </title><script>alert(1)</script>",
        ),
        (
            "web-3.prod",
            30,
            "failed",
            0xb,
            "web: </title><script>alert(1)</script>",
        ),
        ("web-1.prod", 8 * 24, "changed", 0xc, "web: long ago"),
    ];
    for (i, (host, hours_ago, status, c, subject)) in runs.into_iter().enumerate() {
        let token = fs_err::read_to_string(log.token(host, "production")).unwrap();
        let failed = usize::from(status == "failed");
        let changed = usize::from(status == "changed");
        let body = json!({
            "id": format!("w{i}"), "host": host, "environment": "production", "roles": [], "mode": "apply",
            "revision": {"commit": commit(c), "author": "Ana <ana@example.com>",
                         "committed_at": at(hours_ago + 1), "subject": subject},
            "source_stale": false, "started_at": at(hours_ago), "duration_ms": 3, "status": status,
            "summary": {"total": 1, "changed": changed, "drift": 0, "failed": failed,
                        "unchanged": 1 - changed - failed, "unknown": 0},
            "resources": []
        });
        let (code, answer) = log.post(Some(token.trim()), body.to_string().as_bytes());
        assert_eq!(code, 201, "{answer}");
    }
    let mut browser = signed_in(&log);
    let page = browser.open(&format!("{}/", log.url), "week");
    let svg = between(&page, "<svg id=\"week\"", "</svg>");
    // Hour -2: unchanged; hour -30: changed and failed; 8 days ago: out.
    assert_eq!(svg.matches("class=\"bar\"").count(), 3, "{svg}");
    assert_eq!(svg.matches(" 3 unchanged</title>").count(), 1, "{svg}");
    assert_eq!(svg.matches(" 1 failed</title>").count(), 1, "{svg}");
    assert_eq!(svg.matches("class=\"deploy\"").count(), 2, "{svg}");
    assert!(
        svg.contains("web: &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>"),
        "{svg}"
    );
    assert!(!page.contains("<script>"), "{page}");
}
