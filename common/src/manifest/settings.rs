//! Settings files of the daemons (`/etc/tend/agent.yaml`,
//! `/etc/tend-log/log.yaml`): a flat map, one key per command-line flag,
//! read with the manifests' positions and checker so that a mistake names
//! the file, line and column, with a hint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::diagnostic::{Diagnostic, Location};
use super::node::{Key, Node, Pos, Value};
use super::schema::Checker;

/// The text of a settings file; `Ok(None)` when it does not exist.
pub fn read_text(path: &Path) -> Result<Option<String>, Vec<Diagnostic>> {
    match fs_err::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            let file: Arc<Path> = Arc::from(path);
            let whole = Location::new(&file, Pos::default());
            Err(vec![Diagnostic::new(whole, format!("cannot read: {e}"))])
        }
    }
}

/// Checks `text` (the content of `path`) is a map of known `keys` and
/// hands each entry to `read`. `what` names the file in messages ("the
/// agent's settings"), `keys_are` says where its keys come from. A file of
/// comments only sets nothing.
pub fn parse(
    path: &Path,
    text: &str,
    what: &str,
    keys: &[&str],
    keys_are: &str,
    mut read: impl FnMut(&mut Checker, &Key, &Node),
) -> Result<(), Vec<Diagnostic>> {
    let file: Arc<Path> = Arc::from(path);
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(());
    }
    let options = super::node::parse_options(text.len());
    let root: Node = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let pos = e.location().map_or(Pos::default(), |l| Pos {
            line: u32::try_from(l.line()).unwrap_or(1),
            col: u32::try_from(l.column()).unwrap_or(1),
        });
        vec![
            Diagnostic::new(Location::new(&file, pos), format!("invalid YAML: {e}"))
                .hint("check the indentation and quoting around this place"),
        ]
    })?;
    let mut checker = Checker::new(&file);
    if let Some(entries) = checker.map(&root, what, None) {
        checker.unknown_keys(entries, keys, keys_are);
        for (key, value) in entries {
            read(&mut checker, key, value);
        }
    }
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(checker.errors)
    }
}

/// A duration such as `30m`.
pub fn duration(checker: &mut Checker, key: &Key, value: &Node) -> Option<Duration> {
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
                .hint("write a duration such as 30m, 1h, 90s or 90d"),
            );
            None
        }
    }
}

pub fn boolean(checker: &mut Checker, key: &Key, value: &Node) -> Option<bool> {
    if let Value::Bool(b) = value.value {
        return Some(b);
    }
    wrong(
        checker,
        key,
        value,
        "true or false",
        "write true or false, unquoted",
    );
    None
}

/// A whole number, zero or more.
pub fn count(checker: &mut Checker, key: &Key, value: &Node) -> Option<usize> {
    if let Value::Int(n) = value.value
        && let Ok(n) = usize::try_from(n)
    {
        return Some(n);
    }
    wrong(
        checker,
        key,
        value,
        "a whole number",
        "write a number such as 512, unquoted",
    );
    None
}

fn wrong(checker: &mut Checker, key: &Key, value: &Node, what: &str, hint: &str) {
    checker.push(
        Diagnostic::new(
            checker.at(value.pos),
            format!(
                "`{}` must be {what}, found {}",
                key.name,
                value.value.kind()
            ),
        )
        .key(key.name.clone())
        .hint(hint.to_owned()),
    );
}
