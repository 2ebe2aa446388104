//! SIGKILL in the middle of a converge: no file is ever torn, and the next
//! run removes every temporary file the killed one left.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{HOST, Test};

const FILES: usize = 1_000;
const KILLS: usize = 50;

/// The content of file `i` in variant `v`: about 400 bytes.
fn content(i: usize, v: usize) -> String {
    let mut s = format!("# file {i}, variant {v}\n");
    while s.len() < 400 {
        s.push_str(&format!("setting_{} = {v}-{i}\n", s.len()));
    }
    s
}

fn path(root: &Path, i: usize) -> PathBuf {
    root.join(format!("d{}", i % 10))
        .join(format!("f{i:04}.conf"))
}

/// Step `step` of the cycle: content A, content B, then B with another mode
/// (a change made in place, not by rewriting).
fn role(step: usize) -> (usize, &'static str, String) {
    let (variant, mode) = match step % 3 {
        0 => (0, "0644"),
        1 => (1, "0644"),
        _ => (1, "0600"),
    };
    let mut yaml = String::from("resources:\n");
    for d in 0..10 {
        yaml.push_str(&format!("  - directory: \"{{{{root}}}}/d{d}\"\n"));
    }
    for i in 0..FILES {
        yaml.push_str(&format!(
            "  - file: \"{{{{root}}}}/d{}/f{i:04}.conf\"\n    mode: \"{mode}\"\n    content: {:?}\n",
            i % 10,
            content(i, variant)
        ));
    }
    (variant, mode, yaml)
}

/// Every path below `dir`, relative to it.
fn entries(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

/// A small xorshift: the tests need no random crate, and a failing seed can
/// be replayed with TEND_CRASH_SEED.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn a_killed_converge_tears_no_file_and_the_next_run_leaves_nothing_behind() {
    let t = Test::new();
    let seed = std::env::var("TEND_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let managed: BTreeSet<PathBuf> = (0..10)
        .map(|d| PathBuf::from(format!("d{d}")))
        .chain((0..FILES).map(|i| path(Path::new(""), i)))
        .collect();
    let args = |t: &Test| {
        vec![
            "converge".to_owned(),
            "--repo".to_owned(),
            t.repo.display().to_string(),
            "--host".to_owned(),
            HOST.to_owned(),
            "--state-dir".to_owned(),
            t.state.display().to_string(),
            "--format".to_owned(),
            "json".to_owned(),
        ]
    };
    // How long a run that rewrites every file takes: kills land anywhere in it.
    t.role("main", &role(0).2);
    t.converge(&[]).expect_code(2);
    t.role("main", &role(1).2);
    let started = Instant::now();
    t.converge(&[]).expect_code(2);
    let full = started.elapsed();
    let mut interrupted_with_leftovers = 0;
    for kill in 0..KILLS {
        let (variant, mode, yaml) = role(kill + 2);
        t.role("main", &yaml);
        let mut child = Command::new(crate::support::bin("tend"))
            .args(args(&t))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();

        // Not torn: every file is whole, old or new.
        for i in 0..FILES {
            let p = path(&t.root, i);
            let Ok(bytes) = fs_err::read_to_string(&p) else {
                continue;
            };
            assert!(
                bytes == content(i, 0) || bytes == content(i, 1),
                "{} is torn after a kill at {delay:?} (seed {seed})",
                p.display()
            );
        }
        let before: BTreeSet<PathBuf> = entries(&t.root)
            .difference(&managed)
            .map(|p| t.root.join(p))
            .collect();

        // The next run finishes the work and removes what the killed one left.
        let run = t.converge(&["--format", "json"]);
        assert!(
            run.code == 0 || run.code == 2,
            "seed {seed}: {}{}",
            run.stdout,
            run.stderr
        );
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let reported: BTreeSet<PathBuf> = report["leftovers_removed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| PathBuf::from(p.as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            before.iter().all(|p| reported.contains(p)),
            "left in the tree: {before:?}, reported: {reported:?} (seed {seed})"
        );
        if !before.is_empty() {
            interrupted_with_leftovers += 1;
        }
        assert_eq!(
            entries(&t.root),
            managed,
            "files other than the managed ones (seed {seed})"
        );
        let state: Vec<String> = entries(&t.state)
            .iter()
            .map(|p| p.display().to_string())
            .filter(|p| p.contains(".tend-") || p.contains("temporary"))
            .collect();
        assert!(state.is_empty(), "left in the state directory: {state:?}");
        for i in (0..FILES).step_by(97) {
            let p = path(&t.root, i);
            assert_eq!(fs_err::read_to_string(&p).unwrap(), content(i, variant));
            let want = u32::from_str_radix(mode, 8).unwrap();
            assert_eq!(
                fs_err::metadata(&p).unwrap().permissions().mode() & 0o7777,
                want
            );
        }
        let again = t.converge(&[]);
        again.expect_code(0);
        assert!(again.summary().starts_with("0 changed"), "{}", again.stdout);
    }
    eprintln!("{interrupted_with_leftovers} of {KILLS} kills left temporary files (seed {seed})");
    // The kills did land while files were being written.
    assert!(
        interrupted_with_leftovers > 0,
        "no kill left a temporary file; the test did not test (seed {seed})"
    );
}
