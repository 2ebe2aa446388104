//! `/etc/tend-log/log.yaml`: the settings of `tend-log serve`, one key per
//! flag (`listen`, `db`, `tls_cert`, `source`, `retain`, `notify`, …).
//! Flags given on the command line win. An unknown key or a value of the
//! wrong kind is an error naming the file, line and column, with a hint,
//! as in manifests and the agent's settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::manifest::diagnostic::Diagnostic;
use crate::manifest::node::{Key, Node};
use crate::manifest::schema::Checker;
use crate::manifest::settings as file;

pub const DEFAULT_PATH: &str = "/etc/tend-log/log.yaml";

/// The keys of the settings file: the flags of `tend-log serve`.
pub const KEYS: &[&str] = &[
    "listen",
    "db",
    "db_file",
    "tls_cert",
    "tls_key",
    "plain_http",
    "max_connections",
    "public_metrics",
    "max_waiting",
    "body_limit",
    "retain",
    "notify",
    "notify_file",
    "notify_window",
    "source",
    "ref",
    "mirror_dir",
    "source_poll",
];

/// What the file sets; `None` where it says nothing.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub db: Option<String>,
    pub db_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub plain_http: Option<bool>,
    pub max_connections: Option<usize>,
    pub public_metrics: Option<bool>,
    pub max_waiting: Option<usize>,
    pub body_limit: Option<usize>,
    pub retain: Option<Duration>,
    pub notify: Option<String>,
    pub notify_file: Option<PathBuf>,
    pub notify_window: Option<Duration>,
    pub source: Option<String>,
    pub reference: Option<String>,
    pub mirror_dir: Option<PathBuf>,
    pub source_poll: Option<Duration>,
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
        "the log's settings",
        KEYS,
        "the log's settings (one key per `tend-log serve` flag)",
        |checker, key, value| read_key(checker, &mut out, key, value),
    )?;
    Ok(out)
}

fn read_key(checker: &mut Checker, out: &mut FileSettings, key: &Key, value: &Node) {
    let string = |checker: &mut Checker| checker.string(key, value);
    let path = |checker: &mut Checker| checker.string(key, value).map(PathBuf::from);
    match key.name.as_str() {
        "listen" => out.listen = string(checker),
        "db" => out.db = string(checker),
        "db_file" => out.db_file = path(checker),
        "tls_cert" => out.tls_cert = path(checker),
        "tls_key" => out.tls_key = path(checker),
        "plain_http" => out.plain_http = file::boolean(checker, key, value),
        "public_metrics" => out.public_metrics = file::boolean(checker, key, value),
        "max_connections" => out.max_connections = file::count(checker, key, value),
        "max_waiting" => out.max_waiting = file::count(checker, key, value),
        "body_limit" => out.body_limit = file::count(checker, key, value),
        "retain" => out.retain = file::duration(checker, key, value),
        "notify" => out.notify = string(checker),
        "notify_file" => out.notify_file = path(checker),
        "notify_window" => out.notify_window = file::duration(checker, key, value),
        "source" => out.source = string(checker),
        "ref" => out.reference = string(checker),
        "mirror_dir" => out.mirror_dir = path(checker),
        "source_poll" => out.source_poll = file::duration(checker, key, value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_key_and_refuses_unknown_ones_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.yaml");
        fs_err::write(
            &path,
            "listen: 0.0.0.0:8140\ndb: sqlite:/srv/log.db\ntls_cert: /etc/c.pem\n\
             retain: 90d\npublic_metrics: true\nmax_connections: 64\nref: prod\n",
        )
        .unwrap();
        let got = read(&path).unwrap().unwrap();
        assert_eq!(got.listen.as_deref(), Some("0.0.0.0:8140"));
        assert_eq!(got.tls_cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(got.retain, Some(Duration::from_secs(90 * 86400)));
        assert_eq!(got.public_metrics, Some(true));
        assert_eq!(got.max_connections, Some(64));
        assert_eq!(got.reference.as_deref(), Some("prod"));
        fs_err::write(&path, "listen: x\nretian: 90d\nmax_waiting: many\n").unwrap();
        let errors = read(&path).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].location.pos.line, 2);
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `retain`?"));
        assert_eq!(errors[1].location.pos.line, 3);
        assert!(read(&dir.path().join("missing.yaml")).unwrap().is_none());
    }

    #[test]
    fn the_packaged_file_sets_nothing_and_every_key_in_it_is_known() {
        let text = include_str!("../dist/log.yaml");
        assert_eq!(
            parse(Path::new("log.yaml"), text).unwrap(),
            FileSettings::default()
        );
        // Uncommenting any key line gives a file that reads without error.
        for line in text.lines() {
            let Some(setting) = line.strip_prefix("#") else {
                continue;
            };
            let setting = setting.trim_start();
            if let Some((key, _)) = setting.split_once(':')
                && KEYS.contains(&key)
            {
                parse(Path::new("log.yaml"), setting)
                    .unwrap_or_else(|e| panic!("`{setting}`: {e:?}"));
            }
        }
        for key in KEYS {
            assert!(
                text.contains(&format!("# {key}:")),
                "log.yaml does not mention `{key}`"
            );
        }
    }
}
