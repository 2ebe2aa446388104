//! The `tend-log` command line (also `tend log …`): global options,
//! logging, and the dispatch to the command that owns each subcommand's
//! arguments (`commands/<name>.rs`).

use std::process::ExitCode;

use clap::Parser as _;
use tend_log::cli::Cli;
use tend_log::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server says what it does (listening, migrations, halts).
    cli.globals
        .init_logging(matches!(cli.command, commands::Command::Serve(_)));
    tend_common::cli::exit(commands::run(cli.command))
}
