//! Services: systemd when it is PID 1 (`/run/systemd/system` exists),
//! otherwise the sysvinit script in /etc/init.d, decided at run time.
//! Scripts are called directly: `invoke-rc.d` obeys policy-rc.d, which
//! containers and build roots often set to deny everything.

use std::path::Path;
use std::time::Duration;

use super::{Output, command, run};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Systemd,
    SysV,
}

impl Init {
    pub fn detect() -> Init {
        if Path::new("/run/systemd/system").is_dir() {
            Init::Systemd
        } else {
            Init::SysV
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The unit or init script exists.
    pub exists: bool,
    pub running: bool,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Enable,
    Disable,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Enable => "enable",
            Action::Disable => "disable",
        }
    }
}

/// How long a start, stop or restart may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn observe(init: Init, name: &str) -> Result<State, String> {
    match init {
        Init::Systemd => {
            let show = run(
                command("systemctl").args([
                    "show",
                    "-p",
                    "LoadState",
                    "-p",
                    "ActiveState",
                    "--",
                    name,
                ]),
                QUERY_TIMEOUT,
            )?;
            if !show.success() {
                return Err(show.failure("systemctl show"));
            }
            let field = |key: &str| {
                show.text
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_owned()
            };
            let exists = field("LoadState") == "loaded";
            let running = matches!(
                field("ActiveState").as_str(),
                "active" | "activating" | "reloading"
            );
            let enabled_out = run(
                command("systemctl").args(["is-enabled", "--", name]),
                QUERY_TIMEOUT,
            )?;
            let enabled = matches!(
                enabled_out.text.trim(),
                "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated"
            );
            Ok(State {
                exists,
                running,
                enabled,
            })
        }
        Init::SysV => {
            let script = Path::new("/etc/init.d").join(name);
            if !script.is_file() {
                return Ok(State {
                    exists: false,
                    running: false,
                    enabled: false,
                });
            }
            let status = run(
                command(&script.to_string_lossy()).arg("status"),
                QUERY_TIMEOUT,
            )?;
            Ok(State {
                exists: true,
                running: status.success(),
                enabled: sysv_enabled(name),
            })
        }
    }
}

/// A start link in any multi-user runlevel.
fn sysv_enabled(name: &str) -> bool {
    (2..=5).any(|level| {
        fs_err::read_dir(format!("/etc/rc{level}.d")).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let file = e.file_name();
                let file = file.to_string_lossy();
                file.starts_with('S') && file.get(3..) == Some(name)
            })
        })
    })
}

/// Carries out an action; the error is the tool's own message.
pub fn act(init: Init, name: &str, action: Action) -> Result<(), String> {
    let out: Output = match (init, action) {
        (Init::Systemd, _) => run(
            command("systemctl").args([action.word(), "--", name]),
            TIMEOUT,
        )?,
        (Init::SysV, Action::Start | Action::Stop | Action::Restart) => {
            let script = format!("/etc/init.d/{name}");
            run(command(&script).arg(action.word()), TIMEOUT)?
        }
        (Init::SysV, Action::Enable) => {
            let defaults = run(command("update-rc.d").args([name, "defaults"]), TIMEOUT)?;
            if !defaults.success() {
                return Err(defaults.failure(&format!("update-rc.d {name} defaults")));
            }
            run(command("update-rc.d").args([name, "enable"]), TIMEOUT)?
        }
        (Init::SysV, Action::Disable) => {
            // `disable` needs the links to exist first.
            let _ = run(command("update-rc.d").args([name, "defaults"]), TIMEOUT)?;
            run(command("update-rc.d").args([name, "disable"]), TIMEOUT)?
        }
    };
    if out.success() {
        Ok(())
    } else {
        Err(out.failure(&format!("{} {name}", action.word())))
    }
}

/// systemd re-reads unit files (after tend wrote one).
pub fn daemon_reload() -> Result<(), String> {
    let out = run(command("systemctl").arg("daemon-reload"), TIMEOUT)?;
    if out.success() {
        Ok(())
    } else {
        Err(out.failure("systemctl daemon-reload"))
    }
}
