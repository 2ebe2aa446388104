//! The plan/apply listing as the operator reads it.

use insta::assert_snapshot;

use crate::support::Test;

#[test]
fn dry_run_listing() {
    let t = Test::new();
    t.role(
        "main",
        r#"
vars:
  workers: 4
resources:
  - directory: "{{root}}/etc"
  - file: "{{root}}/etc/app.conf"
    template: app.conf.hbs
    mode: "0640"
  - file: "{{root}}/etc/key.pem"
    content: "-----BEGIN KEY-----\nnew\n"
    sensitive: true
  - file: "{{root}}/etc/legacy.conf"
    state: absent
  - symlink: "{{root}}/etc/current"
    target: app.conf
  - file: "{{root}}/etc/same"
    content: "unchanged\n"
"#,
    );
    t.file(
        "roles/main/templates/app.conf.hbs",
        "# app\nworkers = {{workers}}\nenv = {{env}}\nhost = {{host.name}}\n",
    );
    std::fs::create_dir_all(t.at("etc")).unwrap();
    std::fs::write(
        t.at("etc/app.conf"),
        "# app\nworkers = 2\nenv = test\nhost = test-host\n",
    )
    .unwrap();
    std::fs::write(t.at("etc/key.pem"), "-----BEGIN KEY-----\nold\n").unwrap();
    std::fs::write(t.at("etc/legacy.conf"), "old\n").unwrap();
    std::fs::write(t.at("etc/same"), "unchanged\n").unwrap();
    let run = t.dry_run();
    run.expect_code(2);
    assert!(
        !run.stdout.contains("new\n") && !run.stdout.contains("old\n    "),
        "sensitive content leaked"
    );
    assert_snapshot!(t.scrub(&run.stdout));
}
