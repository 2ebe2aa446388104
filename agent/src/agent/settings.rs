//! `/etc/tend/agent.yaml`: every setting of `tend agent`, one key per flag
//! (`source`, `ref`, `interval`, …). Flags given on the command line win.
//! An unknown key or a value of the wrong kind is an error naming the file,
//! line and column, with a hint, as in manifests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::diagnostic::Diagnostic;
use crate::manifest::node::{Key, Node};
use crate::manifest::schema::Checker;
use crate::manifest::settings as file;

pub const DEFAULT_PATH: &str = "/etc/tend/agent.yaml";

/// The keys of the settings file: the agent's flags.
pub const KEYS: &[&str] = &[
    "source",
    "ref",
    "interval",
    "splay",
    "state_dir",
    "log",
    "token_file",
    "enroll_token_file",
    "log_ca",
    "env",
    "host",
    "require_signed",
    "allow_rewind",
    "rollout_offline",
    "watch_splay",
];

/// What the file sets; `None` where it says nothing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSettings {
    pub source: Option<String>,
    pub reference: Option<String>,
    pub interval: Option<Duration>,
    pub splay: Option<Duration>,
    pub state_dir: Option<PathBuf>,
    pub log: Option<String>,
    pub token_file: Option<PathBuf>,
    pub enroll_token_file: Option<PathBuf>,
    pub log_ca: Option<PathBuf>,
    pub environment: Option<String>,
    pub host: Option<String>,
    pub require_signed: Option<bool>,
    pub allow_rewind: Option<bool>,
    pub rollout_offline: Option<super::gate::Offline>,
    pub watch_splay: Option<Duration>,
}

/// Reads the settings file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<FileSettings>, Vec<Diagnostic>> {
    match file::read_text(path)? {
        Some(text) => parse(path, &text).map(Some),
        None => Ok(None),
    }
}

/// The settings in `text` (the content of the file at `path`).
pub fn parse(path: &Path, text: &str) -> Result<FileSettings, Vec<Diagnostic>> {
    let mut out = FileSettings::default();
    file::parse(
        path,
        text,
        "the agent's settings",
        KEYS,
        "the agent's settings (one key per `tend agent` flag)",
        |checker, key, value| read_key(checker, &mut out, key, value),
    )?;
    Ok(out)
}

fn read_key(checker: &mut Checker, out: &mut FileSettings, key: &Key, value: &Node) {
    let string = |checker: &mut Checker| checker.string(key, value);
    match key.name.as_str() {
        "source" => out.source = string(checker),
        "ref" => out.reference = string(checker),
        "log" => out.log = string(checker),
        "env" => out.environment = string(checker),
        "host" => out.host = string(checker),
        "state_dir" => out.state_dir = string(checker).map(PathBuf::from),
        "token_file" => out.token_file = string(checker).map(PathBuf::from),
        "enroll_token_file" => out.enroll_token_file = string(checker).map(PathBuf::from),
        "log_ca" => out.log_ca = string(checker).map(PathBuf::from),
        "interval" => out.interval = file::duration(checker, key, value),
        "splay" => out.splay = file::duration(checker, key, value),
        "watch_splay" => out.watch_splay = file::duration(checker, key, value),
        "require_signed" => out.require_signed = file::boolean(checker, key, value),
        "allow_rewind" => out.allow_rewind = file::boolean(checker, key, value),
        "rollout_offline" => {
            if let Some(text) = string(checker) {
                match text.parse() {
                    Ok(v) => out.rollout_offline = Some(v),
                    Err(e) => checker.push(
                        Diagnostic::new(checker.at(value.pos), e)
                            .key("rollout_offline")
                            .hint("write hold (keep the current commit) or proceed"),
                    ),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key_and_refuses_unknown_ones_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        fs_err::write(
            &path,
            "source: https://git.example.com/infra.git\nref: prod\ninterval: 15m\nsplay: 2m\nrequire_signed: true\n",
        )
        .unwrap();
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.reference.as_deref(), Some("prod"));
        assert_eq!(got.interval, Some(Duration::from_secs(900)));
        assert_eq!(got.require_signed, Some(true));
        fs_err::write(&path, "source: x\nintervall: 15m\nsplay: soon\n").unwrap();
        let errors = read(&path).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].location.pos.line, 2);
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `interval`?"));
        assert_eq!(errors[1].location.pos.line, 3);
        assert!(read(&dir.path().join("missing.yaml")).unwrap().is_none());
    }
}
