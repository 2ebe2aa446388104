//! Dev boxes: vagrant/Vagrantfile defines one box per host entry of
//! manifests/dev.yaml and is valid to Vagrant itself (Debian's vagrant,
//! offline: no provider, no box). The provisioning script is run for real
//! in an end-to-end host (`tests/e2e`).

use std::path::Path;
use std::process::Command;

#[test]
fn the_vagrantfile_is_valid_and_has_a_box_per_dev_host_entry() {
    let project = Path::new(crate::support::project());
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(project.join("vagrant"))
        .env("VAGRANT_HOME", home.path())
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant is installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Vagrantfile validated successfully"),
        "{stdout}"
    );
    // Each entry's box, named by the first host its glob matches.
    let dev = fs_err::read_to_string(project.join("manifests/dev.yaml")).unwrap();
    let entries: Vec<String> = dev
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- match:"))
        .map(|m| m.trim().trim_matches('"').replace('*', "1"))
        .collect();
    assert_eq!(entries.len(), 3, "{dev}");
    for host in &entries {
        let machine = host.split('.').next().unwrap();
        assert!(
            stdout.contains(&format!("==> {machine}:")),
            "no box for {host}: {stdout}"
        );
    }
    let boxes = stdout.lines().filter(|l| l.starts_with("==> ")).count();
    assert_eq!(boxes, entries.len(), "{stdout}");
}
