//! Hostile input, refused with a clear error and nothing touched: names
//! that leave the repository, links that point out of it, templates that
//! would recurse, reports nested to exhaust a parser.

use crate::log_server::LogServer;
use crate::support::{HOST, Test};

#[test]
fn names_and_links_that_leave_the_repository_are_refused_and_nothing_is_read_from_outside() {
    let t = Test::new();
    let outside = tempfile::tempdir().unwrap();
    fs_err::write(outside.path().join("secret"), "outside\n").unwrap();
    fs_err::create_dir_all(t.repo.join("roles/main/templates")).unwrap();
    fs_err::create_dir_all(t.repo.join("roles/main/files")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        t.repo.join("roles/main/templates/evil.hbs"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        t.repo.join("roles/main/files/evil"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), t.repo.join("roles/main/files/out")).unwrap();
    fs_err::write(t.repo.join("roles/main/templates/self.hbs"), "{{> self}}\n").unwrap();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/a\"\n    template: /etc/passwd\n  - file: \"{{root}}/b\"\n    source: ../../../etc/shadow\n  - file: \"{{root}}/c\"\n    template: evil.hbs\n  - file: \"{{root}}/d\"\n    source: evil\n  - file: \"{{root}}/e\"\n    source: out/secret\n  - file: \"{{root}}/f\"\n    template: self.hbs\n",
    );
    let run = t.converge(&[]);
    run.expect_code(1);
    for text in [
        "`/etc/passwd` leaves the role's `templates/` folder",
        "`../../../etc/shadow` leaves the role's `files/` folder",
        "`roles/main/templates/evil.hbs` is a link to",
        "`roles/main/files/evil` is a link to",
        "`roles/main/files/out/secret` is a link to",
        "Partial not found self",
    ] {
        assert!(
            run.stderr.contains(text),
            "stderr lacks `{text}`:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("outside\n") && !run.stdout.contains("outside"),
        "{run:?}"
    );
    assert_eq!(
        fs_err::read_dir(&t.root).unwrap().count(),
        0,
        "something was written"
    );
    // A role name that is a path.
    let role = fs_err::read_to_string(t.repo.join("roles/main/role.yaml")).unwrap();
    t.role("main", &format!("include: [\"../../etc\"]\n{role}"));
    let run = t.converge(&[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("`../../etc` is not a role name"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_report_nested_to_exhaust_the_parser_is_refused_and_the_log_goes_on() {
    let log = LogServer::start(&[]);
    let token = fs_err::read_to_string(log.token(HOST, "test")).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"id\": \"x\", \"host\": \"{HOST}\", \"resources\": {deep}}}");
    let (code, answer) = log.post(Some(token.trim()), body.as_bytes());
    // The typed parser stops at the first value out of place (and serde's
    // recursion limit holds where nesting is allowed).
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not a run report"),
        "{answer}"
    );
    // Still answering.
    let (code, _) = log.get("/v1/hosts");
    assert_eq!(code, 200);
}
