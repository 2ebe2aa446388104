//! Real Debian hosts made on this machine for end-to-end tests.
//!
//! A minimal Debian root file system (12 bookworm or 13 trixie) is built
//! once with debootstrap and cached (with a systemd layer on top). Every host is a fresh overlayfs
//! copy of it: a sysvinit host runs in a chroot inside its own mount, UTS,
//! IPC and PID namespaces; a systemd host is booted with systemd-nspawn
//! (systemd as PID 1) in its own mount namespace and cgroup. Mounts live in
//! the host's namespace, so they go when it goes; `Drop` kills what is
//! left and checks that nothing outlives the host.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::support::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Systemd,
    SysV,
}

/// The Debian release a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debian {
    /// Debian 12.
    Bookworm,
    /// Debian 13, the current stable.
    Trixie,
}

impl Debian {
    fn suite(self) -> &'static str {
        match self {
            Debian::Bookworm => "bookworm",
            Debian::Trixie => "trixie",
        }
    }
}

/// The cached images.
pub struct Images {
    base: PathBuf,
    systemd_layer: PathBuf,
    archives: PathBuf,
}

/// Bump when the image recipe changes, so that old caches are not reused.
const IMAGE_VERSION: &str = "v1";

fn cache_dir(release: Debian) -> PathBuf {
    let cache = PathBuf::from(crate::support::project()).join("target/e2e-cache");
    match release {
        Debian::Bookworm => cache.join(IMAGE_VERSION),
        other => cache.join(format!("{IMAGE_VERSION}-{}", other.suite())),
    }
}

/// The machine's Debian mirror (deb822 or one-line format).
fn mirror() -> String {
    let deb822 =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    if let Some(uri) = deb822
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .and_then(|u| u.split_whitespace().next())
    {
        return uri.to_owned();
    }
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    list.lines()
        .filter(|l| l.starts_with("deb "))
        .find_map(|l| l.split_whitespace().nth(1))
        .map_or_else(|| "http://deb.debian.org/debian".to_owned(), str::to_owned)
}

#[track_caller]
fn sh(script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "failed: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the images of a release once (and reuses them across runs).
pub fn images(release: Debian) -> &'static Images {
    static BOOKWORM: OnceLock<Images> = OnceLock::new();
    static TRIXIE: OnceLock<Images> = OnceLock::new();
    let once = match release {
        Debian::Bookworm => &BOOKWORM,
        Debian::Trixie => &TRIXIE,
    };
    once.get_or_init(|| {
        assert!(nix::unistd::Uid::effective().is_root(), "end-to-end tests need root (CI runs as root)");
        let dir = cache_dir(release);
        std::fs::create_dir_all(&dir).unwrap();
        // Other test processes building the same cache wait here.
        let lock = std::fs::File::create(dir.join("lock")).unwrap();
        lock.lock().unwrap();
        let images = Images {
            base: dir.join("base"),
            systemd_layer: dir.join("systemd-layer"),
            archives: dir.join("archives"),
        };
        std::fs::create_dir_all(images.archives.join("partial")).unwrap();
        if !images.base.is_dir() {
            let tmp = dir.join("base.tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            eprintln!("e2e: building a Debian {release:?} root file system with debootstrap (once)");
            sh(&format!(
                "debootstrap --variant=minbase --include=init-system-helpers {} {} {} >{}/debootstrap.log 2>&1",
                release.suite(),
                tmp.display(),
                mirror(),
                dir.display()
            ));
            // Packages never start services on their own in test hosts
            // (tend starts them, on loopback ports the tests choose), and
            // installs stay small.
            sh(&format!(
                "printf '#!/bin/sh\\nexit 101\\n' > {t}/usr/sbin/policy-rc.d && chmod 755 {t}/usr/sbin/policy-rc.d && \
                 printf 'APT::Install-Recommends \"false\";\\nAPT::Install-Suggests \"false\";\\n' > {t}/etc/apt/apt.conf.d/90tend-test && \
                 mv {t}/var/cache/apt/archives/*.deb {a}/ 2>/dev/null; mv {t} {b}",
                t = tmp.display(),
                a = images.archives.display(),
                b = images.base.display()
            ));
        }
        if !images.systemd_layer.is_dir() {
            let tmp = dir.join("systemd-layer.tmp");
            let work = dir.join("systemd-layer.work");
            let root = dir.join("systemd-layer.root");
            for d in [&tmp, &work, &root] {
                let _ = std::fs::remove_dir_all(d);
                std::fs::create_dir_all(d).unwrap();
            }
            eprintln!("e2e: adding systemd to the image (once)");
            sh(&format!(
                "unshare --mount --propagation private sh -ec '\
                 mount -t overlay overlay -o lowerdir={base},upperdir={tmp},workdir={work} {root}; \
                 mount -t proc proc {root}/proc; mount --rbind /dev {root}/dev; \
                 mount --bind {arch} {root}/var/cache/apt/archives; \
                 chroot {root} env DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd systemd-sysv dbus >{dir}/systemd-layer.log 2>&1; \
                 chroot {root} systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer systemd-networkd-wait-online.service >/dev/null 2>&1' \
                 && mv {tmp} {layer} && rm -rf {work} {root}",
                base = images.base.display(),
                tmp = tmp.display(),
                work = work.display(),
                root = root.display(),
                arch = images.archives.display(),
                dir = dir.display(),
                layer = images.systemd_layer.display()
            ));
        }
        drop(lock);
        images
    })
}

/// One host at a time: they share the machine's network and two cores.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct Host {
    pub name: String,
    pub init: Init,
    pub release: Debian,
    dir: PathBuf,
    /// `unshare` (sysvinit) or the `unshare` that became systemd-nspawn.
    launcher: Child,
    /// A process inside the host to enter: the namespace's PID 1.
    pid: u32,
    cgroup: Option<String>,
    _scratch: tempfile::TempDir,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Host {
    /// Starts a fresh host named `name` with the repository `repo` mounted
    /// read-only at /srv/repo and tend at /usr/local/bin/tend.
    pub fn start(init: Init, name: &str, repo: &Path) -> Host {
        Host::start_on(Debian::Bookworm, init, name, repo)
    }

    /// As [`Host::start`], on the given Debian release.
    pub fn start_on(release: Debian, init: Init, name: &str, repo: &Path) -> Host {
        let images = images(release);
        let scratch = tempfile::Builder::new()
            .prefix("tend-e2e-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let dir = scratch.path().to_path_buf();
        for d in ["upper", "work", "root"] {
            std::fs::create_dir(dir.join(d)).unwrap();
        }
        let tend = PathBuf::from(crate::support::bin("tend"));
        let (lower, id) = match init {
            Init::SysV => (images.base.display().to_string(), String::new()),
            Init::Systemd => (
                format!(
                    "{}:{}",
                    images.systemd_layer.display(),
                    images.base.display()
                ),
                dir.file_name().unwrap().to_string_lossy().into_owned(),
            ),
        };
        let mount_root = format!(
            "mount -t overlay overlay -o lowerdir={lower},upperdir={d}/upper,workdir={d}/work {d}/root; R={d}/root; \
             echo {name} > $R/etc/hostname; touch $R/usr/local/bin/tend; mkdir -p $R/srv/repo;",
            d = dir.display()
        );
        let mut cgroup = None;
        let script = match init {
            Init::SysV => format!(
                "{mount_root} mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; \
                 mount --rbind /dev $R/dev; mount -t tmpfs tmpfs $R/run; mkdir -p $R/run/lock; \
                 mount --bind {arch} $R/var/cache/apt/archives; \
                 mount --bind {tend} $R/usr/local/bin/tend; mount -o remount,bind,ro $R/usr/local/bin/tend; \
                 mount --bind {repo} $R/srv/repo; mount -o remount,bind,ro $R/srv/repo; \
                 hostname {name}; exec chroot $R /bin/bash -c 'while :; do sleep 3600 & wait; done'",
                arch = images.archives.display(),
                tend = tend.display(),
                repo = repo.display(),
            ),
            Init::Systemd => {
                // Its own cgroup, so that what nspawn makes can be removed after.
                let cg = format!("tend-e2e-{id}");
                for hierarchy in ["systemd", "unified"] {
                    std::fs::create_dir_all(format!("/sys/fs/cgroup/{hierarchy}/{cg}")).unwrap();
                }
                let script = format!(
                    "echo $$ > /sys/fs/cgroup/systemd/{cg}/cgroup.procs; echo $$ > /sys/fs/cgroup/unified/{cg}/cgroup.procs; \
                     {mount_root} {cgroup_v2} exec systemd-nspawn -q -D $R --register=no --keep-unit --hostname={name} -b \
                     --bind-ro={tend}:/usr/local/bin/tend --bind-ro={repo}:/srv/repo \
                     --bind={arch}:/var/cache/apt/archives",
                    tend = tend.display(),
                    repo = repo.display(),
                    arch = images.archives.display(),
                    // systemd 257 (Debian 13) boots on the unified cgroup
                    // hierarchy only; this machine mounts both.
                    cgroup_v2 = if release == Debian::Bookworm {
                        ""
                    } else {
                        "export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1;"
                    },
                );
                cgroup = Some(cg);
                script
            }
        };
        let mut unshare = Command::new("unshare");
        match init {
            Init::SysV => unshare.args([
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
            ]),
            Init::Systemd => unshare.args(["--mount", "--propagation", "private"]),
        };
        let console = std::fs::File::create(dir.join("console.log")).unwrap();
        let launcher = unshare
            .args(["sh", "-ec", &script])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("start unshare");
        let mut host = Host {
            name: name.to_owned(),
            init,
            release,
            dir,
            launcher,
            pid: 0,
            cgroup,
            _scratch: scratch,
        };
        host.pid = host.wait_for_init();
        if init == Init::Systemd {
            host.wait_for_systemd();
        }
        host
    }

    /// The namespace's PID 1, seen from this machine.
    fn wait_for_init(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        // The sysvinit host's PID 1 is bash, which (unlike sleep) reaps the
        // daemons orphaned to it; otherwise their zombies make init scripts
        // wait for them to stop until they time out.
        let want = match self.init {
            Init::SysV => "bash",
            Init::Systemd => "systemd",
        };
        loop {
            if let Ok(Some(status)) = self.launcher.try_wait() {
                panic!(
                    "host {} did not start ({status}):\n{}",
                    self.name,
                    self.console()
                );
            }
            // Depth-first through the launcher's descendants.
            let mut stack = vec![self.launcher.id()];
            while let Some(pid) = stack.pop() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == want && pid != self.launcher.id() {
                    return pid;
                }
                stack.extend(children(pid));
            }
            assert!(
                Instant::now() < deadline,
                "host {} has no {want}:\n{}",
                self.name,
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for_systemd(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let state = self.run(&["systemctl", "is-system-running"]).stdout;
            match state.trim() {
                "running" | "degraded" => return,
                _ if Instant::now() > deadline => {
                    panic!("systemd did not come up ({state}):\n{}", self.console())
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Runs a command inside the host, as root, with a clean environment.
    pub fn run(&self, argv: &[&str]) -> Run {
        let pid = self.pid.to_string();
        let mut cmd = Command::new("nsenter");
        match self.init {
            Init::SysV => cmd.args(["-t", &pid, "-m", "-u", "-i", "-p", "-r", "-w"]),
            Init::Systemd => cmd.args(["-t", &pid, "-a"]),
        };
        cmd.args([
            "--",
            "env",
            "-i",
            &format!("PATH={PATH}"),
            "HOME=/root",
            "TERM=dumb",
            "NO_COLOR=1",
        ]);
        let out = cmd
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `tend converge` of the mounted repository for this host.
    pub fn converge(&self, extra: &[&str]) -> Run {
        let mut argv = vec![
            "tend",
            "converge",
            "--repo",
            "/srv/repo",
            "--host",
            &self.name,
            "--detailed-exitcodes",
        ];
        argv.extend_from_slice(extra);
        self.run(&argv)
    }

    /// The overlay's upper directory: everything changed on the host.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// What differs from the image: the upper directory's entries, less
    /// directories copied up with nothing changed (overlayfs copies a
    /// directory up when, say, an unnamed temporary file is made in it).
    pub fn changes(&self) -> std::collections::BTreeMap<PathBuf, String> {
        let images = images(self.release);
        let lowers: Vec<&Path> = match self.init {
            Init::SysV => vec![&images.base],
            Init::Systemd => vec![&images.systemd_layer, &images.base],
        };
        let mut upper = tree(&self.upper());
        upper.retain(|path, state| {
            !state.starts_with("dir ")
                || !lowers.iter().any(|lower| {
                    let below = lower.join(path);
                    below.is_dir() && tree_entry(&below).as_deref() == Some(state.as_str())
                })
        });
        upper
    }

    /// A file of the host, read from outside.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/root{path}", self.pid)).unwrap_or_default()
    }

    /// Copies a file of this machine into the host.
    pub fn copy_in(&self, from: &Path, to: &str) {
        std::fs::copy(from, format!("/proc/{}/root{to}", self.pid)).unwrap();
    }

    /// Writes a file of the host from outside (a hand edit).
    pub fn write(&self, path: &str, content: &str) {
        std::fs::write(format!("/proc/{}/root{path}", self.pid), content).unwrap();
    }

    fn stop(&mut self) {
        if self.launcher.try_wait().ok().flatten().is_none() {
            if self.init == Init::Systemd {
                let _ = self.run(&["systemctl", "poweroff"]);
                let deadline = Instant::now() + Duration::from_secs(30);
                while self.launcher.try_wait().ok().flatten().is_none() && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            // unshare ignores SIGTERM: kill the namespace's PID 1, then it.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.launcher.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.launcher.kill();
            let _ = self.launcher.wait();
        }
        if let Some(cg) = &self.cgroup {
            for hierarchy in ["systemd", "unified"] {
                let _ = Command::new("find")
                    .args([
                        &format!("/sys/fs/cgroup/{hierarchy}/{cg}"),
                        "-depth",
                        "-type",
                        "d",
                        "-exec",
                        "rmdir",
                        "{}",
                        ";",
                    ])
                    .status();
            }
        }
    }

    /// What outlived the host: mounts, processes or cgroups (empty when clean).
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let dir = self.dir.display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        found.extend(
            mountinfo
                .lines()
                .filter(|l| l.contains(&dir))
                .map(|l| format!("mount: {l}")),
        );
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(root) = std::fs::read_link(entry.path().join("root"))
                && root.starts_with(&self.dir)
            {
                found.push(format!(
                    "process {} with root {}",
                    entry.file_name().to_string_lossy(),
                    root.display()
                ));
            }
        }
        if let Some(cg) = &self.cgroup {
            for hierarchy in ["systemd", "unified"] {
                let path = format!("/sys/fs/cgroup/{hierarchy}/{cg}");
                if Path::new(&path).exists() {
                    found.push(format!("cgroup {path}"));
                }
            }
        }
        found
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
        let left = self.leftovers();
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "host {} left things behind:\n{}",
                self.name,
                left.join("\n")
            );
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// A port on 127.0.0.1 nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET / over loopback; the whole response, or `None` if nothing answers
/// within a few seconds (a service may still be starting).
pub fn http_get(port: u16) -> Option<String> {
    http_get_within(port, Duration::from_secs(15))
}

pub fn http_get_within(port: u16, wait: Duration) -> Option<String> {
    http_get_path(port, "/", wait)
}

/// `GET path` on the port: the whole response, status line first.
pub fn http_get_path(port: u16, path: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            stream
                .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
                .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            return Some(response);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A copy of the project's roles and environments, plus `manifests/e2e.yaml`.
pub fn repo_with(e2e_env: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tend-e2e-repo-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let project = Path::new(crate::support::project());
    sh(&format!(
        "cp -a {p}/roles {p}/manifests {d}/",
        p = project.display(),
        d = dir.path().display()
    ));
    std::fs::write(dir.path().join("manifests/e2e.yaml"), e2e_env).unwrap();
    dir
}

/// One directory's metadata as [`tree`] shows it.
fn tree_entry(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).ok()?;
    Some(format!(
        "dir mode {:o} uid {} gid {} mtime {}.{}",
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// Every file below `dir` with its content digest and metadata.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    crate::support::tree_state(dir)
}
