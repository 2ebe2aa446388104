//! systemd's notify protocol (sd_notify(3)), spoken over `$NOTIFY_SOCKET`
//! without libsystemd: `READY=1` once the agent serves, `STATUS=` lines
//! for `systemctl status`, `STOPPING=1`, and `WATCHDOG=1` for as long as
//! the agent makes progress, so that a hung agent is killed and restarted
//! (`WatchdogSec=` in tend-agent.service).
//!
//! Progress means: waiting between cycles (the wait pings), or a cycle
//! younger than [`HUNG_AFTER`] (a thread pings while it runs). A cycle
//! stuck past that — a fetch, a package transaction or a service start
//! that never returns — stops the pings, and systemd restarts the agent.
//! Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A cycle running longer than this is taken as hung. Generous: a cycle
/// that installs or upgrades many packages takes minutes, never an hour.
pub const HUNG_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Notifier {
    socket: Option<Arc<(UnixDatagram, SocketAddr)>>,
    /// How often to ping: half of `$WATCHDOG_USEC`, when it is meant for
    /// this process.
    ping: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let address = address(path.to_str()?)?;
            let socket = UnixDatagram::unbound().ok()?;
            Some(Arc::new((socket, address)))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .map_or(true, |pid| pid.trim() == std::process::id().to_string());
        let ping = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(|usec| Duration::from_micros(usec / 2));
        Notifier { socket, ping }
    }

    /// A notifier that says nothing (tests, `--once`).
    pub fn silent() -> Notifier {
        Notifier {
            socket: None,
            ping: None,
        }
    }

    fn send(&self, message: &str) {
        if let Some(socket) = &self.socket {
            // Best effort, as sd_notify: the agent does not stop for it.
            if let Err(e) = socket.0.send_to_addr(message.as_bytes(), &socket.1) {
                tracing::debug!(error = %e, "systemd notify");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn ping(&self) {
        if self.ping.is_some() {
            self.send("WATCHDOG=1");
        }
    }

    /// How long the agent may wait between pings.
    pub fn ping_every(&self) -> Option<Duration> {
        self.ping
    }

    /// Pings from a thread while the returned guard lives, for at most
    /// `limit`: the work it guards is hung past that.
    pub fn busy(&self, limit: Duration) -> Busy {
        let done = Arc::new(AtomicBool::new(false));
        let thread = self.ping.map(|every| {
            let notifier = self.clone();
            let done = Arc::clone(&done);
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let started = Instant::now();
            let handle = std::thread::spawn(move || {
                while started.elapsed() < limit && !done.load(Ordering::SeqCst) {
                    notifier.ping();
                    // Woken early when the guard drops.
                    if rx.recv_timeout(every) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                        return;
                    }
                }
                if !done.load(Ordering::SeqCst) {
                    tracing::error!(
                        limit_s = limit.as_secs(),
                        "the cycle has run too long: no more watchdog pings, systemd will restart the agent"
                    );
                }
            });
            (tx, handle)
        });
        Busy { done, thread }
    }
}

/// While alive, the watchdog is pinged (see [`Notifier::busy`]).
pub struct Busy {
    done: Arc<AtomicBool>,
    thread: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some((tx, handle)) = self.thread.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// `/run/systemd/notify`, or `@name` for an abstract socket.
fn address(path: &str) -> Option<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        return SocketAddr::from_abstract_name(name.as_bytes()).ok();
    }
    if path.starts_with('/') {
        return SocketAddr::from_pathname(path).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let notifier = Notifier {
            socket: Some(Arc::new((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            ))),
            ping: Some(Duration::from_millis(20)),
        };
        (dir, server, notifier)
    }

    fn received(server: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = server.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn ready_and_status_reach_the_socket() {
        let (_dir, server, notifier) = listening();
        notifier.ready("waiting");
        notifier.stopping();
        assert_eq!(received(&server), ["READY=1\nSTATUS=waiting", "STOPPING=1"]);
    }

    #[test]
    fn a_busy_guard_pings_until_dropped() {
        let (_dir, server, notifier) = listening();
        let busy = notifier.busy(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(150));
        drop(busy);
        let pings = received(&server);
        assert!(pings.len() >= 3, "{pings:?}");
        assert!(pings.iter().all(|p| p == "WATCHDOG=1"));
        // Dropped: no more pings.
        assert!(received(&server).is_empty());
    }

    #[test]
    fn work_running_past_its_limit_stops_the_pings() {
        let (_dir, server, notifier) = listening();
        let _hung = notifier.busy(Duration::from_millis(60));
        std::thread::sleep(Duration::from_millis(200));
        let before = received(&server);
        assert!(!before.is_empty());
        // Still "busy", but past the limit: silence, and systemd restarts us.
        std::thread::sleep(Duration::from_millis(100));
        assert!(received(&server).is_empty());
    }

    #[test]
    fn abstract_and_path_sockets_are_understood_and_nothing_else() {
        assert!(address("@/org/freedesktop/systemd1/notify").is_some());
        assert!(address("/run/systemd/notify").is_some());
        assert!(address("relative").is_none());
        let silent = Notifier::silent();
        silent.ready("x");
        silent.ping();
        assert!(silent.ping_every().is_none());
    }
}
