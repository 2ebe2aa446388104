//! The compiled-catalog cache: used when nothing changed, never stale.

use proptest::prelude::*;

use crate::support::{Run, Test, tend};

const BASE: &str = "vars:\n  motd: hello\nresources:\n  - file: \"{{root}}/motd\"\n    content: \"{{motd}} {{host.name}}\\n\"\n";

fn main_role(content: &str) -> String {
    format!(
        "include: [base]\nvars:\n  x: 1\nresources:\n  - file: \"{{{{root}}}}/a.conf\"\n    template: a.conf.hbs\n  - file: \"{{{{root}}}}/b.bin\"\n    source: b.bin\n  - file: \"{{{{root}}}}/c\"\n    content: \"{content}\"\n"
    )
}

fn env(root: &std::path::Path, x: u8) -> String {
    format!(
        "environment: test\nvars:\n  root: {}\n  x: {x}\nhosts:\n  - match: \"h*\"\n    roles: [main]\n",
        root.display()
    )
}

fn repo() -> Test {
    let t = Test::new();
    t.env(&env(&t.root, 1));
    t.role("base", BASE);
    t.role("main", &main_role("c"));
    t.file("roles/main/templates/a.conf.hbs", "a = {{x}}\n");
    t.file("roles/main/files/b.bin", "\u{1}bytes\n");
    t
}

/// `tend converge` for host `host`, with extra arguments.
fn converge(t: &Test, host: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "converge",
        "--repo",
        t.repo.to_str().unwrap(),
        "--host",
        host,
        "--state-dir",
        t.state.to_str().unwrap(),
        "--detailed-exitcodes",
    ];
    args.extend_from_slice(extra);
    tend(&args)
}

/// A run's outcome without what differs between two runs of the same
/// catalog (report id, times).
fn outcome(run: &Run) -> (i32, String, String) {
    let stdout = match serde_json::from_str::<serde_json::Value>(&run.stdout) {
        Ok(mut report) => {
            for key in ["id", "started_at", "duration_ms"] {
                report.as_object_mut().unwrap().remove(key);
            }
            for r in report["resources"].as_array_mut().into_iter().flatten() {
                r.as_object_mut().unwrap().remove("duration_ms");
            }
            report.to_string()
        }
        Err(_) => run.stdout.clone(),
    };
    (run.code, stdout, run.stderr.clone())
}

#[test]
fn an_unchanged_repository_is_not_compiled_again() {
    let t = repo();
    converge(&t, "h1", &[]).expect_code(2);
    let again = converge(&t, "h1", &["-vv"]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("catalog from the cache"),
        "{}",
        again.stderr
    );
    let fresh = converge(&t, "h1", &["-vv", "--no-cache"]);
    assert!(!fresh.stderr.contains("catalog from the cache"));
    fresh.expect_code(0);
}

#[derive(Debug, Clone)]
enum Edit {
    EnvVar(u8),
    Template(&'static str),
    Source(&'static str),
    Content(&'static str),
    IncludedRoleVar(&'static str),
    SecondEnvironment(bool),
    TemplateLinkedOutside(bool),
    SourceRemoved(bool),
    TouchedUnchanged,
    Host(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0u8..3).prop_map(Edit::EnvVar),
        prop::sample::select(vec![
            "a = {{x}}\n",
            "a = {{x}} {{host.short}}\n",
            "a = {{y}}\n"
        ])
        .prop_map(Edit::Template),
        prop::sample::select(vec!["\u{1}bytes\n", "other\n", ""]).prop_map(Edit::Source),
        prop::sample::select(vec!["c", "c2", "{{x}}", "{{undefined}}"]).prop_map(Edit::Content),
        prop::sample::select(vec!["hello", "hi"]).prop_map(Edit::IncludedRoleVar),
        any::<bool>().prop_map(Edit::SecondEnvironment),
        any::<bool>().prop_map(Edit::TemplateLinkedOutside),
        any::<bool>().prop_map(Edit::SourceRemoved),
        Just(Edit::TouchedUnchanged),
        prop::sample::select(vec!["h1", "h2"]).prop_map(Edit::Host),
    ]
}

fn apply(t: &Test, outside: &std::path::Path, host: &mut &'static str, e: &Edit) {
    let template = t.repo.join("roles/main/templates/a.conf.hbs");
    let source = t.repo.join("roles/main/files/b.bin");
    match e {
        Edit::EnvVar(x) => {
            t.env(&env(&t.root, *x));
        }
        Edit::Template(text) => {
            let _ = fs_err::remove_file(&template);
            t.file("roles/main/templates/a.conf.hbs", text);
        }
        Edit::Source(text) => {
            t.file("roles/main/files/b.bin", text);
        }
        Edit::Content(text) => {
            t.role("main", &main_role(text));
        }
        Edit::IncludedRoleVar(word) => {
            t.role("base", &BASE.replace("hello", word));
        }
        Edit::SecondEnvironment(present) => {
            let path = t.repo.join("manifests/other.yaml");
            if *present {
                t.file(
                    "manifests/other.yaml",
                    "environment: other\nhosts:\n  - match: \"h2\"\n    roles: [base]\n",
                );
            } else {
                let _ = fs_err::remove_file(path);
            }
        }
        Edit::TemplateLinkedOutside(linked) => {
            let text = fs_err::read_to_string(&template).unwrap_or_else(|_| "a\n".into());
            let _ = fs_err::remove_file(&template);
            if *linked {
                fs_err::write(outside, &text).unwrap();
                std::os::unix::fs::symlink(outside, &template).unwrap();
            } else {
                fs_err::write(&template, text).unwrap();
            }
        }
        Edit::SourceRemoved(removed) => {
            if *removed {
                let _ = fs_err::remove_file(&source);
            } else if !source.exists() {
                t.file("roles/main/files/b.bin", "back\n");
            }
        }
        Edit::TouchedUnchanged => {
            let role = t.repo.join("roles/main/role.yaml");
            let text = fs_err::read(&role).unwrap();
            fs_err::write(&role, text).unwrap();
        }
        Edit::Host(h) => *host = h,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever changes between runs, a converge that may use the cache
    /// does exactly what one that compiles does.
    #[test]
    fn random_edits_between_runs_give_the_same_result_as_no_cache(
        edits in prop::collection::vec(edit(), 1..8)
    ) {
        let t = repo();
        let outside = tempfile::NamedTempFile::new().unwrap();
        let mut host = "h1";
        converge(&t, host, &[]);
        for e in &edits {
            apply(&t, outside.path(), &mut host, e);
            let cached = converge(&t, host, &["--dry-run", "--format", "json"]);
            let compiled = converge(&t, host, &["--dry-run", "--format", "json", "--no-cache"]);
            prop_assert_eq!(outcome(&cached), outcome(&compiled), "after {:?}", e);
            // The real run keeps the new catalog for the next step.
            let real = converge(&t, host, &["--format", "json"]);
            prop_assert_eq!(real.code, compiled.code, "{:?}", real);
        }
    }
}
