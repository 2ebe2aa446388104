//! Enrollment, the host's side: with no token yet and a join token given
//! (`--enroll-token-file`), the agent asks the log once for a host token
//! of its own (`POST /v1/enroll`) and keeps it, 0600, at its token file
//! (`<state-dir>/token` unless told otherwise). From then on the join
//! token is not used again.

use std::path::Path;
use std::time::Duration;

use super::send::Endpoint;
use crate::fsutil::{self, TempLog};

/// Makes sure the endpoint's token file holds a token: enrolls as `host`
/// in `environment` when it does not exist and a join token is given.
/// `Ok(true)` when it enrolled now.
pub fn ensure(endpoint: &Endpoint, host: &str, environment: &str) -> Result<bool, String> {
    let Some(join_file) = &endpoint.enroll_token_file else {
        return Ok(false);
    };
    if endpoint.token_file.exists() {
        return Ok(false);
    }
    let join = fs_err::read_to_string(join_file)
        .map_err(|e| format!("cannot read the join token: {e}"))?
        .trim()
        .to_owned();
    if join.is_empty() {
        return Err(format!("`{}` holds no join token", join_file.display()));
    }
    let client = super::client::Client::new(
        &endpoint.url,
        endpoint.ca.as_deref(),
        Duration::from_secs(20),
    )?;
    let url = client.url("/v1/enroll");
    let body = serde_json::json!({ "host": host, "environment": environment }).to_string();
    let mut response = client
        .agent
        .post(&url)
        .header("Authorization", format!("Bearer {join}"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024)
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if status != 201 {
        return Err(format!(
            "the log refused to enroll `{host}` in `{environment}` ({status}): {}",
            answer["error"].as_str().unwrap_or(text.trim())
        ));
    }
    let token = answer["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{url} answered 201 without a token"))?;
    write_token(&endpoint.token_file, token)?;
    Ok(true)
}

/// Writes the token whole or not at all, readable by root only.
fn write_token(file: &Path, token: &str) -> Result<(), String> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::ensure_private_dir(dir).map_err(|e| e.to_string())?;
    }
    fsutil::atomic_write(
        file,
        format!("{token}\n").as_bytes(),
        0o600,
        None,
        None,
        &TempLog::unrecorded(),
    )
    .map_err(|e| format!("cannot keep the host token at `{}`: {e}", file.display()))
}
