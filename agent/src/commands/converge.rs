//! `tend converge`: bring this host to its catalog, or show what would
//! change (`--dry-run`), and send the report to the central log.

use std::path::PathBuf;

use super::Format;
use crate::converge;
use crate::state::DEFAULT_STATE_DIR;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: super::HostArgs,
    /// Show what would change; touch nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 0 no changes, 2 changes, 4 failures, 6 both.
    #[arg(long)]
    detailed_exitcodes: bool,
    #[arg(long, default_value = DEFAULT_STATE_DIR, env = "TEND_STATE_DIR")]
    state_dir: PathBuf,
    /// Compile the catalog from the manifests even when the one cached
    /// in the state directory is valid.
    #[arg(long)]
    no_cache: bool,
    /// Send the run report to the central log at this URL
    /// (`POST /v1/reports`).
    #[arg(long, value_name = "URL", requires = "token_file")]
    report_to: Option<String>,
    /// The file holding this host's token for the central log.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the log, besides the system's.
    #[arg(long, value_name = "FILE", requires = "report_to")]
    log_ca: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let options = converge::Options {
        repo: &args.target.repo,
        environment: args.target.env.as_deref(),
        host: args.target.host.as_deref(),
        dry_run: args.dry_run,
        state_dir: args.state_dir,
        no_cache: args.no_cache,
        report_to: args
            .report_to
            .zip(args.token_file)
            .map(|(url, token_file)| crate::report::send::Endpoint {
                url,
                token_file,
                ca: args.log_ca,
                enroll_token_file: None,
            }),
        source: None,
    };
    match converge::converge(&options)? {
        converge::Outcome::Invalid(repo, problems) => {
            super::print_diagnostics(&repo, &problems);
            Ok(super::EXIT_ERROR)
        }
        converge::Outcome::Ran(report) => {
            match args.format {
                Format::Text => print!("{}", crate::report::inert(&report.to_text())),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            // The results first: sending may wait on the network.
            std::io::Write::flush(&mut std::io::stdout())?;
            converge::deliver(&options, &report);
            let code = report.detailed_exit_code();
            Ok(if args.detailed_exitcodes {
                code
            } else {
                code & 4
            })
        }
    }
}
