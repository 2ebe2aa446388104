//! apt and dpkg: what is installed (one `dpkg-query` for every package of
//! the run), what can be installed (one `apt-cache policy`), and one
//! `apt-get` transaction for all installs and one for all removals.

use std::collections::HashMap;

use super::{Output, TOOL_TIMEOUT, command, run};

/// Installed versions by package name (only fully installed packages).
pub fn installed(names: &[&str]) -> Result<HashMap<String, String>, String> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let out = run(
        command("dpkg-query")
            .args([
                "-W",
                "-f=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n",
                "--",
            ])
            .args(names),
        TOOL_TIMEOUT,
    )?;
    // Exit 1 only means that some names are unknown to dpkg.
    if !matches!(out.code, Some(0 | 1)) {
        return Err(out.failure("dpkg-query"));
    }
    Ok(parse_installed(&out.text))
}

fn parse_installed(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, status, version) = (f.next()?, f.next()?, f.next()?);
            // `ii `: wanted install, installed. `rc ` and friends are not.
            (status.starts_with("ii") || status.starts_with("hi")).then(|| {
                (
                    name.split(':').next().unwrap_or(name).to_owned(),
                    version.to_owned(),
                )
            })
        })
        .collect()
}

/// What apt could install: the candidate and every known version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub candidate: Option<String>,
    pub versions: Vec<String>,
    /// What apt said about a package it does not know.
    pub message: Option<String>,
}

/// Where apt keeps the package cache it builds from its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// /var/cache/apt/*.bin, read when fresh and rebuilt when stale: a real
    /// run, whose install would rebuild it anyway.
    OnDisk,
    /// Built in memory every time (seconds with full lists): a dry-run,
    /// which writes nothing.
    InMemory,
}

/// `apt-cache policy` for the names; names apt does not know are absent.
pub fn policy(names: &[&str], cache: Cache) -> Result<HashMap<String, Policy>, String> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let mut cmd = command("apt-cache");
    if cache == Cache::InMemory {
        // An empty cache path makes apt build its cache in memory.
        cmd.args([
            "-o",
            "Dir::Cache::pkgcache=",
            "-o",
            "Dir::Cache::srcpkgcache=",
        ]);
    }
    let out = run(cmd.args(["policy", "--"]).args(names), TOOL_TIMEOUT)?;
    if !out.success() {
        return Err(out.failure("apt-cache policy"));
    }
    Ok(parse_policy(&out.text))
}

fn parse_policy(text: &str) -> HashMap<String, Policy> {
    let mut map = HashMap::new();
    let mut current: Option<(String, Policy)> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            if let Some((name, p)) = current.take() {
                map.insert(name, p);
            }
            current = Some((line.trim_end_matches(':').to_owned(), Policy::default()));
            continue;
        }
        let Some((_, p)) = current.as_mut() else {
            continue;
        };
        let trimmed = line.trim_start();
        if let Some(c) = trimmed.strip_prefix("Candidate: ") {
            p.candidate = (c != "(none)").then(|| c.to_owned());
        } else if line.starts_with("     ") && !line.starts_with("        ")
            || line.starts_with(" *** ")
        {
            // A version line of the version table: `     1.22.1-9 500`.
            let entry = trimmed.trim_start_matches("*** ");
            if let Some(version) = entry.split_whitespace().next() {
                p.versions.push(version.to_owned());
            }
        }
    }
    if let Some((name, p)) = current {
        map.insert(name, p);
    }
    // A package apt knows only by name (a virtual one) has no candidate.
    map
}

fn apt_get() -> std::process::Command {
    let mut cmd = command("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .args([
            "-y",
            "-q",
            // Keep existing configuration files: never prompt, never replace.
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ]);
    cmd
}

/// One transaction installing (or upgrading, or pinning) every spec:
/// `name` or `name=version`.
pub fn install(specs: &[String]) -> Result<Output, String> {
    run(
        apt_get()
            .args(["install", "--allow-downgrades", "--"])
            .args(specs),
        TOOL_TIMEOUT,
    )
}

/// One transaction removing every package (configuration files are kept).
pub fn remove(names: &[String]) -> Result<Output, String> {
    run(apt_get().args(["remove", "--"]).args(names), TOOL_TIMEOUT)
}

/// Why apt cannot install these packages, in apt's words (a simulated
/// install, which changes nothing): `E:` lines by package name.
pub fn why_not_installable(names: &[&str]) -> Result<HashMap<String, String>, String> {
    let out = run(
        command("apt-get")
            .args([
                "-o",
                "Dir::Cache::pkgcache=",
                "-o",
                "Dir::Cache::srcpkgcache=",
            ])
            .args(["-s", "-q", "install", "--"])
            .args(names),
        TOOL_TIMEOUT,
    )?;
    Ok(names
        .iter()
        .filter_map(|name| {
            let line = out.text.lines().find(|l| {
                l.starts_with("E: ")
                    && l.split(|c: char| c.is_whitespace() || c == '\'')
                        .any(|w| w == *name)
            })?;
            Some((
                (*name).to_owned(),
                line.trim_start_matches("E: ").to_owned(),
            ))
        })
        .collect())
}

/// Refreshes the package lists (when an install could not fetch a file).
pub fn update() -> Result<Output, String> {
    run(apt_get().arg("update"), TOOL_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpkg_query() {
        let m =
            parse_installed("nginx\tii \t1.22.1-9\ncurl\trc \t7.88\nlibc6:amd64\tii \t2.36-9\n");
        assert_eq!(m.get("nginx").map(String::as_str), Some("1.22.1-9"));
        assert!(!m.contains_key("curl"));
        assert!(m.contains_key("libc6"));
    }

    #[test]
    fn parses_apt_cache_policy() {
        let text = "nginx:\n  Installed: (none)\n  Candidate: 1.22.1-9\n  Version table:\n     1.22.1-9 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n     1.22.1-8 100\n        100 /var/lib/dpkg/status\nvirt:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";
        let m = parse_policy(text);
        assert_eq!(m["nginx"].candidate.as_deref(), Some("1.22.1-9"));
        assert_eq!(m["nginx"].versions, vec!["1.22.1-9", "1.22.1-8"]);
        assert_eq!(m["virt"].candidate, None);
        let installed = parse_policy(
            "nginx:\n  Installed: 1.22.1-9\n  Candidate: 1.22.1-9\n  Version table:\n *** 1.22.1-9 500\n        500 http://x bookworm/main amd64 Packages\n",
        );
        assert_eq!(installed["nginx"].versions, vec!["1.22.1-9"]);
    }
}
