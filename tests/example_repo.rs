//! The repository's own example roles and environments.

use std::path::Path;

use crate::support::tend;

fn repo() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

#[test]
fn the_example_repository_checks_clean() {
    let run = tend(&["check", "--repo", repo()]);
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("ok: 3 environments"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_example_web_host_dry_runs_without_touching_anything() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    let run = tend(&[
        "converge",
        "--dry-run",
        "--repo",
        repo(),
        "--host",
        "web-1.prod.example.com",
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        run.code == 0 || run.code == 2 || run.code == 4,
        "{}",
        run.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["environment"], "production");
    assert_eq!(report["roles"], serde_json::json!(["base", "web"]));
    assert_eq!(report["mode"], "dry-run");
    assert!(!Path::new(&state_dir).exists());
}

#[test]
fn the_example_catalog_renders_the_environment_knobs() {
    let run = tend(&[
        "catalog",
        "--repo",
        repo(),
        "--env",
        "production",
        "--host",
        "web-2.prod.example.com",
        "--format",
        "json",
    ]);
    run.expect_code(0);
    let catalog: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let site = catalog["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "file:/etc/nginx/sites-available/photos")
        .expect("the site config is in the catalog");
    let content = site["content"].as_str().unwrap();
    assert!(
        content.contains("server_name photos.example.com;"),
        "{content}"
    );
    assert!(
        content.contains("web-2.prod.example.com in production"),
        "{content}"
    );
    // The staging catalog differs only by its knobs.
    let yaml = tend(&[
        "catalog",
        "--repo",
        repo(),
        "--host",
        "web-1.staging.example.com",
    ]);
    yaml.expect_code(0);
    assert!(
        yaml.stdout.contains("photos.staging.example.com"),
        "{}",
        yaml.stdout
    );
}
