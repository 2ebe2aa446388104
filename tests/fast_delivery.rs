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
