//! `tend agent`: run the pull agent (once, or for good), or disable or
//! enable it. Its flags may also be set in the settings file; flags win.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::memory;
use crate::agent::{self, Cycle, Settings};
use crate::state::DEFAULT_STATE_DIR;

/// Flags of `tend agent`; each may also be set in the settings file
/// (flags win). Defaults: --ref main, --interval 30m, --splay 5m,
/// --state-dir /var/lib/tend.
#[derive(clap::Args)]
pub struct Args {
    /// The settings file (one key per flag; flags given here win).
    #[arg(long, default_value = crate::agent::settings::DEFAULT_PATH)]
    config: PathBuf,
    /// The git repository of manifests (any URL the system git takes).
    #[arg(long)]
    source: Option<String>,
    /// The branch, tag or commit to converge [default: main].
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Time between cycles, e.g. 30m, 1h [default: 30m].
    #[arg(long, value_parser = humantime::parse_duration)]
    interval: Option<Duration>,
    /// Each host runs at an offset inside this window, derived from its
    /// name [default: 5m].
    #[arg(long, value_parser = humantime::parse_duration)]
    splay: Option<Duration>,
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
    rollout_offline: Option<crate::agent::gate::Offline>,
    /// Woken by the log (the source moved), cycle after a stable per-host
    /// delay inside this, so that the git server sees the fleet's fetches
    /// spread [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    watch_splay: Option<Duration>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let file = match crate::agent::settings::read(&a.config) {
        Ok(file) => file.unwrap_or_default(),
        Err(problems) => {
            let sources = crate::manifest::diagnostic::Sources::new(Path::new("/"));
            for d in &problems {
                eprintln!("{}", sources.render(d));
            }
            eprintln!("error: `{}` is not valid", a.config.display());
            return Ok(super::EXIT_ERROR);
        }
    };
    let state_dir = a
        .state_dir
        .or(file.state_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    if let Some(reason) = &a.disable {
        memory::set_disabled(&state_dir, Some(reason))?;
        eprintln!("the agent is disabled: {reason}");
        return Ok(0);
    }
    if a.enable {
        memory::set_disabled(&state_dir, None)?;
        eprintln!("the agent is enabled");
        return Ok(0);
    }
    let Some(source) = a.source.or(file.source) else {
        eprintln!(
            "error: no source: pass --source URL or set `source:` in `{}`",
            a.config.display()
        );
        return Ok(super::EXIT_ERROR);
    };
    let token_file = a.token_file.or(file.token_file);
    let log = a.log.or(file.log).map(|url| crate::report::send::Endpoint {
        url,
        token_file: token_file.unwrap_or_else(|| state_dir.join("token")),
        ca: a.log_ca.or(file.log_ca),
        enroll_token_file: a.enroll_token_file.or(file.enroll_token_file),
    });
    if let Some(endpoint) = &log
        && let Err(e) = crate::report::client::check_url(&endpoint.url)
    {
        eprintln!("error: --log: {e}");
        return Ok(super::EXIT_ERROR);
    }
    let settings = Settings {
        source,
        reference: a
            .reference
            .or(file.reference)
            .unwrap_or_else(|| "main".to_owned()),
        interval: a
            .interval
            .or(file.interval)
            .unwrap_or(Duration::from_secs(30 * 60)),
        splay: a
            .splay
            .or(file.splay)
            .unwrap_or(Duration::from_secs(5 * 60)),
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
        watch_splay: a
            .watch_splay
            .or(file.watch_splay)
            .unwrap_or(Duration::from_secs(10)),
    };
    if a.once {
        once(&settings)
    } else {
        agent::serve(&settings)?;
        Ok(0)
    }
}

/// `tend agent --once`: one cycle; converge's detailed exit codes.
fn once(settings: &Settings) -> anyhow::Result<u8> {
    Ok(match agent::run_cycle(settings)? {
        Cycle::Ran(report) => {
            print!("{}", crate::report::inert(&report.to_text()));
            report.detailed_exit_code()
        }
        Cycle::Disabled(reason) => {
            eprintln!(
                "the agent is disabled ({reason}); nothing was converged (`tend agent --enable` to enable it)"
            );
            0
        }
        Cycle::NothingToApply(why) => {
            eprintln!("error: nothing to apply: {why}");
            super::EXIT_ERROR
        }
        Cycle::Invalid(repo, problems) => {
            super::print_diagnostics(&repo, &problems);
            super::EXIT_ERROR
        }
    })
}
