//! What the agent remembers between cycles and restarts:
//! `<state-dir>/agent.json`, written atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, TempLog};
use crate::report::Status;

const FILE: &str = "agent.json";
const DISABLED: &str = "agent-disabled";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// The newest commit that compiled and was converged.
    pub last_good: Option<String>,
    /// The commit converged last (the base for the ancestry check).
    pub last_applied: Option<String>,
    /// When the source was last fetched (seconds since the epoch).
    pub last_fetch: Option<u64>,
    /// Why an operator disabled the agent (`tend agent --disable`): kept
    /// in a file of its own, so that the running agent never writes over it.
    #[serde(skip)]
    pub disabled: Option<String>,
    pub last_run: Option<LastRun>,
    /// When the running agent's next cycle is due (seconds since the epoch).
    pub next_run: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRun {
    pub at: u64,
    pub commit: String,
    pub status: Status,
    pub duration_ms: u64,
    pub stale: bool,
}

impl Memory {
    pub fn load(state_dir: &Path) -> anyhow::Result<Memory> {
        let mut memory = Self::load_file(state_dir)?;
        memory.disabled = match fs_err::read_to_string(state_dir.join(DISABLED)) {
            Ok(reason) => Some(reason.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        Ok(memory)
    }

    fn load_file(state_dir: &Path) -> anyhow::Result<Memory> {
        let path = state_dir.join(FILE);
        match fs_err::read(&path) {
            // Damaged (a disk error, a hand edit): moved aside, and the
            // agent starts afresh rather than wait for a person; the next
            // cycle applies the newest commit that is good.
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(memory) => Ok(memory),
                Err(e) => {
                    let aside = state_dir.join(format!("{FILE}.damaged"));
                    tracing::warn!(file = %path.display(), moved_to = %aside.display(), error = %e, "the agent's memory is damaged; starting afresh");
                    fs_err::rename(&path, &aside)?;
                    Ok(Memory::default())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Memory::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        fsutil::ensure_private_dir(state_dir)?;
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        // Outside a converge's lock: nothing else writes this file.
        fsutil::atomic_write(
            &state_dir.join(FILE),
            &bytes,
            0o600,
            None,
            None,
            &TempLog::unrecorded(),
        )?;
        Ok(())
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Disables the agent with a reason (as `puppet agent --disable`), or
/// enables it again with `None`.
pub fn set_disabled(state_dir: &Path, reason: Option<&str>) -> anyhow::Result<()> {
    let path = state_dir.join(DISABLED);
    match reason {
        Some(reason) => {
            fsutil::ensure_private_dir(state_dir)?;
            let text = format!("{}\n", reason.trim());
            fsutil::atomic_write(
                &path,
                text.as_bytes(),
                0o600,
                None,
                None,
                &TempLog::unrecorded(),
            )?;
        }
        None => match fs_err::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        },
    }
    Ok(())
}
