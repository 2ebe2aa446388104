//! Feature flags (SPEC §2): the `flags` resource, `when: { flag }` gating,
//! and `tend flags preview`.

use crate::support::{HOST, Test, tend};

fn env(t: &Test, flags: &str, hosts: &str) {
    t.env(&format!(
        "environment: test\nvars:\n  root: {}\nflags:\n{flags}hosts:\n{hosts}",
        t.root.display()
    ));
}

const ROLE: &str = "resources:
  - flags: \"{{root}}/flags.json\"
    values:
      new_uploader: true
      retired: false
      search_v2: { percent: 100 }
      none_yet: { percent: 0 }
      comments: { hosts: [\"test-*\"] }
      elsewhere: { hosts: [\"web-*\"] }
  - file: \"{{root}}/banner.html\"
    content: \"new banner\\n\"
    when: { flag: new_banner }
";

#[test]
fn a_flags_file_is_resolved_for_the_host_and_a_gated_resource_follows_its_flag() {
    let t = Test::new();
    t.role("main", ROLE);
    let entry = format!("  - match: \"{HOST}\"\n    roles: [main]\n");
    env(&t, "  new_banner: { hosts: [\"other-*\"] }\n", &entry);
    t.converge(&[]).expect_code(2).shows("+ flags:");
    let flags: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(t.at("flags.json")).unwrap()).unwrap();
    assert_eq!(
        flags,
        serde_json::json!({"new_uploader": true, "retired": false, "search_v2": true,
                           "none_yet": false, "comments": true, "elsewhere": false})
    );
    assert!(
        !t.at("banner.html").exists(),
        "dark-launched to other hosts only"
    );
    t.converge(&[]).expect_code(0);

    // The knob reaches this host: the gated file arrives.
    env(&t, "  new_banner: { percent: 100 }\n", &entry);
    t.converge(&[]).expect_code(2).shows("+ file:");
    assert_eq!(
        fs_err::read_to_string(t.at("banner.html")).unwrap(),
        "new banner\n"
    );
    t.converge(&[]).expect_code(0);
}

#[test]
fn flag_mistakes_are_errors_with_file_line_and_a_hint() {
    let t = Test::new();
    t.role(
        "main",
        &ROLE
            .replace("flag: new_banner", "flag: new_baner")
            .replace("percent: 0 }", "percent: 140 }"),
    );
    env(
        &t,
        "  new_banner: true\n  broken: maybe\n",
        &format!("  - match: \"{HOST}\"\n    roles: [main]\n"),
    );
    let run = t.check();
    run.expect_code(1);
    for text in [
        "flag `broken`: not a flag value",
        "manifests/test.yaml:6:11",
        "flag `none_yet`: `percent` must be a number from 0 to 100",
        "unknown flag `new_baner`",
        "did you mean `new_banner`?",
    ] {
        assert!(
            run.stderr.contains(text),
            "stderr lacks `{text}`:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_preview_lists_the_hosts_a_knob_would_move_and_raising_it_only_adds_hosts() {
    let t = Test::new();
    t.role("main", ROLE);
    let entries: String = (0..200)
        .map(|i| format!("  - match: \"app-{i}.prod\"\n    roles: [main]\n"))
        .collect();
    env(&t, "  new_banner: { percent: 10 }\n", &entries);
    let repo = t.repo.to_str().unwrap();
    let up = tend(&[
        "flags",
        "preview",
        "new_banner=30",
        "--env",
        "test",
        "--repo",
        repo,
        "--format",
        "json",
    ]);
    up.expect_code(0);
    let up: serde_json::Value = serde_json::from_str(&up.stdout).unwrap();
    let changes = up["changes"].as_array().unwrap();
    // About a fifth of 200 hosts more, and nobody turned off.
    assert!(
        (20..=60).contains(&changes.len()),
        "{} hosts",
        changes.len()
    );
    assert!(changes.iter().all(|c| c["on"] == true), "{up}");
    let down = tend(&[
        "flags",
        "preview",
        "new_banner=0",
        "--env",
        "test",
        "--repo",
        repo,
    ]);
    down.expect_code(0)
        .shows("new_banner in test (manifests/test.yaml:5:15): 10% → 0%");
    assert!(
        down.stdout
            .lines()
            .skip(1)
            .all(|l| l.contains("(turns off)")),
        "{}",
        down.stdout
    );
    let unknown = tend(&[
        "flags", "preview", "nope=5", "--env", "test", "--repo", repo,
    ]);
    unknown.expect_code(1);
    assert!(
        unknown
            .stderr
            .contains("test has no flag `nope` (its flags: new_banner)"),
        "{}",
        unknown.stderr
    );
}
