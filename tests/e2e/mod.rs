//! End-to-end: fresh Debian 12 and 13 hosts (systemd booted with
//! systemd-nspawn, sysvinit in a chroot) converged into the example roles
//! for real, and both Debian packages installed and run.

mod host;

use host::{Debian, Host, Init, free_port, http_get, one_at_a_time, repo_with};

fn env_file(host: &str, role: &str, vars: &str) -> String {
    format!(
        "environment: e2e\nvars:\n  server_name: photos.e2e.local\nflags:\n  new_banner: {{ hosts: [\"app-sd.*\"] }}\nhosts:\n  - match: \"{host}\"\n    roles: [{role}]\n    vars: {{ {vars} }}\n"
    )
}

fn json(out: &crate::support::Run) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{}\n{}", out.stdout, out.stderr))
}

/// The resource `id` of a report (null when it is not listed).
fn resource(report: &serde_json::Value, id: &str) -> serde_json::Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_default()
}

/// Writes `roles/<name>/role.yaml` of a test repository.
fn write_role(repo: &std::path::Path, name: &str, yaml: &str) {
    std::fs::create_dir_all(repo.join("roles").join(name)).unwrap();
    std::fs::write(repo.join("roles").join(name).join("role.yaml"), yaml).unwrap();
}

/// The (id, status, action) of every resource a report lists.
fn listed(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
                r["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn web_host(release: Debian, init: Init, name: &str) {
    let _one = one_at_a_time();
    let port = free_port();
    let repo = repo_with(&env_file(
        name,
        "web",
        &format!("listen: \"127.0.0.1:{port}\""),
    ));
    let host = Host::start_on(release, init, name, repo.path());

    let first = host.converge(&["--format", "json"]);
    first.expect_code(2);
    let report = json(&first);
    assert_eq!(report["summary"]["failed"], 0, "{}", first.stdout);
    let page = http_get(port)
        .unwrap_or_else(|| panic!("nothing listens on 127.0.0.1:{port}\n{}", first.stdout));
    assert!(page.contains(&format!("photos on {name} (e2e)")), "{page}");
    assert_eq!(
        host.run(&["dpkg-query", "-W", "-f=${Status}", "nginx"])
            .stdout,
        "install ok installed"
    );

    // Converged: a second run changes nothing.
    let again = host.converge(&[]);
    again.expect_code(0);
    assert!(
        again
            .stdout
            .starts_with("0 changed, 0 drift corrected, 0 failed"),
        "{}",
        again.stdout
    );

    // A new value for a var: only nginx.conf changes, and nginx restarts once.
    let pid_before = host.read("/run/nginx.pid");
    std::fs::write(
        repo.path().join("manifests/e2e.yaml"),
        env_file(
            name,
            "web",
            &format!("listen: \"127.0.0.1:{port}\", workers: 3"),
        ),
    )
    .unwrap();
    let preview = host.converge(&["--dry-run"]);
    preview.expect_code(2);
    preview.shows(
        "~ service:nginx: would restart (notified by file:/etc/nginx/nginx.conf) (revision)",
    );
    assert_eq!(
        host.read("/run/nginx.pid"),
        pid_before,
        "a dry-run restarted nginx"
    );
    let changed = host.converge(&["--format", "json"]);
    changed.expect_code(2);
    assert_eq!(
        listed(&json(&changed)),
        vec![
            (
                "file:/etc/nginx/nginx.conf".into(),
                "changed".into(),
                "change".into()
            ),
            ("service:nginx".into(), "changed".into(), "restart".into()),
        ]
    );
    assert!(
        host.read("/etc/nginx/nginx.conf")
            .contains("worker_processes 3;")
    );
    let pid_after = host.read("/run/nginx.pid");
    assert!(
        !pid_after.is_empty() && pid_after != pid_before,
        "nginx was not restarted ({pid_before} -> {pid_after})"
    );
    assert!(http_get(port).is_some_and(|p| p.contains("photos on")));

    // A hand edit is drift, repaired.
    host.write("/etc/nginx/sites-available/photos", "# edited by hand\n");
    let drift = host.converge(&["--format", "json"]);
    drift.expect_code(2);
    let report = json(&drift);
    assert_eq!(report["status"], "drift");
    let site = &report["resources"][0];
    assert_eq!(site["id"], "file:/etc/nginx/sites-available/photos");
    assert_eq!(site["cause"], "drift");
    assert!(
        host.read("/etc/nginx/sites-available/photos")
            .contains("listen 127.0.0.1:")
    );
    host.converge(&[]).expect_code(0);
}

#[test]
fn web_on_a_systemd_host() {
    web_host(Debian::Bookworm, Init::Systemd, "web-sd.e2e");
}

#[test]
fn web_on_a_sysvinit_host() {
    web_host(Debian::Bookworm, Init::SysV, "web-sysv.e2e");
}

#[test]
fn web_on_a_debian_13_systemd_host() {
    web_host(Debian::Trixie, Init::Systemd, "web-13.e2e");
}

#[test]
fn db_serves_the_templated_setting() {
    db_host(Debian::Bookworm, "db-sd.e2e", "");
}

/// Debian 13 ships PostgreSQL 17: the role's `pg_version` knob says so in
/// the environment, nothing else differs.
#[test]
fn db_on_a_debian_13_host_with_its_postgresql_version_as_a_knob() {
    db_host(Debian::Trixie, "db-13.e2e", ", pg_version: 17");
}

fn db_host(release: Debian, name: &str, knobs: &str) {
    let _one = one_at_a_time();
    let port = free_port();
    let repo = repo_with(&env_file(
        name,
        "db",
        &format!("pg_port: {port}, pg_listen: \"127.0.0.1\", shared_buffers: 48MB{knobs}"),
    ));
    let host = Host::start_on(release, Init::Systemd, name, repo.path());
    let run = host.converge(&[]);
    run.expect_code(2);
    let port = port.to_string();
    let show = host.run(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-p",
        &port,
        "-h",
        "/var/run/postgresql",
        "-Atc",
        "show shared_buffers",
    ]);
    assert_eq!(show.stdout.trim(), "48MB", "{}{}", show.stdout, show.stderr);
    host.converge(&[]).expect_code(0);
}

fn app_host(release: Debian, init: Init, name: &str) {
    let _one = one_at_a_time();
    let port = free_port();
    let repo = repo_with(&env_file(
        name,
        "app",
        &format!("app_listen: \"127.0.0.1:{port}\""),
    ));
    let host = Host::start_on(release, init, name, repo.path());
    host.converge(&[]).expect_code(2);
    let page = http_get(port).unwrap_or_else(|| panic!("the app does not answer on {port}"));
    assert!(
        page.contains(&format!("photo app is up on {name} (e2e)")),
        "{page}"
    );
    let enabled = match init {
        Init::Systemd => {
            host.run(&["systemctl", "is-enabled", "photoapp"])
                .stdout
                .trim()
                == "enabled"
        }
        Init::SysV => host.run(&["sh", "-c", "ls /etc/rc2.d/S*photoapp"]).code == 0,
    };
    assert!(enabled, "photoapp is not enabled at boot");
    // The app's flags, resolved for this host, and a dark-launched page
    // that only the hosts of `new_banner` (app-sd.*) get.
    let wait = std::time::Duration::from_secs(5);
    let flags = host::http_get_path(port, "/flags.json", wait).unwrap();
    assert!(flags.contains("\"new_uploader\": true"), "{flags}");
    assert!(flags.contains("\"comments_dark_launch\": false"), "{flags}");
    let banner = host::http_get_path(port, "/banner.html", wait).unwrap();
    let dark_launched = name.starts_with("app-sd.");
    assert_eq!(
        banner.contains("try the new uploader"),
        dark_launched,
        "{name}: {banner}"
    );
    host.converge(&[]).expect_code(0);
    // Stopped by hand: the next run starts it again, as drift.
    match init {
        Init::Systemd => host.run(&["systemctl", "stop", "photoapp"]),
        Init::SysV => host.run(&["/etc/init.d/photoapp", "stop"]),
    }
    .expect_code(0);
    let run = host.converge(&[]);
    run.expect_code(2);
    run.shows("~ service:photoapp: changed start (drift)");
    assert!(http_get(port).is_some());
}

#[test]
fn app_on_a_systemd_host() {
    app_host(Debian::Bookworm, Init::Systemd, "app-sd.e2e");
}

#[test]
fn app_on_a_sysvinit_host() {
    app_host(Debian::Bookworm, Init::SysV, "app-sysv.e2e");
}

#[test]
fn app_on_a_debian_13_systemd_host() {
    app_host(Debian::Trixie, Init::Systemd, "app-13.e2e");
}

#[test]
fn a_package_that_does_not_exist_fails_with_its_dependents_only() {
    let _one = one_at_a_time();
    let name = "broken.e2e";
    let repo = repo_with(&env_file(name, "broken", ""));
    write_role(
        repo.path(),
        "broken",
        // less comes first, so its transaction is formed before the missing
        // package is reached: busybox, which requires it, must stay out.
        "resources:\n  - package: less\n  - package: busybox\n    require: [package:tend-no-such-package]\n  - package: tend-no-such-package\n  - file: /etc/needs-it.conf\n    content: \"x\\n\"\n    require: [package:tend-no-such-package]\n  - file: /etc/independent.conf\n    content: \"y\\n\"\n",
    );
    let host = Host::start(Init::SysV, name, repo.path());
    let run = host.converge(&["--format", "json"]);
    run.expect_code(6);
    let report = json(&run);
    let by_id = |id: &str| resource(&report, id);
    assert_eq!(by_id("package:tend-no-such-package")["status"], "failed");
    let error = by_id("package:tend-no-such-package")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("Unable to locate package tend-no-such-package"),
        "{error}"
    );
    assert_eq!(by_id("file:/etc/needs-it.conf")["status"], "failed");
    assert_eq!(by_id("package:busybox")["status"], "failed");
    let busybox = host
        .run(&["dpkg-query", "-W", "-f=${Status}", "busybox"])
        .stdout;
    assert!(
        !busybox.contains("ok installed"),
        "installed though what it requires failed"
    );
    assert_eq!(by_id("package:less")["status"], "changed");
    assert_eq!(by_id("file:/etc/independent.conf")["status"], "changed");
    assert_eq!(host.read("/etc/independent.conf"), "y\n");
    assert_eq!(host.read("/etc/needs-it.conf"), "");
    assert_eq!(
        host.run(&["dpkg-query", "-W", "-f=${Status}", "less"])
            .stdout,
        "install ok installed"
    );
}

#[test]
fn a_dry_run_on_a_fresh_host_changes_nothing_and_lists_everything() {
    let _one = one_at_a_time();
    let name = "web-dry.e2e";
    let port = free_port();
    let repo = repo_with(&env_file(
        name,
        "web",
        &format!("listen: \"127.0.0.1:{port}\""),
    ));
    let host = Host::start(Init::SysV, name, repo.path());
    let before = host.changes();
    let run = host.converge(&["--dry-run"]);
    run.expect_code(2);
    assert_eq!(host.changes(), before, "the dry-run changed the host");
    for touched in [
        "+ package:nginx: would create",
        "+ package:less: would create",
        "+ package:procps: would create",
        "+ user:ops: would create",
        "+ group:admins: would create",
        "~ file:/etc/motd: would change",
        "? file:/etc/nginx/nginx.conf: unknown (depends on package:nginx)",
        "? symlink:/etc/nginx/sites-enabled/default: unknown (depends on package:nginx)",
        "? service:nginx: unknown (depends on package:nginx)",
        "+ file:/srv/photos/index.html: would create",
    ] {
        assert!(
            run.stdout.contains(touched),
            "missing `{touched}` in\n{}",
            run.stdout
        );
    }
    assert!(
        host::http_get_within(port, std::time::Duration::ZERO).is_none(),
        "a dry-run started nginx"
    );
}

#[test]
fn packages_install_in_one_transaction_pin_upgrade_and_remove() {
    let _one = one_at_a_time();
    let name = "pkgs.e2e";
    let repo = repo_with(&env_file(name, "pkgs", ""));
    let role = |yaml: &str| write_role(repo.path(), "pkgs", yaml);
    role(
        "resources:\n  - package: less\n    state: latest\n  - package: busybox\n  - package: file\n",
    );
    let host = Host::start(Init::SysV, name, repo.path());
    let transactions = || {
        host.read("/var/log/apt/history.log")
            .matches("Start-Date:")
            .count()
    };
    let before = transactions();
    let run = host.converge(&[]);
    run.expect_code(2);
    assert_eq!(
        transactions() - before,
        1,
        "three packages, one apt transaction:\n{}",
        host.read("/var/log/apt/history.log")
    );
    host.converge(&[]).expect_code(0);

    // Pin less to the version it has, remove busybox and file (one removal).
    let version = host
        .run(&["dpkg-query", "-W", "-f=${Version}", "less"])
        .stdout;
    role(&format!(
        "resources:\n  - package: less\n    version: \"{version}\"\n  - package: busybox\n    state: absent\n  - package: file\n    state: absent\n"
    ));
    let before = transactions();
    let run = host.converge(&[]);
    run.expect_code(2);
    run.shows("- package:busybox: removed version");
    assert!(
        !run.stdout.contains("package:less"),
        "the pin matches: {}",
        run.stdout
    );
    assert_eq!(transactions() - before, 1);
    let status = host
        .run(&["dpkg-query", "-W", "-f=${Status}", "busybox"])
        .stdout;
    assert!(
        status.ends_with("not-installed") || status.ends_with("config-files"),
        "{status}"
    );
    host.converge(&[]).expect_code(0);

    // A version apt does not have fails, and says which versions it has.
    role("resources:\n  - package: less\n    version: \"0.1-1\"\n");
    let run = host.converge(&[]);
    run.expect_code(4);
    run.shows("package `less` has no version `0.1-1` (apt knows: ");
}

/// Builds `tend-dummy` at `version` (a conffile and a version file) into `dir`,
/// and returns its `Packages` stanza.
fn dummy_deb(dir: &std::path::Path, version: &str) -> String {
    let root = dir.join(format!("build-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/tend-dummy")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: tend-dummy\nVersion: {version}\nArchitecture: all\nMaintainer: tend tests <tests@example.com>\nDescription: a package for tend's tests\n"),
    )
    .unwrap();
    std::fs::write(root.join("DEBIAN/conffiles"), "/etc/tend-dummy.conf\n").unwrap();
    std::fs::write(
        root.join("etc/tend-dummy.conf"),
        format!("version={version}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("usr/share/tend-dummy/VERSION"),
        format!("{version}\n"),
    )
    .unwrap();
    let deb = format!("tend-dummy_{version}_all.deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(dir.join(&deb))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let bytes = std::fs::read(dir.join(&deb)).unwrap();
    format!(
        "Package: tend-dummy\nVersion: {version}\nArchitecture: all\nMaintainer: tend tests <tests@example.com>\nFilename: ./{deb}\nSize: {}\nSHA256: {}\nDescription: a package for tend's tests\n\n",
        bytes.len(),
        tend::resource::sha256_hex(&bytes)
    )
}

#[test]
fn packages_upgrade_to_latest_downgrade_to_a_pin_and_keep_local_conffiles() {
    let _one = one_at_a_time();
    let name = "upgrade.e2e";
    let repo = repo_with(&env_file(name, "pkgs", ""));
    let role = |yaml: &str| write_role(repo.path(), "pkgs", yaml);
    role("resources:\n  - package: tend-dummy\n    version: \"1.0\"\n");
    let host = Host::start(Init::SysV, name, repo.path());

    // A local apt repository with versions 1.0 and 2.0 of tend-dummy.
    let local = tempfile::tempdir().unwrap();
    let packages = dummy_deb(local.path(), "1.0") + &dummy_deb(local.path(), "2.0");
    std::fs::write(local.path().join("Packages"), &packages).unwrap();
    host.run(&["mkdir", "-p", "/srv/localrepo"]).expect_code(0);
    for file in [
        "Packages",
        "tend-dummy_1.0_all.deb",
        "tend-dummy_2.0_all.deb",
    ] {
        host.copy_in(&local.path().join(file), &format!("/srv/localrepo/{file}"));
    }
    host.write(
        "/etc/apt/sources.list.d/local.list",
        "deb [trusted=yes] file:/srv/localrepo ./\n",
    );
    host.run(&[
        "apt-get",
        "update",
        "-q",
        "-o",
        "Dir::Etc::sourcelist=sources.list.d/local.list",
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
    ])
    .expect_code(0);

    let run = host.converge(&[]);
    run.expect_code(2);
    run.shows("+ package:tend-dummy: created version 1.0");
    assert_eq!(host.read("/usr/share/tend-dummy/VERSION"), "1.0\n");

    // A local edit of the configuration file survives the upgrade.
    host.write("/etc/tend-dummy.conf", "version=1\nlocal=edit\n");
    role("resources:\n  - package: tend-dummy\n    state: latest\n");
    let run = host.converge(&[]);
    run.expect_code(2);
    run.shows("~ package:tend-dummy: changed version 1.0 -> 2.0");
    assert_eq!(host.read("/usr/share/tend-dummy/VERSION"), "2.0\n");
    assert_eq!(host.read("/etc/tend-dummy.conf"), "version=1\nlocal=edit\n");
    host.converge(&[]).expect_code(0);

    // Pinned back to 1.0: a downgrade.
    role("resources:\n  - package: tend-dummy\n    version: \"1.0\"\n");
    let run = host.converge(&[]);
    run.expect_code(2);
    run.shows("~ package:tend-dummy: changed version 2.0 -> 1.0");
    assert_eq!(host.read("/usr/share/tend-dummy/VERSION"), "1.0\n");
    host.converge(&[]).expect_code(0);
}

/// The ids of a report's resources whose status is one of `statuses`.
fn with_status(report: &serde_json::Value, statuses: &[&str]) -> Vec<String> {
    listed(report)
        .into_iter()
        .filter(|(_, status, _)| statuses.contains(&status.as_str()))
        .map(|(id, _, _)| id)
        .collect()
}

/// A dry-run on a fresh host, then the real run: the dry-run lists no
/// failure the real run does not have, everything the real run changes is in
/// the dry-run's plan, and everything the dry-run says it would change is
/// changed. Returns the dry-run's report.
fn dry_run_is_honest(host: &Host) -> serde_json::Value {
    let dry = host.converge(&["--dry-run", "--format", "json"]);
    let plan = json(&dry);
    assert_eq!(
        with_status(&plan, &["failed"]),
        Vec::<String>::new(),
        "the dry-run reports failures:\n{}",
        dry.stdout
    );
    dry.expect_code(2);
    let real = host.converge(&["--format", "json"]);
    let done = json(&real);
    assert_eq!(
        with_status(&done, &["failed"]),
        Vec::<String>::new(),
        "{}",
        real.stdout
    );
    let planned = with_status(&plan, &["changed", "drift", "unknown"]);
    let changed = with_status(&done, &["changed", "drift"]);
    for id in &changed {
        assert!(
            planned.contains(id),
            "the real run changed `{id}`, which the dry-run did not list:\n{}",
            dry.stdout
        );
    }
    for id in with_status(&plan, &["changed", "drift"]) {
        assert!(
            changed.contains(&id),
            "the dry-run said `{id}` would change; the real run left it:\n{}",
            real.stdout
        );
    }
    host.converge(&[]).expect_code(0);
    plan
}

#[test]
fn a_dry_run_of_every_example_role_on_a_fresh_host_is_honest() {
    let _one = one_at_a_time();
    let name = "all-roles.e2e";
    let (web, pg, app) = (free_port(), free_port(), free_port());
    let repo = repo_with(&env_file(
        name,
        "web, db, app",
        &format!(
            "listen: \"127.0.0.1:{web}\", pg_port: {pg}, pg_listen: \"127.0.0.1\", app_listen: \"127.0.0.1:{app}\""
        ),
    ));
    let host = Host::start(Init::SysV, name, repo.path());
    dry_run_is_honest(&host);
    assert!(http_get(web).is_some_and(|p| p.contains("photos on")));
    assert!(http_get(app).is_some_and(|p| p.contains("photo app is up")));
}

#[test]
fn a_file_in_a_directory_a_package_creates_is_unknown_in_a_dry_run_not_failed() {
    let _one = one_at_a_time();
    let name = "shop.e2e";
    let repo = repo_with(&env_file(name, "shop", ""));
    // No `require` on the package: the parent directory, the owner and the
    // service's init script all come from packages the dry-run does not install.
    write_role(
        repo.path(),
        "shop",
        "resources:\n  - package: nginx\n  - package: postgresql\n  - file: /etc/nginx/sites-enabled/shop\n    content: \"server { listen 127.0.0.1:1; }\\n\"\n  - file: /var/lib/postgresql/shop.txt\n    content: \"x\\n\"\n    owner: postgres\n  - service: postgresql\n    enabled: false\n",
    );
    let host = Host::start(Init::SysV, name, repo.path());
    let plan = dry_run_is_honest(&host);
    let unknown = |id: &str| {
        let r = resource(&plan, id);
        (!r.is_null()).then(|| (r["status"].clone(), r["depends_on"].clone()))
    };
    assert_eq!(
        unknown("file:/etc/nginx/sites-enabled/shop"),
        Some(("unknown".into(), "package:nginx, package:postgresql".into()))
    );
    assert_eq!(
        unknown("file:/var/lib/postgresql/shop.txt").map(|(s, _)| s),
        Some("unknown".into())
    );
}

/// A `git daemon` serving `base` on a loopback port; stopped when dropped.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &std::path::Path) -> GitDaemon {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = std::process::Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // `git daemon` runs git-daemon as a child of its own: a process
            // group of their own, so both stop.
            .process_group(0)
            .spawn()
            .expect("start git daemon");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(-pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }
}

fn git_in(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Ana Diaz",
            "-c",
            "user.email=ana@example.com",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_agent_from_its_debian_package_pulls_converges_reports_and_stops_cleanly() {
    let _one = one_at_a_time();
    let name = "agent-sd.e2e";
    let port = free_port();
    let (repo, _daemon, source) = served_web_repo(name, port, "web for the agent test");
    let log = crate::support::receiver::Receiver::start();

    let debs = build_debs();
    let deb = &debs.tend;

    let host = Host::start(Init::Systemd, name, repo.path());
    host.copy_in(std::path::Path::new(deb), "/root/tend.deb");
    let install = host.run(&["apt-get", "install", "-y", "-q", "/root/tend.deb"]);
    install.expect_code(0);
    // Installed, not running: nothing starts until it is configured.
    assert_eq!(
        host.run(&["systemctl", "is-active", "tend-agent"])
            .stdout
            .trim(),
        "inactive"
    );
    assert_eq!(
        host.run(&["systemctl", "is-enabled", "tend-agent"])
            .stdout
            .trim(),
        "disabled"
    );
    assert_eq!(
        host.run(&["stat", "-c", "%a", "/var/lib/tend"])
            .stdout
            .trim(),
        "700"
    );

    host.write(
        "/etc/tend/agent.yaml",
        &format!(
            "source: {source}\nref: main\ninterval: 1h\nsplay: 0s\nlog: {}\ntoken_file: /etc/tend/token\nhost: {name}\n",
            log.url
        ),
    );
    host.write("/etc/tend/token", "agent-e2e-token\n");
    // The packaged watchdog, faster: a hung agent is restarted in seconds.
    host.run(&["mkdir", "-p", "/etc/systemd/system/tend-agent.service.d"])
        .expect_code(0);
    host.write(
        "/etc/systemd/system/tend-agent.service.d/watchdog.conf",
        "[Service]\nWatchdogSec=4s\nRestartSec=1s\n",
    );
    host.run(&["systemctl", "daemon-reload"]).expect_code(0);
    host.run(&["systemctl", "enable", "--now", "tend-agent"])
        .expect_code(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while log.received().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no report from the agent:\n{}",
            host.run(&["journalctl", "-u", "tend-agent", "--no-pager"])
                .stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let report = &log.received()[0];
    assert_eq!(report.authorization, "Bearer agent-e2e-token");
    assert_eq!(report.body["summary"]["failed"], 0, "{}", report.body);
    assert_eq!(report.body["revision"]["subject"], "web for the agent test");
    assert!(http_get(port).is_some_and(|p| p.contains(&format!("photos on {name}"))));

    // Type=notify: the agent said it was up and what its last cycle did.
    let show = |property: &str| {
        host.run(&["systemctl", "show", "-p", property, "--value", "tend-agent"])
            .stdout
            .trim()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !show("StatusText").starts_with("last cycle: changed") {
        assert!(
            std::time::Instant::now() < deadline,
            "status: {}",
            show("StatusText")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Waiting between cycles is progress: three watchdog periods pass and
    // the agent is not restarted.
    let first_pid = show("MainPID");
    std::thread::sleep(std::time::Duration::from_secs(12));
    assert_eq!(show("NRestarts"), "0", "{}", show("StatusText"));
    assert_eq!(show("MainPID"), first_pid);
    // A hung agent (stopped dead) misses its pings: systemd kills it and
    // starts it again.
    host.run(&["systemctl", "kill", "--signal=SIGSTOP", "tend-agent"])
        .expect_code(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while show("NRestarts") == "0" || show("ActiveState") != "active" {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped agent was not restarted:\n{}",
            host.run(&["journalctl", "-u", "tend-agent", "--no-pager"])
                .stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_ne!(show("MainPID"), first_pid);
    let journal = host
        .run(&["journalctl", "-u", "tend-agent", "--no-pager"])
        .stdout;
    assert!(journal.contains("Watchdog timeout"), "{journal}");

    host.run(&["systemctl", "stop", "tend-agent"])
        .expect_code(0);
    let result = host.run(&["systemctl", "show", "-p", "Result", "--value", "tend-agent"]);
    assert_eq!(result.stdout.trim(), "success");
    host.run(&["dpkg", "--purge", "tend"]).expect_code(0);
    assert_eq!(
        host.run(&["test", "-e", "/var/lib/tend"]).code,
        1,
        "purge left /var/lib/tend"
    );
    assert_eq!(host.run(&["test", "-e", "/usr/bin/tend"]).code, 1);
}

/// A repository whose host `name` has the web role listening on `port`,
/// committed with `subject` and served by a git daemon on loopback at the
/// returned `git://` URL.
fn served_web_repo(name: &str, port: u16, subject: &str) -> (tempfile::TempDir, GitDaemon, String) {
    let repo = repo_with(&env_file(
        name,
        "web",
        &format!("listen: \"127.0.0.1:{port}\""),
    ));
    git_in(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    git_in(repo.path(), &["add", "-A"]);
    git_in(repo.path(), &["commit", "--quiet", "-m", subject]);
    let daemon = GitDaemon::start(repo.path().parent().unwrap());
    let repo_name = repo
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let source = format!("git://127.0.0.1:{}/{repo_name}", daemon.port);
    (repo, daemon, source)
}

/// Both packages, built around the tested binaries (and lintian-clean of
/// errors).
struct Debs {
    _dir: tempfile::TempDir,
    tend: String,
    tend_log: String,
}

fn build_debs() -> Debs {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = crate::support::bin("tend").parent().unwrap();
    let built =
        std::process::Command::new(format!("{}/scripts/build-deb", crate::support::project()))
            .arg(dir.path())
            .arg("--bin-dir")
            .arg(bin_dir)
            .output()
            .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let paths: Vec<String> = String::from_utf8(built.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let find = |prefix: &str| {
        paths
            .iter()
            .find(|p| {
                std::path::Path::new(p)
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("no {prefix}*.deb in {paths:?}"))
            .clone()
    };
    Debs {
        tend: find("tend_"),
        tend_log: find("tend-log_"),
        _dir: dir,
    }
}

#[test]
fn both_packages_are_lintian_clean_and_ship_man_pages_and_completions() {
    let debs = build_debs();
    for deb in [&debs.tend, &debs.tend_log] {
        let out = std::process::Command::new("lintian")
            .args(["--fail-on", "error", "--no-tag-display-limit"])
            .arg(deb)
            .output()
            .expect("run lintian");
        assert!(
            out.status.success(),
            "lintian on {deb}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = std::process::Command::new("dpkg-deb")
            .arg("-c")
            .arg(deb)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        let name = if deb == &debs.tend {
            "tend"
        } else {
            "tend-log"
        };
        for path in [
            format!("./usr/bin/{name}"),
            format!("./usr/share/man/man1/{name}.1.gz"),
            format!("./usr/share/bash-completion/completions/{name}"),
            format!("./usr/share/zsh/vendor-completions/_{name}"),
            format!("./usr/share/fish/vendor_completions.d/{name}.fish"),
        ] {
            assert!(listing.contains(&path), "{deb} lacks {path}:\n{listing}");
        }
    }
    // The two install side by side: no file is in both.
    let files = |deb: &str| -> std::collections::BTreeSet<String> {
        let out = std::process::Command::new("dpkg-deb")
            .arg("-c")
            .arg(deb)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('d'))
            .filter_map(|l| l.split_whitespace().nth(5).map(str::to_owned))
            .collect()
    };
    let both: Vec<String> = files(&debs.tend)
        .intersection(&files(&debs.tend_log))
        .cloned()
        .collect();
    assert!(both.is_empty(), "in both packages: {both:?}");
    // A page per subcommand, as git has them.
    let listing = std::process::Command::new("dpkg-deb")
        .arg("-c")
        .arg(&debs.tend_log)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for page in [
        "tend-log-serve.1.gz",
        "tend-log-token-create.1.gz",
        "tend-log-rollout-resume.1.gz",
    ] {
        assert!(listing.contains(page), "no {page}:\n{listing}");
    }
}

/// Debian 13, fresh: both packages installed from their .debs; the log
/// serves from its packaged unit (its own user, hardened), an agent
/// enrolls with a join token, converges the web role, and its run is on
/// the dashboard.
#[test]
fn both_packages_on_a_fresh_debian_13_host_log_serves_agent_enrolls_and_reports() {
    let _one = one_at_a_time();
    let name = "web-13.e2e";
    let port = free_port();
    let log_port = free_port();
    let (repo, _daemon, source) = served_web_repo(name, port, "web on Debian 13");
    let debs = build_debs();

    let host = Host::start_on(Debian::Trixie, Init::Systemd, name, repo.path());
    assert!(host.read("/etc/os-release").contains("VERSION_ID=\"13\""));
    host.copy_in(std::path::Path::new(&debs.tend_log), "/root/tend-log.deb");
    host.copy_in(std::path::Path::new(&debs.tend), "/root/tend.deb");
    host.run(&[
        "apt-get",
        "install",
        "-y",
        "-q",
        "/root/tend-log.deb",
        "/root/tend.deb",
    ])
    .expect_code(0);
    // Installed, nothing started.
    for unit in ["tend-log", "tend-agent"] {
        assert_eq!(
            host.run(&["systemctl", "is-active", unit]).stdout.trim(),
            "inactive"
        );
        assert_eq!(
            host.run(&["systemctl", "is-enabled", unit]).stdout.trim(),
            "disabled"
        );
    }
    assert_eq!(
        host.run(&["id", "-u", "tend-log"]).code,
        0,
        "no tend-log user"
    );

    host.write(
        "/etc/tend-log/log.yaml",
        &format!("listen: 127.0.0.1:{log_port}\nsource: {source}\nref: main\n"),
    );
    host.run(&["systemctl", "enable", "--now", "tend-log"])
        .expect_code(0);
    let journal = || {
        host.run(&["journalctl", "-u", "tend-log", "--no-pager"])
            .stdout
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", log_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the log does not listen:\n{}",
            journal()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Its own unprivileged user, in a sandbox.
    let pid = host
        .run(&["systemctl", "show", "-p", "MainPID", "--value", "tend-log"])
        .stdout;
    let status = host.read(&format!("/proc/{}/status", pid.trim()));
    let uid = host.run(&["id", "-u", "tend-log"]).stdout;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.trim())),
        "{status}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");

    // The operator's commands, as the service's user, read the same settings.
    let as_log = |args: &[&str]| {
        let mut argv = vec!["runuser", "-u", "tend-log", "--", "tend-log"];
        argv.extend_from_slice(args);
        let run = host.run(&argv);
        run.expect_code(0);
        run.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let join = as_log(&["enroll", "create", "--env", "e2e", "--match", "*.e2e"]);
    let viewer = as_log(&["token", "create", "--viewer", "e2e"]);
    host.write("/etc/tend/join-token", &format!("{join}\n"));
    host.write(
        "/etc/tend/agent.yaml",
        &format!(
            "source: {source}\nref: main\ninterval: 1h\nsplay: 0s\nlog: http://127.0.0.1:{log_port}\n\
             enroll_token_file: /etc/tend/join-token\nhost: {name}\n"
        ),
    );
    host.run(&["systemctl", "enable", "--now", "tend-agent"])
        .expect_code(0);

    let get = |path: &str| -> Option<String> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{log_port}{path}"))
            .header("Authorization", &format!("Bearer {viewer}"))
            .call()
            .ok()?;
        response.body_mut().read_to_string().ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let reports = loop {
        let body = get(&format!("/v1/reports?host={name}")).unwrap_or_default();
        let page: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if page["reports"].as_array().is_some_and(|r| !r.is_empty()) {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report from the agent:\n{}\n{}",
            host.run(&["journalctl", "-u", "tend-agent", "--no-pager"])
                .stdout,
            journal()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let run = &reports["reports"][0];
    assert_eq!(run["status"], "changed", "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    assert!(http_get(port).is_some_and(|p| p.contains(&format!("photos on {name}"))));
    // Enrolled: the agent holds a host token of its own now.
    assert_eq!(host.run(&["test", "-s", "/var/lib/tend/token"]).code, 0);
    // On the dashboard: the host's page lists the run, with the commit's
    // subject from the log's own mirror of the source.
    let page = get(&format!("/hosts/{name}")).expect("the host's page");
    assert!(page.contains(name) && page.contains("changed"), "{page}");
    let front = get("/").expect("the front page");
    assert!(front.contains("web on Debian 13"), "{front}");

    host.run(&["systemctl", "stop", "tend-agent", "tend-log"])
        .expect_code(0);
    assert_eq!(
        host.run(&["systemctl", "show", "-p", "Result", "--value", "tend-log"])
            .stdout
            .trim(),
        "success"
    );
}

/// The dev boxes' provisioning script (vagrant/provision.sh), run in a
/// fresh Debian host as Vagrant would run it in a box: the dev web host is
/// built by the code that builds production.
#[test]
fn the_dev_box_provisioner_converges_the_dev_web_host() {
    let _one = one_at_a_time();
    let name = "web-1.dev";
    let repo = repo_with(&env_file("unused.e2e", "base", ""));
    let host = Host::start(Init::Systemd, name, repo.path());
    host.copy_in(
        &std::path::Path::new(crate::support::project()).join("vagrant/provision.sh"),
        "/root/provision.sh",
    );
    let first = host.run(&["sh", "/root/provision.sh", name, "/srv/repo"]);
    first.expect_code(0);
    first.shows("+ package:nginx");
    let page = http_get(80).unwrap_or_else(|| panic!("nothing serves the dev web host on port 80"));
    assert!(page.contains("photos on web-1.dev (dev)"), "{page}");
    // Provisioning again changes nothing.
    let again = host.run(&["sh", "/root/provision.sh", name, "/srv/repo"]);
    again.expect_code(0);
    assert!(again.summary().starts_with("0 changed"), "{}", again.stdout);
}
