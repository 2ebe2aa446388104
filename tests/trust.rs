//! The log's trust model (SPEC §6), tried as an attacker and as a new
//! operator would: TLS with a CA made here, plain HTTP only to this
//! machine, host tokens bound to a name and an environment, enrollment,
//! reads that need a token, and a server that no slow or numerous client
//! can hold.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent::git;
use crate::log_server::{Db, LogServer, agent_trusting};
use crate::support::receiver::Receiver;
use crate::support::{Run, tend};

/// A CA and a server certificate for 127.0.0.1 and localhost, made with
/// openssl as the README says.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tend test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let pki = Pki {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            dir,
        };
        pki.issue("tend-log");
        pki
    }

    /// (Re)issues the server's certificate, with this common name.
    pub fn issue(&self, name: &str) {
        let d = self.dir.path();
        fs_err::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "next.key",
                "-out",
                "server.csr",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "next.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        // Each file replaced whole, as an operator's renewal would.
        fs_err::rename(d.join("next.key"), &self.key).unwrap();
        fs_err::rename(d.join("next.pem"), &self.cert).unwrap();
    }

    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

fn start_tls(pki: &Pki, extra: &[&str]) -> LogServer {
    let mut args: Vec<String> = pki.serve_args();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    LogServer::start(&args)
}

/// A run report of `host` in `env`.
fn report(host: &str, env: &str, id: &str) -> String {
    json!({
        "id": id, "host": host, "environment": env, "roles": ["main"], "mode": "apply",
        "revision": null, "source_stale": false, "started_at": "2026-11-24T10:00:00Z",
        "duration_ms": 3, "status": "changed",
        "summary": {"total": 1, "changed": 1, "drift": 0, "failed": 0, "unchanged": 0, "unknown": 0},
        "resources": [{"id": "file:/etc/motd", "status": "changed", "cause": "revision", "duration_ms": 1}]
    })
    .to_string()
}

fn read_token(file: &Path) -> String {
    fs_err::read_to_string(file).unwrap().trim().to_owned()
}

fn stored(log: &LogServer) -> usize {
    log.get("/v1/reports?limit=1000").1["reports"]
        .as_array()
        .unwrap()
        .len()
}

/// A repository with environment `test` for hosts `test-*`, and a role
/// writing a file under `root`.
struct Repo {
    dir: tempfile::TempDir,
    remote: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let root = dir.path().join("root");
        fs_err::create_dir_all(remote.join("manifests")).unwrap();
        fs_err::create_dir_all(remote.join("roles/main")).unwrap();
        fs_err::create_dir_all(&root).unwrap();
        fs_err::write(
            remote.join("manifests/test.yaml"),
            format!(
                "environment: test\nvars:\n  root: {}\nhosts:\n  - match: \"test-*\"\n    roles: [main]\n",
                root.display()
            ),
        )
        .unwrap();
        fs_err::write(
            remote.join("roles/main/role.yaml"),
            "resources:\n  - file: \"{{root}}/{{host}}.motd\"\n    content: \"hello\\n\"\n",
        )
        .unwrap();
        git(&remote, &["init", "--quiet", "--initial-branch=main"]);
        git(&remote, &["add", "-A"]);
        git(
            &remote,
            &[
                "-c",
                "user.name=Ana Diaz",
                "-c",
                "user.email=ana@example.com",
                "commit",
                "--quiet",
                "-m",
                "motd",
            ],
        );
        Repo { dir, remote }
    }

    /// `tend agent --once` as `host` with its state in `state`.
    fn cycle(&self, host: &str, state: &Path, log: &str, extra: &[&str]) -> Run {
        let out = Command::new(crate::support::bin("tend"))
            .arg("agent")
            .arg("--config")
            .arg(self.dir.path().join("no-agent.yaml"))
            .arg("--source")
            .arg(&self.remote)
            .arg("--state-dir")
            .arg(state)
            .args(["--host", host, "--log", log, "--once"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("TEND_STATE_DIR")
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn spooled(state: &Path) -> usize {
    fs_err::read_dir(state.join("spool"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// The subject of the certificate the server at `port` presents.
fn presented_subject(port: &str, ca: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(ca)
        .args(["-verify_return_error"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn over_tls_an_agent_trusting_the_ca_delivers_one_without_it_refuses_and_keeps_the_report() {
    let pki = Pki::new();
    let log = start_tls(&pki, &[]);
    assert!(log.url.starts_with("https://127.0.0.1:"), "{}", log.url);
    let repo = Repo::new();
    let token = log.token("test-1", "test");
    let state = repo.dir.path().join("state-1");
    let token_arg = token.display().to_string();
    // The CA is not trusted: nothing is sent, the report waits.
    let run = repo.cycle("test-1", &state, &log.url, &["--token-file", &token_arg]);
    run.expect_code(2);
    assert_eq!(spooled(&state), 1, "{run:?}");
    assert_eq!(stored(&log), 0);
    // With --log-ca it is delivered (the waiting one too).
    let ca = pki.ca.display().to_string();
    let run = repo.cycle(
        "test-1",
        &state,
        &log.url,
        &["--token-file", &token_arg, "--log-ca", &ca],
    );
    run.expect_code(0);
    assert_eq!(spooled(&state), 0, "{run:?}");
    assert_eq!(stored(&log), 2);
    // The readers' commands take the CA too.
    let viewer = log.viewer.display().to_string();
    let shown = tend(&[
        "log",
        "show",
        "--server",
        &log.url,
        "--token-file",
        &viewer,
        "--log-ca",
        &ca,
    ]);
    shown.expect_code(0).shows("test-1");
    let untrusted = tend(&["log", "show", "--server", &log.url, "--token-file", &viewer]);
    untrusted.expect_code(1);
    // A signed-in browser gets a Secure cookie under TLS.
    let response = agent_trusting(Some(&pki.ca))
        .post(format!("{}/login", log.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={}&next=/", read_token(&log.viewer)))
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // A renewed certificate is taken on SIGHUP, without a restart.
    let port = log.url.rsplit(':').next().unwrap().to_owned();
    assert!(
        presented_subject(&port, &pki.ca).contains("CN = tend-log"),
        "{}",
        presented_subject(&port, &pki.ca)
    );
    pki.issue("tend-log-renewed");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(log.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !presented_subject(&port, &pki.ca).contains("tend-log-renewed") {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not taken"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the server still serves.
    assert_eq!(log.get("/v1/hosts").0, 200);
    // A key that does not load leaves the old certificate in place.
    fs_err::write(&pki.key, "not a key\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(log.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(presented_subject(&port, &pki.ca).contains("tend-log-renewed"));
}

#[test]
fn plain_http_goes_to_this_machine_only_and_is_refused_before_any_traffic() {
    // 0.0.0.0 reaches this machine's listeners, but is not loopback: if a
    // client sent anything, this listener would see it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://0.0.0.0:{port}");
    let repo = Repo::new();
    let state = repo.dir.path().join("state");
    let token = repo.dir.path().join("token");
    fs_err::write(&token, "a-token\n").unwrap();
    let token = token.display().to_string();
    let run = repo.cycle("test-1", &state, &url, &["--token-file", &token]);
    run.expect_code(1);
    assert!(run.stderr.contains("plain HTTP"), "{run:?}");
    let show = tend(&["log", "show", "--server", &url, "--token-file", &token]);
    show.expect_code(1);
    assert!(show.stderr.contains("plain HTTP"), "{show:?}");
    let t = crate::support::Test::new();
    t.role("main", "resources: []\n");
    let converge = tend(&[
        "converge",
        "--repo",
        t.repo.to_str().unwrap(),
        "--dry-run",
        "--host",
        crate::support::HOST,
        "--report-to",
        &url,
        "--token-file",
        &token,
    ]);
    assert!(converge.stderr.contains("plain HTTP"), "{converge:?}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a client connected"
    );
    // The server will not serve plain HTTP beyond loopback either.
    let db = repo.dir.path().join("log.db");
    let serve = tend(&[
        "log",
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--db",
        &format!("sqlite:{}", db.display()),
    ]);
    serve.expect_code(1);
    assert!(serve.stderr.contains("--tls-cert"), "{serve:?}");
}

#[test]
fn a_host_writes_only_for_itself_in_its_own_environment() {
    let log = LogServer::start(&[]);
    let web1 = read_token(&log.token("web-1", "staging"));
    let operator = tend(&[
        "log",
        "token",
        "create",
        "--operator",
        "ana",
        "--db",
        &log.db,
    ]);
    let operator = operator.stdout.trim().to_owned();
    let viewer = read_token(&log.viewer);
    for (token, body, why) in [
        (
            &web1,
            report("web-1", "production", "a"),
            "for the environment `staging`",
        ),
        (
            &web1,
            report("web-2", "staging", "b"),
            "cannot report for `web-2`",
        ),
        (&operator, report("web-1", "staging", "c"), "hosts report"),
        (&viewer, report("web-1", "staging", "d"), "hosts report"),
    ] {
        let (code, answer) = log.post(Some(token), body.as_bytes());
        assert_eq!(code, 403, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    for (host, env) in [("web-1", "production"), ("web-2", "staging")] {
        let question = json!({"environment": env, "commit": "0123456789abcdef", "host": host});
        let (code, answer) = log.post_to(
            "/v1/rollouts/admit",
            Some(&web1),
            question.to_string().as_bytes(),
        );
        assert_eq!(code, 403, "{answer}");
    }
    assert_eq!(stored(&log), 0, "a refused write was stored");
    let (code, answer) = log.post(Some(&web1), report("web-1", "staging", "e").as_bytes());
    assert_eq!(code, 201, "{answer}");
    // A host token reads nothing.
    let (code, answer) = log.get_as(Some(&web1), "/v1/reports");
    assert_eq!(code, 403, "{answer}");
    // Only an operator acts on rollouts.
    let act = json!({"environment": "staging"}).to_string();
    let (code, _) = log.post_to("/v1/rollouts/resume", Some(&viewer), act.as_bytes());
    assert_eq!(code, 403);
    // A second token for a host needs --replace, which revokes the first.
    let again = tend(&[
        "log", "token", "create", "web-1", "--env", "staging", "--db", &log.db,
    ]);
    again.expect_code(1);
    assert!(again.stderr.contains("--replace"), "{again:?}");
    let fresh = read_token(&log.token("web-1", "staging"));
    let (code, answer) = log.post(Some(&web1), report("web-1", "staging", "f").as_bytes());
    assert_eq!(code, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("revoked"),
        "{answer}"
    );
    let (code, _) = log.post(Some(&fresh), report("web-1", "staging", "g").as_bytes());
    assert_eq!(code, 201);
}

fn enroll(log: &LogServer, join: &str, host: &str, env: &str) -> (u16, Value) {
    let body = json!({"host": host, "environment": env}).to_string();
    log.post_to("/v1/enroll", Some(join), body.as_bytes())
}

fn join_token(log: &LogServer, args: &[&str]) -> String {
    let mut all = vec!["log", "enroll", "create"];
    all.extend(args);
    all.extend(["--db", &log.db]);
    let run = tend(&all);
    run.expect_code(0);
    run.stdout.lines().last().unwrap().trim().to_owned()
}

fn host_tokens(log: &LogServer) -> Vec<String> {
    tend(&["log", "token", "list", "--db", &log.db])
        .stdout
        .lines()
        .filter(|l| l.starts_with("host"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_fleet_enrolls_with_a_join_token_and_every_refusal_creates_nothing() {
    let log = LogServer::start(&[]);
    let repo = Repo::new();
    let join = join_token(&log, &["--env", "test", "--match", "test-*", "--uses", "2"]);
    let join_file = repo.dir.path().join("join.token");
    fs_err::write(&join_file, format!("{join}\n")).unwrap();
    let join_arg = join_file.display().to_string();
    // Two agents enroll on their first cycle and report with their own token.
    for host in ["test-1", "test-2"] {
        let state = repo.dir.path().join(host);
        let first = repo.cycle(host, &state, &log.url, &["--enroll-token-file", &join_arg]);
        assert!(matches!(first.code, 0 | 2), "{first:?}");
        let token = state.join("token");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs_err::metadata(&token).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{host}'s token is readable by others");
        assert_eq!(spooled(&state), 0, "{host}'s report was not delivered");
        let (_, page) = log.get(&format!("/v1/reports?host={host}"));
        assert_eq!(page["reports"].as_array().unwrap().len(), 1, "{page}");
        // The next cycle uses the token it keeps.
        repo.cycle(host, &state, &log.url, &["--enroll-token-file", &join_arg])
            .expect_code(0);
        assert_eq!(read_token(&token).len(), 64);
    }
    assert_eq!(host_tokens(&log).len(), 2);
    // Every refusal: 403 (401 for no such join token), nothing created.
    let (code, answer) = enroll(&log, &join, "test-3", "test");
    assert_eq!(code, 403, "used up: {answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("its limit"),
        "{answer}"
    );
    let wide = join_token(&log, &["--env", "test", "--match", "test-*"]);
    for (host, env, why) in [
        ("web-1", "test", "does not match"),
        ("test-4", "production", "for the environment `test`"),
        ("test-1", "test", "already has a host token"),
    ] {
        let (code, answer) = enroll(&log, &wide, host, env);
        assert_eq!(code, 403, "{host} {env}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let (code, _) = enroll(&log, "not-a-join-token", "test-5", "test");
    assert_eq!(code, 403);
    let short = join_token(
        &log,
        &["--env", "test", "--match", "test-*", "--expires", "1s"],
    );
    std::thread::sleep(Duration::from_millis(2100));
    let (code, answer) = enroll(&log, &short, "test-6", "test");
    assert_eq!(code, 403);
    assert!(
        answer["error"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    let revoked = join_token(&log, &["--env", "test", "--match", "test-*"]);
    let listed = tend(&["log", "enroll", "list", "--db", &log.db]).stdout;
    let id = listed
        .lines()
        .rfind(|l| l.starts_with('#'))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches('#')
        .to_owned();
    tend(&["log", "enroll", "revoke", &id, "--db", &log.db]).expect_code(0);
    let (code, answer) = enroll(&log, &revoked, "test-7", "test");
    assert_eq!(code, 403);
    assert!(
        answer["error"].as_str().unwrap().contains("revoked"),
        "{answer}"
    );
    assert_eq!(host_tokens(&log).len(), 2, "a refusal created a token");

    // A join token made for rebuilt hosts takes the name back: the old
    // token stops working, and who enrolled when is kept.
    let old = read_token(&repo.dir.path().join("test-1/token"));
    let rebuild = join_token(
        &log,
        &["--env", "test", "--match", "test-*", "--allow-rebuild"],
    );
    let (code, answer) = enroll(&log, &rebuild, "test-1", "test");
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["rebuilt"], true);
    let (code, _) = log.post(Some(&old), report("test-1", "test", "old").as_bytes());
    assert_eq!(code, 401);
    let new = answer["token"].as_str().unwrap();
    let (code, _) = log.post(Some(new), report("test-1", "test", "new").as_bytes());
    assert_eq!(code, 201);
    // The host list and the dashboard say so.
    let (_, hosts) = log.get("/v1/hosts");
    let test1 = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "test-1")
        .unwrap();
    assert!(test1["re_enrolled_unix"].as_i64().is_some(), "{test1}");
    let (_, home) = log.get("/");
    assert!(home.as_str().unwrap().contains("re-enrolled at"), "{home}");
    let listed = tend(&["log", "enroll", "list", "--db", &log.db]).stdout;
    assert!(listed.contains("test-1 enrolled"), "{listed}");
    assert!(listed.contains("test-1 re-enrolled"), "{listed}");
    assert!(listed.contains("used 2 of 2"), "{listed}");
}

/// Every page and API read, without a token, with a host's, and with a
/// viewer's; the headers every answer carries.
#[test]
fn every_read_needs_a_viewer_token_and_sessions_hold_across_servers() {
    let (log, _pg) = LogServer::start_on(Db::Postgres, &[]);
    let other = LogServer::alongside(&log);
    let host = read_token(&log.token("web-1", "production"));
    let (code, _) = log.post(Some(&host), report("web-1", "production", "r1").as_bytes());
    assert_eq!(code, 201);
    let viewer = read_token(&log.viewer);
    let agent = agent_trusting(None);
    let get = |path: &str, token: Option<&str>| {
        let mut request = agent.get(format!("{}{path}", log.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.call().unwrap()
    };
    for path in [
        "/",
        "/commits/0123456789",
        "/reports/r1",
        "/metrics",
        "/v1/reports",
        "/v1/reports/r1",
        "/v1/hosts",
        "/v1/commits",
        "/v1/rollouts",
    ] {
        let anonymous = get(path, None);
        let page = !path.starts_with("/v1/") && path != "/metrics";
        if page {
            assert_eq!(anonymous.status().as_u16(), 303, "{path}");
            let to = anonymous.headers()["location"].to_str().unwrap();
            assert!(to.starts_with("/login?next="), "{path}: {to}");
        } else {
            assert_eq!(anonymous.status().as_u16(), 401, "{path}");
        }
        let headers = anonymous.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(get(path, Some(&host)).status().as_u16(), 403, "{path}");
        let status = get(path, Some(&viewer)).status().as_u16();
        assert!(
            status == 200 || (status == 404 && path.starts_with("/commits")),
            "{path}: {status}"
        );
    }
    // A session opened on one server holds on the other (one PostgreSQL).
    let signed_in = agent
        .post(format!("{}/login", log.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={viewer}&next=/v1/hosts"))
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    assert_eq!(signed_in.headers()["location"], "/v1/hosts");
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let there = agent
        .get(format!("{}/", other.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(there.status().as_u16(), 200);
    // A cookie never writes: a session (even an operator's) is not a
    // bearer token, so a forged cross-site post gets nothing.
    let resume = agent
        .post(format!("{}/v1/rollouts/resume", other.url))
        .header("Cookie", &cookie)
        .send(json!({"environment": "production"}).to_string())
        .unwrap();
    assert_eq!(resume.status().as_u16(), 401);
    // Signing out ends it everywhere.
    let out = agent
        .post(format!("{}/logout", other.url))
        .header("Cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let after = agent
        .get(format!("{}/", log.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(after.status().as_u16(), 303);
    // Commands that read take --token-file.
    let viewer_file = log.viewer.display().to_string();
    let shown = tend(&[
        "log",
        "show",
        "--server",
        &log.url,
        "--token-file",
        &viewer_file,
    ]);
    shown.expect_code(0).shows("web-1");
    let anonymous = tend(&["log", "show", "--server", &log.url]);
    anonymous.expect_code(1);
    assert!(anonymous.stderr.contains("401"), "{anonymous:?}");
}

#[test]
fn public_metrics_are_counts_only() {
    let log = LogServer::start(&["--public-metrics"]);
    let host = read_token(&log.token("web-secret-1", "production"));
    log.post(
        Some(&host),
        report("web-secret-1", "production", "m1").as_bytes(),
    );
    let (code, metrics) = log.get_as(None, "/metrics");
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("tend_log_hosts 1"), "{metrics}");
    assert!(!metrics.contains("web-secret"), "{metrics}");
    // Everything else still needs a token.
    assert_eq!(log.get_as(None, "/v1/hosts").0, 401);
}

#[test]
fn tokens_expire() {
    let log = LogServer::start(&[]);
    let made = tend(&[
        "log",
        "token",
        "create",
        "--viewer",
        "temp",
        "--expires",
        "2s",
        "--db",
        &log.db,
    ]);
    made.expect_code(0);
    let token = made.stdout.trim().to_owned();
    assert_eq!(log.get_as(Some(&token), "/v1/hosts").0, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let (code, answer) = log.get_as(Some(&token), "/v1/hosts");
    assert_eq!(code, 401);
    assert!(
        answer["error"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
    let listed = tend(&["log", "token", "list", "--db", &log.db]).stdout;
    let line = listed.lines().find(|l| l.contains("temp")).unwrap();
    assert!(line.contains("expired"), "{line}");
    // Last use is kept (written within 30 s of the use).
    let used = listed.lines().find(|l| l.contains("tests")).unwrap();
    assert!(used.contains("last used"), "{used}");
}

/// Sends raw bytes; what comes back within `wait` (until the server
/// closes).
fn raw(url: &str, request: &[u8], wait: Duration) -> (String, Duration) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let log = LogServer::start(&[]);
    let address = log.url.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(b"POST /v1/reports HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let dripping = std::thread::spawn(move || {
        // A header byte a second, for up to 30 s: the server must close first.
        for _ in 0..30 {
            if slow.write_all(b"X").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buffer = [0u8; 256];
        matches!(slow.read(&mut buffer), Ok(0) | Err(_))
    });
    // Meanwhile others are served.
    for _ in 0..5 {
        assert_eq!(log.get("/v1/hosts").0, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(dripping.join().unwrap(), "the slow connection stayed open");
    let held = started.elapsed();
    assert!(held < Duration::from_secs(15), "held for {held:?}");
}

#[test]
fn a_large_anonymous_body_is_refused_before_it_is_read() {
    let log = LogServer::start(&[]);
    // The headers announce 4 MiB; the body never comes. The answer does.
    let (answer, took) = raw(
        &log.url,
        b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n",
        Duration::from_secs(8),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // With a host's token, a body over the limit is refused with 413.
    let token = read_token(&log.token("web-1", "test"));
    let big = vec![b' '; 5 * 1024 * 1024];
    let (code, _) = log.post(Some(&token), &big);
    assert_eq!(code, 413);
}

/// Raises this process's file limit as far as it goes; how many it may open.
fn raise_file_limit() -> u64 {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// The server's peak resident memory, in KiB.
fn peak_kib(pid: u32) -> u64 {
    fs_err::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Ten thousand hosts post at once to a log whose write queue holds 64:
/// each gets an answer, 201 or 503 with Retry-After, and the server's
/// memory stays bounded. Beyond the connection cap, a 503 at once.
#[test]
fn ten_thousand_senders_at_once_are_answered_503_rather_than_queued() {
    let limit = raise_file_limit();
    let senders = 10_000.min(usize::try_from(limit.saturating_sub(1000) / 2).unwrap());
    assert!(
        senders >= 1000,
        "the file limit ({limit}) is too low for this test"
    );
    let log = LogServer::start(&["--max-connections", "20000", "--max-waiting", "64"]);
    let token = read_token(&log.token("web-1", "test"));
    let address = log.url.trim_start_matches("http://").to_owned();
    // The database is held by another writer while they come (as a long
    // transaction or a slow disk would): the writer waits, its queue fills.
    let path = log.db.strip_prefix("sqlite:").unwrap().to_owned();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut streams = Vec::with_capacity(senders);
    for i in 0..senders {
        let body = report("web-1", "test", &format!("flood-{i}"));
        let request = format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        streams.push(stream);
    }
    // Everything is sent: the database goes free.
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let (mut created, mut busy) = (0, 0);
    for mut stream in streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        if answer.starts_with("HTTP/1.1 201") {
            created += 1;
        } else if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.to_lowercase().contains("retry-after: 5"), "{answer}");
            busy += 1;
        } else {
            panic!("neither stored nor told to wait: {answer}");
        }
    }
    assert_eq!(created + busy, senders);
    assert!(
        created > 0 && busy > 0,
        "{created} stored, {busy} told to wait"
    );
    let (_, metrics) = log.get("/metrics");
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "tend_log_reports_total{{status=\"changed\"}} {created}"
        )),
        "{metrics}"
    );
    let peak = peak_kib(log.pid());
    assert!(peak < 512 * 1024, "the server grew to {peak} KiB");

    // Over the connection cap: turned away at once, not queued.
    let capped = LogServer::start(&["--max-connections", "50"]);
    let address = capped.url.trim_start_matches("http://").to_owned();
    // Fifty connections, each served once and kept alive (idle, each
    // holds its place); one the cap turned away is opened again.
    let mut held = Vec::new();
    while held.len() < 50 {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        if &head == b"HTTP/1.1 200" {
            held.push(stream);
        }
    }
    let (answer, took) = raw(
        &capped.url,
        b"GET /v1/hosts HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 5"), "{answer}");
    assert!(took < Duration::from_secs(5));
    drop(held);
}

#[test]
fn chat_text_from_commits_is_escaped_and_the_webhook_url_comes_from_a_file() {
    let chat = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("webhook");
    fs_err::write(&hook, format!("{}/hook\n", chat.url)).unwrap();
    let hook = hook.display().to_string();
    let log = LogServer::start(&["--notify-file", &hook, "--notify-window", "200ms"]);
    let token = read_token(&log.token("web-1", "production"));
    let mut body: Value = serde_json::from_str(&report("web-1", "production", "c1")).unwrap();
    body["revision"] = json!({
        "commit": "9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123",
        "author": "Eve <eve@example.com>",
        "committed_at": "2026-11-21T10:02:11Z",
        "subject": "<!channel> see <https://evil.example|the docs> & more"
    });
    let (code, _) = log.post(Some(&token), body.to_string().as_bytes());
    assert_eq!(code, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Some(r) = chat.received().first() {
            break r.body["text"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no chat message");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains("&lt;!channel&gt; see &lt;https://evil.example|the docs&gt; &amp; more"),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
}

#[test]
fn the_database_url_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("db-url");
    fs_err::write(
        &db_file,
        format!("sqlite:{}\n", dir.path().join("log.db").display()),
    )
    .unwrap();
    let db_file = db_file.display().to_string();
    let made = tend(&[
        "log",
        "token",
        "create",
        "--viewer",
        "ana",
        "--db-file",
        &db_file,
    ]);
    made.expect_code(0);
    let listed = tend(&["log", "token", "list", "--db-file", &db_file]);
    listed.expect_code(0).shows("ana");
}

/// SIGTERM stops the log within seconds, with a kept-alive connection
/// open (nothing it started holds it).
#[test]
fn the_log_stops_promptly_on_sigterm() {
    for store in [Db::Sqlite, Db::Postgres] {
        let (mut log, _pg) = LogServer::start_on(store, &[]);
        let address = log.url.trim_start_matches("http://").to_owned();
        let mut idle = TcpStream::connect(&address).unwrap();
        idle.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let code = log.stop();
        assert_eq!(code, Some(0), "{store:?}: not a clean exit");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{store:?}: {:?}",
            started.elapsed()
        );
    }
}

/// PostgreSQL that takes TLS only: the log connects as the URL's
/// `sslmode` says, checking the server against a CA with `verify-full`.
#[test]
fn the_log_reaches_postgresql_over_tls_as_sslmode_says() {
    let pki = Pki::new();
    let pg = crate::log_server::PgCluster::start_tls(&pki.cert, &pki.key);
    let probe = |url: &str| tend(&["log", "token", "create", "--viewer", "probe", "--db", url]);
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url,
        pki.ca.display()
    );
    let log = LogServer::start_on_url(&verified, &[]);
    let token = read_token(&log.token("web-1", "test"));
    let (code, answer) = log.post(Some(&token), report("web-1", "test", "tls-1").as_bytes());
    assert_eq!(code, 201, "{answer}");
    let encrypted: u32 = pg
        .psql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'tend' AND s.ssl")
        .parse()
        .unwrap();
    assert!(encrypted >= 5, "{encrypted} TLS connections");
    for mode in ["require", "prefer"] {
        probe(&format!("{}?sslmode={mode}", pg.url)).expect_code(0);
    }
    probe(&pg.url).expect_code(0);
    // Plain is refused by this server; another CA is refused by the log.
    let plain = probe(&format!("{}?sslmode=disable", pg.url));
    plain.expect_code(1);
    let stranger = Pki::new();
    let wrong = probe(&format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url,
        stranger.ca.display()
    ));
    wrong.expect_code(1);
    assert!(
        wrong.stderr.to_lowercase().contains("certificate"),
        "{wrong:?}"
    );
}

/// Watches are parked outside the HTTP library over TLS too: several on
/// one connection, answered with the commit, and a report sent after them
/// on the same connection is stored.
#[test]
fn over_tls_watches_and_then_a_report_share_one_connection() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("infra");
    fs_err::create_dir_all(&repo).unwrap();
    crate::agent::git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    crate::agent::git(
        &repo,
        &[
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ],
    );
    let tip = crate::agent::git(&repo, &["rev-parse", "HEAD"]);
    let source = repo.display().to_string();
    let log = start_tls(&pki, &["--source", &source, "--source-poll", "1h"]);
    let token = read_token(&log.token("web-1.prod", "prod"));
    // One agent: ureq keeps the connection between requests.
    let agent = crate::log_server::agent_trusting(log.ca.as_deref());
    for _ in 0..2 {
        let mut answer = agent
            .get(format!("{}/v1/watch?after={tip}&timeout=1", log.url))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["moved"], false, "{body}");
    }
    let mut answer = agent
        .get(format!("{}/v1/watch?after=0000000", log.url))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["commit"], tip.as_str(), "{body}");
    let stored = agent
        .post(format!("{}/v1/reports", log.url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(report(
            "web-1.prod",
            "prod",
            "0b6cf7e3-7a43-4a3e-9a4e-0d1f0a2b3c4d",
        ))
        .unwrap();
    assert_eq!(stored.status(), 201);
}
