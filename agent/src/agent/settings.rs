//! `/etc/tend/agent.yaml`: every setting of `tend agent`, one key per flag
//! (`source`, `ref`, `interval`, …). Flags given on the command line win.
//! An unknown key or a value of the wrong kind is an error naming the file,
//! line and column, with a hint, as in manifests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::manifest::diagnostic::{Diagnostic, Location};
use crate::manifest::node::{Key, Node, Value};
use crate::manifest::schema::Checker;

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
}

/// Reads the settings file; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<FileSettings>, Vec<Diagnostic>> {
    let file: Arc<Path> = Arc::from(path);
    let whole = Location::new(&file, crate::manifest::node::Pos::default());
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(vec![Diagnostic::new(whole, format!("cannot read: {e}"))]),
    };
    parse(path, &text).map(Some)
}

/// The settings in `text` (the content of the file at `path`).
pub fn parse(path: &Path, text: &str) -> Result<FileSettings, Vec<Diagnostic>> {
    let file: Arc<Path> = Arc::from(path);
    if text.trim().is_empty() {
        return Ok(FileSettings::default());
    }
    let root: Node =
        serde_saphyr::from_str_with_options(text, crate::manifest::node::parse_options(text.len()))
            .map_err(|e| {
                let pos = e
                    .location()
                    .map_or(Default::default(), |l| crate::manifest::node::Pos {
                        line: u32::try_from(l.line()).unwrap_or(1),
                        col: u32::try_from(l.column()).unwrap_or(1),
                    });
                vec![
                    Diagnostic::new(Location::new(&file, pos), format!("invalid YAML: {e}"))
                        .hint("check the indentation and quoting around this place"),
                ]
            })?;
    let mut checker = Checker::new(&file);
    let mut out = FileSettings::default();
    if let Some(entries) = checker.map(&root, "the agent's settings", None) {
        checker.unknown_keys(
            entries,
            KEYS,
            "the agent's settings (one key per `tend agent` flag)",
        );
        for (key, value) in entries {
            read_key(&mut checker, &mut out, key, value);
        }
    }
    if checker.errors.is_empty() {
        Ok(out)
    } else {
        Err(checker.errors)
    }
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
        "interval" => out.interval = duration(checker, key, value),
        "splay" => out.splay = duration(checker, key, value),
        "require_signed" => out.require_signed = boolean(checker, key, value),
        "allow_rewind" => out.allow_rewind = boolean(checker, key, value),
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

fn duration(checker: &mut Checker, key: &Key, value: &Node) -> Option<Duration> {
    let text = checker.string(key, value)?;
    match humantime::parse_duration(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            checker.push(
                Diagnostic::new(
                    checker.at(value.pos),
                    format!("`{}` cannot be `{text}`: {e}", key.name),
                )
                .key(key.name.clone())
                .hint("write a duration such as 30m, 1h or 90s"),
            );
            None
        }
    }
}

fn boolean(checker: &mut Checker, key: &Key, value: &Node) -> Option<bool> {
    if let Value::Bool(b) = value.value {
        return Some(b);
    }
    checker.push(
        Diagnostic::new(
            checker.at(value.pos),
            format!(
                "`{}` must be true or false, found {}",
                key.name,
                value.value.kind()
            ),
        )
        .key(key.name.clone())
        .hint("write true or false, unquoted"),
    );
    None
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
