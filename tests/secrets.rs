//! `{ secret_file: PATH }` vars (SPEC §2): read on the host at converge
//! time, never shown — not in listings, reports, catalogs or reviews — and
//! a clear error when the file is missing.

use crate::support::{HOST, Test, tend};

const SECRET: &str = "s3cr3t-Pa55word";

/// A repository whose `db_password` var comes from a file outside it.
fn with_secret(t: &Test, secret_file: &std::path::Path) {
    t.env(&format!(
        "environment: test\nvars:\n  root: {}\n  db_password: {{ secret_file: {} }}\nhosts:\n  - match: \"{HOST}\"\n    roles: [main]\n",
        t.root.display(),
        secret_file.display()
    ));
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/db.conf\"\n    content: \"user app\\npassword {{db_password}}\\n\"\n    notify: [\"exec:announce\"]\n  - file: \"{{root}}/plain.conf\"\n    content: \"nothing secret\\n\"\n  - exec: announce\n    command: \"echo password {{db_password}}\"\n    refresh_only: true\n",
    );
}

#[test]
fn a_secret_reaches_the_host_and_nothing_that_shows_or_reports_it() {
    let t = Test::new();
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("db_password");
    fs_err::write(&file, format!("{SECRET}\n")).unwrap();
    with_secret(&t, &file);

    let run = t.converge(&[]);
    run.expect_code(2);
    assert_eq!(
        fs_err::read_to_string(t.at("db.conf")).unwrap(),
        format!("user app\npassword {SECRET}\n")
    );
    assert!(
        run.stdout.contains("sensitive: diff hidden"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "{run:?}"
    );
    // Derived from a secret: sensitive without saying so; the rest is not.
    assert!(run.stdout.contains("+nothing secret"), "{}", run.stdout);

    // The report (what goes to the log) holds neither the secret nor the
    // exec's output.
    fs_err::remove_file(t.at("db.conf")).unwrap();
    let json = t.converge(&["--format", "json"]);
    assert!(!json.stdout.contains(SECRET), "{}", json.stdout);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let exec = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_str().unwrap().starts_with("exec:"))
        .unwrap()
        .clone();
    assert_eq!(exec["output"], "(sensitive: output hidden)", "{exec}");

    // A new secret is applied at the next converge (no stale cache), and
    // still not shown.
    fs_err::write(&file, "rotated-value\n").unwrap();
    let run = t.converge(&[]);
    run.expect_code(2);
    assert!(
        fs_err::read_to_string(t.at("db.conf"))
            .unwrap()
            .contains("rotated-value")
    );
    assert!(!run.stdout.contains("rotated-value"), "{}", run.stdout);
    t.converge(&[]).expect_code(0);

    // A name is shown everywhere: one made from a secret is refused,
    // without showing it.
    let role = fs_err::read_to_string(t.repo.join("roles/main/role.yaml")).unwrap();
    t.role(
        "main",
        &role.replace("exec: announce", "exec: \"login {{db_password}}\""),
    );
    let refused = t.converge(&[]);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("comes from secret var `db_password`"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("rotated-value"),
        "{}",
        refused.stderr
    );
    t.role("main", &role);

    // Catalogs and checks never read it: they run where secrets are not.
    let catalog = tend(&[
        "catalog",
        "--repo",
        t.repo.to_str().unwrap(),
        "--host",
        HOST,
        "--format",
        "json",
    ]);
    catalog.expect_code(0);
    assert!(
        !catalog.stdout.contains("rotated-value"),
        "{}",
        catalog.stdout
    );
    assert!(catalog.stdout.contains("(sensitive)"), "{}", catalog.stdout);
    fs_err::remove_file(&file).unwrap();
    t.check().expect_code(0);
}

#[test]
fn a_missing_secret_file_is_an_error_naming_the_var_and_the_file_and_nothing_is_touched() {
    let t = Test::new();
    let missing = std::path::Path::new("/etc/tend/secrets/no-such-secret");
    with_secret(&t, missing);
    let run = t.converge(&[]);
    run.expect_code(1);
    for text in [
        "var `db_password` reads its secret from `/etc/tend/secrets/no-such-secret`, which cannot be read",
        "manifests/test.yaml:4:16",
        "hint: put the secret in that file on this host",
    ] {
        assert!(
            run.stderr.contains(text),
            "stderr lacks `{text}`:\n{}",
            run.stderr
        );
    }
    assert!(!t.at("plain.conf").exists(), "a file was written");
}
