//! The `tend` command line as clap parses it: global options and one
//! subcommand, each owning its arguments (`commands/<name>.rs`). In the
//! library so that the man pages and shell completions are made from the
//! very parser the binary runs (`cargo run -p xtask -- dist`).

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Parser)]
#[command(
    name = "tend",
    version,
    about = "Converge this host to the role manifests in a git repository"
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: tend_common::cli::Globals,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate every role and environment; show every problem at once.
    Check(commands::check::Args),
    /// Print the resolved desired state of one host.
    Catalog(commands::catalog::Args),
    /// Bring this host to its catalog (or show what would change).
    Converge(commands::converge::Args),
    /// Pull the manifests from git and converge this host, every interval.
    Agent(commands::agent::Args),
    /// The central log: serve it, manage hosts' tokens, read it (runs
    /// `tend-log`, its own package).
    Log(commands::log::Args),
    /// What differs between two environments, per role combination, and
    /// the vars that cause it.
    Parity(commands::parity::Args),
    /// What a change would do, host by host: every host entry's catalog at
    /// two git revisions, compared (nothing is touched).
    Diff(commands::diff::Args),
    /// Staged rollouts as the manifests declare them.
    #[command(subcommand)]
    Rollout(commands::rollout::Command),
    /// Feature flags: which hosts a knob would move.
    #[command(subcommand)]
    Flags(commands::flags::Command),
    /// How the agent is doing: last run, last good commit, source, spool.
    Status(commands::status::Args),
}
