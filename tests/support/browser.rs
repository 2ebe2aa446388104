//! Headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and
//! 4), so that a test signs in at `/login` as a person would, and reads
//! the dashboard with the session cookie the browser keeps.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Browser {
    child: Child,
    to_browser: std::fs::File,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// Puts `fd` at `target` in the child, without close-on-exec.
fn place(fd: i32, target: i32) -> std::io::Result<()> {
    if fd == target {
        let flags = nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_GETFD,
        )?;
        let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFD(flags),
        )?;
        return Ok(());
    }
    if unsafe { nix::libc::dup2(fd, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Browser {
    pub fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (browser_reads, we_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (we_read, browser_writes): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (r, w) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                "--remote-debugging-pipe",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        unsafe {
            command.pre_exec(move || {
                place(r, 3)?;
                place(w, 4)
            });
        }
        let child = command.spawn().expect("run chromium");
        drop(browser_reads);
        drop(browser_writes);
        let (send, messages) = mpsc::channel();
        let mut from_browser = std::fs::File::from(we_read);
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = from_browser.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = buffer.drain(..=end).collect();
                    if let Ok(value) = serde_json::from_slice(&message[..message.len() - 1])
                        && send.send(value).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser: std::fs::File::from(we_write),
            messages,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.page("Page.enable", json!({}));
        browser
    }

    /// Sends a command and waits for its answer (events on the way are
    /// dropped).
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {}", message["error"]);
                return message["result"].clone();
            }
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    /// Waits for the page's load event.
    fn loaded(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .messages
                .recv_timeout(left)
                .expect("the page did not load");
            if message["method"] == "Page.loadEventFired" {
                return;
            }
        }
    }

    fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.page(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        result["result"]["value"].clone()
    }

    /// Goes to `url`: the rendered DOM (the page's URL first, on a line of
    /// its own), and a screenshot kept in target/dashboard-shots/ for
    /// people to look at.
    pub fn open(&mut self, url: &str, shot: &str) -> String {
        self.page("Page.navigate", json!({"url": url}));
        self.loaded();
        let page = self.current();
        let png = self.page("Page.captureScreenshot", json!({"format": "png"}));
        let shots = PathBuf::from(crate::support::project()).join("target/dashboard-shots");
        fs_err::create_dir_all(&shots).unwrap();
        fs_err::write(
            shots.join(format!("{shot}.png")),
            base64(png["data"].as_str().unwrap()),
        )
        .unwrap();
        page
    }

    /// Signs in at `base`/login with `token`, typed into the form as a
    /// person would; the page it lands on.
    pub fn sign_in(&mut self, base: &str, token: &str, shot: &str) -> String {
        self.open(&format!("{base}/login"), &format!("{shot}-login"));
        let typed = format!(
            "document.getElementById('token').value = {}; document.querySelector('form[action=\"/login\"]').submit(); true",
            json!(token)
        );
        self.evaluate(&typed);
        self.loaded();
        self.current()
    }

    /// The page's URL, on a line of its own, and its DOM.
    fn current(&mut self) -> String {
        let here = self.evaluate("location.href");
        let dom = self.evaluate("document.documentElement.outerHTML");
        format!("{}\n{}", here.as_str().unwrap(), dom.as_str().unwrap())
    }
}

impl Browser {
    /// Presses "Sign out"; the page it lands on.
    pub fn sign_out(&mut self) -> String {
        self.evaluate("document.querySelector('form[action=\"/logout\"]').submit(); true");
        self.loaded();
        self.current()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
