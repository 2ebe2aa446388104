//! The `tend` command line: argument parsing and printing; the work is done
//! by the library's commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tend::commands::{self, EXIT_ERROR, Format as ReportFormat};
use tend::converge;
use tend::state::DEFAULT_STATE_DIR;

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
    Check {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Print the resolved desired state of one host.
    Catalog {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Environment (default: the one whose host entries match the host).
        #[arg(long)]
        env: Option<String>,
        /// Host name (default: this machine's).
        #[arg(long)]
        host: Option<String>,
        #[arg(long, value_enum, default_value_t = CatalogFormat::Yaml)]
        format: CatalogFormat,
    },
    /// Bring this host to its catalog (or show what would change).
    Converge {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        host: Option<String>,
        /// Show what would change; touch nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
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
    },
    /// Pull the manifests from git and converge this host, every interval.
    Agent(AgentArgs),
    /// The central log: serve it, manage hosts' tokens, read it.
    #[command(subcommand)]
    Log(commands::log::LogCommand),
    /// What differs between two environments, per role combination, and
    /// the vars that cause it.
    Parity {
        env_a: String,
        env_b: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// What a change would do, host by host: every host entry's catalog at
    /// two git revisions, compared (nothing is touched).
    Diff {
        /// The revision before the change (a commit, branch or tag).
        rev_a: String,
        /// The revision after it.
        rev_b: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only this host, by name.
        #[arg(long)]
        host: Option<String>,
        /// Every host the central log has heard from (instead of the host
        /// entries).
        #[command(flatten)]
        log: commands::LogReadArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Staged rollouts as the manifests declare them.
    #[command(subcommand)]
    Rollout(PreviewCommand),
    /// Feature flags: which hosts a knob would move.
    #[command(subcommand)]
    Flags(FlagsCommand),
    /// How the agent is doing: last run, last good commit, source, spool.
    Status {
        #[arg(long, default_value = DEFAULT_STATE_DIR, env = "TEND_STATE_DIR")]
        state_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

#[derive(Subcommand)]
enum FlagsCommand {
    /// The hosts whose value of FLAG would change if it were set to N (a
    /// percentage, true or false): FLAG=N.
    Preview {
        setting: String,
        #[arg(long)]
        env: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Every host the central log has heard from (else the host
        /// entries that name one host).
        #[command(flatten)]
        log: commands::LogReadArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

#[derive(Subcommand)]
enum PreviewCommand {
    /// Which hosts are in which wave of ENV's rollout policy: the hosts
    /// the manifest names, or with --log every host the log has heard from.
    Preview {
        env: String,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[command(flatten)]
        log: commands::LogReadArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// Flags of `tend agent`; each may also be set in the settings file
/// (flags win). Defaults: --ref main, --interval 30m, --splay 5m,
/// --state-dir /var/lib/tend.
#[derive(clap::Args)]
struct AgentArgs {
    /// The settings file (one key per flag; flags given here win).
    #[arg(long, default_value = tend::agent::settings::DEFAULT_PATH)]
    config: PathBuf,
    /// The git repository of manifests (any URL the system git takes).
    #[arg(long)]
    source: Option<String>,
    /// The branch, tag or commit to converge [default: main].
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Time between cycles, e.g. 30m, 1h [default: 30m].
    #[arg(long, value_parser = humantime::parse_duration)]
    interval: Option<std::time::Duration>,
    /// Each host runs at an offset inside this window, derived from its
    /// name [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    splay: Option<std::time::Duration>,
    /// [default: /var/lib/tend]
    #[arg(long, env = "TEND_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The central log to send reports to.
    #[arg(long, value_name = "URL")]
    log: Option<String>,
    /// The file holding this host's token for the central log
    /// [default: <state-dir>/token].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A join token (`tend log enroll create`): with no token file yet, the
    /// agent enrolls once and keeps its own token in the token file.
    #[arg(long, value_name = "FILE")]
    enroll_token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the log, besides the system's.
    #[arg(long, value_name = "FILE")]
    log_ca: Option<PathBuf>,
    #[arg(long)]
    env: Option<String>,
    #[arg(long)]
    host: Option<String>,
    /// Run one cycle and exit with converge's detailed exit codes.
    #[arg(long)]
    once: bool,
    /// Apply only commits whose signature `git verify-commit` accepts.
    #[arg(long)]
    require_signed: bool,
    /// Apply a commit that does not descend from the last one applied.
    #[arg(long)]
    allow_rewind: bool,
    /// Stop converging on this host, saying why, until `--enable`.
    #[arg(long, value_name = "REASON", conflicts_with = "enable")]
    disable: Option<String>,
    /// Converge again after `--disable`.
    #[arg(long)]
    enable: bool,
    /// Under a rollout policy with no log to ask: keep the commit the host
    /// has (hold) or apply the new one (proceed) [default: hold].
    #[arg(long, value_name = "hold|proceed")]
    rollout_offline: Option<tend::agent::gate::Offline>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CatalogFormat {
    Yaml,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // The agent logs each cycle: info by default there.
    let level = if matches!(cli.command, Command::Agent(_)) && cli.verbose == 0 {
        tracing::Level::INFO
    } else {
        level
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
    match run(cli.command) {
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

fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Agent(a) => {
            let file = match tend::agent::settings::read(&a.config) {
                Ok(file) => file.unwrap_or_default(),
                Err(problems) => {
                    let sources =
                        tend::manifest::diagnostic::Sources::new(std::path::Path::new("/"));
                    for d in &problems {
                        eprintln!("{}", sources.render(d));
                    }
                    eprintln!("error: `{}` is not valid", a.config.display());
                    return Ok(EXIT_ERROR);
                }
            };
            let state_dir = a
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
            if let Some(reason) = &a.disable {
                commands::agent::disable(&state_dir, reason)?;
                eprintln!("the agent is disabled: {reason}");
                return Ok(0);
            }
            if a.enable {
                commands::agent::enable(&state_dir)?;
                eprintln!("the agent is enabled");
                return Ok(0);
            }
            let Some(source) = a.source.or(file.source) else {
                eprintln!(
                    "error: no source: pass --source URL or set `source:` in `{}`",
                    a.config.display()
                );
                return Ok(EXIT_ERROR);
            };
            let token_file = a.token_file.or(file.token_file);
            let log = a.log.or(file.log).map(|url| tend::report::send::Endpoint {
                url,
                token_file: token_file.unwrap_or_else(|| state_dir.join("token")),
                ca: a.log_ca.or(file.log_ca),
                enroll_token_file: a.enroll_token_file.or(file.enroll_token_file),
            });
            if let Some(endpoint) = &log
                && let Err(e) = tend::report::client::check_url(&endpoint.url)
            {
                eprintln!("error: --log: {e}");
                return Ok(EXIT_ERROR);
            }
            let settings = tend::agent::Settings {
                source,
                reference: a
                    .reference
                    .or(file.reference)
                    .unwrap_or_else(|| "main".to_owned()),
                interval: a
                    .interval
                    .or(file.interval)
                    .unwrap_or(std::time::Duration::from_secs(30 * 60)),
                splay: a
                    .splay
                    .or(file.splay)
                    .unwrap_or(std::time::Duration::from_secs(5 * 60)),
                state_dir,
                log,
                environment: a.env.or(file.environment),
                host: a.host.or(file.host),
                require_signed: a.require_signed || file.require_signed.unwrap_or(false),
                allow_rewind: a.allow_rewind || file.allow_rewind.unwrap_or(false),
                rollout_offline: a
                    .rollout_offline
                    .or(file.rollout_offline)
                    .unwrap_or_default(),
            };
            if a.once {
                commands::agent::once(&settings)
            } else {
                tend::agent::serve(&settings)?;
                Ok(0)
            }
        }
        Command::Log(command) => commands::log::run(command),
        Command::Parity {
            env_a,
            env_b,
            repo,
            format,
        } => commands::parity::run(&repo, &env_a, &env_b, matches!(format, ReportFormat::Json)),
        Command::Diff {
            rev_a,
            rev_b,
            repo,
            env,
            host,
            log,
            format,
        } => commands::diff::run(
            &repo,
            (&rev_a, &rev_b),
            env.as_deref(),
            host.as_deref(),
            log.read().as_ref(),
            matches!(format, ReportFormat::Json),
        ),
        Command::Flags(FlagsCommand::Preview {
            setting,
            env,
            repo,
            log,
            format,
        }) => commands::flags::preview(
            &repo,
            &env,
            &setting,
            log.read().as_ref(),
            matches!(format, ReportFormat::Json),
        ),
        Command::Rollout(PreviewCommand::Preview {
            env,
            repo,
            log,
            format,
        }) => commands::rollout::preview(
            &repo,
            &env,
            log.read().as_ref(),
            matches!(format, ReportFormat::Json),
        ),
        Command::Status { state_dir, format } => {
            let status = commands::agent::status(&state_dir)?;
            match format {
                ReportFormat::Text => print!("{}", tend::report::inert(&status.to_text())),
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
            }
            Ok(0)
        }
        Command::Check { repo } => match commands::check::check(&repo)? {
            Ok(s) => {
                println!(
                    "ok: {} environments, {} host entries, {} roles checked",
                    s.environments, s.host_entries, s.roles
                );
                Ok(0)
            }
            Err((repo, problems)) => {
                commands::print_diagnostics(&repo, &problems);
                Ok(EXIT_ERROR)
            }
        },
        Command::Catalog {
            repo,
            env,
            host,
            format,
        } => {
            let mut manifests = commands::open_repo(&repo)?;
            let (host, facts) = tend::facts::host_and_facts(host.as_deref());
            let target = tend::catalog::Target {
                environment: env.as_deref(),
                host: &host,
                facts: &facts,
                secrets: tend::catalog::Secrets::Placeholder,
                all_flags_on: false,
            };
            match tend::catalog::compile(&mut manifests, &target) {
                Ok(catalog) => {
                    print!(
                        "{}",
                        commands::catalog::render(&catalog, matches!(format, CatalogFormat::Json))?
                    );
                    Ok(0)
                }
                Err(problems) => {
                    commands::print_diagnostics(&manifests, &problems);
                    Ok(EXIT_ERROR)
                }
            }
        }
        Command::Converge {
            repo,
            env,
            host,
            dry_run,
            format,
            detailed_exitcodes,
            state_dir,
            no_cache,
            report_to,
            token_file,
            log_ca,
        } => {
            let options = converge::Options {
                repo: &repo,
                environment: env.as_deref(),
                host: host.as_deref(),
                dry_run,
                state_dir,
                no_cache,
                report_to: report_to.zip(token_file).map(|(url, token_file)| {
                    tend::report::send::Endpoint {
                        url,
                        token_file,
                        ca: log_ca,
                        enroll_token_file: None,
                    }
                }),
                source: None,
            };
            match converge::converge(&options)? {
                converge::Outcome::Invalid(repo, problems) => {
                    commands::print_diagnostics(&repo, &problems);
                    Ok(EXIT_ERROR)
                }
                converge::Outcome::Ran(report) => {
                    match format {
                        ReportFormat::Text => print!("{}", tend::report::inert(&report.to_text())),
                        ReportFormat::Json => {
                            println!("{}", serde_json::to_string_pretty(&report)?)
                        }
                    }
                    // The results first: sending may wait on the network.
                    std::io::Write::flush(&mut std::io::stdout())?;
                    converge::deliver(&options, &report);
                    let code = report.detailed_exit_code();
                    Ok(if detailed_exitcodes { code } else { code & 4 })
                }
            }
        }
    }
}
