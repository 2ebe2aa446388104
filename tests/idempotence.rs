//! Property: any set of file, directory and symlink resources converges in
//! one run; a second run changes nothing.

use std::fmt::Write as _;

use proptest::prelude::*;

use crate::support::Test;

#[derive(Debug, Clone)]
enum Entry {
    File { content: String, mode: u32 },
    Dir { mode: u32, purge: bool },
    Link { target: String },
    AbsentFile,
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        (
            "[a-z0-9 \n]{0,40}",
            prop::sample::select(vec![0o600u32, 0o640, 0o644, 0o755])
        )
            .prop_map(|(content, mode)| Entry::File { content, mode }),
        (
            prop::sample::select(vec![0o700u32, 0o750, 0o755]),
            any::<bool>()
        )
            .prop_map(|(mode, purge)| Entry::Dir { mode, purge }),
        "[a-z]{1,8}".prop_map(|target| Entry::Link { target }),
        Just(Entry::AbsentFile),
    ]
}

/// Up to 12 resources at distinct paths up to two levels deep. Entries
/// below a directory of the set are kept only when that directory is one.
fn resources() -> impl Strategy<Value = Vec<(String, Entry)>> {
    prop::collection::btree_map("[a-c](/[a-c]){0,2}", entry(), 1..12).prop_map(|map| {
        let dirs: Vec<String> = map
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Dir { .. }))
            .map(|(p, _)| p.clone())
            .collect();
        map.into_iter()
            .filter(|(path, _)| {
                // Every parent must be a declared directory.
                let parts: Vec<&str> = path.split('/').collect();
                (1..parts.len()).all(|i| dirs.contains(&parts[..i].join("/")))
            })
            .collect()
    })
}

fn role(entries: &[(String, Entry)]) -> String {
    let mut yaml = String::from("resources:\n");
    for (path, e) in entries {
        let _ = match e {
            Entry::File { content, mode } => write!(
                yaml,
                "  - file: \"{{{{root}}}}/{path}\"\n    content: {content:?}\n    mode: \"{mode:04o}\"\n"
            ),
            Entry::Dir { mode, purge } => write!(
                yaml,
                "  - directory: \"{{{{root}}}}/{path}\"\n    mode: \"{mode:04o}\"\n    purge: {purge}\n"
            ),
            Entry::Link { target } => write!(
                yaml,
                "  - symlink: \"{{{{root}}}}/{path}\"\n    target: {target}\n"
            ),
            Entry::AbsentFile => write!(
                yaml,
                "  - file: \"{{{{root}}}}/{path}\"\n    state: absent\n"
            ),
        };
    }
    yaml
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn converging_twice_changes_nothing_the_second_time(entries in resources()) {
        let t = Test::new();
        t.role("main", &role(&entries));
        let first = t.converge(&[]);
        prop_assert!(first.code == 0 || first.code == 2, "first run failed:\n{}\n{}", first.stdout, first.stderr);
        let second = t.converge(&[]);
        prop_assert_eq!(second.code, 0, "second run changed something:\n{}", second.stdout);
        prop_assert!(second.summary().starts_with("0 changed, 0 drift corrected, 0 failed"), "{}", second.summary());
    }
}
