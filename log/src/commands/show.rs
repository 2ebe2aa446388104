//! `tend-log show`: reports from a log server, for people or as JSON.

use std::fmt::Write as _;

use super::{Format, ServerArgs, get};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    env: Option<String>,
    /// e.g. 2h, or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    commit: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let filters: Vec<(&str, String)> = [
        ("host", args.host),
        ("env", args.env),
        ("since", args.since),
        ("status", args.status),
        ("commit", args.commit),
        ("limit", Some(args.limit.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    show(&args.server, &filters, args.format.is_json())
}

fn show(server: &ServerArgs, filters: &[(&str, String)], json: bool) -> anyhow::Result<u8> {
    let body = get(server, "/v1/reports", filters)?;
    if json {
        println!("{body}");
        return Ok(0);
    }
    let page: serde_json::Value = serde_json::from_str(&body)?;
    let mut out = String::new();
    for r in page["reports"].as_array().into_iter().flatten() {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
        let commit = s("commit");
        let _ = writeln!(
            out,
            "{}  {:<28} {:<9} {:>3} changed {:>3} drift {:>3} failed  {} {} ({})",
            s("started_at"),
            s("host"),
            s("status"),
            r["changed"],
            r["drift"],
            r["failed"],
            commit.get(..10).unwrap_or(&commit),
            s("subject"),
            s("author"),
        );
        let refused = s("refused_commit");
        if !refused.is_empty() {
            let _ = writeln!(
                out,
                "    refused {}: it does not compile for this host",
                refused.get(..10).unwrap_or(&refused)
            );
        }
    }
    print!("{}", crate::report::inert(&out));
    Ok(0)
}
