//! One file per subcommand: each parses nothing itself, calls into the
//! library, and decides what to print and which exit code to return.

pub mod agent;
pub mod catalog;
pub mod check;
pub mod diff;
pub mod log;
pub mod rollout;

use std::path::Path;

use crate::manifest::Repo;
use crate::manifest::diagnostic::Diagnostic;

/// Exit code for usage, manifest and template errors (nothing was touched).
pub const EXIT_ERROR: u8 = 1;

/// Prints diagnostics to stderr, with a count.
pub fn print_diagnostics(repo: &Repo, diagnostics: &[Diagnostic]) {
    let mut text = String::new();
    for d in diagnostics {
        text.push_str(&repo.sources.render(d));
        text.push('\n');
    }
    let n = diagnostics.len();
    text.push_str(&format!(
        "error: {n} problem{} in `{}`\n",
        if n == 1 { "" } else { "s" },
        repo.root.display()
    ));
    eprint!("{text}");
}

pub fn open_repo(root: &Path) -> anyhow::Result<Repo> {
    Ok(Repo::open(root)?)
}
