//! The `tend-log` command line as clap parses it: global options and one
//! subcommand, each owning its arguments (`commands/<name>.rs`). In the
//! library so that the man pages and shell completions are made from the
//! very parser the binary runs (`cargo run -p xtask -- dist`).

use clap::Parser;

use crate::commands;

#[derive(Parser)]
#[command(
    name = "tend-log",
    version,
    about = "The central log of tend: every host's runs, the deploy log, rollouts"
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: tend_common::cli::Globals,
    #[command(subcommand)]
    pub command: commands::Command,
}
