//! Resources: the typed desired state of each resource type, and how a
//! declaration rendered for one host becomes it.
//!
//! A type has three parts, one per layer: its attribute schema
//! ([`crate::manifest::kinds`], checked when a role is loaded), its desired
//! state and `build` (here: a declaration rendered for one host, checked and
//! typed), and its plan ([`crate::engine::plan`]: compare with the host, return
//! the operations that would make them equal).

pub mod attrs;
pub mod directory;
pub mod exec;
pub mod file;
pub mod flags;
pub mod group;
pub mod package;
pub mod service;
pub mod symlink;
pub mod user;

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::manifest::diagnostic::Location;
pub use crate::manifest::kinds::{Kind, PRESENT_ABSENT};

/// `type:name`, the identity of a resource in a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }

    /// Parses `file:/etc/motd`. The error says what was wrong.
    pub fn parse(text: &str) -> Result<ResourceId, String> {
        let Some((kind, name)) = text.split_once(':') else {
            return Err(format!(
                "`{text}` is not a resource identity; write `type:name`, e.g. `file:/etc/motd`"
            ));
        };
        let Some(kind) = Kind::from_name(kind) else {
            let known = Kind::ALL.map(Kind::name);
            let hint = crate::manifest::diagnostic::did_you_mean(kind, known)
                .unwrap_or_else(|| format!("known types: {}", known.join(", ")));
            return Err(format!(
                "unknown resource type `{kind}` in `{text}`; {hint}"
            ));
        };
        if name.is_empty() {
            return Err(format!("`{text}` names no resource after the `:`"));
        }
        Ok(ResourceId::new(kind, name))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

impl Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A reference from one resource to another, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub id: ResourceId,
    #[serde(skip)]
    pub location: Location,
}

/// A file mode (permission bits and setuid/setgid/sticky).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses `"0644"` or `"644"`: three or four octal digits.
    pub fn parse(text: &str) -> Result<Mode, String> {
        let valid =
            (3..=4).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !valid {
            return Err(format!(
                "`{text}` is not a file mode; write three or four octal digits, e.g. \"0644\""
            ));
        }
        u32::from_str_radix(text, 8)
            .map(Mode)
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The desired state of one resource, by type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Desired {
    File(file::FileSpec),
    Directory(directory::DirectorySpec),
    Symlink(symlink::SymlinkSpec),
    Package(package::PackageSpec),
    Service(service::ServiceSpec),
    User(user::UserSpec),
    Group(group::GroupSpec),
    Exec(exec::ExecSpec),
}

impl Desired {
    /// The path this resource manages, for path types.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Desired::File(f) => Some(&f.path),
            Desired::Directory(d) => Some(&d.path),
            Desired::Symlink(s) => Some(&s.path),
            _ => None,
        }
    }

    /// Whether the resource makes its path exist (as opposed to removing it).
    pub fn is_present(&self) -> bool {
        match self {
            Desired::File(f) => f.content.is_some(),
            Desired::Directory(d) => d.present,
            Desired::Symlink(s) => s.target.is_some(),
            Desired::Package(p) => p.state != package::Ensure::Absent,
            Desired::User(u) => u.present,
            Desired::Group(g) => g.present,
            Desired::Service(_) | Desired::Exec(_) => true,
        }
    }

    /// The owner and group names the resource sets, if any.
    pub fn ownership(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Desired::File(f) => (f.owner.as_deref(), f.group.as_deref()),
            Desired::Directory(d) => (d.owner.as_deref(), d.group.as_deref()),
            Desired::User(u) => (None, u.group.as_deref()),
            _ => (None, None),
        }
    }
}

/// A resource of a host's catalog: identity, desired state, relations.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    #[serde(skip)]
    pub origin: Location,
    /// The role that declared it.
    pub role: String,
    #[serde(flatten)]
    pub desired: Desired,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Reference>,
}

impl Resource {
    /// A digest of the desired state. The state directory keeps it for every
    /// applied resource: when it is unchanged but the host differs, the
    /// difference is drift; when it changed, the cause is a new revision.
    pub fn desired_digest(&self) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(self.id.to_string().as_bytes());
        hasher.update([0]);
        // Attributes as JSON (file contents are skipped there), then the
        // content itself: one pass, no intermediate buffers.
        serde_json::to_writer(HashWriter(&mut hasher), &self.desired)
            .expect("desired state serialises");
        if let Desired::File(f) = &self.desired
            && let Some(content) = &f.content
        {
            hasher.update([0]);
            hasher.update(content);
        }
        Digest(hasher.finalize().into())
    }

    /// Whether two declarations of the same identity ask for the same thing.
    pub fn same_as(&self, other: &Resource) -> bool {
        self.desired == other.desired
            && self.sensitive == other.sensitive
            && self.require == other.require
            && self.before == other.before
            && self.notify == other.notify
    }
}

/// A sha256 digest of a desired state: 32 bytes in memory (a catalog keeps
/// one per resource), hexadecimal in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("64 hexadecimal digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                let bytes = v.as_bytes();
                if bytes.len() != 64 {
                    return Err(E::custom("a digest has 64 hexadecimal digits"));
                }
                let digit = |c: u8| match c {
                    b'0'..=b'9' => Ok(c - b'0'),
                    b'a'..=b'f' => Ok(c - b'a' + 10),
                    _ => Err(E::custom("a digest has hexadecimal digits only")),
                };
                let mut out = [0; 32];
                for (i, pair) in bytes.chunks(2).enumerate() {
                    out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
                }
                Ok(Digest(out))
            }
        }
        d.deserialize_str(Hex)
    }
}

/// Feeds serialized bytes straight into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub use tend_common::hex;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Checks that a rendered resource name is a clean absolute path: no `..`,
/// no `.`, no empty components, no trailing slash, not `/` itself.
pub fn check_absolute_path(name: &str) -> Result<PathBuf, String> {
    let path = Path::new(name);
    if !path.is_absolute() {
        return Err(format!("`{name}` is not an absolute path"));
    }
    if name.len() > 1 && name.ends_with('/') || name.contains("//") {
        return Err(format!(
            "`{name}` is not a normalised path (no `//`, no trailing `/`)"
        ));
    }
    for component in path.components() {
        match component {
            Component::RootDir | Component::Normal(_) => {}
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{name}` contains `.` or `..`; write the path without them"
                ));
            }
        }
    }
    if path.parent().is_none() {
        return Err("`/` itself cannot be managed".to_owned());
    }
    if name.contains('\0') {
        return Err(format!("`{name}` contains a NUL byte"));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(Mode::parse("0644").unwrap().0, 0o644);
        assert_eq!(Mode::parse("755").unwrap().0, 0o755);
        assert_eq!(Mode::parse("4755").unwrap().to_string(), "4755");
        assert!(Mode::parse("0999").is_err());
        assert!(Mode::parse("rw-r--r--").is_err());
        assert!(Mode::parse("12345").is_err());
    }

    #[test]
    fn identities_parse_and_suggest() {
        assert_eq!(
            ResourceId::parse("file:/etc/motd").unwrap(),
            ResourceId::new(Kind::File, "/etc/motd")
        );
        let err = ResourceId::parse("fiel:/etc/motd").unwrap_err();
        assert!(err.contains("did you mean `file`?"), "{err}");
        assert!(ResourceId::parse("nginx").is_err());
    }

    #[test]
    fn paths_must_be_clean_and_absolute() {
        assert!(check_absolute_path("/etc/motd").is_ok());
        assert!(check_absolute_path("etc/motd").is_err());
        assert!(check_absolute_path("/etc/../shadow").is_err());
        assert!(check_absolute_path("/etc//motd").is_err());
        assert!(check_absolute_path("/etc/").is_err());
        assert!(check_absolute_path("/").is_err());
    }
}
