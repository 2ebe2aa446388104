//! The resource types a manifest can declare and the attributes each takes:
//! the schema that role files are checked against when they are loaded,
//! before anything is rendered for a host.

use std::fmt;

use serde::Serialize;

/// The resource types tend knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Package,
    Service,
    User,
    Group,
    Exec,
    /// A JSON file of feature flags resolved for the host.
    Flags,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::File,
        Kind::Directory,
        Kind::Symlink,
        Kind::Package,
        Kind::Service,
        Kind::User,
        Kind::Group,
        Kind::Exec,
        Kind::Flags,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Symlink => "symlink",
            Kind::Package => "package",
            Kind::Service => "service",
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Exec => "exec",
            Kind::Flags => "flags",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The attributes this type accepts besides the common ones.
    pub fn attributes(self) -> &'static [AttrSpec] {
        match self {
            Kind::File => FILE,
            Kind::Directory => DIRECTORY,
            Kind::Symlink => SYMLINK,
            Kind::Package => PACKAGE,
            Kind::Service => SERVICE,
            Kind::User => USER,
            Kind::Group => GROUP,
            Kind::Exec => EXEC,
            Kind::Flags => FLAGS,
        }
    }

    /// Whether the name of a resource of this type is an absolute path.
    pub fn is_path(self) -> bool {
        matches!(
            self,
            Kind::File | Kind::Directory | Kind::Symlink | Kind::Flags
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a manifest value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A string, rendered as a template for the host.
    Str,
    /// `true` or `false`.
    Bool,
    /// A file mode as a quoted octal string, e.g. `"0644"`.
    Mode,
    /// A list of resource identities (`type:name`).
    Refs,
    /// A list of strings (a single string counts as a list of one).
    List,
    /// A whole number, zero or more.
    Int,
    /// A mapping of template variables.
    Vars,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// `{ flag: NAME }`: a condition on a flag of the environment.
    When,
}

#[derive(Debug, Clone, Copy)]
pub struct AttrSpec {
    pub name: &'static str,
    pub ty: AttrType,
}

pub const fn attr(name: &'static str, ty: AttrType) -> AttrSpec {
    AttrSpec { name, ty }
}

/// Attributes every resource accepts.
pub const COMMON_ATTRIBUTES: &[AttrSpec] = &[
    attr("require", AttrType::Refs),
    attr("before", AttrType::Refs),
    attr("notify", AttrType::Refs),
    attr("when", AttrType::When),
];

pub const PRESENT_ABSENT: &[&str] = &["present", "absent"];

/// `file` attributes.
const FILE: &[AttrSpec] = &[
    attr("content", AttrType::Str),
    attr("template", AttrType::Str),
    attr("source", AttrType::Str),
    attr("vars", AttrType::Vars),
    attr("mode", AttrType::Mode),
    attr("owner", AttrType::Str),
    attr("group", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
    attr("sensitive", AttrType::Bool),
];

/// `directory` attributes.
const DIRECTORY: &[AttrSpec] = &[
    attr("mode", AttrType::Mode),
    attr("owner", AttrType::Str),
    attr("group", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
    attr("purge", AttrType::Bool),
];

/// `symlink` attributes.
const SYMLINK: &[AttrSpec] = &[
    attr("target", AttrType::Str),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
];

/// `package` attributes.
const PACKAGE: &[AttrSpec] = &[
    attr("state", AttrType::OneOf(&["installed", "absent", "latest"])),
    attr("version", AttrType::Str),
];

/// `service` attributes.
const SERVICE: &[AttrSpec] = &[
    attr("state", AttrType::OneOf(&["running", "stopped"])),
    attr("enabled", AttrType::Bool),
];

/// `user` attributes.
const USER: &[AttrSpec] = &[
    attr("uid", AttrType::Int),
    attr("group", AttrType::Str),
    attr("groups", AttrType::List),
    attr("home", AttrType::Str),
    attr("manage_home", AttrType::Bool),
    attr("shell", AttrType::Str),
    attr("system", AttrType::Bool),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
];

/// `group` attributes.
const GROUP: &[AttrSpec] = &[
    attr("gid", AttrType::Int),
    attr("system", AttrType::Bool),
    attr("state", AttrType::OneOf(PRESENT_ABSENT)),
];

/// `flags` attributes (`values` is checked when it is resolved).
const FLAGS: &[AttrSpec] = &[
    attr("values", AttrType::Vars),
    attr("mode", AttrType::Mode),
    attr("owner", AttrType::Str),
    attr("group", AttrType::Str),
];

/// `exec` attributes.
const EXEC: &[AttrSpec] = &[
    attr("command", AttrType::Str),
    attr("creates", AttrType::Str),
    attr("unless", AttrType::Str),
    attr("onlyif", AttrType::Str),
    attr("refresh_only", AttrType::Bool),
    attr("timeout", AttrType::Int),
    attr("cwd", AttrType::Str),
];
