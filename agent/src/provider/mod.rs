//! Providers: how resource types talk to the system's own tools (apt and
//! dpkg, systemctl or init scripts, useradd and friends, `sh` for exec).
//!
//! Every external command goes through [`run`], which clears inherited
//! locale and git variables, captures stdout and stderr together, enforces a
//! timeout (killing the whole process group) and keeps the output short
//! enough for a report.

pub mod accounts;
pub mod apt;
pub mod service;

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a command said and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `None` when it was killed (timeout or signal).
    pub code: Option<i32>,
    /// stdout and stderr interleaved, cut to [`MAX_OUTPUT`] bytes (the end
    /// is kept: that is where tools say what went wrong).
    pub text: String,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-paragraph reason for a failure, for reports.
    pub fn failure(&self, what: &str) -> String {
        let how = if self.timed_out {
            "timed out".to_owned()
        } else {
            match self.code {
                Some(c) => format!("exited with {c}"),
                None => "was killed".to_owned(),
            }
        };
        let text = self.text.trim();
        if text.is_empty() {
            format!("{what} {how}")
        } else {
            format!("{what} {how}: {text}")
        }
    }
}

pub const MAX_OUTPUT: usize = 4096;

/// A command with a predictable environment: C locale, no inherited `GIT_*`.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C").env("LANG", "C");
    cmd
}

/// Runs `cmd` to completion or until `timeout`, then kills its process group.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let program = format!("{:?}", cmd.get_program());
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        // Its own process group, so a timeout kills what it started too.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // The command holds the writers now: drop ours so reads see EOF.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let pid = child.id();
    let reading = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = reader.read_to_end(&mut all);
        all
    });
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                timed_out = true;
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                    nix::sys::signal::Signal::SIGKILL,
                );
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let bytes = reading.join().unwrap_or_default();
    Ok(Output {
        code: status.and_then(|s| s.code()),
        text: tail(&String::from_utf8_lossy(&bytes), MAX_OUTPUT),
        timed_out,
    })
}

/// Runs a command through `sh -c` (guards and the command itself).
pub fn shell(
    script: &str,
    cwd: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Output, String> {
    let mut cmd = command("sh");
    cmd.arg("-c").arg(script);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    run(&mut cmd, timeout)
}

/// The last `max` bytes of `text`, on a character boundary, marked when cut.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes cut]\n{}", &text[start..])
}

/// Default time limit for system tools.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_code() {
        let out = run(
            command("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            TOOL_TIMEOUT,
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert!(
            out.text.contains("out") && out.text.contains("err"),
            "{}",
            out.text
        );
    }

    #[test]
    fn kills_the_whole_group_on_timeout() {
        let started = Instant::now();
        let out = run(
            command("sh").args(["-c", "sleep 30 & sleep 30; echo never"]),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(out.timed_out);
        assert!(!out.text.contains("never"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn keeps_the_end_of_long_output() {
        let long = "x".repeat(10_000) + "the error";
        let cut = tail(&long, 100);
        assert!(cut.ends_with("the error") && cut.len() < 200);
    }
}
