//! The one way anything here talks to the central log: the agent, `tend
//! converge --report-to` and every `tend log` command that reads or acts.
//!
//! A token is a bearer secret, so it goes only over TLS, or in clear to
//! this very machine (loopback): an `http://` URL naming another host is
//! refused before any byte is sent. A private CA (`--log-ca FILE`) is
//! trusted besides the system's roots.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// The system's trusted roots on Debian (the ca-certificates package).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The log's base URL (no trailing slash), checked, and an HTTP agent
/// for it.
pub struct Client {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Client {
    /// `base` is `https://…` or `http://` to a loopback host; `ca`, a PEM
    /// file of certificates to trust besides the system's.
    pub fn new(base: &str, ca: Option<&Path>, timeout: Duration) -> Result<Client, String> {
        let base = base.trim().trim_end_matches('/').to_owned();
        check_url(&base)?;
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // The log closes a connection idle for 10 s: never reuse one
            // that old.
            .max_idle_age(Duration::from_secs(5));
        if base.starts_with("https://") {
            config = config.tls_config(tls_config(ca)?);
        }
        Ok(Client {
            agent: config.build().into(),
            base,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// TLS as Debian's own tools do it: the system's roots (ca-certificates,
/// with whatever CA the operator added by update-ca-certificates), plus
/// `ca`. No roots compiled into the binary: a CA the site distrusts is
/// distrusted here too.
pub fn tls_config(ca: Option<&Path>) -> Result<ureq::tls::TlsConfig, String> {
    let mut roots = Vec::new();
    if let Some(ca) = ca {
        roots = read_certificates(ca)?;
        if roots.is_empty() {
            return Err(format!(
                "`{}` holds no certificate (PEM, `-----BEGIN CERTIFICATE-----`)",
                ca.display()
            ));
        }
    }
    if let Ok(system) = read_certificates(Path::new(SYSTEM_ROOTS)) {
        roots.extend(system);
    }
    if roots.is_empty() {
        return Err(format!(
            "no certificate to trust: `{SYSTEM_ROOTS}` is missing (apt install ca-certificates) \
             and no CA was given (--log-ca FILE)"
        ));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .build())
}

fn read_certificates(file: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .and_then(Iterator::collect)
        .map_err(|e| format!("cannot read the CA certificate `{}`: {e}", file.display()))?;
    Ok(ders
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect())
}

/// `https://` anywhere; `http://` only to this machine.
pub fn check_url(base: &str) -> Result<(), String> {
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| format!("`{base}` is not a URL (https://log.example.com:8140)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" if !host.is_empty() => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "`{base}` is plain HTTP to `{host}`, another machine: the token would cross the network in clear. Use https:// (the log serves TLS with --tls-cert and --tls-key; trust a private CA here with --log-ca)"
        )),
        _ => Err(format!(
            "`{base}` is not an http(s) URL (https://log.example.com:8140)"
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_this_machine() {
        for ok in [
            "https://log.example.com:8140",
            "https://10.0.0.5",
            "http://127.0.0.1:8140",
            "http://127.3.4.5:1/",
            "http://localhost:8140",
            "http://[::1]:8140",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://log.example.com:8140",
            "http://10.0.0.5:8140",
            "http://127.0.0.1.evil.example:80",
            "http://user@log.example.com",
            "http://[::2]:8140",
            "ftp://127.0.0.1",
            "log.example.com",
        ] {
            assert!(check_url(refused).is_err(), "{refused}");
        }
    }
}
