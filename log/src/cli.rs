//! The `tend-log` command line as clap parses it: global options and one
//! subcommand, each owning its arguments (`commands/<name>.rs`). In the
//! library so that the man pages and shell completions are made from the
//! very parser the binary runs (`cargo run -p xtask -- dist`).

use clap::{Parser, ValueEnum};

use crate::commands;

#[derive(Parser)]
#[command(
    name = "tend-log",
    version,
    about = "The central log of tend: every host's runs, the deploy log, rollouts"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text for people, or one JSON object a line for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: commands::Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
