//! The `tend` command line: global options, logging, and a dispatch to
//! the command that owns each subcommand's arguments (`commands/<name>.rs`).

use std::process::ExitCode;

use clap::Parser as _;
use tend::cli::{Cli, Command};
use tend::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent logs each cycle.
    cli.globals
        .init_logging(matches!(cli.command, Command::Agent(_)));
    tend_common::cli::exit(match cli.command {
        Command::Check(args) => commands::check::run(args),
        Command::Catalog(args) => commands::catalog::run(args),
        Command::Converge(args) => commands::converge::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Log(args) => commands::log::run(args),
        Command::Parity(args) => commands::parity::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Rollout(command) => commands::rollout::run(command),
        Command::Flags(command) => commands::flags::run(command),
        Command::Status(args) => commands::status::run(args),
    })
}
