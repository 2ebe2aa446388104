//! The `tend` command line: global options, logging, and a dispatch to
//! the command that owns each subcommand's arguments (`commands/<name>.rs`).

use std::process::ExitCode;

use clap::Parser as _;
use tend::cli::{Cli, Command, LogFormat};
use tend::commands::{self, EXIT_ERROR};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent logs each cycle: info by default there.
    let level = match (cli.verbose, &cli.command) {
        (0, Command::Agent(_)) | (1, _) => tracing::Level::INFO,
        (0, _) => tracing::Level::WARN,
        _ => tracing::Level::DEBUG,
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::env::var_os("NO_COLOR").is_none())
            .without_time()
            .init(),
    }
    let ran = match cli.command {
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
    };
    match ran {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
