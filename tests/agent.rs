//! The pull agent, one cycle at a time (`--once`), against a real git
//! remote made by the test, commits by different authors, and a loopback
//! stand-in for the central log.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::receiver::{Receiver, nobody_listening};
use crate::support::{HOST, Run, tend};

/// A git remote with a `main` branch, a target tree and a state directory.
pub(crate) struct Fleet {
    dir: tempfile::TempDir,
    pub(crate) remote: PathBuf,
    root: PathBuf,
    state: PathBuf,
    pub(crate) token: PathBuf,
    gnupg: Option<PathBuf>,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        let token = dir.path().join("token");
        fs_err::create_dir_all(&remote).unwrap();
        fs_err::create_dir_all(&root).unwrap();
        fs_err::write(&token, "host-token\n").unwrap();
        git(&remote, &["init", "--quiet", "--initial-branch=main"]);
        let fleet = Fleet {
            dir,
            remote,
            root,
            state,
            token,
            gnupg: None,
        };
        fleet.write(
            "manifests/prod.yaml",
            &format!(
                "environment: prod\nvars:\n  root: {}\n  motd: hello\nhosts:\n  - match: \"{HOST}\"\n    roles: [main]\n",
                fleet.root.display()
            ),
        );
        fleet
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.remote.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }

    pub(crate) fn role(&self, motd: &str) {
        self.write(
            "roles/main/role.yaml",
            &format!("resources:\n  - file: \"{{{{root}}}}/motd\"\n    content: \"{motd}\\n\"\n"),
        );
    }

    /// Commits everything as `author`; returns the commit id.
    pub(crate) fn commit(&self, author: &str, subject: &str) -> String {
        self.commit_with(author, subject, &[])
    }

    fn commit_with(&self, author: &str, subject: &str, extra: &[&str]) -> String {
        git(&self.remote, &["add", "-A"]);
        let email = format!(
            "{}@example.com",
            author.split(' ').next().unwrap().to_lowercase()
        );
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.remote)
            .args([
                "-c",
                &format!("user.name={author}"),
                "-c",
                &format!("user.email={email}"),
            ])
            .args(["commit", "--quiet", "-m", subject])
            .args(extra)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.dir.path());
        if let Some(home) = &self.gnupg {
            cmd.env("GNUPGHOME", home);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        git(&self.remote, &["rev-parse", "HEAD"])
    }

    /// `tend agent` for this fleet's host, reporting to `log`.
    pub(crate) fn agent(&self, log: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(crate::support::bin("tend"));
        cmd.arg("agent")
            .arg("--config")
            .arg(self.config())
            .arg("--source")
            .arg(&self.remote)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--host", HOST, "--log", log, "--token-file"])
            .arg(&self.token)
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("TEND_STATE_DIR");
        if let Some(home) = &self.gnupg {
            cmd.env("GNUPGHOME", home);
        }
        cmd
    }

    /// `tend agent --once`, reporting to `log`.
    fn cycle(&self, log: &str, extra: &[&str]) -> Run {
        let out = self
            .agent(log, &[&["--once"], extra].concat())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The settings file the agent reads (none unless a test writes it).
    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.yaml")
    }

    pub(crate) fn motd(&self) -> String {
        fs_err::read_to_string(self.root.join("motd")).unwrap_or_default()
    }
}

#[test]
fn commits_are_applied_broken_ones_never_and_reports_say_who_when_what() {
    let f = Fleet::new();
    let log = Receiver::start();
    f.role("one");
    let first = f.commit("Ana Diaz", "main: first motd");
    let run = f.cycle(&log.url, &[]);
    run.expect_code(2);
    assert_eq!(f.motd(), "one\n");
    let reports = log.received();
    assert_eq!(reports.len(), 1, "{}", run.stderr);
    let report = &reports[0].body;
    assert_eq!(report["revision"]["commit"], first.as_str());
    assert_eq!(report["revision"]["author"], "Ana Diaz <ana@example.com>");
    assert_eq!(report["revision"]["subject"], "main: first motd");
    assert_eq!(report["resources"][0]["cause"], "revision");
    assert_eq!(report["source_stale"], false);

    // A broken commit by someone else: never applied, named in the report.
    f.write(
        "roles/main/role.yaml",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: \"{{nope}}\\n\"\n",
    );
    let bad = f.commit("Bo Berg", "main: use a var nobody defines");
    let run = f.cycle(&log.url, &[]);
    run.expect_code(0);
    assert_eq!(f.motd(), "one\n", "the broken commit was applied");
    run.shows(&format!(
        "! commit {} by Bo Berg <bo@example.com> (main: use a var nobody defines) was not applied",
        &bad[..12]
    ));
    run.shows("roles/main/role.yaml:3:14:");
    let report = &log.received()[1].body;
    assert_eq!(report["revision"]["commit"], first.as_str());
    assert_eq!(report["rejected"]["commit"], bad.as_str());
    assert_eq!(report["rejected"]["author"], "Bo Berg <bo@example.com>");
    let errors = report["rejected"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("roles/main/role.yaml:3:14: "),
        "{errors:?}"
    );

    // The next good commit is applied as usual.
    f.role("two");
    let good = f.commit("Ana Diaz", "main: second motd");
    f.cycle(&log.url, &[]).expect_code(2);
    assert_eq!(f.motd(), "two\n");
    assert_eq!(log.received()[2].body["revision"]["commit"], good.as_str());
    assert!(log.received()[2].body.get("rejected").is_none());

    // A hand edit is drift.
    fs_err::write(f.root.join("motd"), "edited\n").unwrap();
    let run = f.cycle(&log.url, &["--log-format", "json"]);
    run.expect_code(2);
    let report = &log.received()[3].body;
    assert_eq!(report["status"], "drift");
    assert_eq!(report["resources"][0]["cause"], "drift");
    // One JSON log line for the cycle.
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("\"cycle\""))
        .unwrap_or_else(|| panic!("no cycle line in {}", run.stderr));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["fields"]["drift"], 1);

    // The remote gone: the last good commit, said to be stale.
    let moved = f.remote.with_file_name("remote-away");
    fs_err::rename(&f.remote, &moved).unwrap();
    fs_err::write(f.root.join("motd"), "edited again\n").unwrap();
    let run = f.cycle(&log.url, &[]);
    run.expect_code(2);
    run.shows("! source unreachable (last fetched");
    assert_eq!(f.motd(), "two\n");
    let report = &log.received()[4].body;
    assert_eq!(report["source_stale"], true);
    assert_eq!(report["revision"]["commit"], good.as_str());
    assert!(report["source_age_s"].as_u64().is_some());

    // The status and the metrics say the same.
    let status = tend(&[
        "status",
        "--state-dir",
        f.state.to_str().unwrap(),
        "--format",
        "json",
    ]);
    status.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["last_good"], good.as_str());
    assert_eq!(status["last_run"]["stale"], true);
    assert_eq!(status["spool"], 0);
    let metrics = fs_err::read_to_string(f.state.join("tend.prom")).unwrap();
    assert!(metrics.contains("\ntend_last_run_drift 1\n"), "{metrics}");
    assert!(
        metrics.contains("\ntend_last_run_stale_source 1\n"),
        "{metrics}"
    );
}

#[test]
fn reports_survive_a_log_that_is_down_and_agent_restarts_and_arrive_once() {
    let f = Fleet::new();
    f.role("one");
    f.commit("Ana Diaz", "first");
    let down = nobody_listening();
    for motd in ["two", "three"] {
        f.role(motd);
        f.commit("Ana Diaz", motd);
        // Each --once is a new agent process: a restart every time.
        let run = f.cycle(&down, &[]);
        run.expect_code(2);
        assert!(run.stderr.contains("waiting to be sent"), "{}", run.stderr);
        assert_eq!(
            f.motd(),
            format!("{motd}\n"),
            "a log that is down held the run back"
        );
    }
    let status = tend(&["status", "--state-dir", f.state.to_str().unwrap()]);
    status.shows("spool:      2 reports waiting");
    let log = Receiver::start();
    f.cycle(&log.url, &[]).expect_code(0);
    let got = log.ids();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "a report arrived twice: {got:?}");
    f.cycle(&log.url, &[]).expect_code(0);
    assert_eq!(log.ids().len(), 4);
}

#[test]
fn a_rewound_branch_is_refused_unless_allowed() {
    let f = Fleet::new();
    let log = Receiver::start();
    f.role("one");
    let old = f.commit("Ana Diaz", "one");
    f.role("two");
    f.commit("Ana Diaz", "two");
    f.cycle(&log.url, &[]).expect_code(2);
    assert_eq!(f.motd(), "two\n");
    // The first fetch took the one commit only.
    let shallow = fs_err::read_to_string(f.state.join("source/repo.git/shallow")).unwrap();
    assert_eq!(shallow.lines().count(), 1);
    // Force-push the older commit.
    git(&f.remote, &["reset", "--quiet", "--hard", &old]);
    let run = f.cycle(&log.url, &[]);
    run.expect_code(0);
    run.shows("does not descend from");
    assert_eq!(f.motd(), "two\n");
    assert_eq!(log.received()[1].body["rejected"]["commit"], old.as_str());
    let run = f.cycle(&log.url, &["--allow-rewind"]);
    run.expect_code(2);
    assert_eq!(f.motd(), "one\n");
}

#[test]
fn only_signed_commits_are_applied_under_require_signed() {
    let mut f = Fleet::new();
    let gnupg = f.dir.path().join("gnupg");
    fs_err::create_dir_all(&gnupg).unwrap();
    fs_err::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let made = Command::new("gpg")
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Tend Test <signer@example.com>",
            "ed25519",
            "sign",
            "never",
        ])
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    f.gnupg = Some(gnupg.clone());
    let log = Receiver::start();
    f.role("signed");
    let signed = f.commit_with(
        "Ana Diaz",
        "signed",
        &["-S", "--gpg-sign=signer@example.com"],
    );
    f.cycle(&log.url, &["--require-signed"]).expect_code(2);
    assert_eq!(f.motd(), "signed\n");
    f.role("unsigned");
    let unsigned = f.commit("Mallory", "unsigned");
    let run = f.cycle(&log.url, &["--require-signed"]);
    run.expect_code(0);
    run.shows("its signature is not trusted");
    assert_eq!(f.motd(), "signed\n");
    let report = &log.received()[1].body;
    assert_eq!(report["revision"]["commit"], signed.as_str());
    assert_eq!(report["rejected"]["commit"], unsigned.as_str());
}

#[test]
fn a_disabled_agent_converges_nothing_and_says_why() {
    let f = Fleet::new();
    let log = Receiver::start();
    f.role("one");
    f.commit("Ana Diaz", "one");
    let state = f.state.to_str().unwrap();
    let config = f.config();
    let config = config.to_str().unwrap();
    tend(&[
        "agent",
        "--config",
        config,
        "--state-dir",
        state,
        "--disable",
        "debugging nginx by hand (ana)",
    ])
    .expect_code(0);
    let run = f.cycle(&log.url, &[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("debugging nginx by hand (ana)"),
        "{}",
        run.stderr
    );
    assert_eq!(f.motd(), "");
    tend(&["status", "--state-dir", state])
        .shows("agent:      DISABLED: debugging nginx by hand (ana)");
    tend(&[
        "agent",
        "--config",
        config,
        "--state-dir",
        state,
        "--enable",
    ])
    .expect_code(0);
    f.cycle(&log.url, &[]).expect_code(2);
    assert_eq!(f.motd(), "one\n");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_agent_killed_while_sending_delivers_that_report_once_after_restart() {
    let f = Fleet::new();
    f.role("one");
    f.commit("Ana Diaz", "one");
    let log = Receiver::start();
    log.answer(0);
    let mut agent = f
        .agent(&log.url, &["--once"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the report to be on its way", || log.seen() == 1);
    agent.kill().unwrap();
    agent.wait().unwrap();
    assert_eq!(f.motd(), "one\n");
    log.answer(200);
    f.cycle(&log.url, &[]).expect_code(0);
    let ids = log.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn the_agent_runs_on_its_slot_again_on_sighup_and_stops_cleanly_on_sigterm() {
    let f = Fleet::new();
    f.role("one");
    f.commit("Ana Diaz", "one");
    let log = Receiver::start();
    // No splay: the first cycle comes at once; the next not for an hour.
    let mut agent = f
        .agent(&log.url, &["--interval", "1h", "--splay", "0s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap());
    wait_for("the first cycle's report", || log.received().len() == 1);
    assert_eq!(f.motd(), "one\n");
    f.role("two");
    f.commit("Ana Diaz", "two");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the cycle SIGHUP asked for", || log.received().len() == 2);
    assert_eq!(f.motd(), "two\n");
    let status = tend(&[
        "status",
        "--state-dir",
        f.state.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let next = status["next_run"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // On the host's slot of the hour (no splay: on the hour).
    assert!(
        next > now && next <= now + 3600 && next.is_multiple_of(3600),
        "{next} vs {now}"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = std::time::Instant::now();
    let exit = agent.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut agent.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        stderr.matches(" cycle ").count(),
        2,
        "one log line a cycle:\n{stderr}"
    );
    // The lock was released: a converge runs at once.
    f.cycle(&log.url, &[]).expect_code(0);
}

#[test]
fn sigterm_during_a_converge_finishes_the_resource_in_progress_and_stops() {
    let f = Fleet::new();
    f.write(
        "roles/main/role.yaml",
        "resources:\n  - exec: slow\n    command: \"touch {{root}}/started; sleep 2; touch {{root}}/finished\"\n    creates: \"{{root}}/finished\"\n  - file: \"{{root}}/after\"\n    content: \"x\\n\"\n    require: [exec:slow]\n",
    );
    f.commit("Ana Diaz", "slow");
    let log = Receiver::start();
    let mut agent = f
        .agent(&log.url, &["--interval", "1h", "--splay", "0s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the slow command to start", || {
        f.root.join("started").exists()
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(agent.wait().unwrap().success());
    assert!(
        f.root.join("finished").exists(),
        "the resource in progress was cut short"
    );
    assert!(
        !f.root.join("after").exists(),
        "the run went on after SIGTERM"
    );
    let report = &log.received()[0].body;
    assert_eq!(report["summary"]["not_reached"], 1);
    // The next cycle does the rest.
    f.cycle(&log.url, &[]).expect_code(2);
    assert!(f.root.join("after").exists());
}

#[test]
fn settings_come_from_the_file_and_flags_win() {
    let f = Fleet::new();
    f.role("one");
    f.commit("Ana Diaz", "one");
    git(&f.remote, &["branch", "prod"]);
    f.role("two");
    f.commit("Ana Diaz", "two");
    let log = Receiver::start();
    fs_err::write(
        f.config(),
        format!(
            "source: {}\nref: prod\nstate_dir: {}\nlog: {}\ntoken_file: {}\nhost: {HOST}\n",
            f.remote.display(),
            f.state.display(),
            log.url,
            f.token.display()
        ),
    )
    .unwrap();
    let config = f.config();
    let config = config.to_str().unwrap();
    tend(&["agent", "--once", "--config", config]).expect_code(2);
    assert_eq!(f.motd(), "one\n", "the file's `ref: prod`");
    assert_eq!(log.received().len(), 1);
    tend(&["agent", "--once", "--config", config, "--ref", "main"]).expect_code(2);
    assert_eq!(f.motd(), "two\n", "the flag wins");

    fs_err::write(f.config(), "source: x\nintervall: 15m\n").unwrap();
    let run = tend(&["agent", "--once", "--config", config]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("--> {config}:2:1"))
            && run.stderr.contains("did you mean `interval`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn damaged_state_and_a_lock_a_killed_git_left_do_not_stop_the_agent() {
    let f = Fleet::new();
    let log = Receiver::start();
    f.role("one");
    f.commit("Ana Diaz", "one");
    f.cycle(&log.url, &[]).expect_code(2);
    // What a disk error or a git killed in mid-fetch could leave.
    fs_err::write(f.state.join("agent.json"), "{ half").unwrap();
    fs_err::write(f.state.join("state.json"), "not json").unwrap();
    fs_err::write(f.state.join("source/repo.git/shallow.lock"), "").unwrap();
    // A torn spool entry and a directory where an entry should be: set
    // aside, never sent, never in the way of the reports after them.
    fs_err::write(
        f.state.join("spool/00000000000000000001-torn.json"),
        "{ \"id\": ",
    )
    .unwrap();
    fs_err::create_dir_all(f.state.join("spool/00000000000000000002-odd.json")).unwrap();
    f.role("two");
    f.commit("Ana Diaz", "two");
    let run = f.cycle(&log.url, &[]);
    run.expect_code(2);
    assert_eq!(f.motd(), "two\n");
    assert!(run.stderr.contains("starting afresh"), "{}", run.stderr);
    assert!(f.state.join("agent.json.damaged").exists());
    assert!(f.state.join("state.json.damaged").exists());
    assert!(run.stderr.contains("2 reports set aside"), "{}", run.stderr);
    assert!(
        f.state
            .join("spool/set-aside/00000000000000000001-torn.json")
            .exists()
    );
    assert!(
        f.state
            .join("spool/set-aside/00000000000000000002-odd.json")
            .exists()
    );
    assert_eq!(
        log.ids().len(),
        2,
        "the good reports were sent: {:?}",
        log.ids()
    );
    assert!(log.received().iter().all(|r| r.body["id"].is_string()));
    f.cycle(&log.url, &[]).expect_code(0);
    assert_eq!(log.ids().len(), 3);
}

#[test]
fn the_real_log_server_shows_the_agents_commits_in_its_deploy_log() {
    let log = crate::log_server::LogServer::start(&[]);
    let mut f = Fleet::new();
    f.token = log.token(HOST, "prod");
    f.role("one");
    let one = f.commit("Ana Diaz", "main: one");
    f.cycle(&log.url, &[]).expect_code(2);
    f.write(
        "roles/main/role.yaml",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: \"{{nope}}\\n\"\n",
    );
    let bad = f.commit("Bo Berg", "main: broken");
    f.cycle(&log.url, &[]).expect_code(0);
    f.role("two");
    let two = f.commit("Ana Diaz", "main: two");
    f.cycle(&log.url, &[]).expect_code(2);
    let (_, commits) = log.get("/v1/commits");
    let commits = commits["commits"].as_array().unwrap();
    // The broken commit is in the deploy log too, refused by the host.
    assert_eq!(commits.len(), 3, "{commits:?}");
    assert_eq!(commits[0]["commit"], two.as_str());
    assert_eq!(commits[0]["author"], "Ana Diaz <ana@example.com>");
    assert_eq!(commits[0]["subject"], "main: two");
    assert_eq!(commits[0]["hosts_changed"], 1);
    assert_eq!(commits[1]["commit"], bad.as_str());
    assert_eq!(commits[1]["author"], "Bo Berg <bo@example.com>");
    assert_eq!(commits[1]["hosts_refused"], 1);
    assert_eq!(commits[1]["hosts"], 0);
    assert_eq!(commits[2]["commit"], one.as_str());
    let (_, refusing) = log.get(&format!("/v1/reports?commit={bad}"));
    assert_eq!(refusing["reports"][0]["status"], "refused", "{refusing}");
    let (_, refused) = log.get(&format!("/v1/reports?commit={one}"));
    let refused_report = refused["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        refused_report.len(),
        2,
        "the first run and the one that refused {bad}"
    );
    let (_, hosts) = log.get("/v1/hosts");
    assert_eq!(hosts["hosts"][0]["commit"], two.as_str());
    assert_eq!(hosts["hosts"][0]["interval_s"], 1800);
}

/// The real log server SIGKILLed while agents deliver, again and again:
/// each report reaches it exactly once in the end, none acknowledged is
/// lost, and the agent never stops converging.
#[test]
fn a_log_server_killed_during_delivery_loses_nothing_and_stores_each_report_once() {
    let mut log = crate::log_server::LogServer::start(&[]);
    let mut f = Fleet::new();
    f.token = log.token(HOST, "prod");
    f.role("one");
    f.commit("Ana Diaz", "one");
    let cycles = 8;
    for i in 0..cycles {
        let url = log.url.clone();
        let cycle = std::thread::scope(|s| {
            let run = s.spawn(|| f.cycle(&url, &[]));
            // Somewhere in the cycle: before, during or after its delivery.
            std::thread::sleep(std::time::Duration::from_millis(15 * i));
            log.kill_and_restart();
            run.join().unwrap()
        });
        assert!(cycle.code == 0 || cycle.code == 2, "{cycle:?}");
    }
    // The log is up: the next cycle delivers whatever waited.
    f.cycle(&log.url, &[]).expect_code(0);
    assert_eq!(
        fs_err::read_dir(f.state.join("spool"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count(),
        0,
        "reports still wait"
    );
    let (_, page) = log.get("/v1/reports?limit=100");
    let ids: Vec<&str> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a report stored twice: {ids:?}");
    assert_eq!(
        ids.len(),
        cycles as usize + 1,
        "one report a cycle: {ids:?}"
    );
}

/// The agent and its git killed (SIGKILL, the whole process group) at
/// several moments of a fetch of a large commit: the next cycle fetches,
/// applies and reports as if nothing happened, and the one after is quiet.
#[test]
fn an_agent_killed_mid_fetch_recovers_at_the_next_cycle() {
    use std::os::unix::process::CommandExt as _;
    let f = Fleet::new();
    let log = Receiver::start();
    f.role("one");
    // A commit big enough that fetching it takes a while.
    let big: Vec<u8> = (0..24_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs_err::write(f.remote.join("big.bin"), big).unwrap();
    f.commit("Ana Diaz", "one, and a big file");
    for delay_ms in [30, 120, 400] {
        let mut child = f
            .agent(&log.url, &["--once"])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let group = nix::unistd::Pid::from_raw(-i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    let run = f.cycle(&log.url, &[]);
    assert!(run.code == 2 || run.code == 0, "{run:?}");
    assert_eq!(f.motd(), "one\n");
    f.cycle(&log.url, &[]).expect_code(0);
    assert!(!log.ids().is_empty(), "no report arrived");
}
