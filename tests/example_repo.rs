//! The repository's own example roles and environments.

use std::path::Path;

use crate::support::tend;

fn repo() -> &'static str {
    crate::support::project()
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

/// The JSON Schemas editors read (`schema/`) hold the example files valid
/// and catch a misspelt key, by an independent Draft 7 validator (Python's
/// jsonschema), the way an editor's YAML language server would.
#[test]
fn an_independent_validator_takes_the_examples_and_refuses_a_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    fs_err::write(&bad, "resources:\n  - file: /etc/motd\n    contnet: hi\n").unwrap();
    let script = r#"
import glob, json, sys, jsonschema, yaml
root, bad = sys.argv[1], sys.argv[2]
schemas = {k: json.load(open(f"{root}/schema/{k}.schema.json")) for k in ("role", "environment")}
for s in schemas.values():
    jsonschema.Draft7Validator.check_schema(s)
files = [("role", f) for f in glob.glob(f"{root}/roles/*/role.yaml")]
files += [("environment", f) for f in glob.glob(f"{root}/manifests/*.yaml")]
for kind, f in files:
    for e in jsonschema.Draft7Validator(schemas[kind]).iter_errors(yaml.safe_load(open(f))):
        print(f"{f}: {e.message}")
print(len(files), "files")
print(len(list(jsonschema.Draft7Validator(schemas["role"]).iter_errors(yaml.safe_load(open(bad))))), "errors in bad")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, repo()])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "7 files\n1 errors in bad\n");
}
