//! `tend-log wake ENV [--match GLOB]`: run now, fleet-wide. The hosts of
//! ENV that hold a watch on the log cycle at once, each after its jitter
//! (`--watch-splay`), and the command says how many it woke.

use super::{ServerArgs, connect};

#[derive(clap::Args)]
pub struct Args {
    /// The environment whose hosts run now.
    env: String,
    /// Only the hosts whose names match, e.g. 'web-*'.
    #[arg(long = "match", value_name = "GLOB")]
    pattern: Option<String>,
    /// The server; --token-file is an operator's token.
    #[command(flatten)]
    server: ServerArgs,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (client, token) = connect(&args.server)?;
    let url = client.url("/v1/wake");
    let mut request = client.agent.post(&url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let body = serde_json::json!({ "environment": args.env, "match": args.pattern });
    let mut response = request
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    if status != 200 {
        anyhow::bail!("{url} answered {status}: {}", text.trim());
    }
    let answer: serde_json::Value = serde_json::from_str(&text)?;
    let woken = answer["woken"].as_u64().unwrap_or(0);
    println!(
        "woke {woken} host{} of {}{}",
        if woken == 1 { "" } else { "s" },
        args.env,
        args.pattern
            .map(|p| format!(" matching {p}"))
            .unwrap_or_default()
    );
    Ok(0)
}
