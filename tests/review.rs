//! Change review: `tend diff REV_A REV_B` on git histories the tests make,
//! read straight from git (the work tree is left as it is).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::agent::git;
use crate::log_server::LogServer;
use crate::rollout::report_in;
use crate::support::{Run, tend};

/// A git repository of manifests.
struct History {
    _dir: tempfile::TempDir,
    repo: PathBuf,
}

impl History {
    fn new() -> History {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("infra");
        fs_err::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        History { _dir: dir, repo }
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.repo.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
        self
    }

    fn remove(&self, rel: &str) -> &Self {
        fs_err::remove_file(self.repo.join(rel)).unwrap();
        self
    }

    fn commit(&self, subject: &str) -> String {
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &[
                "-c",
                "user.name=Ana Diaz",
                "-c",
                "user.email=ana@example.com",
                "commit",
                "--quiet",
                "-m",
                subject,
            ],
        );
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    fn diff(&self, args: &[&str]) -> Run {
        let repo = self.repo.to_str().unwrap();
        tend(&[&["diff", "--repo", repo], args].concat())
    }
}

const WEB: &str = "resources:
  - file: /etc/app/app.conf
    content: \"workers = {{workers}}\\n\"
    mode: \"0644\"
  - file: /etc/app/key.pem
    content: \"secret {{workers}}\\n\"
    sensitive: true
  - package: nginx
";

fn base(h: &History) {
    h.write(
        "manifests/production.yaml",
        "environment: production\nvars:\n  workers: 8\nhosts:\n  - match: \"web-*.prod\"\n    roles: [web]\n",
    )
    .write(
        "manifests/staging.yaml",
        "environment: staging\nvars:\n  workers: 2\nhosts:\n  - match: \"web-1.staging\"\n    roles: [web]\n",
    )
    .write("roles/web/role.yaml", WEB);
}

fn tree(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(root);
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if p.is_dir() && !p.ends_with(".git") {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn a_change_is_shown_host_by_host_with_diffs_and_policies_and_nothing_is_touched() {
    let h = History::new();
    base(&h);
    let before = h.commit("first");
    h.write(
        "manifests/production.yaml",
        "environment: production\nvars:\n  workers: 16\nhosts:\n  - match: \"web-*.prod\"\n    roles: [web]\n  - match: \"db-1.prod\"\n    roles: [web]\nrollout:\n  canary: [\"web-1.prod\"]\n  waves: [\"25%\", \"100%\"]\n  soak: 5m\n",
    )
    .write(
        "roles/web/role.yaml",
        &WEB.replace("mode: \"0644\"", "mode: \"0640\"")
            .replace("  - package: nginx\n", "  - package: htop\n"),
    );
    let after = h.commit("web: 16 workers in production");
    // Uncommitted edits in the work tree are not what is reviewed.
    h.write("roles/web/role.yaml", "resources: [oops\n");
    let listing_before = tree(&h.repo);

    let run = h.diff(&[&before, &after]);
    run.expect_code(2);
    for text in [
        &format!("diff {} → {}", &before[..12], &after[..12]),
        "to   Ana Diaz <ana@example.com>",
        "web: 16 workers in production",
        "~ rollout of production: none (every host at once) → canary web-1.prod, waves 25% → 100%, soak 5m, deadline 30m, halt on 1 failed then hold",
        "production web-*.prod [web]:",
        "  ~ file:/etc/app/app.conf (roles/web/role.yaml:2:5): mode: \"0644\" → \"0640\"",
        "      -workers = 8",
        "      +workers = 16",
        "content of /etc/app/key.pem changed (sensitive: diff hidden",
        "  + package:htop (roles/web/role.yaml:",
        "  - package:nginx",
        "production db-1.prod: new host entry [web]",
        "staging web-1.staging [web]:",
        "3 hosts would change, 0 unchanged; 1 rollout policy changed",
    ] {
        run.shows(text);
    }
    assert!(
        !run.stdout.contains("secret 16"),
        "a sensitive value leaked:\n{}",
        run.stdout
    );
    assert_eq!(
        tree(&h.repo),
        listing_before,
        "the diff touched the repository"
    );

    let json: Value =
        serde_json::from_str(&h.diff(&[&before, &after, "--format", "json"]).stdout).unwrap();
    assert_eq!(json["to"]["commit"], after.as_str());
    assert_eq!(json["policies"][0]["after"]["waves"][0], "25%");
    let web = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["host"] == "web-*.prod")
        .unwrap();
    let kinds: Vec<&str> = web["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "changed").count(),
        2,
        "{web}"
    );

    // One environment, one host by name.
    let staging = h.diff(&[&before, &after, "--env", "staging"]);
    staging.expect_code(2);
    assert!(
        !staging.stdout.contains("production web"),
        "{}",
        staging.stdout
    );
    let one = h.diff(&[&before, &after, "--host", "web-7.prod"]);
    one.expect_code(2)
        .shows("production web-7.prod [web]:")
        .shows("1 host would change");
    // The hosts the central log has heard from, by name.
    let log = LogServer::start(&[]);
    for host in ["web-3.prod", "web-1.staging"] {
        let env = host
            .split('.')
            .nth(1)
            .map(|e| if e == "prod" { "production" } else { e })
            .unwrap();
        let token = fs_err::read_to_string(log.token(host, env)).unwrap();
        let (code, _) = log.post(Some(token.trim()), &report_in(env, host, &before, false));
        assert_eq!(code, 201);
    }
    let viewer = log.viewer.display().to_string();
    let fleet = h.diff(&[&before, &after, "--log", &log.url, "--token-file", &viewer]);
    fleet
        .expect_code(2)
        .shows("production web-3.prod [web]:")
        .shows("staging web-1.staging [web]:")
        .shows("2 hosts would change");
    // Nothing between a revision and itself.
    h.diff(&[&after, "main"])
        .expect_code(0)
        .shows("0 hosts would change, 3 unchanged");
}

#[test]
fn a_revision_that_does_not_validate_is_an_error_with_file_line_and_column() {
    let h = History::new();
    base(&h);
    let good = h.commit("first");
    h.write("roles/web/role.yaml", &WEB.replace("mode:", "mdoe:"));
    let bad = h.commit("typo");
    let run = h.diff(&[&good, &bad]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("typo) does not validate"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("roles/web/role.yaml:4:5"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `mode`?"),
        "{}",
        run.stderr
    );
    let unknown = h.diff(&[&good, "no-such-branch"]);
    unknown.expect_code(1);
    assert!(
        unknown.stderr.contains("`no-such-branch` is not a commit"),
        "{}",
        unknown.stderr
    );
    h.remove("roles/web/role.yaml");
}

/// A repository of manifests (no git needed) from (path, text) pairs.
fn manifests(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, text).unwrap();
    }
    dir
}

fn parity(dir: &Path, args: &[&str]) -> Run {
    tend(&[&["parity", "--repo", dir.to_str().unwrap()], args].concat())
}

#[test]
fn the_example_environments_differ_only_in_their_knobs_and_parity_names_them() {
    let repo = crate::support::project();
    let run = tend(&["parity", "staging", "production", "--repo", repo]);
    run.expect_code(0);
    for text in [
        "[web] web-*.staging.example.com ↔ web-*.prod.example.com:",
        "~ file:/etc/nginx/nginx.conf content line",
        "var workers: 2 (roles/web/role.yaml:5:12) ↔ 8 (manifests/production.yaml:5:12)",
        "var shared_buffers: \"128MB\" (roles/db/role.yaml:8:19) ↔ \"2GB\" (manifests/production.yaml:13:29)",
        "var env: \"staging\" (manifests/staging.yaml:2:14) ↔ \"production\" (manifests/production.yaml:2:14)",
        "~ rollout: none (every host at once) in staging ↔ canary web-1.prod.example.com",
        "0 role combinations and 0 resources on one side only",
    ] {
        run.shows(text);
    }
    assert!(!run.stdout.contains("not explained"), "{}", run.stdout);
    let json: Value = serde_json::from_str(
        &tend(&[
            "parity",
            "staging",
            "production",
            "--repo",
            repo,
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(json["roles_only"], serde_json::json!([]));
    assert!(
        json["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["causes"][0]["var"] == "workers" || d["causes"][1]["var"] == "workers")
    );
}

const ROLE: &str = "vars:\n  port: 80\nresources:\n  - file: \"/etc/app/{{name}}.conf\"\n    content: \"port {{port}}\\n\"\n";

#[test]
fn parity_breaks_when_a_role_a_combination_or_a_resource_is_missing_on_one_side() {
    let env = |name: &str, entries: &str, vars: &str| {
        format!("environment: {name}\nvars:\n  name: app\n{vars}hosts:\n{entries}")
    };
    let web_db = "  - match: \"web-*\"\n    roles: [web]\n  - match: \"db-*\"\n    roles: [db]\n";
    // Values from vars only: parity holds, the var is named on both sides.
    let dir = manifests(&[
        ("roles/web/role.yaml", ROLE),
        (
            "roles/db/role.yaml",
            "resources:\n  - package: postgresql\n",
        ),
        ("manifests/staging.yaml", &env("staging", web_db, "")),
        (
            "manifests/production.yaml",
            &env("production", web_db, "  port: 8080\n"),
        ),
    ]);
    parity(dir.path(), &["staging", "production"])
        .expect_code(0)
        .shows("~ file:/etc/app/app.conf content line 1: \"port 80\" in staging ↔ \"port 8080\" in production")
        .shows("var port: 80 (roles/web/role.yaml:2:9) ↔ 8080 (manifests/production.yaml:4:9)");

    // Two entries with the same roles on one side: each is compared.
    let two = "  - match: \"web-*\"\n    roles: [web]\n  - match: \"edge-1\"\n    roles: [web]\n    vars: { port: 9090 }\n";
    let dir2 = manifests(&[
        ("roles/web/role.yaml", ROLE),
        (
            "manifests/staging.yaml",
            &env("staging", "  - match: \"web-*\"\n    roles: [web]\n", ""),
        ),
        ("manifests/production.yaml", &env("production", two, "")),
    ]);
    parity(dir2.path(), &["staging", "production"])
        .expect_code(0)
        .shows("[web] web-* ↔ edge-1:")
        .shows("var port: 80 (roles/web/role.yaml:2:9) ↔ 9090 (manifests/production.yaml:9:19)");

    // A role one side lacks, and a combination of roles on one host entry.
    let together = "  - match: \"web-*\"\n    roles: [web, db]\n";
    let dir = manifests(&[
        ("roles/web/role.yaml", ROLE),
        (
            "roles/db/role.yaml",
            "resources:\n  - package: postgresql\n",
        ),
        ("manifests/staging.yaml", &env("staging", together, "")),
        ("manifests/production.yaml", &env("production", web_db, "")),
    ]);
    let run = parity(dir.path(), &["staging", "production"]);
    run.expect_code(1)
        .shows("- roles [db, web] only in staging (web-*, manifests/staging.yaml:5:12); production has no host entry with them")
        .shows("- roles [db] only in production (db-*, manifests/production.yaml:7:12)")
        .shows("- roles [web] only in production");

    // A resource only one side gets: its name comes from a var.
    let dir = manifests(&[
        ("roles/web/role.yaml", ROLE),
        (
            "manifests/staging.yaml",
            &env("staging", "  - match: \"web-*\"\n    roles: [web]\n", ""),
        ),
        (
            "manifests/production.yaml",
            &env(
                "production",
                "  - match: \"web-*\"\n    roles: [web]\n    vars: { name: photos }\n",
                "",
            ),
        ),
    ]);
    let run = parity(dir.path(), &["staging", "production"]);
    run.expect_code(1)
        .shows("- file:/etc/app/app.conf only in staging (roles [web], roles/web/role.yaml:4:5); missing in production")
        .shows("- file:/etc/app/photos.conf only in production");
    let json: Value = serde_json::from_str(
        &parity(dir.path(), &["staging", "production", "--format", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(json["resources_only"].as_array().unwrap().len(), 2);

    // An environment that does not exist is an error that lists them.
    let run = parity(dir.path(), &["staging", "prod"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("no environment named `prod`"),
        "{}",
        run.stderr
    );
}

/// A real-size review (scripts/gen-review-repo): 50 roles of 10 files and
/// 20 host entries of 5 roles; the change reaches exactly the hosts whose
/// roles or vars it touches. Its speed is measured by scripts/bench-review.
#[test]
fn a_real_size_change_reaches_exactly_the_hosts_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fleet");
    let out = std::process::Command::new(format!(
        "{}/scripts/gen-review-repo",
        crate::support::project()
    ))
    .arg(&repo)
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .env("HOME", dir.path())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commits: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let run = tend(&[
        "diff",
        &commits[0],
        &commits[1],
        "--repo",
        repo.to_str().unwrap(),
        "--format",
        "json",
    ]);
    run.expect_code(2);
    let review: Value = serde_json::from_str(&run.stdout).unwrap();
    let changed: Vec<(String, usize)> = review["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["changes"].as_array().unwrap().len(),
            )
        })
        .collect();
    // role-07 is on entries 00 and 10, role-31 on 02 and 12; entry 12's
    // own workers var changes all of its 50 files.
    assert_eq!(
        changed,
        [
            ("host-00-*.prod".to_owned(), 10),
            ("host-02-*.prod".to_owned(), 10),
            ("host-10-*.prod".to_owned(), 10),
            ("host-12-*.prod".to_owned(), 50),
        ]
    );
    assert_eq!(review["unchanged"], 16);
}
