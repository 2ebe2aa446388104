//! Converging real directories: create, change, remove, ownership, safety,
//! drift, and the dry-run promise.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{HOST, Test, test_user, tree_state};

const BASIC: &str = r#"
resources:
  - directory: "{{root}}/etc"
  - file: "{{root}}/etc/motd"
    content: "hello {{host.name}}\n"
  - file: "{{root}}/etc/old.conf"
    state: absent
  - symlink: "{{root}}/etc/current"
    target: motd
"#;

#[test]
fn creates_changes_and_removes() {
    let t = Test::new();
    t.role("main", BASIC);
    fs_err::create_dir_all(t.at("etc")).unwrap();
    fs_err::write(t.at("etc/old.conf"), "stale\n").unwrap();

    let run = t.converge(&[]);
    run.expect_code(2);
    assert_eq!(
        fs_err::read_to_string(t.at("etc/motd")).unwrap(),
        "hello test-host\n"
    );
    assert!(!t.at("etc/old.conf").exists());
    assert_eq!(
        fs_err::read_link(t.at("etc/current")).unwrap().to_str(),
        Some("motd")
    );
    run.shows("- file:");
    assert!(
        run.summary()
            .starts_with("3 changed, 0 drift corrected, 0 failed, 1 unchanged"),
        "{}",
        run.summary()
    );

    // Change the content: only that file changes, with a diff.
    t.role("main", &BASIC.replace("hello", "welcome to"));
    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows(&format!(
        "~ file:{}: changed content (revision)",
        t.at("etc/motd").display()
    ));
    run.shows("-hello test-host");
    run.shows("+welcome to test-host");
    assert!(
        run.summary()
            .starts_with("1 changed, 0 drift corrected, 0 failed, 3 unchanged"),
        "{}",
        run.summary()
    );
    assert_eq!(
        fs_err::read_to_string(t.at("etc/motd")).unwrap(),
        "welcome to test-host\n"
    );

    // Remove it.
    t.role(
        "main",
        &BASIC.replace("content: \"hello {{host.name}}\\n\"", "state: absent"),
    );
    t.converge(&[]).expect_code(2);
    assert!(!t.at("etc/motd").exists());
}

#[test]
fn second_converge_changes_nothing_and_exits_0() {
    let t = Test::new();
    t.role("main", BASIC);
    t.converge(&[]).expect_code(2);
    let again = t.converge(&[]);
    again.expect_code(0);
    assert_eq!(
        again.stdout.lines().count(),
        1,
        "only the summary: {}",
        again.stdout
    );
    assert!(
        again
            .summary()
            .starts_with("0 changed, 0 drift corrected, 0 failed, 4 unchanged"),
        "{}",
        again.summary()
    );
}

#[test]
fn modes_and_owners_are_set_and_repaired_in_place() {
    let (user, uid, gid) = test_user();
    let t = Test::new();
    let role = format!(
        r#"
resources:
  - directory: "{{{{root}}}}/srv"
    mode: "0750"
    owner: {user}
    group: {user}
  - file: "{{{{root}}}}/srv/secret.txt"
    content: "s3cret\n"
    mode: "0600"
    owner: {user}
    group: {user}
"#
    );
    t.role("main", &role);
    t.converge(&[]).expect_code(2);
    let dir = fs_err::metadata(t.at("srv")).unwrap();
    assert_eq!(
        (dir.mode() & 0o7777, dir.uid(), dir.gid()),
        (0o750, uid, gid)
    );
    let file = fs_err::metadata(t.at("srv/secret.txt")).unwrap();
    assert_eq!(
        (file.mode() & 0o7777, file.uid(), file.gid()),
        (0o600, uid, gid)
    );

    // Only the mode changes: reported as such, and the file is not rewritten.
    t.role("main", &role.replace("\"0600\"", "\"0640\""));
    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows("changed mode 0600 -> 0640 (revision)");
    let after = fs_err::metadata(t.at("srv/secret.txt")).unwrap();
    assert_eq!(
        after.ino(),
        file.ino(),
        "a mode change must not replace the file"
    );
    assert_eq!(after.mode() & 0o7777, 0o640);

    // Ownership changed by hand is drift, and is put back.
    nix::unistd::chown(&t.at("srv/secret.txt"), Some(0.into()), Some(0.into())).unwrap();
    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows(&format!("owner root -> {user}"));
    run.shows("(drift)");
    let repaired = fs_err::metadata(t.at("srv/secret.txt")).unwrap();
    assert_eq!((repaired.uid(), repaired.gid()), (uid, gid));
}

#[test]
fn dry_run_touches_nothing_and_lists_exactly_what_the_run_applies() {
    let t = Test::new();
    t.role(
        "main",
        r#"
resources:
  - directory: "{{root}}/etc"
    mode: "0755"
  - file: "{{root}}/etc/a.conf"
    content: "a = 1\n"
    mode: "0640"
  - file: "{{root}}/etc/b.conf"
    content: "b = 2\n"
  - file: "{{root}}/etc/gone"
    state: absent
  - directory: "{{root}}/var"
    purge: true
  - file: "{{root}}/var/keep"
    content: "keep\n"
  - symlink: "{{root}}/etc/link"
    target: a.conf
"#,
    );
    fs_err::create_dir_all(t.at("etc")).unwrap();
    fs_err::create_dir_all(t.at("var/junk")).unwrap();
    fs_err::write(t.at("var/junk/x"), "x").unwrap();
    fs_err::write(t.at("etc/a.conf"), "a = 0\n").unwrap();
    fs_err::set_permissions(t.at("etc/a.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
    fs_err::write(t.at("etc/gone"), "bye\n").unwrap();
    std::os::unix::fs::symlink("b.conf", t.at("etc/link")).unwrap();

    let before = tree_state(&t.root);
    let dry = t.converge(&["--dry-run", "--format", "json"]);
    dry.expect_code(2);
    assert_eq!(
        tree_state(&t.root),
        before,
        "dry-run changed the target tree"
    );
    assert!(!t.state.exists(), "dry-run created the state directory");

    let real = t.converge(&["--format", "json"]);
    real.expect_code(2);
    let planned = resources(&dry.stdout);
    let applied = resources(&real.stdout);
    assert_eq!(planned, applied, "dry-run and real run disagree");
    assert_eq!(planned.len(), 6, "{planned:#?}");
    assert!(
        !t.at("var/junk").exists(),
        "purge removes unmanaged entries"
    );
    assert_eq!(fs_err::read_to_string(t.at("var/keep")).unwrap(), "keep\n");

    let dry_json: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry_json["mode"], "dry-run");
    let real_json: serde_json::Value = serde_json::from_str(&real.stdout).unwrap();
    assert_eq!(real_json["mode"], "apply");
    assert_eq!(real_json["summary"]["changed"], 6);
}

/// The parts of a JSON report's resources that must agree between a
/// dry-run and the real run that follows it.
fn resources(report: &str) -> Vec<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_str(report).expect("JSON report");
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r["id"], "status": r["status"], "cause": r["cause"],
                "action": r["action"], "changes": r["changes"], "diff": r["diff"],
            })
        })
        .collect()
}

#[test]
fn hand_edits_are_reported_as_drift_and_repaired() {
    let t = Test::new();
    t.role("main", BASIC);
    t.converge(&[]).expect_code(2);

    fs_err::write(t.at("etc/motd"), "edited by hand\n").unwrap();
    let run = t.converge(&["--format", "json"]);
    run.expect_code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["status"], "drift");
    assert_eq!(report["summary"]["drift"], 1);
    assert_eq!(report["summary"]["changed"], 0);
    let r = &report["resources"][0];
    assert_eq!(r["id"], format!("file:{}", t.at("etc/motd").display()));
    assert_eq!(r["cause"], "drift");
    assert!(r["diff"].as_str().unwrap().contains("-edited by hand"));
    assert_eq!(
        fs_err::read_to_string(t.at("etc/motd")).unwrap(),
        "hello test-host\n"
    );

    // A change of the manifest is a revision, even where the host also drifted.
    fs_err::write(t.at("etc/motd"), "edited again\n").unwrap();
    t.role("main", &BASIC.replace("hello", "hi"));
    let run = t.converge(&[]);
    run.shows("changed content (revision)");
}

#[test]
fn a_symlink_at_the_path_is_replaced_never_written_through() {
    let t = Test::new();
    t.role("main", BASIC);
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("shadow");
    fs_err::write(&victim, "root:secret\n").unwrap();
    fs_err::create_dir_all(t.at("etc")).unwrap();
    std::os::unix::fs::symlink(&victim, t.at("etc/motd")).unwrap();

    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows("changed symlink -> file");
    assert_eq!(fs_err::read_to_string(&victim).unwrap(), "root:secret\n");
    let meta = fs_err::symlink_metadata(t.at("etc/motd")).unwrap();
    assert!(meta.is_file());
}

#[test]
fn a_parent_symlink_planted_by_a_user_is_refused() {
    let (user, uid, gid) = test_user();
    let t = Test::new();
    t.role(
        "main",
        r#"
resources:
  - file: "{{root}}/home/app/config"
    content: "owned\n"
  - file: "{{root}}/ok"
    content: "fine\n"
"#,
    );
    let victim = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(t.at("home")).unwrap();
    std::os::unix::fs::symlink(victim.path(), t.at("home/app")).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &t.at("home/app"),
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();

    let run = t.converge(&[]);
    run.expect_code(6);
    assert!(
        run.stdout.contains("refusing to write through")
            && run
                .stdout
                .contains(&format!("{}", t.at("home/app").display())),
        "{}\nuser {user}",
        run.stdout
    );
    assert!(
        !victim.path().join("config").exists(),
        "wrote through the planted link"
    );
    assert_eq!(fs_err::read_to_string(t.at("ok")).unwrap(), "fine\n");
}

#[test]
fn a_failure_fails_its_dependents_only() {
    let t = Test::new();
    t.role(
        "main",
        r#"
resources:
  - file: "{{root}}/a"
    content: "a\n"
    owner: no-such-user-here
  - file: "{{root}}/b"
    content: "b\n"
    require: ["file:{{root}}/a"]
  - file: "{{root}}/c"
    content: "c\n"
"#,
    );
    let run = t.converge(&[]);
    run.expect_code(6);
    run.shows("user `no-such-user-here` does not exist");
    run.shows(&format!(
        "it requires `file:{}`, which failed",
        t.at("a").display()
    ));
    assert!(!t.at("a").exists() && !t.at("b").exists());
    assert_eq!(fs_err::read_to_string(t.at("c")).unwrap(), "c\n");
    assert!(
        run.summary()
            .starts_with("1 changed, 0 drift corrected, 2 failed, 0 unchanged"),
        "{}",
        run.summary()
    );
    // Without --detailed-exitcodes, failures still exit non-zero.
    let plain = crate::support::tend(&[
        "converge",
        "--repo",
        t.repo.to_str().unwrap(),
        "--host",
        HOST,
        "--state-dir",
        t.state.to_str().unwrap(),
    ]);
    assert_eq!(plain.code, 4);
}

#[test]
fn replaced_content_is_kept_in_a_content_addressed_backup() {
    let t = Test::new();
    t.role("main", BASIC);
    fs_err::create_dir_all(t.at("etc")).unwrap();
    fs_err::write(t.at("etc/motd"), "the old banner\n").unwrap();
    fs_err::write(t.at("etc/old.conf"), "removed config\n").unwrap();
    t.converge(&[]).expect_code(2);
    for old in ["the old banner\n", "removed config\n"] {
        let digest = tend::resource::sha256_hex(old.as_bytes());
        let kept = t.state.join("backup").join(digest);
        assert_eq!(fs_err::read_to_string(&kept).unwrap(), old);
    }
}

#[test]
fn a_second_run_waits_for_the_lock_and_says_who_holds_it() {
    let t = Test::new();
    t.role("main", BASIC);
    fs_err::create_dir_all(&t.state).unwrap();
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(t.state.join("lock"))
        .unwrap();
    lock.file().lock().unwrap();
    fs_err::write(t.state.join("lock"), "pid 4242").unwrap();

    let mut child = Command::new(crate::support::bin("tend"))
        .args([
            "converge",
            "--repo",
            t.repo.to_str().unwrap(),
            "--host",
            HOST,
            "--state-dir",
            t.state.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for another tend run") && line.contains("pid 4242"),
        "{line}"
    );
    assert!(!t.at("etc/motd").exists(), "ran while the lock was held");

    lock.file().unlock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tend did not finish after the lock was released"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(t.at("etc/motd").exists());
}

#[test]
fn the_json_report_names_the_commit_from_git() {
    let t = Test::new();
    t.role("main", BASIC);
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(&t.repo)
            .env("GIT_AUTHOR_NAME", "Ana Diaz")
            .env("GIT_AUTHOR_EMAIL", "ana@example.com")
            .env("GIT_COMMITTER_NAME", "Ana Diaz")
            .env("GIT_COMMITTER_EMAIL", "ana@example.com")
            .env("GIT_COMMITTER_DATE", "2026-11-21T10:02:11Z")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "web: 8 workers"]);
    let run = t.converge(&["--format", "json"]);
    run.expect_code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["revision"]["author"], "Ana Diaz <ana@example.com>");
    assert_eq!(report["revision"]["subject"], "web: 8 workers");
    assert_eq!(report["revision"]["committed_at"], "2026-11-21T10:02:11Z");
    assert_eq!(report["revision"]["commit"].as_str().unwrap().len(), 40);
    assert_eq!(report["host"], HOST);
    assert_eq!(report["environment"], "test");
    assert_eq!(report["roles"], serde_json::json!(["main"]));
    assert_eq!(report["id"].as_str().unwrap().len(), 36);
}

#[test]
fn a_dry_run_says_unknown_where_an_earlier_change_decides_and_failed_where_none_can() {
    let t = Test::new();
    // The exec's guard reads a file the run would write first (no
    // `require`); the owner is a user the run would create (an implicit
    // edge); a file where a directory stands fails, whatever comes before.
    t.role(
        "main",
        r#"
resources:
  - file: "{{root}}/ready"
    content: "yes\n"
  - exec: "touch {{root}}/ran"
    unless: "test -f {{root}}/ready"
  - user: tend-dry-user
    system: true
  - directory: "{{root}}/home"
    owner: tend-dry-user
  - file: "{{root}}/blocked"
    content: "x\n"
"#,
    );
    fs_err::create_dir(t.at("blocked")).unwrap();
    let dry = t.dry_run();
    dry.expect_code(6);
    dry.shows(&format!(
        "? exec:touch {}/ran: unknown (depends on file:{}/ready)",
        t.root.display(),
        t.root.display()
    ));
    dry.shows(&format!(
        "? directory:{}/home: unknown (depends on user:tend-dry-user)",
        t.root.display()
    ));
    dry.shows(&format!(
        "! file:{}/blocked: failed: `{}/blocked` is a directory, not a file",
        t.root.display(),
        t.root.display()
    ));
    assert!(!t.at("ready").exists() && !t.at("ran").exists());
}

/// Escape sequences in what a manifest or a commit carries are shown, not
/// obeyed: a diff cannot clear or retitle the operator's terminal.
#[test]
fn terminal_escape_sequences_in_a_diff_are_shown_inert() {
    let t = Test::new();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: \"\\e[2J\\e]0;owned\\a\\u202Egnp.exe\\n\"\n",
    );
    let run = t.converge(&[]);
    run.expect_code(2);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'),
        "{:?}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
    run.shows("+\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{202e}gnp.exe");
    // The file itself holds exactly what was asked.
    assert_eq!(
        fs_err::read(t.at("motd")).unwrap(),
        "\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}gnp.exe\n".as_bytes()
    );
}
