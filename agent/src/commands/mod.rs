//! One file per subcommand, as cargo has them: each owns its arguments
//! (a clap `Args` or subcommand enum) and its `run`, which calls into the
//! library and decides what to print and which exit code to return.

pub mod agent;
pub mod catalog;
pub mod check;
pub mod converge;
pub mod diff;
pub mod flags;
pub mod log;
pub mod parity;
pub mod rollout;
pub mod status;

use std::path::Path;
pub use tend_common::cli::{EXIT_ERROR, Format};

use crate::manifest::Repo;
use crate::manifest::diagnostic::Diagnostic;

/// Which host to compile for, from which repository (`tend catalog`,
/// `tend converge`).
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    #[arg(long, default_value = ".")]
    pub repo: std::path::PathBuf,
    /// Environment (default: the one whose host entries match the host).
    #[arg(long)]
    pub env: Option<String>,
    /// Host name (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
}

/// Reading the central log's host list from another command (`--log URL
/// --token-file FILE [--log-ca FILE]`).
#[derive(Debug, Clone)]
pub struct LogRead {
    pub url: String,
    pub token_file: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
}

/// `--log URL [--token-file FILE] [--log-ca FILE]`: every host the central
/// log has heard from (a viewer's token reads it).
#[derive(Debug, Clone, clap::Args)]
pub struct LogReadArgs {
    /// Every host the central log at URL has heard from, by name.
    #[arg(long, value_name = "URL")]
    pub log: Option<String>,
    /// A viewer's or operator's token for the log.
    #[arg(long, value_name = "FILE", requires = "log")]
    pub token_file: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) to trust for the log, besides the system's.
    #[arg(long, value_name = "FILE", requires = "log")]
    pub log_ca: Option<std::path::PathBuf>,
}

impl LogReadArgs {
    pub fn read(&self) -> Option<LogRead> {
        self.log.as_ref().map(|url| LogRead {
            url: url.clone(),
            token_file: self.token_file.clone(),
            ca: self.log_ca.clone(),
        })
    }
}

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
pub fn hosts_from_log(log: &LogRead) -> anyhow::Result<Vec<(Option<String>, String)>> {
    let client = crate::report::client::Client::new(
        &log.url,
        log.ca.as_deref(),
        std::time::Duration::from_secs(20),
    )
    .map_err(anyhow::Error::msg)?;
    let url = client.url("/v1/hosts");
    let mut request = client.agent.get(&url);
    if let Some(file) = &log.token_file {
        let token = fs_err::read_to_string(file)?.trim().to_owned();
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    if response.status().as_u16() != 200 {
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        anyhow::bail!("{url} answered {status}: {}", body.trim());
    }
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
