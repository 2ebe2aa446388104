//! Manifest errors, as the operator sees them: file:line:column, the key, a
//! hint. Each is a snapshot of `tend check` (or `converge`) output.

use insta::assert_snapshot;

use crate::support::Test;

/// `tend check` on a repository whose role `main` is `role`; must fail.
fn check_role(role: &str) -> String {
    let t = Test::new();
    t.role("main", role);
    check(&t)
}

fn check(t: &Test) -> String {
    let run = t.check();
    run.expect_code(1);
    assert!(run.stdout.is_empty(), "errors go to stderr: {}", run.stdout);
    t.scrub(&run.stderr)
}

#[test]
fn unknown_key_suggests_the_right_one() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/motd\"\n    content: hi\n    mdoe: \"0644\"\n"
    ));
}

#[test]
fn unquoted_mode_is_explained() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/motd\"\n    content: hi\n    mode: 644\n"
    ));
}

#[test]
fn yes_is_not_a_boolean() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/key\"\n    content: hi\n    sensitive: yes\n"
    ));
}

#[test]
fn unknown_resource_type() {
    assert_snapshot!(check_role(
        "resources:\n  - fiel: \"{{root}}/motd\"\n    content: hi\n"
    ));
}

#[test]
fn undefined_variable_in_an_inline_template() {
    assert_snapshot!(check_role(
        "vars:\n  workers: 2\nresources:\n  - file: \"{{root}}/motd\"\n    content: \"{{worker}} workers\\n\"\n"
    ));
}

#[test]
fn undefined_variable_in_a_template_file() {
    let t = Test::new();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/nginx.conf\"\n    template: nginx.conf.hbs\n",
    );
    t.file(
        "roles/main/templates/nginx.conf.hbs",
        "events {}\nhttp {\n  server_name {{server_name}};\n}\n",
    );
    assert_snapshot!(check(&t));
}

#[test]
fn template_path_escaping_the_role_folder() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/passwd\"\n    template: ../../../etc/passwd\n"
    ));
}

#[test]
fn missing_source_file() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/robots.txt\"\n    source: robots.txt\n"
    ));
}

#[test]
fn reference_to_a_resource_that_does_not_exist() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/a\"\n    content: a\n  - file: \"{{root}}/b\"\n    content: b\n    require: [\"file:{{root}}/aa\"]\n"
    ));
}

#[test]
fn duplicate_identity_with_different_attributes_names_both_places() {
    let t = Test::new();
    t.role(
        "main",
        "include: [other]\nresources:\n  - file: \"{{root}}/motd\"\n    content: one\n",
    );
    t.role(
        "other",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: two\n",
    );
    assert_snapshot!(check(&t));
}

#[test]
fn include_cycle() {
    let t = Test::new();
    t.role("main", "include: [web]\n");
    t.role("web", "include: [base]\n");
    t.role("base", "include: [main]\n");
    assert_snapshot!(check(&t));
}

#[test]
fn ordering_cycle() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/a\"\n    content: a\n    require: [\"file:{{root}}/b\"]\n  - file: \"{{root}}/b\"\n    content: b\n    require: [\"file:{{root}}/a\"]\n"
    ));
}

#[test]
fn host_matched_by_no_environment() {
    let t = Test::new();
    t.role("main", "resources: []\n");
    let run = crate::support::tend(&[
        "converge",
        "--dry-run",
        "--repo",
        t.repo.to_str().unwrap(),
        "--host",
        "web-9.nowhere",
    ]);
    run.expect_code(1);
    assert_snapshot!(t.scrub(&run.stderr));
}

#[test]
fn host_matched_by_two_environments() {
    let t = Test::new();
    t.role("main", "resources: []\n");
    t.file(
        "manifests/staging.yaml",
        "environment: staging\nhosts:\n  - match: \"test-*\"\n    roles: [main]\n",
    );
    assert_snapshot!(check(&t));
    // converge without --env refuses to guess.
    let run = crate::support::tend(&[
        "converge",
        "--dry-run",
        "--repo",
        t.repo.to_str().unwrap(),
        "--host",
        "test-host",
    ]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("matched by more than one host entry"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_key_in_a_role_file() {
    assert_snapshot!(check_role(
        "resource:\n  - file: /etc/motd\n    content: hi\n"
    ));
}

#[test]
fn invalid_yaml() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/motd\n    content: hi\n"
    ));
}

#[test]
fn state_that_is_not_a_state() {
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/motd\"\n    state: gone\n"
    ));
}

#[test]
fn content_and_template_together() {
    let t = Test::new();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: hi\n    template: motd.hbs\n",
    );
    t.file("roles/main/templates/motd.hbs", "hi\n");
    assert_snapshot!(check(&t));
}

#[test]
fn relative_path() {
    assert_snapshot!(check_role(
        "resources:\n  - file: etc/motd\n    content: hi\n"
    ));
}

#[test]
fn unknown_role() {
    let t = Test::new();
    t.role("main", "include: [bsae]\n");
    t.role("base", "resources: []\n");
    assert_snapshot!(check(&t));
}

#[test]
fn reserved_variable_name() {
    assert_snapshot!(check_role("vars:\n  host: web-1\nresources: []\n"));
}

#[test]
fn unquoted_template_name() {
    assert_snapshot!(check_role("resources:\n  - directory: {{root}}/srv\n"));
}

#[test]
fn check_reports_every_error_of_the_repository_in_one_run() {
    let t = Test::new();
    t.role(
        "main",
        "include: [extra]\nresources:\n  - file: \"{{root}}/a\"\n    content: \"{{nope}}\"\n  - file: \"{{root}}/b\"\n    content: b\n    mdoe: \"0644\"\n",
    );
    t.role(
        "extra",
        "resources:\n  - directory: \"{{root}}/d\"\n    purge: maybe\n",
    );
    t.role("unused", "resources:\n  - symlink: /x\n    targte: /y\n");
    t.file(
        "manifests/broken.yaml",
        "environment: broken\nhosts:\n  - roles: [main]\n",
    );
    let out = check(&t);
    for expected in [
        "undefined variable `nope`",
        "unknown key `mdoe`",
        "`purge` must be true or false",
        "unknown key `targte`",
        "a host entry needs `match:`",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(out.contains("error: 5 problems"), "{out}");
}

#[test]
fn undefined_variable_in_a_condition() {
    // Handlebars alone would read it as false and render nothing.
    assert_snapshot!(check_role(
        "resources:\n  - file: \"{{root}}/motd\"\n    content: \"{{#if maintenance}}down for maintenance{{/if}}\\n\"\n"
    ));
}

#[test]
fn two_resources_for_one_path() {
    assert_snapshot!(check_role(
        "resources:\n  - directory: \"{{root}}/conf\"\n  - file: \"{{root}}/conf\"\n    content: x\n"
    ));
}

#[test]
fn a_resource_with_an_error_is_reported_once_not_at_every_reference() {
    // Two host entries compile the role twice; the broken service is
    // reported once, the references to it not at all, and a real unknown
    // reference elsewhere still is.
    let t = Test::new();
    t.env(&format!(
        "environment: test\nvars:\n  root: {}\nhosts:\n  - match: \"a\"\n    roles: [main]\n  - match: \"b\"\n    roles: [main]\n",
        t.root.display()
    ));
    t.role(
        "main",
        "resources:\n  - service: nginx\n    enabled: yes\n  - file: \"{{root}}/a.conf\"\n    content: a\n    notify: [service:nginx]\n  - file: \"{{root}}/b.conf\"\n    content: b\n    notify: [service:nginx]\n    require: [file:/nowhere]\n",
    );
    let out = check(&t);
    assert_eq!(out.matches("error: ").count(), 3, "{out}");
    assert!(
        !out.contains("`service:nginx` refers to no resource"),
        "{out}"
    );
    assert!(
        out.contains("`file:/nowhere` refers to no resource"),
        "{out}"
    );
    assert_snapshot!(out);
}

#[test]
fn an_alias_bomb_is_refused_naming_the_limit_and_how_to_raise_it() {
    let mut bomb = String::from("vars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    let out = check_role(&bomb);
    assert!(
        out.contains("this file goes past a YAML limit: more than"),
        "{out}"
    );
    assert!(out.contains("TEND_YAML_LIMITS="), "{out}");
}

#[test]
fn a_large_honest_manifest_is_not_refused() {
    // 400,000 values: past the parser's default budget of 250,000 nodes.
    let t = Test::new();
    let mut role = String::from("vars:\n  ports: [");
    for i in 0..400_000 {
        role.push_str(&format!("{},", i % 10));
    }
    role.push_str("0]\nresources:\n  - file: \"{{root}}/motd\"\n    content: hi\n");
    t.role("main", &role);
    let run = t.check();
    run.expect_code(0);
}

#[test]
fn a_hundred_megabyte_manifest_is_refused_before_it_is_read() {
    let t = Test::new();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: hi\n",
    );
    // Sparse: 100 MB that cost no disk.
    let role = fs_err::OpenOptions::new()
        .append(true)
        .open(t.repo.join("roles/main/role.yaml"))
        .unwrap();
    role.set_len(100_000_000).unwrap();
    let run = t.check();
    run.expect_code(1);
    assert!(
        run.stderr.contains("roles/main/role.yaml:1:1")
            && run.stderr.contains(
                "this file is 100000000 bytes, more than a manifest may be (67108864 bytes)"
            )
            && run.stderr.contains("TEND_YAML_LIMITS=2"),
        "{}",
        run.stderr
    );
}
