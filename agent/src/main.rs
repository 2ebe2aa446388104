//! The `tend` command line: global options, logging, and a dispatch to
//! the command that owns each subcommand's arguments (`commands/<name>.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tend::commands::{self, EXIT_ERROR};

#[derive(Parser)]
#[command(
    name = "tend",
    version,
    about = "Converge this host to the role manifests in a git repository"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log lines as text for people, or one JSON object a line for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate every role and environment; show every problem at once.
    Check(commands::check::Args),
    /// Print the resolved desired state of one host.
    Catalog(commands::catalog::Args),
    /// Bring this host to its catalog (or show what would change).
    Converge(commands::converge::Args),
    /// Pull the manifests from git and converge this host, every interval.
    Agent(commands::agent::Args),
    /// The central log: serve it, manage hosts' tokens, read it.
    #[command(subcommand)]
    Log(commands::log::LogCommand),
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

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

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
        Command::Log(command) => commands::log::run(command),
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
