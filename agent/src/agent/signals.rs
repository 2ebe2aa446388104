//! SIGHUP runs a cycle now; SIGTERM and SIGINT stop the agent after the
//! resource in progress. The handlers only set flags and write a byte to a
//! pipe the agent waits on (the self-pipe trick), so waiting costs nothing.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static WAKE: AtomicI32 = AtomicI32::new(-1);
static HANGUP: AtomicBool = AtomicBool::new(false);
static TERMINATE: AtomicBool = AtomicBool::new(false);
static WATCHED: AtomicBool = AtomicBool::new(false);

/// Wakes the waiting agent for a cycle, as the log's watch asks (from a
/// thread, not a signal handler).
pub fn wake_for_watch() {
    WATCHED.store(true, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: as in the handler: the fd lives as long as the process.
        unsafe {
            nix::libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

extern "C" fn on_signal(signal: nix::libc::c_int) {
    if signal == Signal::SIGHUP as nix::libc::c_int {
        HANGUP.store(true, Ordering::SeqCst);
    } else {
        TERMINATE.store(true, Ordering::SeqCst);
        crate::engine::request_stop();
    }
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the fd lives as long as
        // the process (see `Signals`). A full pipe already wakes the waiter.
        unsafe {
            nix::libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

/// What woke the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Time,
    Hangup,
    /// The log's watch: the source moved.
    Watch,
    Terminate,
}

pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        WAKE.store(write.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only touches atomics and calls write(2).
            unsafe { sigaction(signal, &action) }?;
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    /// Whether SIGTERM or SIGINT arrived.
    pub fn terminating(&self) -> bool {
        TERMINATE.load(Ordering::SeqCst)
    }

    /// Waits until `timeout` has passed or a signal arrives.
    pub fn wait(&self, timeout: Duration) -> Wake {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if TERMINATE.load(Ordering::SeqCst) {
                return Wake::Terminate;
            }
            if HANGUP.swap(false, Ordering::SeqCst) {
                return Wake::Hangup;
            }
            if WATCHED.swap(false, Ordering::SeqCst) {
                return Wake::Watch;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Wake::Time;
            }
            let ms = u16::try_from(left.as_millis().min(60_000)).unwrap_or(60_000);
            let mut fds = [nix::poll::PollFd::new(
                self.read.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            let mut buf = [0u8; 64];
            while nix::unistd::read(&self.read, &mut buf).is_ok_and(|n| n > 0) {}
        }
    }
}
