//! What the two command lines (`tend`, `tend-log`) share: the global
//! options, how results are printed, log lines on stderr, and how an error
//! ends a command.

use std::process::ExitCode;

/// Exit code for usage, manifest and template errors (nothing was touched)
/// and refusals.
pub const EXIT_ERROR: u8 = 1;

/// The options every command of both binaries takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text for people, or one JSON object a line for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How results are printed: for people, or as JSON.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json)
    }
}

impl Globals {
    /// Log lines on stderr: warnings and errors unless `-v`, or info when
    /// `daemon` (a daemon says what each cycle did).
    pub fn init_logging(&self, daemon: bool) {
        let level = match (self.verbose, daemon) {
            (0, true) | (1, _) => tracing::Level::INFO,
            (0, false) => tracing::Level::WARN,
            _ => tracing::Level::DEBUG,
        };
        let logs = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level);
        match self.log_format {
            LogFormat::Json => logs.json().init(),
            LogFormat::Text => logs
                .with_ansi(std::env::var_os("NO_COLOR").is_none())
                .without_time()
                .init(),
        }
    }
}

/// The exit of a command: its code, or its error and causes on stderr.
pub fn exit(ran: anyhow::Result<u8>) -> ExitCode {
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
