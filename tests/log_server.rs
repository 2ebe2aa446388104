//! The central log, end to end over loopback: `tend log serve` on SQLite,
//! tokens, reports from `tend converge --report-to` and the agent, queries,
//! every bad input, and a SIGKILL in the middle of a stream of posts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::browser::Browser;
use crate::support::{HOST, Test, tend};

pub struct LogServer {
    pub url: String,
    pub db: String,
    /// A viewer's token (made at start), which `get` reads with.
    pub viewer: PathBuf,
    /// Under TLS: the CA that signed its certificate (the `ca.pem` beside
    /// the certificate file).
    pub ca: Option<PathBuf>,
    child: Child,
    /// The arguments it was started with beyond the database (a restart or
    /// a server alongside takes them too).
    extra: Vec<String>,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

/// A throwaway PostgreSQL cluster on a loopback port (Debian's
/// postgresql), stopped and removed when dropped.
pub struct PgCluster {
    pub url: String,
    dir: PathBuf,
    pg_ctl: PathBuf,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = fs_err::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs it)")
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

fn as_postgres(program: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgCluster {
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// A cluster that takes TLS connections only (`hostssl`), with this
    /// certificate and key.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> PgCluster {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> PgCluster {
        let dir =
            std::env::temp_dir().join(format!("tend-pg-{}-{}", std::process::id(), free_port()));
        fs_err::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.join("data");
        let data_s = data.to_str().unwrap().to_owned();
        as_postgres(
            &pg_bin("initdb"),
            &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            dir.display()
        );
        if let Some((cert, key)) = tls {
            for (from, to) in [(cert, "server.pem"), (key, "server.key")] {
                fs_err::copy(from, data.join(to)).unwrap();
                let owned = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(data.join(to))
                    .status()
                    .unwrap();
                assert!(owned.success());
                fs_err::set_permissions(
                    data.join(to),
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
            }
            let hba = data.join("pg_hba.conf");
            let text = fs_err::read_to_string(&hba).unwrap();
            let ssl_only: String = text
                .lines()
                .map(|l| match l.strip_prefix("host ") {
                    Some(rest) => format!("hostssl {rest}\n"),
                    None => format!("{l}\n"),
                })
                .collect();
            fs_err::write(&hba, ssl_only).unwrap();
            options.push_str(" -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key");
        }
        let pg_ctl = pg_bin("pg_ctl");
        as_postgres(
            &pg_ctl,
            &[
                "-D",
                &data_s,
                "-o",
                &options,
                "-l",
                &format!("{}/log", dir.display()),
                "-w",
                "start",
            ],
        );
        let cluster = PgCluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/tend"),
            dir,
            pg_ctl,
        };
        as_postgres(
            &pg_bin("createdb"),
            &["-h", "127.0.0.1", "-p", &port.to_string(), "tend"],
        );
        cluster
    }
}

impl PgCluster {
    /// Runs SQL as the postgres superuser over the cluster's Unix socket;
    /// its output, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        let port = self
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let out = as_postgres(
            &pg_bin("psql"),
            &[
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                port,
                "-d",
                "tend",
                "-At",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Restarts PostgreSQL (fast shutdown: connections are cut), on the
    /// same port and data.
    pub fn restart(&self) {
        let data = self.dir.join("data");
        // `-l` again: without it the new postmaster would hold our pipe
        // open, and waiting for its output would never end.
        let log = format!("{}/log", self.dir.display());
        as_postgres(
            &self.pg_ctl,
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                &log,
                "-m",
                "fast",
                "-w",
                "restart",
            ],
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&self.pg_ctl)
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which store a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl LogServer {
    /// A log server on SQLite.
    pub fn start(extra: &[&str]) -> LogServer {
        Self::start_on(Db::Sqlite, extra).0
    }

    /// A log server on the store asked for (PostgreSQL: a throwaway cluster
    /// of its own, returned so that it outlives the server).
    pub fn start_on(store: Db, extra: &[&str]) -> (LogServer, Option<PgCluster>) {
        let dir = tempfile::tempdir().unwrap();
        let (db, cluster) = match store {
            Db::Sqlite => (
                format!("sqlite:{}", dir.path().join("log.db").display()),
                None,
            ),
            Db::Postgres => {
                let cluster = PgCluster::start();
                (cluster.url.clone(), Some(cluster))
            }
        };
        (Self::serve(&db, extra, dir), cluster)
    }

    /// A log server on the database at `db` (a URL).
    pub fn start_on_url(db: &str, extra: &[&str]) -> LogServer {
        Self::serve(db, extra, tempfile::tempdir().unwrap())
    }

    /// Another server on the same database (and the same source, with a
    /// copy of its own).
    pub fn alongside(other: &LogServer) -> LogServer {
        let mut extra: Vec<&str> = Vec::new();
        let mut args = other.extra.iter();
        while let Some(a) = args.next() {
            if a == "--mirror-dir" {
                args.next();
            } else {
                extra.push(a);
            }
        }
        Self::serve(&other.db, &extra, tempfile::tempdir().unwrap())
    }

    fn serve(db: &str, extra: &[&str], dir: tempfile::TempDir) -> LogServer {
        let db = db.to_owned();
        let path = dir.path().to_path_buf();
        let mut extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        // Each server keeps its own copy of the source.
        if extra.iter().any(|a| a == "--source") && !extra.iter().any(|a| a == "--mirror-dir") {
            extra.push("--mirror-dir".into());
            extra.push(path.join("mirror").display().to_string());
        }
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        let viewer = path.join("viewer.token");
        let made = tend(&["log", "token", "create", "--viewer", "tests", "--db", &db]);
        made.expect_code(0);
        fs_err::write(&viewer, &made.stdout).unwrap();
        let (child, url) = spawn(&db, &args);
        let ca = args
            .iter()
            .position(|a| *a == "--tls-cert")
            .map(|i| PathBuf::from(args[i + 1]).with_file_name("ca.pem"));
        LogServer {
            url,
            db,
            viewer,
            ca,
            child,
            extra,
            _dir: dir,
            dir: path,
        }
    }

    /// A token for `host` in `env`, written to a file; its path.
    pub fn token(&self, host: &str, env: &str) -> PathBuf {
        let run = tend(&[
            "log",
            "token",
            "create",
            host,
            "--env",
            env,
            "--replace",
            "--db",
            &self.db,
        ]);
        run.expect_code(0);
        let token = run.stdout.trim().to_owned();
        assert_eq!(token.len(), 64, "{}", run.stdout);
        let file = self.dir.join(format!("{host}.token"));
        fs_err::write(&file, format!("{token}\n")).unwrap();
        file
    }

    /// SIGTERM; its exit code once it stopped (within 10 s), or none.
    pub fn stop(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it hard, as a crash would, and starts it again on the same data.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let args: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (child, url) = spawn(&self.db, &args);
        self.child = child;
        self.url = url;
    }

    /// `GET path` with the viewer's token.
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let token = fs_err::read_to_string(&self.viewer).unwrap();
        self.get_as(Some(token.trim()), path)
    }

    /// `GET path` with a token, or none.
    pub fn get_as(&self, token: Option<&str>, path: &str) -> (u16, serde_json::Value) {
        let mut request = agent_trusting(self.ca.as_deref()).get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }

    pub fn post(&self, token: Option<&str>, body: &[u8]) -> (u16, serde_json::Value) {
        self.post_to("/v1/reports", token, body)
    }

    pub fn post_to(
        &self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let mut request = agent_trusting(self.ca.as_deref()).post(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        )
    }
}

fn agent() -> ureq::Agent {
    agent_trusting(None)
}

/// An HTTP client that does not follow redirects and, given a CA file,
/// trusts it (alone).
pub fn agent_trusting(ca: Option<&std::path::Path>) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)));
    if let Some(ca) = ca {
        let pem = fs_err::read(ca).unwrap();
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .build(),
        );
    }
    config.build().into()
}

fn spawn(db: &str, extra: &[&str]) -> (Child, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(crate::support::bin("tend"))
        .args(["log", "serve", "--listen", &listen, "--db", db])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("TEND_TEST_SERVER_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the log server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let scheme = if extra.contains(&"--tls-cert") {
        "https"
    } else {
        "http"
    };
    (child, format!("{scheme}://{listen}"))
}

impl Drop for LogServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A valid report of `host` (as `tend converge --format json` prints one).
fn report(host: &str, id: &str) -> String {
    serde_json::json!({
        "id": id, "host": host, "environment": "test", "roles": ["main"], "mode": "apply",
        "revision": null, "source_stale": false, "started_at": "2026-11-24T10:00:00Z",
        "duration_ms": 3, "status": "changed",
        "summary": {"total": 2, "changed": 1, "drift": 0, "failed": 0, "unchanged": 1, "unknown": 0},
        "resources": [{"id": "file:/etc/motd", "status": "changed", "cause": "revision", "duration_ms": 1}]
    })
    .to_string()
}

fn count(log: &LogServer) -> usize {
    log.get("/v1/reports?limit=1000").1["reports"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn converge_reports_to_the_log_and_the_log_answers_queries_on_sqlite() {
    converge_reports_to_the_log_and_the_log_answers_queries(Db::Sqlite);
}

#[test]
fn converge_reports_to_the_log_and_the_log_answers_queries_on_postgres() {
    converge_reports_to_the_log_and_the_log_answers_queries(Db::Postgres);
}

fn converge_reports_to_the_log_and_the_log_answers_queries(store: Db) {
    let (log, _pg) = LogServer::start_on(store, &[]);
    let token = log.token(HOST, "test");
    let t = Test::new();
    t.role(
        "main",
        "resources:\n  - file: \"{{root}}/motd\"\n    content: \"hi\\n\"\n",
    );
    let run = t.converge(&[
        "--format",
        "json",
        "--report-to",
        &log.url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    run.expect_code(2);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let sent: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let id = sent["id"].as_str().unwrap();
    let (status, page) = log.get(&format!("/v1/reports?host={HOST}"));
    assert_eq!(status, 200);
    assert_eq!(page["reports"][0]["id"], id);
    assert_eq!(page["reports"][0]["changed"], 1);
    let (status, stored) = log.get(&format!("/v1/reports/{id}"));
    assert_eq!(status, 200);
    assert_eq!(stored, sent, "the stored report is the one sent");
    let (_, hosts) = log.get("/v1/hosts");
    assert_eq!(hosts["hosts"][0]["host"], HOST);
    assert_eq!(hosts["hosts"][0]["status"], "changed");
    assert_eq!(hosts["hosts"][0]["silent"], false);
    assert_eq!(log.get("/v1/reports/nope").0, 404);
    // Filters and paging.
    for _ in 0..3 {
        t.converge(&[
            "--report-to",
            &log.url,
            "--token-file",
            token.to_str().unwrap(),
        ])
        .expect_code(0);
    }
    let (_, unchanged) = log.get("/v1/reports?status=unchanged");
    assert_eq!(unchanged["reports"].as_array().unwrap().len(), 3);
    let (_, first) = log.get("/v1/reports?limit=2");
    let cursor = first["next_cursor"].as_i64().unwrap();
    let (_, second) = log.get(&format!("/v1/reports?limit=2&cursor={cursor}"));
    assert_eq!(second["reports"].as_array().unwrap().len(), 2);
    assert!(second["next_cursor"].is_null());
    assert_eq!(second["reports"][1]["id"], id, "oldest last");
    assert_eq!(
        log.get("/v1/reports?since=1h").1["reports"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        log.get("/v1/reports?since=2099-01-01T00:00:00Z").1["reports"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(log.get("/v1/reports?since=soon").0, 400);
    let viewer = log.viewer.display().to_string();
    let shown = tend(&[
        "log",
        "show",
        "--server",
        &log.url,
        "--token-file",
        &viewer,
        "--host",
        HOST,
    ]);
    shown.expect_code(0);
    assert_eq!(shown.stdout.lines().count(), 4, "{}", shown.stdout);
    assert!(shown.stdout.contains(HOST));
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing_on_sqlite() {
    bad_input_gets_a_clear_4xx_and_stores_nothing(Db::Sqlite);
}

#[test]
fn bad_input_gets_a_clear_4xx_and_stores_nothing_on_postgres() {
    bad_input_gets_a_clear_4xx_and_stores_nothing(Db::Postgres);
}

fn bad_input_gets_a_clear_4xx_and_stores_nothing(store: Db) {
    let (log, _pg) = LogServer::start_on(store, &["--body-limit", "2000"]);
    let token = fs_err::read_to_string(log.token("web-1", "test")).unwrap();
    let token = token.trim();
    let good = report("web-1", "r-1");
    let (status, body) = log.post(None, good.as_bytes());
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no token"));
    assert_eq!(log.post(Some("not-a-token"), good.as_bytes()).0, 401);
    let (status, body) = log.post(Some(token), report("db-1", "r-2").as_bytes());
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot report for `db-1`"),
        "{body}"
    );
    let (status, body) = log.post(Some(token), b"{ not json");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("not a run report"),
        "{body}"
    );
    let broken = good.replace("\"total\":2", "\"total\":7");
    let (status, body) = log.post(Some(token), broken.as_bytes());
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("does not add up"),
        "{body}"
    );
    let big = report("web-1", &"x".repeat(3000));
    assert_eq!(log.post(Some(token), big.as_bytes()).0, 413);
    assert_eq!(count(&log), 0, "a refused report was stored");
    // Good, then the same id again: stored once, and the answer says so.
    assert_eq!(log.post(Some(token), good.as_bytes()).0, 201);
    let (status, body) = log.post(Some(token), good.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(body["stored"], "duplicate");
    assert_eq!(count(&log), 1);
    // A revoked token is refused.
    tend(&["log", "token", "revoke", "web-1", "--db", &log.db]).expect_code(0);
    assert_eq!(
        log.post(Some(token), report("web-1", "r-3").as_bytes()).0,
        401
    );
    // The list keeps it, as revoked.
    let listed = tend(&["log", "token", "list", "--db", &log.db]);
    let line = listed
        .stdout
        .lines()
        .find(|l| l.contains("web-1"))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(line.contains("revoked"), "{line}");
}

#[test]
fn every_acknowledged_report_survives_a_killed_server_and_none_is_stored_twice_on_sqlite() {
    acknowledged_reports_survive(Db::Sqlite, |log, _| log.kill_and_restart());
}

#[test]
fn every_acknowledged_report_survives_a_killed_server_and_none_is_stored_twice_on_postgres() {
    acknowledged_reports_survive(Db::Postgres, |log, _| log.kill_and_restart());
}

/// PostgreSQL itself restarts under ingest: the server connects again,
/// the posts it could not store were refused (and sent again), none of the
/// acknowledged ones is lost.
#[test]
fn every_acknowledged_report_survives_postgresql_restarting_under_ingest() {
    acknowledged_reports_survive(Db::Postgres, |_, pg| {
        pg.expect("a cluster").restart();
    });
}

/// Posts from four senders while `fault` strikes; then every acknowledged
/// report is stored, and none twice, and posting works again.
fn acknowledged_reports_survive(store: Db, fault: impl FnOnce(&mut LogServer, Option<&PgCluster>)) {
    let (mut log, pg) = LogServer::start_on(store, &[]);
    let token = fs_err::read_to_string(log.token("web-1", "test")).unwrap();
    let token = token.trim().to_owned();
    let url = std::sync::Arc::new(std::sync::Mutex::new(log.url.clone()));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (url, acked, stop, token) = (
                url.clone(),
                acknowledged.clone(),
                stop.clone(),
                token.clone(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = format!("s{s}-{n}");
                    let target = format!("{}/v1/reports", url.lock().unwrap());
                    let sent = agent
                        .post(&target)
                        .header("Authorization", format!("Bearer {token}"))
                        .send(report("web-1", &id).as_bytes());
                    if let Ok(r) = sent
                        && (r.status().as_u16() == 201 || r.status().as_u16() == 200)
                    {
                        acked.lock().unwrap().push(id);
                        n += 1;
                    }
                    // A refused or cut connection: the same id is sent again.
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    fault(&mut log, pg.as_ref());
    *url.lock().unwrap() = log.url.clone();
    // Posting works again afterwards.
    let before = acknowledged.lock().unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().unwrap().len() < before + 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "no report acknowledged after the fault"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few posts to test anything: {}",
        acked.len()
    );
    let mut stored = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = log.get(&format!("/v1/reports?limit=1000{cursor}"));
        stored.extend(
            page["reports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a report was stored twice");
    for id in &acked {
        assert!(unique.contains(id), "acknowledged report {id} is missing");
    }
}

/// Headless Chromium signed in to `log`'s dashboard with its viewer's
/// token, typed into the sign-in page.
pub fn signed_in(log: &LogServer) -> Browser {
    let mut browser = Browser::start();
    let token = fs_err::read_to_string(&log.viewer).unwrap();
    let landed = browser.sign_in(&log.url, token.trim(), "signed-in");
    assert!(
        landed.starts_with(&format!("{}/\n", log.url)),
        "signing in did not land on the dashboard: {}",
        &landed[..landed.len().min(400)]
    );
    browser
}

#[test]
fn the_dashboard_shows_the_deploy_log_hosts_and_drift_with_every_value_escaped() {
    let log = LogServer::start(&[]);
    let hostile = "<img src=x onerror=alert(1)>";
    let post = |host: &str,
                id: &str,
                status: &str,
                summary: serde_json::Value,
                resources: serde_json::Value| {
        let token = fs_err::read_to_string(log.token(host, "production")).unwrap();
        let body = serde_json::json!({
            "id": id, "host": host, "environment": "production", "roles": ["web"], "mode": "apply",
            "revision": {"commit": "9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123", "author": "Ana Diaz <ana@example.com>",
                         "committed_at": "2026-11-21T10:02:11Z", "subject": format!("web: 8 workers {hostile}")},
            "source_stale": false, "started_at": "2026-11-24T10:00:00Z", "duration_ms": 18,
            "status": status, "summary": summary, "resources": resources
        });
        let (code, answer) = log.post(Some(token.trim()), body.to_string().as_bytes());
        assert_eq!(code, 201, "{answer}");
    };
    post(
        "web-1.prod",
        "11111111-1111-1111-1111-111111111111",
        "drift",
        serde_json::json!({"total": 3, "changed": 1, "drift": 1, "failed": 0, "unchanged": 1}),
        serde_json::json!([
            {"id": "file:/etc/nginx/nginx.conf", "status": "changed", "cause": "revision",
             "diff": "--- a\n+++ b\n-worker_processes 2;\n+worker_processes 8; </pre><script>alert(2)</script>\n", "duration_ms": 1},
            {"id": "file:/etc/motd", "status": "drift", "cause": "drift", "changes": ["content"], "duration_ms": 1}
        ]),
    );
    post(
        "web-2.prod",
        "22222222-2222-2222-2222-222222222222",
        "failed",
        serde_json::json!({"total": 2, "changed": 0, "drift": 0, "failed": 1, "unchanged": 1}),
        serde_json::json!([{"id": "service:nginx", "status": "failed", "error": "nginx: [emerg] unknown directive", "duration_ms": 1}]),
    );
    // A browser that has not signed in is sent to the sign-in page; a
    // wrong token is refused there.
    let mut anonymous = Browser::start();
    let page = anonymous.open(&format!("{}/commits/9f3c0a1b2c", log.url), "anonymous");
    assert!(
        page.starts_with(&format!("{}/login?next=/commits/9f3c0a1b2c\n", log.url)),
        "{page}"
    );
    assert!(!page.contains("web-1.prod"), "{page}");
    let refused = anonymous.sign_in(&log.url, "not-a-token", "refused");
    assert!(refused.contains("unknown token"), "{refused}");
    let host_token = fs_err::read_to_string(log.token("web-9.prod", "production")).unwrap();
    let refused = anonymous.sign_in(&log.url, host_token.trim(), "host-refused");
    assert!(refused.contains("host token"), "{refused}");
    drop(anonymous);
    let mut browser = signed_in(&log);
    let home = browser.open(&format!("{}/", log.url), "home");
    assert!(
        home.contains("2 hosts: 0 unchanged, 0 changed, 1 drift, 1 failed; 0 silent."),
        "{home}"
    );
    assert!(
        home.contains("9f3c0a1b2c"),
        "the deploy log lists the commit"
    );
    assert!(home.contains("Ana Diaz &lt;ana@example.com&gt;"));
    assert!(
        home.contains("web: 8 workers &lt;img src=x onerror=alert(1)&gt;"),
        "{home}"
    );
    assert!(
        !home.contains("<img"),
        "a value from a report became markup"
    );
    assert!(home.contains("web-1.prod</a>: 1 resource drifted"));
    let commit = browser.open(
        &format!(
            "{}/commits/9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123",
            log.url
        ),
        "commit",
    );
    assert!(
        commit.contains("web-1.prod") && commit.contains("web-2.prod"),
        "{commit}"
    );
    let report = browser.open(
        &format!("{}/reports/11111111-1111-1111-1111-111111111111", log.url),
        "report",
    );
    assert!(
        report.contains("+worker_processes 8; &lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;"),
        "{report}"
    );
    assert!(!report.contains("<script>"), "{report}");
    assert!(report.contains("file:/etc/motd"));
    // Signing out ends the session: the dashboard asks to sign in again.
    let signed_out = browser.sign_out();
    assert!(signed_out.contains("Sign in"), "{signed_out}");
    let again = browser.open(&format!("{}/", log.url), "signed-out");
    assert!(again.starts_with(&format!("{}/login", log.url)), "{again}");
    // The metrics say the same.
    let (code, metrics) = log.get("/metrics");
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("tend_log_reports_total{status=\"drift\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tend_log_reports_total{status=\"failed\"} 1"));
    assert!(metrics.contains("tend_log_hosts 2"));
}

#[test]
fn two_log_servers_on_one_postgres_store_a_report_once() {
    let (a, _pg) = LogServer::start_on(Db::Postgres, &[]);
    let b = LogServer::alongside(&a);
    let token = fs_err::read_to_string(a.token("web-1", "test")).unwrap();
    let token = token.trim().to_owned();
    for n in 0..20 {
        let id = format!("both-{n}");
        let body = report("web-1", &id);
        let (ta, tb) = (token.clone(), token.clone());
        let (ba, bb) = (body.clone(), body);
        let (ua, ub) = (a.url.clone(), b.url.clone());
        let post = |url: String, token: String, body: String| {
            std::thread::spawn(move || {
                agent()
                    .post(format!("{url}/v1/reports"))
                    .header("Authorization", format!("Bearer {token}"))
                    .send(body.as_bytes())
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        let (x, y) = (post(ua, ta, ba), post(ub, tb, bb));
        let mut codes = [x.join().unwrap(), y.join().unwrap()];
        codes.sort_unstable();
        assert_eq!(
            codes,
            [200, 201],
            "one server stores it, the other says it is there"
        );
    }
    assert_eq!(count(&a), 20);
    assert_eq!(count(&b), 20);
}

#[test]
fn a_commit_landing_on_many_hosts_makes_one_chat_message_retried_until_taken() {
    let chat = crate::support::receiver::Receiver::start();
    chat.answer(503);
    let hook = format!("{}/hook", chat.url);
    let log = LogServer::start(&["--notify", &hook, "--notify-window", "1s"]);
    let runs = [
        ("web-1", "changed", 1, 0, 0),
        ("web-2", "drift", 0, 1, 0),
        ("web-3", "failed", 0, 0, 1),
        ("web-4", "unchanged", 0, 0, 0),
    ];
    for (host, status, changed, drift, failed) in runs {
        let token = fs_err::read_to_string(log.token(host, "production")).unwrap();
        let resources = if failed > 0 {
            serde_json::json!([{"id": "service:nginx", "status": "failed", "error": "no unit nginx", "duration_ms": 1}])
        } else {
            serde_json::json!([])
        };
        let body = serde_json::json!({
            "id": format!("{host}-run"), "host": host, "environment": "production", "roles": ["web"], "mode": "apply",
            "revision": {"commit": "9f3c0a1b2c3d4e5f60718293a4b5c6d7e8f90123", "author": "Ana Diaz <ana@example.com>",
                         "committed_at": "2026-11-21T10:02:11Z", "subject": "web: 8 workers"},
            "source_stale": false, "started_at": "2026-11-24T10:00:00Z", "duration_ms": 18, "status": status,
            "summary": {"total": 3, "changed": changed, "drift": drift, "failed": failed, "unchanged": 3 - changed - drift - failed},
            "resources": resources
        });
        let started = Instant::now();
        let (code, answer) = log.post(Some(token.trim()), body.to_string().as_bytes());
        assert_eq!(code, 201, "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a chat service that is down slowed ingestion"
        );
    }
    // The chat service is down: the message is tried, then retried.
    let deadline = Instant::now() + Duration::from_secs(10);
    while chat.seen() == 0 {
        assert!(Instant::now() < deadline, "the webhook was never tried");
        std::thread::sleep(Duration::from_millis(50));
    }
    chat.answer(200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while chat.received().is_empty() {
        assert!(Instant::now() < deadline, "the message was not retried");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let messages = chat.received();
    assert_eq!(messages.len(), 1, "one message per commit: {messages:?}");
    assert_eq!(messages[0].path, "/hook");
    let text = messages[0].body["text"].as_str().unwrap();
    assert_eq!(
        text,
        "commit 9f3c0a1b2c by Ana Diaz &lt;ana@example.com&gt; (web: 8 workers): 3 hosts: 1 changed, 1 drift, 1 failed: failed on web-3 (service:nginx: no unit nginx)"
    );
}

#[test]
fn old_reports_are_pruned_when_retain_says_so() {
    let (mut log, _) = LogServer::start_on(Db::Sqlite, &[]);
    let token = fs_err::read_to_string(log.token("web-1", "test")).unwrap();
    assert_eq!(
        log.post(Some(token.trim()), report("web-1", "old").as_bytes())
            .0,
        201
    );
    std::thread::sleep(Duration::from_millis(2100));
    // Restarted with a retention of one second: it prunes at start.
    log.child.kill().unwrap();
    log.child.wait().unwrap();
    let (child, url) = spawn(&log.db, &["--retain", "1s"]);
    log.child = child;
    log.url = url;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&log) != 0 {
        assert!(Instant::now() < deadline, "the old report was not pruned");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        log.post(Some(token.trim()), report("web-1", "new").as_bytes())
            .0,
        201
    );
    assert_eq!(count(&log), 1, "a new report is kept");
}

#[test]
fn the_deploy_log_says_how_many_hosts_the_newest_commit_is_still_pending_on_on_sqlite() {
    the_deploy_log_says_how_many_hosts_the_newest_commit_is_still_pending_on(Db::Sqlite);
}

#[test]
fn the_deploy_log_says_how_many_hosts_the_newest_commit_is_still_pending_on_on_postgres() {
    the_deploy_log_says_how_many_hosts_the_newest_commit_is_still_pending_on(Db::Postgres);
}

fn the_deploy_log_says_how_many_hosts_the_newest_commit_is_still_pending_on(store: Db) {
    let (log, _pg) = LogServer::start_on(store, &[]);
    let run = |host: &str, id: &str, commit: &str| {
        let token = fs_err::read_to_string(log.token(host, "production")).unwrap();
        let body = serde_json::json!({
            "id": id, "host": host, "environment": "production", "roles": ["web"], "mode": "apply",
            "revision": {"commit": commit, "author": "Ana Diaz <ana@example.com>", "committed_at": "2026-11-21T10:02:11Z", "subject": commit},
            "source_stale": false, "started_at": "2026-11-24T10:00:00Z", "duration_ms": 1, "status": "changed",
            "summary": {"total": 1, "changed": 1, "drift": 0, "failed": 0, "unchanged": 0},
            "resources": [{"id": "file:/etc/motd", "status": "changed", "cause": "revision", "duration_ms": 1}]
        });
        assert_eq!(
            log.post(Some(token.trim()), body.to_string().as_bytes()).0,
            201
        );
    };
    for host in ["web-1", "web-2", "web-3"] {
        run(host, &format!("{host}-a"), "aaaa");
    }
    run("web-1", "web-1-b", "bbbb");
    run("web-2", "web-2-b", "bbbb");
    let (_, commits) = log.get("/v1/commits");
    let commits = commits["commits"].as_array().unwrap();
    assert_eq!(commits[0]["commit"], "bbbb");
    assert_eq!(commits[0]["hosts"], 2);
    assert_eq!(commits[0]["hosts_pending"], 1, "web-3 has not run it yet");
    assert_eq!(commits[1]["commit"], "aaaa");
    assert_eq!(commits[1]["hosts"], 3);
    assert_eq!(commits[1]["hosts_changed"], 3);
    assert_eq!(commits[1]["hosts_pending"], 0);
    let (_, hosts) = log.get("/v1/hosts");
    let last: Vec<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["commit"].as_str().unwrap())
        .collect();
    assert_eq!(last, ["bbbb", "bbbb", "aaaa"]);
}
