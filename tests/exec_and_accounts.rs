//! exec guards and notifications, users and groups, on this machine (CI
//! runs as root; the accounts made here are removed by the same test).

use crate::support::Test;

#[test]
fn exec_runs_when_its_guard_says_so_and_reports_its_output() {
    let t = Test::new();
    t.role(
        "main",
        r#"
resources:
  - exec: initialise
    command: "echo initialising; touch {{root}}/initialised"
    creates: "{{root}}/initialised"
  - exec: only-if-flag
    command: "echo flagged > {{root}}/flagged"
    onlyif: "test -e {{root}}/flag"
  - exec: unless-done
    command: "touch {{root}}/done"
    unless: "test -e {{root}}/done"
"#,
    );
    // A dry-run evaluates the guards but runs nothing.
    let dry = t.dry_run();
    dry.expect_code(2);
    dry.shows("> exec:initialise: would run guards allow (revision)");
    assert!(!dry.stdout.contains("only-if-flag"), "{}", dry.stdout);
    assert!(!t.at("initialised").exists() && !t.at("done").exists());

    let run = t.converge(&["--format", "json"]);
    run.expect_code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let init = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "exec:initialise")
        .unwrap();
    assert_eq!(init["output"], "initialising\n");
    assert!(t.at("initialised").exists() && t.at("done").exists());
    assert!(!t.at("flagged").exists());
    t.converge(&[]).expect_code(0);

    std::fs::write(t.at("flag"), "").unwrap();
    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows("> exec:only-if-flag: ran");
}

#[test]
fn a_refresh_only_exec_runs_once_when_notified() {
    let t = Test::new();
    let role = |content: &str| {
        format!(
            r#"
resources:
  - file: "{{{{root}}}}/app.conf"
    content: "{content}\n"
    notify: [exec:reload]
  - file: "{{{{root}}}}/other.conf"
    content: "x\n"
    notify: [exec:reload]
  - exec: reload
    command: "echo reloaded >> {{{{root}}}}/reloads"
    refresh_only: true
"#
        )
    };
    t.role("main", &role("one"));
    let run = t.converge(&[]);
    run.expect_code(2);
    run.shows("> exec:reload: ran notified by file:");
    assert_eq!(
        std::fs::read_to_string(t.at("reloads")).unwrap(),
        "reloaded\n",
        "once, though two files changed"
    );
    t.converge(&[]).expect_code(0);
    t.role("main", &role("two"));
    t.converge(&[]).expect_code(2);
    assert_eq!(
        std::fs::read_to_string(t.at("reloads")).unwrap(),
        "reloaded\nreloaded\n"
    );
}

#[test]
fn a_failing_or_hanging_exec_fails_with_its_output() {
    let t = Test::new();
    t.role(
        "main",
        r#"
resources:
  - exec: broken
    command: "echo something went wrong >&2; exit 3"
    creates: "{{root}}/never"
  - exec: hangs
    command: "sleep 30"
    creates: "{{root}}/never"
    timeout: 1
  - file: "{{root}}/after"
    content: "x\n"
    require: [exec:broken]
"#,
    );
    let run = t.converge(&[]);
    run.expect_code(4);
    run.shows("exited with 3: something went wrong");
    run.shows("`sleep 30` timed out");
    run.shows("it requires `exec:broken`, which failed");
}

#[test]
fn an_exec_without_guard_is_refused() {
    let t = Test::new();
    t.role("main", "resources:\n  - exec: \"touch /tmp/x\"\n");
    let run = t.check();
    run.expect_code(1);
    assert!(
        run.stderr.contains("this exec has no guard"),
        "{}",
        run.stderr
    );
}

#[test]
fn users_groups_and_the_files_they_own() {
    crate::support::test_user();
    let t = Test::new();
    let role = |state: &str| {
        format!(
            r#"
resources:
  - group: tend-e2e-admins
    state: {state}
  - user: tend-e2e-ops
    groups: [tend-e2e-admins]
    shell: /bin/sh
    home: /nonexistent
    state: {state}
"#
        )
    };
    let with_file = format!(
        "{}  - file: \"{{{{root}}}}/owned\"\n    content: \"mine\\n\"\n    owner: tend-e2e-ops\n    group: tend-e2e-admins\n",
        role("present")
    );
    t.role("main", &with_file);
    // The owner does not exist yet: a dry-run cannot know the file's state.
    let dry = t.dry_run();
    dry.expect_code(2);
    dry.shows("+ group:tend-e2e-admins: would create");
    dry.shows(&format!(
        "? file:{}: unknown (depends on user:tend-e2e-ops)",
        t.at("owned").display()
    ));
    let run = t.converge(&[]);
    run.expect_code(2);
    let user = nix::unistd::User::from_name("tend-e2e-ops")
        .unwrap()
        .expect("user created");
    let group = nix::unistd::Group::from_name("tend-e2e-admins")
        .unwrap()
        .expect("group created");
    assert_eq!(user.shell.to_str(), Some("/bin/sh"));
    assert!(
        group.mem.contains(&"tend-e2e-ops".to_owned()),
        "{:?}",
        group.mem
    );
    let meta = std::fs::metadata(t.at("owned")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid()),
        (user.uid.as_raw(), group.gid.as_raw())
    );
    t.converge(&[]).expect_code(0);

    // Changing an attribute changes only that.
    t.role("main", &with_file.replace("/bin/sh", "/usr/sbin/nologin"));
    let run = t.converge(&[]);
    run.shows("~ user:tend-e2e-ops: changed shell /bin/sh -> /usr/sbin/nologin");

    // And removing them leaves nothing behind.
    t.role("main", &role("absent"));
    t.converge(&[]).expect_code(2);
    assert!(
        nix::unistd::User::from_name("tend-e2e-ops")
            .unwrap()
            .is_none()
    );
    assert!(
        nix::unistd::Group::from_name("tend-e2e-admins")
            .unwrap()
            .is_none()
    );
}
