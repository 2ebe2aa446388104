//! One file per subcommand: each parses nothing itself, calls into the
//! library, and decides what to print and which exit code to return.

pub mod agent;
pub mod catalog;
pub mod check;
pub mod diff;
pub mod flags;
pub mod log;
pub mod parity;
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
    eprint!("{}", crate::report::inert(&text));
}

pub fn open_repo(root: &Path) -> anyhow::Result<Repo> {
    Ok(Repo::open(root)?)
}

/// Every host the central log at `url` has heard from, with its
/// environment (`GET /v1/hosts`).
pub fn hosts_from_log(url: &str) -> anyhow::Result<Vec<(Option<String>, String)>> {
    let url = format!("{}/v1/hosts", url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let list: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
    Ok(list["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some((
                h["environment"].as_str().map(str::to_owned),
                h["host"].as_str()?.to_owned(),
            ))
        })
        .collect())
}
