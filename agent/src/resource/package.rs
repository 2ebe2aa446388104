//! `package`: a Debian package installed (at a version, or the latest) or absent.

use serde::Serialize;

use super::Desired;
use super::attrs::Attrs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensure {
    Installed,
    Absent,
    Latest,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageSpec {
    pub name: String,
    pub state: Ensure,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

pub fn valid_name(name: &str) -> bool {
    // Debian policy: lower case letters, digits, + - . ; at least two
    // characters, starting with a letter or digit.
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

pub fn build(name: String, a: &mut Attrs) -> Option<Desired> {
    if !valid_name(&name) {
        a.error(
            "package",
            format!("`{name}` is not a Debian package name"),
            "package names are lower case letters, digits, `+`, `-` and `.`, e.g. `nginx`",
        );
    }
    let state = match a
        .state(&["installed", "absent", "latest"], "installed")
        .as_str()
    {
        "absent" => Ensure::Absent,
        "latest" => Ensure::Latest,
        _ => Ensure::Installed,
    };
    let version = a.string("version");
    if version.is_some() && state != Ensure::Installed {
        a.error(
            "version",
            "`version` goes with `state: installed` only",
            "remove `version`, or the `state` line",
        );
    }
    Some(Desired::Package(PackageSpec {
        name,
        state,
        version,
    }))
}
