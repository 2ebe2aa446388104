//! Reports on their way to the central log: spooled first, sent after the
//! run, each delivered once, never failing or losing a converge.

use crate::support::receiver::{Receiver, nobody_listening};
use crate::support::{Run, Test};

const ROLE: &str = "resources:\n  - file: \"{{root}}/motd\"\n    content: \"{{n}}\\n\"\n";

fn setup() -> (Test, std::path::PathBuf) {
    let t = Test::new();
    t.role("main", &format!("vars:\n  n: 0\n{ROLE}"));
    let token = t.state.with_file_name("token");
    fs_err::write(&token, "s3cret-token\n").unwrap();
    (t, token)
}

fn converge_to(t: &Test, url: &str, token: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "--format",
        "json",
        "--report-to",
        url,
        "--token-file",
        token.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.converge(&args)
}

fn spooled(t: &Test) -> usize {
    fs_err::read_dir(t.state.join("spool")).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

fn id(run: &Run) -> String {
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    report["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_report_reaches_the_log_with_the_hosts_token() {
    let (t, token) = setup();
    let log = Receiver::start();
    let run = converge_to(&t, &log.url, &token, &[]);
    run.expect_code(2);
    let got = log.received();
    assert_eq!(got.len(), 1, "{}", run.stderr);
    assert_eq!(got[0].path, "/v1/reports");
    assert_eq!(got[0].authorization, "Bearer s3cret-token");
    assert_eq!(got[0].body["id"], id(&run).as_str());
    assert_eq!(got[0].body["summary"]["changed"], 1);
    assert_eq!(spooled(&t), 0, "an acknowledged report leaves the spool");
}

#[test]
fn reports_wait_while_the_log_is_down_and_each_arrives_once_in_order() {
    let (t, token) = setup();
    let down = nobody_listening();
    let mut ids = Vec::new();
    for n in 1..=2 {
        t.role("main", &format!("vars:\n  n: {n}\n{ROLE}"));
        let run = converge_to(&t, &down, &token, &[]);
        // The run itself is not affected.
        run.expect_code(2);
        assert!(run.stderr.contains("waiting to be sent"), "{}", run.stderr);
        ids.push(id(&run));
    }
    assert_eq!(spooled(&t), 2);
    // The log is busy (503): still waiting.
    let log = Receiver::start();
    log.answer(503);
    let run = converge_to(&t, &log.url, &token, &[]);
    run.expect_code(0);
    ids.push(id(&run));
    assert_eq!(spooled(&t), 3);
    // Back: everything waiting arrives, oldest first, each once.
    log.answer(200);
    let run = converge_to(&t, &log.url, &token, &[]);
    ids.push(id(&run));
    assert_eq!(log.ids(), ids);
    assert_eq!(spooled(&t), 0);
    let again = converge_to(&t, &log.url, &token, &[]);
    ids.push(id(&again));
    assert_eq!(log.ids(), ids, "nothing is sent twice");
}

#[test]
fn a_report_the_log_refuses_for_good_is_set_aside_not_retried() {
    let (t, token) = setup();
    let log = Receiver::start();
    log.answer(400);
    let run = converge_to(&t, &log.url, &token, &[]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("1 report set aside (refused by the log, or damaged)"),
        "{}",
        run.stderr
    );
    assert_eq!(spooled(&t), 0);
    assert_eq!(
        fs_err::read_dir(t.state.join("spool/set-aside"))
            .unwrap()
            .count(),
        1
    );
    log.answer(200);
    converge_to(&t, &log.url, &token, &[]).expect_code(0);
    assert_eq!(
        log.received().len(),
        1,
        "the refused report is not sent again"
    );
}

#[test]
fn a_dry_run_report_is_sent_without_touching_the_state_directory() {
    let (t, token) = setup();
    let log = Receiver::start();
    let run = converge_to(&t, &log.url, &token, &["--dry-run"]);
    run.expect_code(2);
    assert_eq!(log.received().len(), 1);
    assert_eq!(log.received()[0].body["mode"], "dry-run");
    assert!(!t.state.exists(), "a dry-run created the state directory");
}
