//! Manifest errors that point at the place to fix.
//!
//! Every problem found in a repository becomes a [`Diagnostic`]: a file, a
//! line and column, the key involved, what is wrong and, where we can guess,
//! a hint. They are collected, not thrown, so `tend check` shows them all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::node::Pos;

/// A place in a manifest or template file, relative to the repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: Arc<Path>,
    pub pos: Pos,
}

impl Location {
    pub fn new(file: &Arc<Path>, pos: Pos) -> Self {
        Self {
            file: Arc::clone(file),
            pos,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Line 0: the problem is about the file (or folder) as a whole.
        if self.pos.line == 0 {
            return write!(f, "{}", self.file.display());
        }
        write!(
            f,
            "{}:{}:{}",
            self.file.display(),
            self.pos.line,
            self.pos.col
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub location: Location,
    /// The manifest key the problem is about, when there is one.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// Other places that take part (the first declaration of a duplicate, the
    /// members of a cycle), each with a short label.
    pub related: Vec<(Location, String)>,
}

impl Diagnostic {
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self {
            location,
            key: None,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub fn related(mut self, location: Location, label: impl Into<String>) -> Self {
        self.related.push((location, label.into()));
        self
    }
}

/// "did you mean `x`?" for the closest candidate, when one is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate most similar to `word`, if it is plausibly a typo of it.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Shows the lines diagnostics point into. Files are read again when a
/// diagnostic is rendered rather than kept: a large role would otherwise
/// stay in memory for the whole run.
#[derive(Debug, Clone)]
pub struct Sources {
    root: PathBuf,
}

impl Sources {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn line(&self, file: &Path, line: u32) -> Option<String> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        let text = fs_err::read_to_string(self.root.join(file)).ok()?;
        text.lines().nth(index).map(str::to_owned)
    }

    /// Renders diagnostics the way rustc does, readable without colour:
    ///
    /// ```text
    /// error: unknown key `mdoe` in a `file` resource
    ///   --> roles/web/role.yaml:12:5
    ///    |
    /// 12 |     mdoe: "0644"
    ///    |     ^^^^
    ///    = hint: did you mean `mode`?
    /// ```
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let mut out = String::new();
        let loc = &diagnostic.location;
        let _ = writeln!(out, "error: {}", diagnostic.message);
        let width = loc.pos.line.to_string().len();
        let pad = " ".repeat(width);
        let _ = writeln!(out, "{pad}--> {loc}");
        if let Some(line) = self.line(&loc.file, loc.pos.line) {
            let col = usize::try_from(loc.pos.col.max(1) - 1).unwrap_or(0);
            let underline = underline_len(&line, col, diagnostic.key.as_deref());
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", loc.pos.line, line.trim_end());
            let indent: String = line
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(underline));
        }
        for (related, label) in &diagnostic.related {
            let _ = writeln!(out, "{pad} = note: {label} at {related}");
        }
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
    }
}

/// How many characters to underline: the key when the line shows it at the
/// column, else the token that starts there.
fn underline_len(line: &str, col: usize, key: Option<&str>) -> usize {
    let rest: String = line.chars().skip(col).collect();
    if let Some(key) = key
        && rest.starts_with(key)
    {
        return key.chars().count().max(1);
    }
    let token = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ':' && *c != ',')
        .count();
    token.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["mode", "owner", "group", "content"];
        assert_eq!(
            did_you_mean("mdoe", keys).as_deref(),
            Some("did you mean `mode`?")
        );
        assert_eq!(did_you_mean("colour", keys), None);
    }

    #[test]
    fn renders_snippet_with_caret_under_the_key() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("roles/web")).unwrap();
        fs_err::write(
            dir.path().join("roles/web/role.yaml"),
            "resources:\n  - file: /x\n    mdoe: \"0644\"\n",
        )
        .unwrap();
        let file: Arc<Path> = Arc::from(Path::new("roles/web/role.yaml"));
        let sources = Sources::new(dir.path());
        let d = Diagnostic::new(
            Location::new(&file, Pos { line: 3, col: 5 }),
            "unknown key `mdoe`",
        )
        .key("mdoe")
        .hint("did you mean `mode`?");
        assert_eq!(
            sources.render(&d),
            "error: unknown key `mdoe`\n --> roles/web/role.yaml:3:5\n  |\n3 |     mdoe: \"0644\"\n  |     ^^^^\n  = hint: did you mean `mode`?\n"
        );
    }
}
