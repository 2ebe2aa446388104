//! Workloads and baselines for `scripts/bench` (not part of tend).
//!
//! - `gen W1|W2|W3 DIR`: a repository under DIR/repo whose host `bench-host`
//!   manages the files under DIR/root, and DIR/list (`mode sha256 path`).
//!   W1: 1,000 files inline; W2: 1,000 from a template; W3: 10,000 and W4:
//!   100,000 inline.
//! - `floor DIR`: what converging an unchanged tree cannot avoid: lstat,
//!   read and sha256-compare every file of DIR/list.
//! - `write W DIR`: write the same files atomically by hand (temporary file,
//!   fsync, rename, fsync of the directory), the floor of a first run.
//! - `scribble DIR`: overwrite every tenth file by hand, as drift.
//! - `sink PORT`: answer every HTTP request on 127.0.0.1:PORT with 200, as
//!   the central log would acknowledge a report (for `scripts/bench-agent`).
//! - `log-load URL TOKEN_FILE HOST SENDERS SECONDS`: post realistic reports
//!   (50 resources, 2 with diffs) from SENDERS threads; reports/s and the
//!   p50/p99 latency of the acknowledgement (for `scripts/bench-log`).
//! - `log-seed DB N`: store N small reports of 1,000 hosts and 1,000 commits
//!   straight into a log database.
//! - `log-query URL HOST N`: p50/p99 of a host's last 100 runs, the deploy
//!   log and the dashboard, N times each.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn count(workload: &str) -> usize {
    match workload {
        "W1" | "W2" => 1_000,
        "W3" => 10_000,
        "W4" => 100_000,
        other => panic!("unknown workload {other}"),
    }
}

/// About 400 bytes of a config-like file, different for every index.
fn static_content(i: usize) -> String {
    let mut s = format!("# file {i}, managed by tend\n");
    let mut line = 0;
    while s.len() < 380 {
        let _ = writeln!(s, "setting_{line} = value-{i}-{line}");
        line += 1;
    }
    s
}

const TEMPLATE: &str = "# rendered by tend\nserver {\n    name {{name}};\n    listen 127.0.0.1:{{port}};\n    root /srv/www/{{name}};\n    access_log /var/log/www/{{name}}.log;\n    error_log /var/log/www/{{name}}.err;\n    keepalive_timeout 65;\n    client_max_body_size 10m;\n    gzip on;\n    gzip_types text/plain text/css application/json;\n    location / { try_files $uri $uri/ =404; }\n}\n";

fn template_content(i: usize) -> String {
    TEMPLATE
        .replace("{{name}}", &format!("site-{i}"))
        .replace("{{port}}", &(8000 + i).to_string())
}

fn content(workload: &str, i: usize) -> String {
    if workload == "W2" {
        template_content(i)
    } else {
        static_content(i)
    }
}

fn mode(workload: &str) -> u32 {
    if workload == "W2" { 0o640 } else { 0o644 }
}

fn path(root: &Path, i: usize) -> PathBuf {
    // 100 files a directory, as real trees are spread out.
    root.join(format!("d{:03}", i / 100))
        .join(format!("f{i:05}.conf"))
}

fn generate(workload: &str, dir: &Path) {
    let n = count(workload);
    let root = dir.join("root");
    let repo = dir.join("repo");
    fs_err::create_dir_all(repo.join("roles/bench/templates")).unwrap();
    fs_err::create_dir_all(repo.join("manifests")).unwrap();
    fs_err::create_dir_all(&root).unwrap();
    fs_err::write(
        repo.join("manifests/bench.yaml"),
        format!(
            "environment: bench\nvars:\n  root: {}\nhosts:\n  - match: bench-host\n    roles: [bench]\n",
            root.display()
        ),
    )
    .unwrap();
    fs_err::write(repo.join("roles/bench/templates/site.conf.hbs"), TEMPLATE).unwrap();
    let mut role = String::from("resources:\n");
    let mut list = String::new();
    for d in 0..n.div_ceil(100) {
        let _ = writeln!(role, "  - directory: \"{{{{root}}}}/d{d:03}\"");
    }
    for i in 0..n {
        let p = path(&root, i);
        let rel = p.strip_prefix(&root).unwrap().display().to_string();
        let _ = writeln!(role, "  - file: \"{{{{root}}}}/{rel}\"");
        if workload == "W2" {
            let _ = writeln!(role, "    template: site.conf.hbs");
            let _ = writeln!(role, "    vars: {{ name: site-{i}, port: {} }}", 8000 + i);
        } else {
            let _ = writeln!(role, "    content: |");
            for line in static_content(i).lines() {
                let _ = writeln!(role, "      {line}");
            }
        }
        let _ = writeln!(role, "    mode: \"{:04o}\"", mode(workload));
        let digest = Sha256::digest(content(workload, i).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(list, "{:o} {hex} {}", mode(workload), p.display());
    }
    fs_err::write(repo.join("roles/bench/role.yaml"), role).unwrap();
    fs_err::write(dir.join("list"), list).unwrap();
}

/// The same workload for the tools people would pick instead, each into
/// a root of its own: `site.pp` (puppet apply), `promises.cf` (cf-agent)
/// and `site.yml` (ansible-playbook, the first `limit` files only: it
/// takes about a second for ten files).
fn generate_others(workload: &str, dir: &Path, ansible_limit: usize) {
    let n = count(workload);
    let w2 = workload == "W2";
    let mode = format!("{:04o}", mode(workload));
    let roots: Vec<PathBuf> = ["puppet", "cfengine", "ansible"]
        .iter()
        .map(|t| dir.join(format!("root-{t}")))
        .collect();
    for r in &roots {
        fs_err::create_dir_all(r).unwrap();
    }
    let (pr, cr, ar) = (&roots[0], &roots[1], &roots[2]);
    // Puppet: EPP for the template workload, strings otherwise.
    let mut pp = String::new();
    for d in 0..n.div_ceil(100) {
        let _ = writeln!(
            pp,
            "file {{ '{}/d{d:03}': ensure => directory }}",
            pr.display()
        );
    }
    let epp = TEMPLATE
        .replace("{{name}}", "<%= $name %>")
        .replace("{{port}}", "<%= $port %>");
    for i in 0..n {
        let p = path(pr, i);
        let content = if w2 {
            format!(
                "inline_epp('{epp}', {{ 'name' => 'site-{i}', 'port' => {} }})",
                8000 + i
            )
        } else {
            format!("'{}'", static_content(i))
        };
        let _ = writeln!(
            pp,
            "file {{ '{}': ensure => file, mode => '{mode}', content => {content} }}",
            p.display()
        );
    }
    fs_err::write(dir.join("site.pp"), pp).unwrap();
    // CFEngine: files promises with inline content, or inline mustache.
    let mut cf = String::from(
        "body common control { bundlesequence => { \"main\" }; }\nbody perms m(p) { mode => \"$(p)\"; rxdirs => \"false\"; }\nbundle agent main {\n  files:\n",
    );
    for d in 0..n.div_ceil(100) {
        let _ = writeln!(cf, "    \"{}/d{d:03}/.\" create => \"true\";", cr.display());
    }
    let mustache = TEMPLATE.replace('"', "\\\"");
    for i in 0..n {
        let p = path(cr, i);
        if w2 {
            let _ = writeln!(
                cf,
                "    \"{}\" create => \"true\", perms => m(\"{mode}\"), template_method => \"inline_mustache\", edit_template_string => \"{mustache}\", template_data => parsejson('{{\"name\": \"site-{i}\", \"port\": {}}}');",
                p.display(),
                8000 + i
            );
        } else {
            let _ = writeln!(
                cf,
                "    \"{}\" create => \"true\", perms => m(\"{mode}\"), content => \"{}\";",
                p.display(),
                static_content(i)
            );
        }
    }
    cf.push_str("}\n");
    fs_err::write(dir.join("promises.cf"), cf).unwrap();
    // Ansible: copy with content, or template with per-file vars.
    let m = n.min(ansible_limit);
    fs_err::write(
        dir.join("site.conf.j2"),
        TEMPLATE
            .replace("{{name}}", "{{ name }}")
            .replace("{{port}}", "{{ port }}"),
    )
    .unwrap();
    let mut yml =
        String::from("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n");
    for d in 0..m.div_ceil(100) {
        let _ = writeln!(
            yml,
            "    - file: {{ path: \"{}/d{d:03}\", state: directory }}",
            ar.display()
        );
    }
    for i in 0..m {
        let p = path(ar, i);
        if w2 {
            let _ = writeln!(
                yml,
                "    - template: {{ src: \"{}\", dest: \"{}\", mode: \"{mode}\" }}\n      vars: {{ name: site-{i}, port: {} }}",
                dir.join("site.conf.j2").display(),
                p.display(),
                8000 + i
            );
        } else {
            let _ = writeln!(
                yml,
                "    - copy:\n        dest: \"{}\"\n        mode: \"{mode}\"\n        content: |",
                p.display()
            );
            for line in static_content(i).lines() {
                let _ = writeln!(yml, "          {line}");
            }
        }
    }
    fs_err::write(dir.join("site.yml"), yml).unwrap();
}

fn floor(dir: &Path) {
    let list = fs_err::read_to_string(dir.join("list")).unwrap();
    let mut differ = 0;
    for line in list.lines() {
        let mut parts = line.splitn(3, ' ');
        let (mode, digest, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => {
                differ += 1;
                continue;
            }
        };
        let bytes = std::fs::read(path).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if format!("{:o}", meta.mode() & 0o7777) != mode || hex != digest {
            differ += 1;
        }
    }
    println!("{differ} differ");
}

fn write(workload: &str, dir: &Path) {
    let root = dir.join("root");
    for i in 0..count(workload) {
        let p = path(&root, i);
        let parent = p.parent().unwrap();
        if !parent.exists() {
            fs_err::create_dir(parent).unwrap();
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".bench")
            .tempfile_in(parent)
            .unwrap();
        tmp.write_all(content(workload, i).as_bytes()).unwrap();
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode(workload)))
            .unwrap();
        tmp.as_file().sync_all().unwrap();
        tmp.persist(&p).unwrap();
        std::fs::File::open(parent).unwrap().sync_all().unwrap();
    }
}

fn scribble(dir: &Path) {
    let list = fs_err::read_to_string(dir.join("list")).unwrap();
    for line in list.lines().step_by(10) {
        let path = line.splitn(3, ' ').nth(2).unwrap();
        fs_err::write(path, "edited by hand\n").unwrap();
    }
}

fn sink(port: u16) {
    use std::io::{BufRead as _, Read as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

/// A report as an agent would send it: 50 resources, 2 of them changed
/// with a diff.
fn realistic_report(host: &str, id: &str, commit: &str) -> String {
    let mut resources = Vec::new();
    for i in 0..2 {
        resources.push(serde_json::json!({
            "id": format!("file:/etc/app/conf.d/{i:02}.conf"), "status": "changed", "cause": "revision",
            "action": "change", "changes": ["content"],
            "diff": format!("--- /etc/app/conf.d/{i:02}.conf\n+++ /etc/app/conf.d/{i:02}.conf\n@@ -1,3 +1,3 @@\n workers = 8\n-timeout = 30\n+timeout = 45\n keepalive = on\n"),
            "duration_ms": 1
        }));
    }
    serde_json::json!({
        "id": id, "host": host, "environment": "production", "roles": ["base", "web"], "mode": "apply",
        "revision": {"commit": commit, "author": "Ana Diaz <ana@example.com>", "committed_at": "2026-11-21T10:02:11Z", "subject": "web: longer timeout"},
        "source_stale": false, "started_at": "2026-11-24T10:00:00Z", "duration_ms": 18, "status": "changed",
        "summary": {"total": 50, "changed": 2, "drift": 0, "failed": 0, "unchanged": 48},
        "resources": resources, "interval_s": 1800
    })
    .to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An HTTP client for the log at `url`, as the agent makes it; `BENCH_CA`
/// names a CA file to trust (a log served over TLS).
fn bench_agent(url: &str) -> ureq::Agent {
    let ca = std::env::var_os("BENCH_CA").map(std::path::PathBuf::from);
    tend::report::client::Client::new(url, ca.as_deref(), std::time::Duration::from_secs(60))
        .expect("a log URL the client takes")
        .agent
}

/// `BENCH_TOKEN`'s file: the token reads are made with.
fn bench_token() -> Option<String> {
    std::env::var("BENCH_TOKEN")
        .ok()
        .map(|f| fs_err::read_to_string(f).unwrap().trim().to_owned())
}

fn log_load(url: &str, token_file: &Path, host: &str, senders: usize, seconds: u64) {
    let token = fs_err::read_to_string(token_file)
        .unwrap()
        .trim()
        .to_owned();
    // BENCH_NEW_CONNECTIONS=1: a connection per report, as a fleet of
    // agents each sending one report a cycle; else each sender keeps one.
    let new_connections = std::env::var_os("BENCH_NEW_CONNECTIONS").is_some();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let (url, token, host) = (url.to_owned(), token.clone(), host.to_owned());
            std::thread::spawn(move || {
                let agent = bench_agent(&url);
                let mut latencies = Vec::new();
                let mut n = 0;
                while std::time::Instant::now() < deadline {
                    let body = realistic_report(
                        &host,
                        &format!("{s}-{n}-{}", std::process::id()),
                        "9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123",
                    );
                    let t = std::time::Instant::now();
                    let mut request = agent
                        .post(format!("{url}/v1/reports"))
                        .header("Authorization", format!("Bearer {token}"));
                    if new_connections {
                        request = request.header("Connection", "close");
                    }
                    let mut response = request.send(body.as_bytes()).unwrap();
                    assert_eq!(response.status().as_u16(), 201);
                    // Read whole, so the connection is kept for the next one.
                    let _ = response.body_mut().read_to_vec();
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    println!(
        "{} reports in {elapsed:.1} s from {senders} senders: {:.0} reports/s; acknowledgement p50 {:.2} ms, p99 {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
}

fn log_seed(db: &str, n: usize) {
    let store = tend_log::open(&db.parse().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let mut i = 0;
    // A run an hour a host, the newest now: a week of runs in the picture.
    let now = tend_log::now_unix();
    let first_run = now - i64::try_from(n / 1000).unwrap_or(0) * 3600;
    while i < n {
        let batch: Vec<tend_log::store::Incoming> = (i..(i + 10_000).min(n))
            .map(|k| {
                let host = format!("web-{}.prod", k % 1000);
                let commit = format!("{:040x}", k / 1000);
                let mut body = realistic_report(&host, &format!("seed-{k}"), &commit);
                let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let started = first_run + i64::try_from(k / 1000).unwrap_or(0) * 3600;
                v["started_at"] = serde_json::json!(
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(started as u64)
                    )
                    .to_string()
                );
                // Small bodies: what the queries read is the index, not the
                // diffs; but the newest commit's runs are whole (its page
                // groups what they changed).
                if k + 1000 <= n {
                    v["resources"] = serde_json::json!([]);
                    v["summary"]["changed"] = serde_json::json!(0);
                    v["summary"]["unchanged"] = serde_json::json!(50);
                    v["status"] = serde_json::json!("unchanged");
                }
                body = v.to_string();
                tend_log::store::Incoming {
                    report: serde_json::from_str(&body).unwrap(),
                    body,
                    received_unix: tend_log::now_unix(),
                }
            })
            .collect();
        store.insert(&batch).unwrap();
        i += batch.len();
    }
    println!(
        "{n} reports stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn log_query(url: &str, host: &str, n: usize) {
    let agent = bench_agent(url);
    let token = bench_token().expect("BENCH_TOKEN: a viewer's token file");
    let newest: serde_json::Value = serde_json::from_str(
        &agent
            .get(format!("{url}/v1/commits?limit=1"))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let commit = newest["commits"][0]["commit"].as_str().unwrap().to_owned();
    for (name, path) in [
        (
            "a host's last 100 runs",
            format!("/v1/reports?host={host}&limit=100"),
        ),
        (
            "the deploy log (/v1/commits)",
            "/v1/commits?limit=50".to_owned(),
        ),
        ("the dashboard (/)", "/".to_owned()),
        ("hosts (/v1/hosts)", "/v1/hosts".to_owned()),
        (
            "a commit's page, 1,000 hosts (/commits/C)",
            format!("/commits/{commit}"),
        ),
        ("a host's page (/hosts/H)", format!("/hosts/{host}")),
    ] {
        let mut latencies = Vec::new();
        for _ in 0..n {
            let t = std::time::Instant::now();
            let mut response = agent
                .get(format!("{url}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let _ = response.body_mut().read_to_vec().unwrap();
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "{name}: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
}

fn fleet_host(i: usize) -> String {
    format!("host-{i:05}.prod")
}

/// A repository at `repo` with two commits of a `production` environment:
/// c0 without a rollout policy, c1 with one (canary, 1%, 10%, 50%, 100%,
/// no soak). Their ids.
fn rollout_repo(repo: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "-c",
                "user.name=Ana Diaz",
                "-c",
                "user.email=ana@example.com",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    fs_err::create_dir_all(repo.join("manifests")).unwrap();
    fs_err::create_dir_all(repo.join("roles/web")).unwrap();
    git(&["init", "--quiet", "--initial-branch=main"]);
    fs_err::write(
        repo.join("roles/web/role.yaml"),
        "resources: []
",
    )
    .unwrap();
    let env = "environment: production\nhosts:\n  - match: \"host-*.prod\"\n    roles: [web]\n";
    let mut commits = Vec::new();
    for policy in [
        "",
        "rollout:\n  canary: [\"host-00000.prod\"]\n  waves: [\"1%\", \"10%\", \"50%\", \"100%\"]\n  soak: 0s\n",
    ] {
        fs_err::write(
            repo.join("manifests/production.yaml"),
            format!("{env}{policy}"),
        )
        .unwrap();
        git(&["add", "-A"]);
        git(&["commit", "--quiet", "-m", "web: nginx"]);
        commits.push(git(&["rev-parse", "HEAD"]));
    }
    (commits[0].clone(), commits[1].clone())
}

/// A simulated fleet of `n` hosts for the rollout gate: the repository
/// the log mirrors, a token each (the hashes written in one transaction,
/// the tokens to `tokens_file`, the two commits to `tokens_file.commits`)
/// and a report of commit c0 from each, so the log knows them.
fn rollout_seed(db: &str, n: usize, tokens_file: &Path, repo: &Path) {
    let (c0, c1) = rollout_repo(repo);
    fs_err::write(
        tokens_file.with_extension("commits"),
        format!("{c0}\n{c1}\n"),
    )
    .unwrap();
    let database: tend_log::Database = db.parse().unwrap();
    let store = tend_log::open(&database).unwrap();
    // Each host's token, bound to its name and environment, all in one
    // transaction.
    let tokens: Vec<(String, String)> = tend_log::store::write(&*store, |sql| {
        (0..n)
            .map(|i| {
                let host = fleet_host(i);
                let new = tend_log::identity::NewToken {
                    kind: tend_log::identity::Kind::Host,
                    name: &host,
                    environment: Some("production"),
                    expires_unix: None,
                    replace: true,
                    created_by: "bench",
                };
                let token = tend_log::identity::create(sql, &new, 0)?.expect("a host token");
                Ok((host, token))
            })
            .collect()
    })
    .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let batch: Vec<tend_log::store::Incoming> = chunk
            .iter()
            .map(|&i| {
                let body = fleet_report(&fleet_host(i), &c0, &format!("seed-{i}"));
                tend_log::store::Incoming {
                    report: serde_json::from_str(&body).unwrap(),
                    body,
                    received_unix: tend_log::now_unix(),
                }
            })
            .collect();
        store.insert(&batch).unwrap();
    }
    let lines: Vec<String> = tokens.iter().map(|(h, t)| format!("{h} {t}")).collect();
    fs_err::write(tokens_file, lines.join("\n") + "\n").unwrap();
    println!("{n} hosts seeded");
}

/// A small unchanged run of `commit`.
fn fleet_report(host: &str, commit: &str, id: &str) -> String {
    serde_json::json!({
        "id": id, "host": host, "environment": "production", "roles": ["web"], "mode": "apply",
        "revision": {"commit": commit, "author": "Ana Diaz <ana@example.com>", "committed_at": "2026-11-24T10:00:00Z", "subject": "web: nginx"},
        "source_stale": false, "started_at": "2026-11-24T10:00:00Z", "duration_ms": 9, "status": "unchanged",
        "summary": {"total": 40, "changed": 0, "drift": 0, "failed": 0, "unchanged": 40},
        "resources": [], "interval_s": 1800
    })
    .to_string()
}

/// The fleet rolls commit c1 out: every host not yet admitted asks (from
/// `senders` threads); an admitted host reports on c1. Rounds until every
/// host has it. Prints admissions asked per second and their latency.
fn rollout_fleet(url: &str, tokens_file: &Path, senders: usize) {
    let tokens: Vec<(String, String)> = fs_err::read_to_string(tokens_file)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, t) = l.split_once(' ').unwrap();
            (h.to_owned(), t.to_owned())
        })
        .collect();
    let commits = fs_err::read_to_string(tokens_file.with_extension("commits")).unwrap();
    let c1 = commits.lines().nth(1).expect("c1").to_owned();
    let mut waiting: Vec<usize> = (0..tokens.len()).collect();
    let mut latencies = Vec::new();
    let mut asked = 0usize;
    let mut rounds = 0;
    let started = std::time::Instant::now();
    let mut asking = std::time::Duration::ZERO;
    while !waiting.is_empty() {
        rounds += 1;
        let round_started = std::time::Instant::now();
        let queue = std::sync::Mutex::new(waiting.clone());
        let results: Vec<(usize, bool, f64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..senders)
                .map(|_| {
                    let (queue, tokens, c1) = (&queue, &tokens, &c1);
                    s.spawn(move || {
                        let agent: ureq::Agent = ureq::Agent::config_builder()
                            .http_status_as_error(false)
                            .build()
                            .into();
                        let mut out = Vec::new();
                        loop {
                            let Some(i) = queue.lock().unwrap().pop() else {
                                break;
                            };
                            let (host, token) = &tokens[i];
                            let body = serde_json::json!({
                                "environment": "production", "commit": c1, "host": host,
                            })
                            .to_string();
                            let t = std::time::Instant::now();
                            let mut response = agent
                                .post(format!("{url}/v1/rollouts/admit"))
                                .header("Authorization", format!("Bearer {token}"))
                                .send(body.as_bytes())
                                .unwrap();
                            let ms = t.elapsed().as_secs_f64() * 1000.0;
                            assert_eq!(response.status().as_u16(), 200);
                            let answer: serde_json::Value = serde_json::from_str(
                                &response.body_mut().read_to_string().unwrap(),
                            )
                            .unwrap();
                            let admitted = answer["admitted"] == true;
                            if admitted {
                                let report = fleet_report(
                                    host,
                                    c1,
                                    &format!("c1-{i}-{}", std::process::id()),
                                );
                                let response = agent
                                    .post(format!("{url}/v1/reports"))
                                    .header("Authorization", format!("Bearer {token}"))
                                    .send(report.as_bytes())
                                    .unwrap();
                                assert_eq!(response.status().as_u16(), 201);
                            }
                            out.push((i, admitted, ms));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        asking += round_started.elapsed();
        asked += results.len();
        let admitted = results.iter().filter(|r| r.1).count();
        latencies.extend(results.iter().map(|r| r.2));
        waiting = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
        println!(
            "round {rounds}: {} asked, {admitted} admitted",
            results.len()
        );
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "{} hosts rolled out in {rounds} rounds, {:.1} s: {asked} admissions asked from {senders} senders, {:.0} admissions/s (with the admitted hosts' reports); p50 {:.2} ms, p99 {:.2} ms",
        tokens.len(),
        started.elapsed().as_secs_f64(),
        asked as f64 / asking.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => generate(&args[2], Path::new(&args[3])),
        Some("gen-others") => generate_others(
            &args[2],
            Path::new(&args[3]),
            args.get(4).map_or(100, |n| n.parse().unwrap()),
        ),
        Some("floor") => floor(Path::new(&args[2])),
        Some("write") => write(&args[2], Path::new(&args[3])),
        Some("scribble") => scribble(Path::new(&args[2])),
        Some("sink") => sink(args[2].parse().expect("a port")),
        Some("log-load") => log_load(
            &args[2],
            Path::new(&args[3]),
            &args[4],
            args[5].parse().unwrap(),
            args[6].parse().unwrap(),
        ),
        Some("log-seed") => log_seed(&args[2], args[3].parse().unwrap()),
        Some("log-query") => log_query(&args[2], &args[3], args[4].parse().unwrap()),
        Some("rollout-seed") => rollout_seed(
            &args[2],
            args[3].parse().unwrap(),
            Path::new(&args[4]),
            Path::new(&args[5]),
        ),
        Some("rollout-fleet") => {
            rollout_fleet(&args[2], Path::new(&args[3]), args[4].parse().unwrap())
        }
        _ => {
            eprintln!("usage: bench_helper gen|floor|write|scribble|sink ...");
            std::process::exit(2);
        }
    }
}
