//! Sending a report to the central log: `POST /v1/reports` with the host's
//! token. One sender for `tend converge --report-to` and the agent.

use std::path::{Path, PathBuf};
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

/// Where a host's reports go: the log's URL, the file holding this host's
/// token, a private CA to trust, and a join token to enroll with when the
/// token file does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub token_file: PathBuf,
    pub ca: Option<PathBuf>,
    pub enroll_token_file: Option<PathBuf>,
}

impl Endpoint {
    pub fn new(url: &str, token_file: &Path) -> Endpoint {
        Endpoint {
            url: url.to_owned(),
            token_file: token_file.to_owned(),
            ca: None,
            enroll_token_file: None,
        }
    }
}

impl Sender {
    /// A sender to the log at `endpoint.url` (e.g.
    /// `https://log.example.com:8140`) with the token in its token file.
    pub fn new(endpoint: &Endpoint) -> Result<Sender, String> {
        let client = super::client::Client::new(&endpoint.url, endpoint.ca.as_deref(), TIMEOUT)?;
        let token = match fs_err::read_to_string(&endpoint.token_file) {
            Ok(token) => token.trim().to_owned(),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && endpoint.enroll_token_file.is_some() =>
            {
                return Err(format!(
                    "not enrolled yet: `{}` does not exist",
                    endpoint.token_file.display()
                ));
            }
            Err(e) => return Err(format!("cannot read the token: {e}")),
        };
        if token.is_empty() {
            return Err(format!(
                "`{}` holds no token",
                endpoint.token_file.display()
            ));
        }
        Ok(Sender {
            agent: client.agent.clone(),
            url: client.url("/v1/reports"),
            base: client.base,
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
        // The answer is read whole (it is small) so that the connection is
        // kept for the next report of a spool being emptied.
        let mut response = response;
        let text = response
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        let answer = || format!("{} answered {status}: {}", self.url, text.trim());
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
