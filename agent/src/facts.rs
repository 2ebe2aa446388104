//! Facts about the machine templates can read as `host.*`.
//!
//! Gathered in-process from /proc, /etc and system calls: no subprocess, so
//! a converge of an unchanged host stays near the cost of reading its files.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The host name tend resolves the catalog for (`--host`).
    pub name: String,
    /// The fully qualified name: `name` when it has dots, else from /etc/hosts.
    pub fqdn: String,
    /// The first label of the name.
    pub short: String,
    pub os: String,
    pub os_version: String,
    pub cpus: usize,
    pub memory_mb: u64,
    /// The first non-loopback IPv4 address, or 127.0.0.1.
    pub ipv4: String,
}

impl Facts {
    /// Facts of this machine, for the host name given.
    pub fn gather(name: &str) -> Facts {
        let (os, os_version) = os_release();
        Facts {
            name: name.to_owned(),
            fqdn: fqdn(name),
            short: short_name(name),
            os,
            os_version,
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            memory_mb: memory_mb(),
            ipv4: ipv4(),
        }
    }

    /// The same machine under another name (`tend check` compiles each
    /// host entry under its pattern).
    #[must_use]
    pub fn renamed(&self, name: &str) -> Facts {
        Facts {
            name: name.to_owned(),
            fqdn: name.to_owned(),
            short: short_name(name),
            ..self.clone()
        }
    }
}

fn short_name(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_owned()
}

/// The host to work on (`--host`, else this machine's name) and its facts.
pub fn host_and_facts(host: Option<&str>) -> (String, Facts) {
    let host = host.map_or_else(hostname, str::to_owned);
    let facts = Facts::gather(&host);
    (host, facts)
}

/// The machine's host name, the default for `--host`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn os_release() -> (String, String) {
    let text = fs_err::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_ID"))
}

fn fqdn(name: &str) -> String {
    if name.contains('.') {
        return name.to_owned();
    }
    let hosts = fs_err::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .find_map(|l| {
            let names: Vec<&str> = l.split_whitespace().skip(1).collect();
            names
                .contains(&name)
                .then(|| {
                    names
                        .iter()
                        .find(|n| n.contains('.'))
                        .map(|n| (*n).to_owned())
                })
                .flatten()
        })
        .unwrap_or_else(|| name.to_owned())
}

fn memory_mb() -> u64 {
    let text = fs_err::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn ipv4() -> String {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return "127.0.0.1".to_owned();
    };
    addrs
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|i| i.ip())))
        .find(|ip| !ip.is_loopback())
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string())
}
