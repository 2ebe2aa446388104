//! Faults the host's side must survive: a full file system under the
//! target and under the state directory (small tmpfs mounts the tests make
//! and remove). After each, nothing is torn or half-written, and once there
//! is room the next run converges and the one after changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Test;
use crate::support::receiver::Receiver;

/// A tmpfs of `size` mounted at `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs_err::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "cannot mount a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Names of entries below `dir` that look like tend's temporary files.
fn temporaries(dir: &Path) -> Vec<String> {
    fs_err::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tend-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut f = fs_err::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

fn with_big_file(t: &Test) {
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    fs_err::create_dir_all(t.repo.join("roles/main/files")).unwrap();
    fs_err::write(t.repo.join("roles/main/files/big.bin"), &big).unwrap();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/small.txt\"\n    content: \"small\\n\"\n  - file: \"{{root}}/big.bin\"\n    source: big.bin\n  - file: \"{{root}}/after.txt\"\n    content: \"after\\n\"\n",
    );
}

#[test]
fn a_full_target_file_system_fails_only_the_file_that_does_not_fit() {
    let t = Test::new();
    with_big_file(&t);
    let disk = Tmpfs::mount(&t.root, "1m");
    let run = t.converge(&[]);
    run.expect_code(6);
    assert!(
        run.stdout.contains("No space left on device"),
        "{}",
        run.stdout
    );
    run.shows("2 changed, 0 drift corrected, 1 failed");
    assert_eq!(
        fs_err::read_to_string(t.at("after.txt")).unwrap(),
        "after\n"
    );
    assert!(!t.at("big.bin").exists(), "a torn big.bin");
    assert_eq!(temporaries(&t.root), Vec::<String>::new());
    disk.resize("8m");
    t.converge(&[]).expect_code(2).shows("1 changed");
    assert_eq!(fs_err::metadata(t.at("big.bin")).unwrap().len(), 2_000_000);
    t.converge(&[]).expect_code(0);
}

#[test]
fn a_full_state_directory_leaves_files_it_cannot_back_up_and_sends_the_report_directly() {
    let t = Test::new();
    with_big_file(&t);
    t.converge(&[]).expect_code(2);
    let state_json = fs_err::read_to_string(t.state.join("state.json")).unwrap();
    // The state directory fills up.
    let disk = Tmpfs::mount(&t.state, "256k");
    fs_err::write(t.state.join("state.json"), &state_json).unwrap();
    fill(&t.state.join("filler"));
    // A change while the state directory is full.
    t.role(
        "main",
        &fs_err::read_to_string(t.repo.join("roles/main/role.yaml"))
            .unwrap()
            .replace("small\\n", "smaller\\n"),
    );
    let log = Receiver::start();
    let token = t.state.parent().unwrap().join("token");
    fs_err::write(&token, "t\n").unwrap();
    let run = t.converge(&[
        "--report-to",
        &log.url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    // A file whose old content cannot be backed up is left as it is (and
    // says why); the report, with no room in the spool, went straight to
    // the log.
    run.expect_code(4);
    run.shows("could not be backed up, so it is left as it is: No space left on device");
    assert_eq!(
        fs_err::read_to_string(t.at("small.txt")).unwrap(),
        "small\n"
    );
    assert!(
        run.stderr.contains("could not spool the report"),
        "{}",
        run.stderr
    );
    assert_eq!(log.ids().len(), 1, "{run:?}");
    assert_eq!(log.received()[0].body["summary"]["failed"], 1);
    // Nothing half-written, state.json whole.
    assert_eq!(temporaries(&t.state), Vec::<String>::new());
    serde_json::from_str::<serde_json::Value>(
        &fs_err::read_to_string(t.state.join("state.json")).unwrap(),
    )
    .expect("state.json is whole");
    // Room again: the next run finishes the job, the one after is quiet.
    fs_err::remove_file(t.state.join("filler")).unwrap();
    disk.resize("16m");
    t.converge(&[]).expect_code(2);
    assert_eq!(
        fs_err::read_to_string(t.at("small.txt")).unwrap(),
        "smaller\n"
    );
    t.converge(&[]).expect_code(0);
    serde_json::from_str::<serde_json::Value>(
        &fs_err::read_to_string(t.state.join("state.json")).unwrap(),
    )
    .expect("state.json is whole");
}
