//! SPEC §9, fast delivery: the log learns that the ref moved, by polling
//! its mirror (`--source-poll`) or at once when told (`POST
//! /v1/source/notify`, an operator's token), and says what it knows
//! (`GET /v1/source`).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::git;
use crate::log_server::LogServer;
use crate::support::tend;

fn commit(repo: &Path, subject: &str) -> String {
    fs_err::write(repo.join("NOTES"), subject).unwrap();
    git(repo, &["add", "-A"]);
    git(
        repo,
        &[
            "-c",
            "user.name=Ana",
            "-c",
            "user.email=ana@example.com",
            "commit",
            "-q",
            "-m",
            subject,
        ],
    );
    git(repo, &["rev-parse", "HEAD"])
}

fn source_repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("infra");
    fs_err::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    (dir, repo)
}

/// Waits up to 30 s for `ok`; fails saying `what` did not happen.
fn wait_for(what: &str, ok: &dyn Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn token(log: &LogServer, args: &[&str]) -> String {
    let mut argv = vec!["log", "token", "create"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--db", &log.db]);
    let run = tend(&argv);
    run.expect_code(0);
    run.stdout.trim().to_owned()
}

#[test]
fn the_log_learns_a_pushed_commit_at_its_next_poll() {
    let (_dir, repo) = source_repo();
    let first = commit(&repo, "first");
    let source = repo.display().to_string();
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1s"]);
    let (status, head) = log.get("/v1/source");
    assert_eq!(status, 200, "{head}");
    assert_eq!(head["ref"], "main");
    assert_eq!(head["commit"], first.as_str());
    assert!(head["fetched_at"].is_string(), "{head}");

    let second = commit(&repo, "second");
    let pushed = Instant::now();
    loop {
        let (_, head) = log.get("/v1/source");
        if head["commit"] == second.as_str() {
            break;
        }
        assert!(
            pushed.elapsed() < Duration::from_secs(10),
            "a 1 s poll has not seen {second}: {head}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_notify_makes_the_log_fetch_at_once_and_only_an_operator_may_send_it() {
    let (_dir, repo) = source_repo();
    commit(&repo, "first");
    let source = repo.display().to_string();
    // A poll so slow that only the notify can explain a new commit.
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1h"]);
    let operator = token(&log, &["--operator", "ana"]);
    let viewer = fs_err::read_to_string(&log.viewer).unwrap();
    let host = fs_err::read_to_string(log.token("web-1.prod", "production")).unwrap();

    let second = commit(&repo, "second");
    for (who, token, status) in [
        ("anonymous", None, 401),
        ("a host", Some(host.trim()), 403),
        ("a viewer", Some(viewer.trim()), 403),
    ] {
        let (got, body) = log.post_to("/v1/source/notify", token, b"");
        assert_eq!(got, status, "{who}: {body}");
    }
    let (_, head) = log.get("/v1/source");
    assert_ne!(
        head["commit"],
        second.as_str(),
        "fetched without being told"
    );

    // What a post-receive hook sends: anything, or nothing; the log
    // believes its own fetch, not the body.
    let (status, head) = log.post_to(
        "/v1/source/notify",
        Some(&operator),
        br#"{"commit":"0000000000000000000000000000000000000000"}"#,
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(head["commit"], second.as_str());
    let (_, head) = log.get("/v1/source");
    assert_eq!(head["commit"], second.as_str());
}

#[test]
fn a_log_without_a_source_says_so() {
    let log = LogServer::start(&[]);
    let (status, body) = log.get("/v1/source");
    assert_eq!(status, 404, "{body}");
    assert!(body.to_string().contains("--source"), "{body}");
}

/// A running agent (interval 1 h) hears from the log's watch that the ref
/// moved and converges the new commit within its watch splay, not an
/// interval later.
#[test]
fn a_pushed_commit_reaches_a_waiting_agent_in_seconds() {
    let fleet = crate::agent::Fleet::new();
    fleet.role("one");
    let first = fleet.commit("Ana Diaz", "one");
    let source = fleet.remote.display().to_string();
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1h"]);
    let token = log.token(crate::support::HOST, "prod");
    fs_err::copy(&token, &fleet.token).unwrap();
    let operator = self::token(&log, &["--operator", "ana"]);
    let agent = fleet
        .agent(
            &log.url,
            &["--interval", "1h", "--splay", "0s", "--watch-splay", "1s"],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let converged = |motd: &str, within: Duration| {
        let start = Instant::now();
        while fleet.motd() != motd {
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(start.elapsed())
    };
    assert!(
        converged("one\n", Duration::from_secs(30)).is_some(),
        "the first cycle did not run"
    );

    fleet.role("two");
    let second = fleet.commit("Ana Diaz", "two");
    assert_ne!(first, second);
    let (status, head) = log.post_to("/v1/source/notify", Some(&operator), b"");
    assert_eq!(status, 200, "{head}");
    let took = converged("two\n", Duration::from_secs(20));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = agent.wait_with_output().unwrap();
    let took = took.unwrap_or_else(|| {
        panic!(
            "the agent did not converge the pushed commit:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Within the watch splay (1 s) and a cycle, far from the 1 h interval.
    assert!(took < Duration::from_secs(15), "{took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the log says the source moved"), "{stderr}");
    let (_, page) = log.get(&format!(
        "/v1/reports?host={}&commit={second}",
        crate::support::HOST
    ));
    assert_eq!(page["reports"].as_array().map(Vec::len), Some(1), "{page}");
}

/// `GET /v1/watch`: at once when the host is behind, held until the ref
/// moves, "nothing yet" when its time is up; a host's token only.
#[test]
fn a_watch_answers_when_the_ref_moves_and_not_before() {
    let (_dir, repo) = source_repo();
    let first = commit(&repo, "first");
    let source = repo.display().to_string();
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1h"]);
    let operator = token(&log, &["--operator", "ana"]);
    let host = fs_err::read_to_string(log.token("web-1.prod", "production")).unwrap();
    let host = host.trim().to_owned();
    let viewer = fs_err::read_to_string(&log.viewer).unwrap();

    let (status, _) = log.get_as(Some(viewer.trim()), "/v1/watch");
    assert_eq!(status, 403, "a viewer holds no watch");
    // Behind: at once.
    let (status, answer) = log.get_as(Some(&host), "/v1/watch?after=0000000");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["moved"], true);
    assert_eq!(answer["commit"], first.as_str());
    // Up to date: held for its timeout, then nothing.
    let asked = Instant::now();
    let (_, answer) = log.get_as(Some(&host), &format!("/v1/watch?after={first}&timeout=2"));
    assert_eq!(answer["moved"], false, "{answer}");
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // Held while the ref moves: answered with the new commit at once.
    let watching = {
        let url = format!("{}/v1/watch?after={first}&timeout=30", log.url);
        let host = host.clone();
        std::thread::spawn(move || {
            let asked = Instant::now();
            let mut response = ureq::get(&url)
                .header("Authorization", &format!("Bearer {host}"))
                .call()
                .unwrap();
            let body: serde_json::Value =
                serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
            (body, asked.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let second = commit(&repo, "second");
    let (status, _) = log.post_to("/v1/source/notify", Some(&operator), b"");
    assert_eq!(status, 200);
    let (answer, took) = watching.join().unwrap();
    assert_eq!(answer["moved"], true, "{answer}");
    assert_eq!(answer["commit"], second.as_str());
    assert!(took < Duration::from_secs(10), "held {took:?}");
}

/// Run now, fleet-wide: `tend log wake ENV [--match GLOB]` wakes the
/// matching agents through their watches and says how many; a woken agent
/// corrects drift at once, not at its next interval.
#[test]
fn an_operator_wakes_an_environment_and_its_agents_run_now() {
    let fleet = crate::agent::Fleet::new();
    fleet.role("one");
    fleet.commit("Ana Diaz", "one");
    let source = fleet.remote.display().to_string();
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1h"]);
    fs_err::copy(log.token(crate::support::HOST, "prod"), &fleet.token).unwrap();
    let operator = fleet.remote.parent().unwrap().join("operator");
    fs_err::write(&operator, token(&log, &["--operator", "ana"])).unwrap();
    let agent = fleet
        .agent(
            &log.url,
            &["--interval", "1h", "--splay", "0s", "--watch-splay", "1s"],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first cycle", &|| fleet.motd() == "one\n");
    let wake = |args: &[&str]| {
        let mut argv = vec!["log", "wake", "prod", "--server", &log.url];
        argv.extend_from_slice(&["--token-file", operator.to_str().unwrap()]);
        argv.extend_from_slice(args);
        let run = tend(&argv);
        run.expect_code(0);
        run.stdout.trim().to_owned()
    };
    // Past the start-up cycles, a hand edit stays: the interval is an hour.
    std::thread::sleep(Duration::from_secs(3));
    let motd = fleet.remote.parent().unwrap().join("root/motd");
    fs_err::write(&motd, "edited by hand\n").unwrap();
    // Nobody matches: nobody runs.
    assert_eq!(
        wake(&["--match", "db-*"]),
        "woke 0 hosts of prod matching db-*"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.motd(), "edited by hand\n");
    wait_for("one host woken", &|| wake(&[]) == "woke 1 host of prod");
    wait_for("the drift corrected", &|| fleet.motd() == "one\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = agent.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("an operator woke this host"), "{stderr}");
    // A viewer may not wake anyone.
    let viewer = tend(&[
        "log",
        "wake",
        "prod",
        "--server",
        &log.url,
        "--token-file",
        log.viewer.to_str().unwrap(),
    ]);
    assert_eq!(viewer.code, 1, "{}", viewer.stdout);
    assert!(viewer.stderr.contains("403"), "{}", viewer.stderr);
}

/// Watches are parked outside the HTTP library, on the connection they
/// came on: one connection serves watches one after another, then any
/// other request; the answers carry the same headers as every answer; a
/// refused watch is refused the same way.
#[test]
fn one_connection_serves_watches_then_other_requests() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let (_dir, repo) = source_repo();
    let first = commit(&repo, "first");
    let source = repo.display().to_string();
    let log = LogServer::start(&["--source", &source, "--ref", "main", "--source-poll", "1h"]);
    let host = fs_err::read_to_string(log.token("web-1.prod", "production")).unwrap();
    let host = host.trim().to_owned();
    let address = log.url.trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // One answer: status, headers (lower-cased names), body.
    let mut answer = |request: String| -> (u16, Vec<String>, serde_json::Value) {
        writer.write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(n) = h.strip_prefix("content-length: ") {
                length = n.parse().unwrap();
            }
            headers.push(h);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    };
    let watch = |after: &str, token: &str| {
        format!(
            "GET /v1/watch?after={after}&timeout=1 HTTP/1.1\r\nHost: log\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
    };
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, headers, body) = answer(watch(&first, &host));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["moved"], false, "{body}");
        assert!(asked.elapsed() >= Duration::from_secs(1));
        assert!(
            headers
                .iter()
                .any(|h| h == "x-content-type-options: nosniff"),
            "{headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with("content-type: application/json")),
            "{headers:?}"
        );
    }
    let (status, _, body) = answer(watch("0000000", &host));
    assert_eq!(
        (status, &body["commit"]),
        (200, &serde_json::json!(first)),
        "{body}"
    );
    let (status, _, body) = answer(watch(&first, "not-a-token"));
    assert_eq!(status, 401, "{body}");
    // Then a request of another kind, on the same connection: hyper's.
    let viewer = fs_err::read_to_string(&log.viewer).unwrap();
    let (status, _, body) = answer(format!(
        "GET /v1/source HTTP/1.1\r\nHost: log\r\nAuthorization: Bearer {}\r\n\r\n",
        viewer.trim()
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["commit"], first.as_str());
}

/// With two log servers on one PostgreSQL, an operator's wake sent to one
/// reaches an agent watching the other (the servers tell each other by
/// LISTEN/NOTIFY); the count is of the watches on the server asked.
#[test]
fn a_wake_sent_to_one_of_two_log_servers_reaches_an_agent_watching_the_other() {
    let fleet = crate::agent::Fleet::new();
    fleet.role("one");
    fleet.commit("Ana Diaz", "one");
    let source = fleet.remote.display().to_string();
    let (first, _cluster) = LogServer::start_on(
        crate::log_server::Db::Postgres,
        &["--source", &source, "--ref", "main", "--source-poll", "1h"],
    );
    let second = LogServer::alongside(&first);
    fs_err::copy(first.token(crate::support::HOST, "prod"), &fleet.token).unwrap();
    let operator = fleet.remote.parent().unwrap().join("operator");
    fs_err::write(&operator, token(&first, &["--operator", "ana"])).unwrap();
    // Stopped when the test ends, passed or not.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Stopped(
        fleet
            .agent(
                &second.url,
                &["--interval", "1h", "--splay", "0s", "--watch-splay", "1s"],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the first cycle", &|| fleet.motd() == "one\n");
    std::thread::sleep(Duration::from_secs(3));
    let motd = fleet.remote.parent().unwrap().join("root/motd");
    fs_err::write(&motd, "edited by hand\n").unwrap();
    let run = tend(&[
        "log",
        "wake",
        "prod",
        "--server",
        &first.url,
        "--token-file",
        operator.to_str().unwrap(),
    ]);
    run.expect_code(0);
    assert_eq!(run.stdout.trim(), "woke 0 hosts of prod");
    wait_for("the drift corrected through the other server", &|| {
        fleet.motd() == "one\n"
    });
}
