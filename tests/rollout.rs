//! Staged rollouts (SPEC §8), end to end: a fleet of agents — one state
//! directory and one target directory each — pulling one git remote and
//! asking a real log server (which mirrors that remote) whether it is
//! their turn: `--once` cycles where the order matters, and agents running
//! as daemons on their own clocks where time does; and a simulated fleet
//! asking two log servers that share one PostgreSQL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::git;
use crate::log_server::{Db, LogServer, PgCluster, signed_in};
use crate::support::receiver::{Receiver, nobody_listening};
use crate::support::{Run, tend};

/// A git remote, a log server, and hosts that all match `*.prod`.
struct Fleet {
    dir: tempfile::TempDir,
    remote: PathBuf,
    root: PathBuf,
    log: LogServer,
    tokens: BTreeMap<String, PathBuf>,
}

impl Fleet {
    fn new(hosts: &[&str], log_args: &[&str]) -> Fleet {
        Self::new_on(Db::Sqlite, hosts, log_args).0
    }

    /// A fleet whose log keeps its data in `db`; the log mirrors the
    /// fleet's remote (`--source`), its authority on policies and history.
    fn new_on(db: Db, hosts: &[&str], log_args: &[&str]) -> (Fleet, Option<PgCluster>) {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let root = dir.path().join("root");
        fs_err::create_dir_all(&remote).unwrap();
        fs_err::create_dir_all(&root).unwrap();
        git(&remote, &["init", "--quiet", "--initial-branch=main"]);
        let source = remote.display().to_string();
        let mut args = vec!["--source", &source, "--ref", "main"];
        args.extend(log_args);
        let (log, cluster) = LogServer::start_on(db, &args);
        let tokens = hosts
            .iter()
            .map(|h| ((*h).to_owned(), log.token(h, "prod")))
            .collect();
        (
            Fleet {
                dir,
                remote,
                root,
                log,
                tokens,
            },
            cluster,
        )
    }

    /// `tend agent` running for good for `host`, on its own clock, in a
    /// process group of its own (so that what it runs stops with it).
    fn daemon(&self, host: &str, log: &str, interval: &str, splay: &str) -> Daemon {
        self.daemon_with(host, log, &["--interval", interval, "--splay", splay])
    }

    /// `tend agent` running for good with `args`.
    fn daemon_with(&self, host: &str, log: &str, args: &[&str]) -> Daemon {
        use std::os::unix::process::CommandExt as _;
        let child = self
            .agent(host, log)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(if std::env::var_os("TEND_TEST_SERVER_LOGS").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .process_group(0)
            .spawn()
            .unwrap();
        Daemon(child)
    }

    /// Commits v0 (no rollout policy) and starts an agent daemon for each
    /// of `hosts` (2 s interval, 1 s splay); returns once all run v0.
    fn running_v0(&self, hosts: &[&str]) -> Vec<Daemon> {
        self.commit("Ana Diaz", "v0", None, "");
        let daemons = hosts
            .iter()
            .map(|h| self.daemon(h, &self.log.url, "2s", "1s"))
            .collect();
        self.wait_for(Duration::from_secs(60), "every host on v0", || {
            on(self, hosts, "v0")
        });
        daemons
    }

    /// Commits as `commit` does, with the committer's clock `days` back.
    fn commit_dated(
        &self,
        days_ago: u64,
        author: &str,
        motd: &str,
        policy: Option<&str>,
    ) -> String {
        let when = std::time::SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        let date = humantime::format_rfc3339_seconds(when).to_string();
        commit_with_dates(self, &date, author, motd, policy)
    }

    /// Waits until `check` holds, for at most `limit`; how long it took.
    fn wait_for(&self, limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < limit,
                "{what}: not so after {limit:?}; rollouts: {}",
                self.log.get("/v1/rollouts?env=prod").1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    }

    /// Commits a change by `author`: the motd every host gets, the
    /// environment's `rollout:` (YAML, or none), and extra resources.
    fn commit(&self, author: &str, motd: &str, policy: Option<&str>, extra: &str) -> String {
        let env = format!(
            "environment: prod\nvars:\n  root: {}\nhosts:\n  - match: \"*.prod\"\n    roles: [main]\n{}",
            self.root.display(),
            policy.map_or_else(String::new, |p| format!("rollout:\n{p}"))
        );
        let role = format!(
            "resources:\n  - directory: \"{{{{root}}}}/{{{{host.name}}}}\"\n  - file: \"{{{{root}}}}/{{{{host.name}}}}/motd\"\n    content: \"{motd}\\n\"\n{extra}"
        );
        for (rel, text) in [("manifests/prod.yaml", env), ("roles/main/role.yaml", role)] {
            let path = self.remote.join(rel);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        }
        git(&self.remote, &["add", "-A"]);
        let email = format!(
            "{}@example.com",
            author.split(' ').next().unwrap().to_lowercase()
        );
        git(
            &self.remote,
            &[
                "-c",
                &format!("user.name={author}"),
                "-c",
                &format!("user.email={email}"),
                "commit",
                "--quiet",
                "-m",
                &format!("motd: {motd}"),
            ],
        );
        git(&self.remote, &["rev-parse", "HEAD"])
    }

    /// `tend agent` for `host` (its own state directory), asking `log`.
    fn agent(&self, host: &str, log: &str) -> Command {
        let mut cmd = Command::new(crate::support::bin("tend"));
        cmd.arg("agent")
            .arg("--config")
            .arg(self.dir.path().join("no-settings.yaml"))
            .arg("--source")
            .arg(&self.remote)
            .arg("--state-dir")
            .arg(self.dir.path().join("state").join(host))
            .args(["--host", host, "--log", log, "--token-file"])
            .arg(&self.tokens[host])
            .env("NO_COLOR", "1")
            .env_remove("TEND_STATE_DIR");
        cmd
    }

    /// One agent cycle of `host`, asking the fleet's log (or `log`).
    fn cycle_with(&self, host: &str, log: &str, extra: &[&str]) -> Run {
        let out = self
            .agent(host, log)
            .arg("--once")
            .args(extra)
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn cycle(&self, host: &str) -> Run {
        self.cycle_with(host, &self.log.url, &[])
    }

    fn motd(&self, host: &str) -> String {
        fs_err::read_to_string(self.root.join(host).join("motd"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// The rollout of `commit` as `GET /v1/rollouts` lists it.
    fn rollout(&self, commit: &str) -> Value {
        let (code, list) = self
            .log
            .get(&format!("/v1/rollouts?env=prod&commit={commit}"));
        assert_eq!(code, 200, "{list}");
        list["rollouts"][0].clone()
    }

    /// Each host's wave, as `tend rollout preview --log` computes it.
    fn waves(&self) -> BTreeMap<String, u64> {
        let run = tend(&[
            "rollout",
            "preview",
            "prod",
            "--repo",
            self.remote.to_str().unwrap(),
            "--log",
            &self.log.url,
            "--token-file",
            self.log.viewer.to_str().unwrap(),
            "--format",
            "json",
        ]);
        run.expect_code(0);
        let preview: Value = serde_json::from_str(&run.stdout).unwrap();
        preview["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["host"].as_str().unwrap().to_owned(),
                    h["wave"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// A token for operator `name`, in a file.
    fn operator(&self, name: &str) -> PathBuf {
        let run = tend(&[
            "log",
            "token",
            "create",
            "--operator",
            name,
            "--db",
            &self.log.db,
        ]);
        run.expect_code(0);
        let file = self.dir.path().join(format!("{name}.operator"));
        fs_err::write(&file, &run.stdout).unwrap();
        file
    }

    /// `tend log rollout ACTION prod [COMMIT]` with the token in `token_file`.
    fn act(&self, action: &str, commit: &[&str], token_file: &str) -> Run {
        let args = ["log", "rollout", action, "prod"];
        let server = ["--server", &self.log.url, "--token-file", token_file];
        tend(&[&args[..], commit, &server[..]].concat())
    }

    /// The newest report the log has of `host`, whole.
    fn last_report(&self, host: &str) -> Value {
        let (_, page) = self.log.get(&format!("/v1/reports?host={host}&limit=1"));
        let id = page["reports"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.log.get(&format!("/v1/reports/{id}")).1
    }
}

/// An agent daemon; stopped with everything it started when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// A commit whose author and committer dates are `date`.
fn commit_with_dates(
    fleet: &Fleet,
    date: &str,
    author: &str,
    motd: &str,
    policy: Option<&str>,
) -> String {
    let before = git(&fleet.remote, &["rev-parse", "HEAD"]);
    fleet.commit(author, motd, policy, "");
    // Rewrite the commit just made with the old dates, keeping its tree.
    let tree = git(&fleet.remote, &["rev-parse", "HEAD^{tree}"]);
    let email = format!(
        "{}@example.com",
        author.split(' ').next().unwrap().to_lowercase()
    );
    let out = Command::new("git")
        .current_dir(&fleet.remote)
        .args([
            "commit-tree",
            &tree,
            "-p",
            &before,
            "-m",
            &format!("motd: {motd}"),
        ])
        .env("GIT_AUTHOR_NAME", author)
        .env("GIT_AUTHOR_EMAIL", &email)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_NAME", author)
        .env("GIT_COMMITTER_EMAIL", &email)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let commit = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    git(&fleet.remote, &["update-ref", "refs/heads/main", &commit]);
    commit
}

/// A cycle of `host` that must leave it as it is, saying `why`. A host
/// that never converged has nothing to fall back on: it says so and
/// exits 1.
fn waits(fleet: &Fleet, host: &str, before: &str, why: &str) {
    let run = fleet.cycle(host);
    run.expect_code(if before.is_empty() { 1 } else { 0 });
    assert!(
        run.stdout.contains(why) || run.stderr.contains(why),
        "{host} does not say `{why}`: {run:?}"
    );
    assert_eq!(fleet.motd(host), before, "{host} got the commit too early");
}

fn hosts_in(waves: &BTreeMap<String, u64>, wave: u64) -> Vec<String> {
    waves
        .iter()
        .filter(|(_, w)| **w == wave)
        .map(|(h, _)| h.clone())
        .collect()
}

#[test]
fn a_commit_reaches_the_canary_first_then_the_waves_in_order_each_after_its_soak() {
    let hosts = [
        "web-1.prod",
        "web-2.prod",
        "web-3.prod",
        "web-4.prod",
        "web-5.prod",
        "web-6.prod",
    ];
    let mut all = hosts.to_vec();
    all.push("new-7.prod");
    let fleet = Fleet::new(&all, &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in hosts {
        fleet.cycle(h).expect_code(2);
        assert_eq!(fleet.motd(h), "v0");
    }
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"40%\", \"100%\"]\n  soak: 3s\n";
    let c1 = fleet.commit("Ana Diaz", "v1", Some(policy), "");
    let waves = fleet.waves();
    assert_eq!(hosts_in(&waves, 0), ["web-1.prod"]);
    let (first, second) = (hosts_in(&waves, 1), hosts_in(&waves, 2));
    assert_eq!(
        (first.len(), second.len()),
        (2, 3),
        "40% of 5 hosts, then the rest: {waves:?}"
    );

    // Before the canary has run it, nobody else gets it; a host that never
    // converged waits like the others.
    for h in first.iter().chain(&second) {
        fleet.cycle(h).expect_code(0).shows("waiting: wave");
        assert_eq!(fleet.motd(h), "v0", "{h} got the commit before the canary");
    }
    let newcomer = fleet.cycle("new-7.prod");
    assert!(
        newcomer.stderr.contains("not this host's to apply yet"),
        "{newcomer:?}"
    );
    // It takes a wave by its place among the others when it first asks.
    let newcomer_wave = newcomer
        .stderr
        .split("apply yet (wave ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let (mut first, mut second) = (first, second);
    match newcomer_wave.as_str() {
        "1" => first.push("new-7.prod".into()),
        "2" => second.push("new-7.prod".into()),
        other => panic!("wave {other}"),
    }
    assert_eq!(fleet.motd("new-7.prod"), "");
    let report = fleet.last_report("web-2.prod");
    assert_eq!(report["rollout"]["decision"], "waiting", "{report}");
    assert_eq!(report["rollout"]["commit"], c1.as_str());

    fleet
        .cycle("web-1.prod")
        .expect_code(2)
        .shows("admitted in wave 0");
    assert_eq!(fleet.motd("web-1.prod"), "v1");
    // The canary's run must soak before wave 1 opens.
    for h in &first {
        waits(
            &fleet,
            h,
            if h == "new-7.prod" { "" } else { "v0" },
            "soaks",
        );
    }
    assert_eq!(fleet.rollout(&c1)["wave"], 0);
    std::thread::sleep(Duration::from_millis(3200));
    for h in &first {
        fleet.cycle(h).expect_code(2).shows("admitted in wave 1");
        assert_eq!(fleet.motd(h), "v1");
    }
    for h in &second {
        waits(
            &fleet,
            h,
            if h == "new-7.prod" { "" } else { "v0" },
            "soaks",
        );
    }
    std::thread::sleep(Duration::from_millis(3200));
    for h in &second {
        fleet.cycle(h).expect_code(2).shows("admitted in wave");
        assert_eq!(fleet.motd(h), "v1");
    }
    let rollout = fleet.rollout(&c1);
    assert_eq!(rollout["state"], "done", "{rollout}");
    assert_eq!(rollout["admitted"], 7, "{rollout}");
    assert_eq!(rollout["reported"], 7, "{rollout}");
    assert_eq!(rollout["author"], "Ana Diaz <ana@example.com>");
    // A second cycle changes nothing and asks nothing.
    fleet.cycle("web-2.prod").expect_code(0);
}

const BROKEN: &str =
    "  - exec: broken\n    command: \"/bin/false\"\n    creates: \"{{root}}/never\"\n";

#[test]
fn a_commit_that_fails_on_the_canary_halts_until_resumed_and_a_fix_or_an_abort_ends_it() {
    let chat = Receiver::start();
    let hosts = [
        "web-1.prod",
        "web-2.prod",
        "web-3.prod",
        "web-4.prod",
        "web-5.prod",
    ];
    let fleet = Fleet::new(&hosts, &["--notify", &chat.url, "--notify-window", "100ms"]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in hosts {
        fleet.cycle(h).expect_code(2);
    }
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"50%\", \"100%\"]\n  soak: 0s\n  halt_on: { failed: 1 }\n";
    let bad = fleet.commit("Bob Broken", "v1", Some(policy), BROKEN);
    let waves = fleet.waves();
    let (first, second) = (hosts_in(&waves, 1), hosts_in(&waves, 2));
    fleet.cycle(&first[0]).expect_code(0).shows("waiting");

    // The canary applies it and fails: the rollout halts.
    fleet.cycle("web-1.prod").expect_code(6);
    assert_eq!(fleet.motd("web-1.prod"), "v1");
    let rollout = fleet.rollout(&bad);
    assert_eq!(rollout["state"], "halted", "{rollout}");
    assert_eq!(rollout["halted_by"]["host"], "web-1.prod");
    assert_eq!(rollout["halted_by"]["resource"], "exec:broken");
    assert_eq!(rollout["author"], "Bob Broken <bob@example.com>");
    for h in first.iter().chain(&second) {
        fleet.cycle(h).expect_code(0).shows("the rollout is halted");
        assert_eq!(fleet.motd(h), "v0", "{h} got a halted commit");
    }
    // Everyone can see which commit, which host, which resource and who.
    let status = tend(&[
        "log",
        "rollout",
        "status",
        "prod",
        "--server",
        &fleet.log.url,
        "--token-file",
        fleet.log.viewer.to_str().unwrap(),
    ]);
    status.expect_code(0);
    for text in [
        &bad[..12],
        "HALTED",
        "web-1.prod",
        "exec:broken",
        "Bob Broken",
    ] {
        status.shows(text);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        let found = chat
            .received()
            .into_iter()
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
            .find(|t| t.contains("HALTED"));
        if let Some(text) = found {
            break text;
        }
        assert!(Instant::now() < deadline, "no chat message about the halt");
        std::thread::sleep(Duration::from_millis(50));
    };
    for text in [
        &bad[..10],
        "web-1.prod",
        "exec:broken",
        "Bob Broken",
        "prod",
    ] {
        assert!(message.contains(text), "`{text}` missing from: {message}");
    }
    // The dashboard, as a browser shows it: the home page and the
    // commit's deploy-log page.
    let mut browser = signed_in(&fleet.log);
    let home = browser.open(&format!("{}/", fleet.log.url), "rollout-halted");
    for text in [
        "id=\"rollouts\"",
        "halted",
        "web-1.prod",
        "exec:broken",
        "Bob Broken",
    ] {
        assert!(home.contains(text), "the dashboard lacks `{text}`");
    }
    let page = browser.open(
        &format!("{}/commits/{bad}", fleet.log.url),
        "rollout-commit",
    );
    assert!(
        page.contains("web-1.prod") && page.contains("halted"),
        "{page}"
    );
    // The hosts reaching it, wave by wave: the canary alone so far.
    assert!(page.contains("<title>web-1.prod (canary) at "), "{page}");
    // The canary keeps its commit, and its drift is still corrected.
    fs_err::remove_file(fleet.root.join("web-1.prod/motd")).unwrap();
    fleet.cycle("web-1.prod").expect_code(6);
    assert_eq!(fleet.motd("web-1.prod"), "v1");

    // Only an operator resumes; the next host of wave 1 then gets it,
    // fails too, and halts it again.
    let host_token = fleet.tokens["web-2.prod"].to_str().unwrap().to_owned();
    let refused = fleet.act("resume", &[], &host_token);
    refused.expect_code(1);
    assert!(refused.stderr.contains("only an operator"), "{refused:?}");
    let ops = fleet.operator("ops");
    let ops = ops.to_str().unwrap();
    fleet
        .act("resume", &[], ops)
        .expect_code(0)
        .shows("ROLLING")
        .shows("resumed by ops");
    fleet.cycle(&first[0]).expect_code(6);
    assert_eq!(fleet.motd(&first[0]), "v1");
    let rollout = fleet.rollout(&bad);
    assert_eq!(rollout["state"], "halted");
    assert_eq!(rollout["halted_by"]["host"], first[0].as_str());
    fleet.cycle(&first[1]).expect_code(0).shows("halted");
    assert_eq!(fleet.motd(&first[1]), "v0");

    // A fix supersedes the halted rollout and goes out in waves.
    let fix = fleet.commit("Ana Diaz", "v2", Some(policy), "");
    fleet.cycle(&second[0]).expect_code(0).shows("waiting");
    assert_eq!(fleet.rollout(&bad)["state"], "superseded");
    assert_eq!(fleet.rollout(&bad)["superseded_by"], fix.as_str());
    for h in ["web-1.prod"]
        .iter()
        .map(|h| (*h).to_owned())
        .chain(first.clone())
        .chain(second.clone())
    {
        fleet.cycle(&h).expect_code(2);
        assert_eq!(fleet.motd(&h), "v2", "{h}");
    }
    assert_eq!(fleet.rollout(&fix)["state"], "done");

    // Aborted: the canary keeps what it got, nobody else gets it.
    let next = fleet.commit("Carl Quick", "v3", Some(policy), "");
    fleet.cycle("web-1.prod").expect_code(2);
    assert_eq!(fleet.motd("web-1.prod"), "v3");
    fleet
        .act("abort", &[&next[..8]], ops)
        .expect_code(0)
        .shows("ABORTED");
    for h in first.iter().chain(&second) {
        fleet.cycle(h).expect_code(0).shows("aborted by ops");
        assert_eq!(fleet.motd(h), "v2");
    }
    let again = fleet.act("resume", &[&next[..8]], ops);
    again.expect_code(1);
    assert!(again.stderr.contains("aborted, not halted"), "{again:?}");
}

#[test]
fn with_the_log_down_a_host_holds_its_commit_unless_told_to_proceed_and_says_so() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in hosts {
        fleet.cycle(h).expect_code(2);
    }
    let c1 = fleet.commit("Ana Diaz", "v1", Some("  waves: [\"100%\"]\n"), "");
    let down = nobody_listening();
    fleet
        .cycle_with("web-2.prod", &down, &[])
        .expect_code(0)
        .shows("held back");
    assert_eq!(fleet.motd("web-2.prod"), "v0");
    fleet
        .cycle_with("web-3.prod", &down, &["--rollout-offline", "proceed"])
        .expect_code(2)
        .shows("applied without the log");
    assert_eq!(fleet.motd("web-3.prod"), "v1");

    // The log is back: the spooled reports say what happened.
    fleet.cycle("web-2.prod").expect_code(2);
    fleet.cycle("web-3.prod").expect_code(0);
    let (_, page) = fleet.log.get("/v1/reports?host=web-2.prod&limit=10");
    let decisions: Vec<String> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let body = fleet
                .log
                .get(&format!("/v1/reports/{}", r["id"].as_str().unwrap()))
                .1;
            body["rollout"]["decision"]
                .as_str()
                .unwrap_or("-")
                .to_owned()
        })
        .collect();
    assert_eq!(decisions, ["admitted", "held", "-"], "newest first");
    let (_, page) = fleet.log.get("/v1/reports?host=web-3.prod&limit=10");
    let proceeded = page["reports"].as_array().unwrap().iter().any(|r| {
        let body = fleet
            .log
            .get(&format!("/v1/reports/{}", r["id"].as_str().unwrap()))
            .1;
        body["rollout"]["decision"] == "proceeded" && body["revision"]["commit"] == c1.as_str()
    });
    assert!(proceeded, "web-3's report does not say it proceeded");
    assert_eq!(fleet.motd("web-2.prod"), "v1");
}

/// A run report of `commit` from a simulated host of `prod`.
fn report(host: &str, commit: &str, failed: bool) -> Vec<u8> {
    report_in("prod", host, commit, failed)
}

/// A run report of `commit` from a simulated host of `environment`.
pub fn report_in(environment: &str, host: &str, commit: &str, failed: bool) -> Vec<u8> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let resources = if failed {
        json!([{ "id": "package:nginx", "status": "failed", "error": "E: Unable to locate package", "duration_ms": 3 }])
    } else {
        json!([])
    };
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "host": host, "environment": environment,
        "roles": ["web"], "mode": "apply",
        "revision": { "commit": commit, "author": "Ana Diaz <ana@example.com>",
                      "committed_at": "2026-11-24T10:00:00Z", "subject": "web: nginx" },
        "source_stale": false, "started_at": now, "duration_ms": 9, "interval_s": 1800,
        "status": if failed { "failed" } else { "unchanged" },
        "summary": { "total": 1, "changed": 0, "drift": 0, "failed": usize::from(failed),
                     "unchanged": usize::from(!failed), "unknown": 0 },
        "resources": resources,
    })
    .to_string()
    .into_bytes()
}

/// `POST /v1/rollouts/admit` as an agent sends it: who, where, which
/// commit.
fn ask(log: &LogServer, token: &str, host: &str, commit: &str) -> (u16, Value) {
    let body = json!({ "environment": "prod", "commit": commit, "host": host });
    log.post_to(
        "/v1/rollouts/admit",
        Some(token),
        body.to_string().as_bytes(),
    )
}

/// Forty hosts ask at once, spread over the servers: exactly the first
/// wave is admitted, and a failure reported to one server halts the
/// rollout on all of them.
fn simulated_fleet_never_admits_past_a_wave(fleet: &Fleet, servers: &[&LogServer]) {
    let hosts: Vec<String> = (0..40).map(|i| format!("app-{i:02}.prod")).collect();
    let tokens: Vec<String> = hosts
        .iter()
        .map(|h| {
            fs_err::read_to_string(servers[0].token(h, "prod"))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    let c0 = fleet.commit("Ana Diaz", "v0", None, "");
    for (i, (h, t)) in hosts.iter().zip(&tokens).enumerate() {
        let (code, body) = servers[i % servers.len()].post(Some(t), &report(h, &c0, false));
        assert_eq!(code, 201, "{h}: {body}");
    }
    let c1 = fleet.commit(
        "Ana Diaz",
        "v1",
        Some("  waves: [\"10%\", \"100%\"]\n  soak: 0s\n"),
        "",
    );
    let barrier = std::sync::Barrier::new(hosts.len());
    let answers: Vec<(String, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .zip(&tokens)
            .enumerate()
            .map(|(i, (h, t))| {
                let (barrier, server, c1) = (&barrier, servers[i % servers.len()], &c1);
                s.spawn(move || {
                    barrier.wait();
                    let (code, answer) = ask(server, t, h, c1);
                    assert_eq!(code, 200, "{answer}");
                    (h.clone(), answer)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let admitted: Vec<&String> = answers
        .iter()
        .filter(|(_, a)| a["admitted"] == true)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(admitted.len(), 4, "10% of 40 hosts: {answers:?}");
    // The waiting ones ask again: still nobody past wave 1.
    for (i, (h, t)) in hosts.iter().zip(&tokens).enumerate() {
        let (_, answer) = ask(servers[(i + 1) % servers.len()], t, h, &c1);
        assert_eq!(
            answer["admitted"] == true,
            admitted.contains(&h),
            "{h}: {answer}"
        );
    }
    // Someone asking for another host, or with no token, is refused.
    let (code, _) = ask(servers[0], &tokens[0], &hosts[1], &c1);
    assert_eq!(code, 403);
    // A commit the repository does not have: a clear refusal, not a
    // rollout.
    let (code, answer) = ask(
        servers[0],
        &tokens[0],
        &hosts[0],
        "0123456789abcdef0123456789abcdef01234567",
    );
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not in the log's copy of the source"),
        "{answer}"
    );
    // A failure from an admitted host, told to the first server, halts it
    // for every server.
    let failing = admitted[0];
    let token = &tokens[hosts.iter().position(|h| h == failing).unwrap()];
    let (code, _) = servers[0].post(Some(token), &report(failing, &c1, true));
    assert_eq!(code, 201);
    for server in servers {
        let (_, list) = server.get("/v1/rollouts?env=prod");
        let r = &list["rollouts"][0];
        assert_eq!(r["state"], "halted", "{list}");
        assert_eq!(r["halted_by"]["host"], failing.as_str());
        assert_eq!(r["halted_by"]["resource"], "package:nginx");
        let waiting = hosts.iter().position(|h| !admitted.contains(&h)).unwrap();
        let (_, answer) = ask(server, &tokens[waiting], &hosts[waiting], &c1);
        assert_eq!(answer["admitted"], false);
        assert!(
            answer["reason"].as_str().unwrap().contains("halted"),
            "{answer}"
        );
    }
}

#[test]
fn a_simulated_fleet_on_sqlite_is_admitted_one_wave_at_a_time() {
    let fleet = Fleet::new(&[], &[]);
    simulated_fleet_never_admits_past_a_wave(&fleet, &[&fleet.log]);
}

#[test]
fn two_log_servers_on_one_postgresql_never_admit_past_a_wave_and_both_see_a_halt() {
    let (fleet, _cluster) = Fleet::new_on(Db::Postgres, &[], &[]);
    let second = LogServer::alongside(&fleet.log);
    simulated_fleet_never_admits_past_a_wave(&fleet, &[&fleet.log, &second]);
}

#[test]
fn a_running_agent_asks_again_when_the_soak_ends_not_an_interval_later() {
    let fleet = Fleet::new(&["web-1.prod", "web-2.prod"], &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in ["web-1.prod", "web-2.prod"] {
        fleet.cycle(h).expect_code(2);
    }
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 4s\n";
    fleet.commit("Ana Diaz", "v1", Some(policy), "");
    fleet.cycle("web-1.prod").expect_code(2);
    // The agent for good, once an hour: its first cycle hears "soaking".
    let mut agent = fleet
        .agent("web-2.prod", &fleet.log.url)
        .args(["--interval", "1h", "--splay", "0s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while fleet.motd("web-2.prod") != "v1" && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(agent.wait().unwrap().success());
    assert_eq!(
        fleet.motd("web-2.prod"),
        "v1",
        "not admitted after the soak"
    );
    assert!(
        took >= Duration::from_secs(3),
        "applied before the soak ended: {took:?}"
    );
    let (_, page) = fleet.log.get("/v1/reports?host=web-2.prod&limit=3");
    let reports = page["reports"].as_array().unwrap();
    assert!(
        reports.len() >= 3,
        "one waiting run, then the admitted one: {page}"
    );
}

/// Each host's first run of `commit` as the log has it: when it started
/// (seconds since the epoch).
fn first_runs(fleet: &Fleet, commit: &str) -> BTreeMap<String, i64> {
    let (_, page) = fleet
        .log
        .get(&format!("/v1/reports?commit={commit}&limit=1000"));
    let mut first = BTreeMap::new();
    for r in page["reports"].as_array().unwrap() {
        let at = humantime::parse_rfc3339(r["started_at"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = i64::try_from(at).unwrap();
        let host = r["host"].as_str().unwrap().to_owned();
        first
            .entry(host)
            .and_modify(|t: &mut i64| *t = (*t).min(at))
            .or_insert(at);
    }
    first
}

fn on(fleet: &Fleet, hosts: &[&str], motd: &str) -> bool {
    hosts.iter().all(|h| fleet.motd(h) == motd)
}

const SIX: [&str; 6] = [
    "web-1.prod",
    "web-2.prod",
    "web-3.prod",
    "web-4.prod",
    "web-5.prod",
    "web-6.prod",
];

/// Agents running on their own clocks (2 s, with splay) report far more
/// often than the 5 s soak: the soak still ends, counted from each wave's
/// last *first* clean report, and the commit reaches everyone in order.
#[test]
fn daemons_that_report_more_often_than_the_soak_still_carry_a_commit_through_every_wave() {
    let fleet = Fleet::new(&SIX, &[]);
    let _daemons = fleet.running_v0(&SIX);
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"40%\", \"100%\"]\n  soak: 5s\n";
    let c1 = fleet.commit("Ana Diaz", "v1", Some(policy), "");
    let waves = fleet.waves();
    let took = fleet.wait_for(Duration::from_secs(90), "every host on v1", || {
        on(&fleet, &SIX, "v1")
    });
    fleet.wait_for(Duration::from_secs(20), "the rollout done", || {
        fleet.rollout(&c1)["state"] == "done"
    });
    // Two soaks and three waves of 2 s runs: well under the 90 s allowed.
    assert!(took < Duration::from_secs(60), "{took:?}");
    let first = first_runs(&fleet, &c1);
    let opened = |wave: u64| {
        hosts_in(&waves, wave)
            .iter()
            .map(|h| first[h])
            .max()
            .unwrap()
    };
    for wave in [1, 2] {
        for h in hosts_in(&waves, wave) {
            assert!(
                first[&h] >= opened(wave - 1) + 5,
                "{h} (wave {wave}) ran v1 at {} before wave {} soaked (last first run {}): {first:?}",
                first[&h],
                wave - 1,
                opened(wave - 1)
            );
        }
    }
}

/// A host admitted whose run hangs holds its wave only until the
/// deadline: then it counts as failed, the rollout halts, and everyone
/// is told which host and why. Before that, status names it.
#[test]
fn an_admitted_host_that_hangs_holds_its_wave_until_its_deadline_then_halts_it_by_name() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    let _daemons = fleet.running_v0(&hosts);
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 0s\n  deadline: 8s\n";
    let hang = "  - exec: hang\n    command: \"sleep 600\"\n    creates: \"{{root}}/never\"\n";
    let c1 = fleet.commit("Hal Hung", "v1", Some(policy), hang);
    fleet.wait_for(Duration::from_secs(30), "the canary admitted", || {
        fleet.rollout(&c1)["admitted"] == 1
    });
    let status = tend(&[
        "log",
        "rollout",
        "status",
        "prod",
        "--server",
        &fleet.log.url,
        "--token-file",
        fleet.log.viewer.to_str().unwrap(),
    ]);
    status
        .expect_code(0)
        .shows("ROLLING")
        .shows("web-1.prod")
        .shows("holding");
    let halted = fleet.wait_for(Duration::from_secs(30), "the rollout halted", || {
        fleet.rollout(&c1)["state"] == "halted"
    });
    let r = fleet.rollout(&c1);
    assert_eq!(r["halted_by"]["host"], "web-1.prod", "{r}");
    let error = r["halted_by"]["error"].as_str().unwrap();
    assert!(error.contains("no report within 8s"), "{error}");
    assert!(halted < Duration::from_secs(20), "{halted:?}");
    let status = tend(&[
        "log",
        "rollout",
        "status",
        "prod",
        "--server",
        &fleet.log.url,
        "--token-file",
        fleet.log.viewer.to_str().unwrap(),
    ]);
    status
        .expect_code(0)
        .shows("HALTED")
        .shows("web-1.prod")
        .shows("no report within 8s")
        .shows("Hal Hung");
    std::thread::sleep(Duration::from_secs(3));
    assert!(on(&fleet, &["web-2.prod", "web-3.prod"], "v0"));
}

/// Order is ancestry, not dates: a commit whose committer clock says
/// yesterday still follows the one before it.
#[test]
fn a_commit_dated_yesterday_rolls_out_after_a_newer_dated_one() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    let _daemons = fleet.running_v0(&hosts);
    let policy = "  waves: [\"1\", \"100%\"]\n  soak: 1s\n";
    let c1 = fleet.commit("Ana Diaz", "v1", Some(policy), "");
    fleet.wait_for(Duration::from_secs(60), "every host on v1", || {
        on(&fleet, &hosts, "v1")
    });
    let c2 = fleet.commit_dated(1, "Rob Rebase", "v2", Some(policy));
    fleet.wait_for(Duration::from_secs(60), "every host on v2", || {
        on(&fleet, &hosts, "v2")
    });
    fleet.wait_for(Duration::from_secs(20), "the rollout of v2 done", || {
        fleet.rollout(&c2)["state"] == "done"
    });
    assert_eq!(fleet.rollout(&c1)["state"], "done");
    assert!(
        fleet.rollout(&c2)["committed_at"].as_str().unwrap()
            < fleet.rollout(&c1)["committed_at"].as_str().unwrap()
    );
}

/// `resume` forgives the canary's failure, and its later runs failing the
/// same way: wave 1 gets the commit.
#[test]
fn resume_lets_the_next_wave_in_while_the_canary_still_fails() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod", "web-4.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    let _daemons = fleet.running_v0(&hosts);
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 0s\n";
    let canary_fails = "  - exec: canary-only\n    command: \"test {{host.name}} != web-1.prod\"\n    creates: \"{{root}}/never\"\n";
    let c1 = fleet.commit("Bob Broken", "v1", Some(policy), canary_fails);
    fleet.wait_for(Duration::from_secs(30), "the rollout halted", || {
        fleet.rollout(&c1)["state"] == "halted"
    });
    let ops = fleet.operator("ops");
    fleet
        .act("resume", &[], ops.to_str().unwrap())
        .expect_code(0)
        .shows("resumed by ops");
    let others = ["web-2.prod", "web-3.prod", "web-4.prod"];
    fleet.wait_for(Duration::from_secs(60), "wave 1 on v1", || {
        on(&fleet, &others, "v1")
    });
    fleet.wait_for(Duration::from_secs(20), "the rollout done", || {
        fleet.rollout(&c1)["state"] == "done"
    });
    // The canary kept failing all along, forgiven.
    let (_, page) = fleet
        .log
        .get("/v1/reports?host=web-1.prod&status=failed&limit=100");
    assert!(page["reports"].as_array().unwrap().len() >= 2, "{page}");
}

/// `on_halt: rollback`: the canary that applied the halted commit goes
/// back to the commit the fleet had, by the log's decision (no
/// `--allow-rewind`); a fix then rolls out as usual.
#[test]
fn rollback_returns_the_canarys_files_and_a_fix_goes_out_after() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    let _daemons = fleet.running_v0(&hosts);
    let c0 = git(&fleet.remote, &["rev-parse", "HEAD"]);
    let policy =
        "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 0s\n  on_halt: rollback\n";
    let canary_fails = "  - exec: canary-only\n    command: \"test {{host.name}} != web-1.prod\"\n    creates: \"{{root}}/never\"\n";
    let bad = fleet.commit("Bob Broken", "v1", Some(policy), canary_fails);
    fleet.wait_for(Duration::from_secs(30), "the rollout halted", || {
        fleet.rollout(&bad)["state"] == "halted"
    });
    fleet.wait_for(Duration::from_secs(30), "the canary back on v0", || {
        fleet.motd("web-1.prod") == "v0"
    });
    // Its report reaches the log just after the files change.
    fleet.wait_for(Duration::from_secs(10), "the rollback reported", || {
        fleet.last_report("web-1.prod")["revision"]["commit"] == c0.as_str()
    });
    let report = fleet.last_report("web-1.prod");
    assert_eq!(report["revision"]["commit"], c0.as_str(), "{report}");
    assert_eq!(report["rollout"]["decision"], "rolled_back", "{report}");
    let reason = report["rollout"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("rollback of {}: halted", &bad[..12])),
        "{reason}"
    );
    assert_eq!(fleet.rollout(&bad)["rollback_to"], c0.as_str());
    let status = tend(&[
        "log",
        "rollout",
        "status",
        "prod",
        "--server",
        &fleet.log.url,
        "--token-file",
        fleet.log.viewer.to_str().unwrap(),
    ]);
    status
        .expect_code(0)
        .shows("rolled back to")
        .shows(&c0[..12]);
    assert!(on(&fleet, &["web-2.prod", "web-3.prod"], "v0"));
    // The fix descends from the halted commit: it supersedes it.
    let fix = fleet.commit("Ana Diaz", "v2", Some(policy), "");
    fleet.wait_for(Duration::from_secs(60), "every host on v2", || {
        on(&fleet, &hosts, "v2")
    });
    assert_eq!(fleet.rollout(&bad)["state"], "superseded");
    fleet.wait_for(Duration::from_secs(20), "the fix done", || {
        fleet.rollout(&fix)["state"] == "done"
    });
}

/// Two log servers on one PostgreSQL, agents split between them, on their
/// own clocks: one rollout, in order, done on both.
#[test]
fn daemons_split_over_two_log_servers_on_one_postgresql_roll_out_one_commit() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod", "web-4.prod"];
    let (fleet, _cluster) = Fleet::new_on(Db::Postgres, &hosts, &[]);
    let second = LogServer::alongside(&fleet.log);
    fleet.commit("Ana Diaz", "v0", None, "");
    let _daemons: Vec<Daemon> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let log = if i % 2 == 0 {
                &fleet.log.url
            } else {
                &second.url
            };
            fleet.daemon(h, log, "2s", "1s")
        })
        .collect();
    fleet.wait_for(Duration::from_secs(60), "every host on v0", || {
        on(&fleet, &hosts, "v0")
    });
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"50%\", \"100%\"]\n  soak: 2s\n";
    let c1 = fleet.commit("Ana Diaz", "v1", Some(policy), "");
    fleet.wait_for(Duration::from_secs(90), "every host on v1", || {
        on(&fleet, &hosts, "v1")
    });
    fleet.wait_for(Duration::from_secs(20), "the rollout done", || {
        fleet.rollout(&c1)["state"] == "done"
    });
    let (_, list) = second.get(&format!("/v1/rollouts?env=prod&commit={c1}"));
    assert_eq!(list["rollouts"][0]["state"], "done", "{list}");
    assert_eq!(list["rollouts"][0]["reported"], 4, "{list}");
    let first = first_runs(&fleet, &c1);
    let canary = first["web-1.prod"];
    assert!(
        first
            .iter()
            .all(|(h, t)| h == "web-1.prod" || *t >= canary + 2),
        "{first:?}"
    );
}

/// The log believes a host only about itself: a policy, author or date in
/// an admission question is not read; the repository's are.
#[test]
fn the_gate_takes_the_policy_and_the_author_from_the_repository_not_from_the_host() {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in hosts {
        fleet.cycle(h).expect_code(2);
    }
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 1h\n";
    let c1 = fleet.commit("Ana Diaz", "v1", Some(policy), "");
    let token = fs_err::read_to_string(&fleet.tokens["web-2.prod"]).unwrap();
    let forged = json!({
        "environment": "prod", "commit": c1, "host": "web-2.prod",
        "policy": { "canary": [], "waves": ["100%"], "soak_s": 0 },
        "author": "Mallory <m@example.net>", "subject": "nothing to see",
        "committed_at": "2030-01-01T00:00:00Z", "interval_s": 1,
    });
    let (code, answer) = fleet.log.post_to(
        "/v1/rollouts/admit",
        Some(token.trim()),
        forged.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["admitted"], false, "{answer}");
    assert_eq!(answer["host_wave"], 1, "{answer}");
    let r = fleet.rollout(&c1);
    assert_eq!(r["author"], "Ana Diaz <ana@example.com>");
    assert_eq!(r["subject"], "motd: v1");
    assert_eq!(r["policy"]["canary"][0], "web-1.prod");
    assert_eq!(r["policy"]["soak_s"], 3600);
    // Another environment than its token's: refused before anything else.
    let (code, answer) = fleet.log.post_to(
        "/v1/rollouts/admit",
        Some(token.trim()),
        json!({ "environment": "staging", "commit": c1, "host": "web-2.prod" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(code, 403, "{answer}");
    // An environment the commit does not have: a clear refusal.
    let staging = fs_err::read_to_string(fleet.log.token("web-9.staging", "staging")).unwrap();
    let (code, answer) = fleet.log.post_to(
        "/v1/rollouts/admit",
        Some(staging.trim()),
        json!({ "environment": "staging", "commit": c1, "host": "web-9.staging" })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("staging"),
        "{answer}"
    );
}

/// Without `--source` the log gates nothing, and says how to fix it; the
/// agent holds, whatever `--rollout-offline` says, since the log answered.
#[test]
fn a_log_without_a_source_refuses_to_gate_and_agents_hold_even_with_proceed() {
    let hosts = ["web-1.prod", "web-2.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in hosts {
        fleet.cycle(h).expect_code(2);
    }
    fleet.commit("Ana Diaz", "v1", Some("  waves: [\"100%\"]\n"), "");
    let blind = LogServer::start(&[]);
    let token = fs_err::read_to_string(&fleet.tokens["web-1.prod"]).unwrap();
    let (code, answer) = blind.post_to(
        "/v1/rollouts/admit",
        Some(token.trim()),
        json!({ "environment": "prod", "commit": "abc", "host": "web-1.prod" })
            .to_string()
            .as_bytes(),
    );
    assert!(code == 401 || code == 409, "{code} {answer}");
    // An answer, even a 503, is the log's word: hold.
    let busy = Receiver::start();
    busy.answer(503);
    fleet
        .cycle_with("web-2.prod", &busy.url, &["--rollout-offline", "proceed"])
        .expect_code(0)
        .shows("held back")
        .shows("answered 503");
    assert_eq!(fleet.motd("web-2.prod"), "v0");
}

/// A host that refuses a commit reports it, even one that never
/// converged; the refusal counts against the commit and halts it.
#[test]
fn a_refusal_counts_against_the_commit_even_from_a_host_that_never_converged() {
    let hosts = ["web-1.prod", "web-2.prod", "web-9.prod"];
    let fleet = Fleet::new(&hosts, &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    for h in ["web-1.prod", "web-2.prod"] {
        fleet.cycle(h).expect_code(2);
    }
    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"100%\"]\n  soak: 0s\n";
    // Compiles only where a file of the host's name exists: web-1.
    let per_host =
        "  - file: \"{{root}}/{{host.name}}/extra\"\n    source: \"{{host.name}}.txt\"\n";
    fs_err::create_dir_all(fleet.remote.join("roles/main/files")).unwrap();
    fs_err::write(
        fleet.remote.join("roles/main/files/web-1.prod.txt"),
        "one\n",
    )
    .unwrap();
    let c1 = fleet.commit("Cy Okafor", "v1", Some(policy), per_host);
    fleet.cycle("web-1.prod").expect_code(2);
    assert_eq!(fleet.motd("web-1.prod"), "v1");
    let run = fleet.cycle("web-9.prod");
    run.expect_code(1);
    assert!(run.stderr.contains("was not applied"), "{run:?}");
    let (_, page) = fleet.log.get("/v1/reports?host=web-9.prod&limit=5");
    let id = page["reports"][0]["id"]
        .as_str()
        .expect("web-9 reported")
        .to_owned();
    let body = fleet.log.get(&format!("/v1/reports/{id}")).1;
    assert_eq!(body["rejected"]["commit"], c1.as_str(), "{body}");
    assert!(
        body["rejected"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("web-9.prod.txt"),
        "{body}"
    );
    let r = fleet.rollout(&c1);
    assert_eq!(r["state"], "halted", "{r}");
    assert_eq!(r["halted_by"]["host"], "web-9.prod", "{r}");
    fleet.cycle("web-2.prod").expect_code(0).shows("halted");
    assert_eq!(fleet.motd("web-2.prod"), "v0");
}

/// A report the log refuses for its token (401, 403) stays in the spool:
/// the token may be being rotated.
#[test]
fn a_report_refused_for_its_token_stays_in_the_spool() {
    let fleet = Fleet::new(&["web-1.prod"], &[]);
    fleet.commit("Ana Diaz", "v0", None, "");
    fs_err::write(&fleet.tokens["web-1.prod"], "not-the-token\n").unwrap();
    let run = fleet.cycle("web-1.prod");
    run.expect_code(2);
    assert!(run.stderr.contains("answered 401"), "{run:?}");
    assert!(run.stderr.contains("stays in the spool"), "{run:?}");
    let spool = fleet.dir.path().join("state/web-1.prod/spool");
    let pending: Vec<_> = fs_err::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        !spool.join("set-aside").exists()
            || fs_err::read_dir(spool.join("set-aside"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// Agents on a half-hour interval (SPEC §9): the push reaches the canary
/// through its watch, and each later wave is woken by the log the moment
/// it opens, not at the hosts' next slot; a rollback is sent at once too.
/// With `two_servers`, the hosts are split over two log servers on one
/// PostgreSQL and only the first is told of the push: the second learns
/// of it, and of the waves the first opens, through the database.
fn waves_and_rollbacks_reach_hosts_on_a_half_hour_interval_in_seconds(two_servers: bool) {
    let hosts = ["web-1.prod", "web-2.prod", "web-3.prod", "web-4.prod"];
    let poll = ["--source-poll", "1h"];
    let (fleet, _cluster) = if two_servers {
        Fleet::new_on(Db::Postgres, &hosts, &poll)
    } else {
        (Fleet::new(&hosts, &poll), None)
    };
    let second = two_servers.then(|| LogServer::alongside(&fleet.log));
    let operator = fs_err::read_to_string(fleet.operator("ana")).unwrap();
    let push = |subject: &str, policy: &str, extra: &str| {
        let commit = fleet.commit("Ana Diaz", subject, Some(policy), extra);
        let (status, head) = fleet
            .log
            .post_to("/v1/source/notify", Some(operator.trim()), b"");
        assert_eq!(status, 200, "{head}");
        (commit, Instant::now())
    };
    fleet.commit("Ana Diaz", "v0", None, "");
    let _daemons: Vec<Daemon> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let log = match &second {
                Some(second) if i % 2 == 1 => &second.url,
                _ => &fleet.log.url,
            };
            let args = ["--interval", "30m", "--splay", "1s", "--watch-splay", "2s"];
            fleet.daemon_with(h, log, &args)
        })
        .collect();
    fleet.wait_for(Duration::from_secs(60), "every host on v0", || {
        on(&fleet, &hosts, "v0")
    });

    let policy = "  canary: [\"web-1.prod\"]\n  waves: [\"50%\", \"100%\"]\n  soak: 3s\n  on_halt: rollback\n";
    let (c1, pushed) = push("v1", policy, "");
    let waves = fleet.waves();
    fleet.wait_for(Duration::from_secs(60), "every host on v1", || {
        on(&fleet, &hosts, "v1")
    });
    let took = pushed.elapsed();
    fleet.wait_for(Duration::from_secs(20), "the rollout done", || {
        fleet.rollout(&c1)["state"] == "done"
    });
    // Two soaks of 3 s, the canary's watch jitter (≤ 2 s), three runs and
    // a second per wave for the log to see the soak end: with an interval
    // of 30 minutes, only wakes get there in this time.
    assert!(took < Duration::from_secs(40), "{took:?}");
    let first = first_runs(&fleet, &c1);
    for wave in [1, 2] {
        let before = hosts_in(&waves, wave - 1)
            .iter()
            .map(|h| first[h])
            .max()
            .unwrap();
        for h in hosts_in(&waves, wave) {
            assert!(
                first[&h] >= before + 3,
                "{h} before wave {} soaked: {first:?}",
                wave - 1
            );
        }
    }

    // A commit that fails on the canary: halted, and the canary sent back
    // to v1 at once.
    let canary_fails = "  - exec: canary-only\n    command: \"test {{host.name}} != web-1.prod\"\n    creates: \"{{root}}/never\"\n";
    let (bad, _) = push("v2", policy, canary_fails);
    fleet.wait_for(Duration::from_secs(30), "the rollout halted", || {
        fleet.rollout(&bad)["state"] == "halted"
    });
    let halted = Instant::now();
    fleet.wait_for(Duration::from_secs(30), "the canary rolled back", || {
        fleet.last_report("web-1.prod")["rollout"]["decision"] == "rolled_back"
    });
    assert!(
        halted.elapsed() < Duration::from_secs(15),
        "{:?}",
        halted.elapsed()
    );
    assert_eq!(fleet.motd("web-1.prod"), "v1");
    assert!(on(&fleet, &hosts[1..], "v1"));
}

#[test]
fn daemons_on_a_half_hour_interval_are_woken_for_each_wave_and_for_a_rollback() {
    waves_and_rollbacks_reach_hosts_on_a_half_hour_interval_in_seconds(false);
}

#[test]
fn two_log_servers_on_one_postgresql_wake_each_others_watches() {
    waves_and_rollbacks_reach_hosts_on_a_half_hour_interval_in_seconds(true);
}
