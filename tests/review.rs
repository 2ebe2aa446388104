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
        "~ rollout of production: none (every host at once) → canary web-1.prod, waves 25% → 100%, soak 5m, halt on 1 failed",
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
        let token = fs_err::read_to_string(log.token(host)).unwrap();
        let env = host
            .split('.')
            .nth(1)
            .map(|e| if e == "prod" { "production" } else { e })
            .unwrap();
        let (code, _) = log.post(Some(token.trim()), &report_in(env, host, &before, false));
        assert_eq!(code, 201);
    }
    let fleet = h.diff(&[&before, &after, "--log", &log.url]);
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
