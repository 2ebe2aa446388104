//! The `tend-log` command line (also `tend log …`): global options,
//! logging, and the dispatch to the command that owns each subcommand's
//! arguments (`commands/<name>.rs`).

use std::process::ExitCode;

use clap::Parser as _;
use tend_log::cli::{Cli, LogFormat};
use tend_log::commands::{self, EXIT_ERROR};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
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
    match commands::run(cli.command) {
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
