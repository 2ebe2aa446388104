//! Sending a report to the central log: `POST /v1/reports` with the host's
//! token. One sender for `tend converge --report-to` and the agent.

use std::path::Path;
use std::time::Duration;

/// How long one request may take in all: a log that hangs must not hold a
/// host's runs back.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Sender {
    agent: ureq::Agent,
    base: String,
    url: String,
    token: String,
}

/// Why a report was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Try again later: unreachable, a timeout, 408, 429, a 5xx, or a
    /// token the log does not take (401, 403: it may be being rotated).
    ForNow(String),
    /// The log will never take this report (another 4xx): set it aside.
    ForGood(String),
}

impl Sender {
    /// A sender to the log at `base` (e.g. `http://log.example.com:8140`)
    /// with the token in `token_file`.
    pub fn new(base: &str, token_file: &Path) -> Result<Sender, String> {
        let token = fs_err::read_to_string(token_file)
            .map_err(|e| format!("cannot read the token: {e}"))?
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(format!("`{}` holds no token", token_file.display()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let base = base.trim_end_matches('/').to_owned();
        Ok(Sender {
            agent,
            url: format!("{base}/v1/reports"),
            base,
            token,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts JSON to another endpoint of the log (`/v1/rollouts/admit`):
    /// the answer's status and body, or why there was none (the log could
    /// not be reached: refused, DNS, a timeout).
    pub fn ask(&self, path: &str, body: &[u8]) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok((status, text))
    }

    /// Posts one report (its JSON).
    pub fn post(&self, body: &[u8]) -> Result<(), Refused> {
        let response = self
            .agent
            .post(&self.url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| Refused::ForNow(format!("{}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let answer = || {
            let mut response = response;
            let text = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            format!("{} answered {status}: {}", self.url, text.trim())
        };
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(Refused::ForNow(format!(
                "{} (the report stays in the spool until the log takes this host's token)",
                answer()
            ))),
            408 | 429 | 500..=599 => Err(Refused::ForNow(answer())),
            _ => Err(Refused::ForGood(answer())),
        }
    }
}
