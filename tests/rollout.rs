//! Staged rollouts (SPEC §8), end to end: a fleet of agents — one state
//! directory and one target directory each, `--once` cycles — pulling one
//! git remote and asking a real log server whether it is their turn; and
//! a simulated fleet asking two log servers that share one PostgreSQL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::git;
use crate::log_server::{Db, LogServer, chromium};
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
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let root = dir.path().join("root");
        fs_err::create_dir_all(&remote).unwrap();
        fs_err::create_dir_all(&root).unwrap();
        git(&remote, &["init", "--quiet", "--initial-branch=main"]);
        let log = LogServer::start(log_args);
        let tokens = hosts
            .iter()
            .map(|h| ((*h).to_owned(), log.token(h)))
            .collect();
        Fleet {
            dir,
            remote,
            root,
            log,
            tokens,
        }
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
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
    let home = chromium(&format!("{}/", fleet.log.url), "rollout-halted");
    for text in [
        "id=\"rollouts\"",
        "halted",
        "web-1.prod",
        "exec:broken",
        "Bob Broken",
    ] {
        assert!(home.contains(text), "the dashboard lacks `{text}`");
    }
    let page = chromium(
        &format!("{}/commits/{bad}", fleet.log.url),
        "rollout-commit",
    );
    assert!(
        page.contains("web-1.prod") && page.contains("halted"),
        "{page}"
    );
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

fn ask(log: &LogServer, token: &str, host: &str, commit: &str, policy: &Value) -> (u16, Value) {
    let body = json!({
        "environment": "prod", "commit": commit, "host": host, "policy": policy,
        "author": "Ana Diaz <ana@example.com>", "subject": "web: nginx",
        "committed_at": "2026-11-24T11:00:00Z", "interval_s": 1800,
    });
    log.post_to(
        "/v1/rollouts/admit",
        Some(token),
        body.to_string().as_bytes(),
    )
}

/// Forty hosts ask at once, spread over the servers: exactly the first
/// wave is admitted, and a failure reported to one server halts the
/// rollout on all of them.
fn simulated_fleet_never_admits_past_a_wave(servers: &[&LogServer]) {
    let hosts: Vec<String> = (0..40).map(|i| format!("app-{i:02}.prod")).collect();
    let tokens: Vec<String> = hosts
        .iter()
        .map(|h| {
            fs_err::read_to_string(servers[0].token(h))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    for (i, (h, t)) in hosts.iter().zip(&tokens).enumerate() {
        let (code, body) = servers[i % servers.len()].post(Some(t), &report(h, "c0", false));
        assert_eq!(code, 201, "{h}: {body}");
    }
    let policy = json!({ "canary": [], "waves": ["10%", "100%"], "soak_s": 0 });
    let barrier = std::sync::Barrier::new(hosts.len());
    let answers: Vec<(String, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .zip(&tokens)
            .enumerate()
            .map(|(i, (h, t))| {
                let (barrier, policy, server) = (&barrier, &policy, servers[i % servers.len()]);
                s.spawn(move || {
                    barrier.wait();
                    let (code, answer) = ask(server, t, h, "c1", policy);
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
        let (_, answer) = ask(servers[(i + 1) % servers.len()], t, h, "c1", &policy);
        assert_eq!(
            answer["admitted"] == true,
            admitted.contains(&h),
            "{h}: {answer}"
        );
    }
    // Someone asking for another host, or with no token, is refused.
    let (code, _) = ask(servers[0], &tokens[0], &hosts[1], "c1", &policy);
    assert_eq!(code, 403);
    // A failure from an admitted host, told to the first server, halts it
    // for every server.
    let failing = admitted[0];
    let token = &tokens[hosts.iter().position(|h| h == failing).unwrap()];
    let (code, _) = servers[0].post(Some(token), &report(failing, "c1", true));
    assert_eq!(code, 201);
    for server in servers {
        let (_, list) = server.get("/v1/rollouts?env=prod");
        let r = &list["rollouts"][0];
        assert_eq!(r["state"], "halted", "{list}");
        assert_eq!(r["halted_by"]["host"], failing.as_str());
        assert_eq!(r["halted_by"]["resource"], "package:nginx");
        let waiting = hosts.iter().position(|h| !admitted.contains(&h)).unwrap();
        let (_, answer) = ask(server, &tokens[waiting], &hosts[waiting], "c1", &policy);
        assert_eq!(answer["admitted"], false);
        assert!(
            answer["reason"].as_str().unwrap().contains("halted"),
            "{answer}"
        );
    }
}

#[test]
fn a_simulated_fleet_on_sqlite_is_admitted_one_wave_at_a_time() {
    let log = LogServer::start(&[]);
    simulated_fleet_never_admits_past_a_wave(&[&log]);
}

#[test]
fn two_log_servers_on_one_postgresql_never_admit_past_a_wave_and_both_see_a_halt() {
    let (first, _cluster) = LogServer::start_on(Db::Postgres, &[]);
    let second = LogServer::alongside(&first);
    simulated_fleet_never_admits_past_a_wave(&[&first, &second]);
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
