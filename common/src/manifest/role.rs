//! Role files: `roles/<name>/role.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Location, did_you_mean};
use super::kinds::{COMMON_ATTRIBUTES, Kind};
use super::node::{Key, Node, Pos, Value};
use super::schema::Checker;

/// A role as written, checked for structure but not yet rendered for a host.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// `roles/<name>`, relative to the repository.
    pub dir: PathBuf,
    pub file: Arc<Path>,
    pub description: Option<String>,
    pub includes: Vec<(String, Location)>,
    pub vars: Vec<(Key, Node)>,
    pub resources: Vec<ResourceDecl>,
    /// Resources declared with errors (already reported): their type and
    /// name, so that references to them are not reported again as unknown.
    pub unbuilt: Vec<(Kind, Node)>,
}

/// One entry of `resources:`: its type, its (template) name and attributes.
#[derive(Debug)]
pub struct ResourceDecl {
    pub kind: Kind,
    /// Where the `type: name` key is.
    pub pos: Pos,
    pub name: Node,
    pub attrs: Vec<(Key, Node)>,
}

impl ResourceDecl {
    pub fn attr(&self, key: &str) -> Option<(&Key, &Node)> {
        self.attrs
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, v)| (k, v))
    }
}

pub(crate) const ROLE_KEYS: &[&str] = &["description", "include", "vars", "resources"];

/// Checks a parsed role file. Structural errors go to `checker`; what could
/// be read is returned so that later checks still run on the rest.
pub fn read(name: &str, dir: PathBuf, mut root: Node, checker: &mut Checker) -> Role {
    // Resources are moved out of the tree, not copied: large roles hold
    // most of their bytes there.
    let resources = match &mut root.value {
        Value::Map(entries) => entries
            .iter()
            .position(|(k, _)| k.name == "resources")
            .map(|i| entries.remove(i)),
        _ => None,
    };
    let mut role = Role {
        name: name.to_owned(),
        dir,
        file: Arc::clone(checker.file),
        description: None,
        includes: Vec::new(),
        vars: Vec::new(),
        resources: Vec::new(),
        unbuilt: Vec::new(),
    };
    let Some(entries) = checker.map(&root, "a role file", None) else {
        return role;
    };
    checker.unknown_keys(entries, ROLE_KEYS, "a role file");
    if let Some((_, value)) = resources {
        match value.value {
            Value::Seq(items) => {
                for item in items {
                    match read_resource(item, checker) {
                        Ok(decl) => role.resources.push(decl),
                        Err(Some(unbuilt)) => role.unbuilt.push(unbuilt),
                        Err(None) => {}
                    }
                }
            }
            Value::Null => {}
            other => checker.push(
                Diagnostic::new(
                    checker.at(value.pos),
                    format!("`resources` must be a list, found {}", other.kind()),
                )
                .key("resources")
                .hint("start each resource with `- `, e.g. `- file: /etc/motd`"),
            ),
        }
    }
    for (key, value) in entries {
        match key.name.as_str() {
            "description" => role.description = checker.string(key, value),
            "include" => role.includes = checker.string_list(key, value).unwrap_or_default(),
            "vars" => {
                if let Some(vars) = checker.map(value, "`vars`", Some("vars")) {
                    role.vars = check_var_names(vars, checker);
                }
            }
            _ => {}
        }
    }
    role
}

/// Variables may not shadow the facts templates see.
pub fn check_var_names(vars: &[(Key, Node)], checker: &mut Checker) -> Vec<(Key, Node)> {
    let mut out = Vec::new();
    for (key, value) in vars {
        if super::RESERVED_VARS.contains(&key.name.as_str()) {
            checker.push(
                Diagnostic::new(
                    checker.at(key.pos),
                    format!("`{}` is a reserved variable name", key.name),
                )
                .key(key.name.clone())
                .hint("`host`, `env` and `roles` are facts tend provides; choose another name"),
            );
        } else {
            out.push((key.clone(), value.clone()));
        }
    }
    out
}

/// One resource declaration; when it has errors (reported to `checker`),
/// its type and name if those could be read.
fn read_resource(item: Node, checker: &mut Checker) -> Result<ResourceDecl, Option<(Kind, Node)>> {
    let entries = checker.map(&item, "a resource", None).ok_or(None)?;
    let Some(((type_key, name), attrs)) = entries.split_first() else {
        checker.push(
            Diagnostic::new(checker.at(item.pos), "empty resource")
                .hint("start it with its type and name, e.g. `- file: /etc/motd`"),
        );
        return Err(None);
    };
    let kinds = Kind::ALL.map(Kind::name);
    let Some(kind) = Kind::from_name(&type_key.name) else {
        let declared_elsewhere = entries
            .iter()
            .find(|(k, _)| Kind::from_name(&k.name).is_some());
        let hint = match declared_elsewhere {
            Some((k, _)) => format!("put the type key `{}` first in the resource", k.name),
            None => did_you_mean(&type_key.name, kinds)
                .unwrap_or_else(|| format!("resource types: {}", kinds.join(", "))),
        };
        checker.push(
            Diagnostic::new(
                checker.at(type_key.pos),
                format!("unknown resource type `{}`", type_key.name),
            )
            .key(type_key.name.clone())
            .hint(hint),
        );
        return Err(None);
    };
    let before = checker.errors.len();
    if name.as_str().is_none_or(str::is_empty) {
        checker.push(
            Diagnostic::new(
                checker.at(name.pos),
                format!(
                    "a `{kind}` resource needs a name, found {}",
                    name.value.kind()
                ),
            )
            .key(kind.name())
            .hint(if matches!(name.value, Value::Map(_)) {
                "a name that starts with `{{` must be quoted: write \"{{root}}/motd\"".to_owned()
            } else if kind.is_path() {
                format!("write e.g. `- {kind}: /etc/example`")
            } else {
                format!("write e.g. `- {kind}: example`")
            }),
        );
    }
    let specific = kind.attributes();
    let allowed: Vec<&str> = specific
        .iter()
        .chain(COMMON_ATTRIBUTES)
        .map(|a| a.name)
        .collect();
    for (key, value) in attrs {
        if let Some(other) =
            Kind::from_name(&key.name).filter(|_| !allowed.contains(&key.name.as_str()))
        {
            checker.push(
                Diagnostic::new(
                    checker.at(key.pos),
                    format!("a resource has one type, but this one has `{kind}` and `{other}`"),
                )
                .key(key.name.clone())
                .hint("start a new list entry with `- ` for the second resource"),
            );
            continue;
        }
        match specific
            .iter()
            .chain(COMMON_ATTRIBUTES)
            .find(|a| a.name == key.name)
        {
            Some(spec) => checker.attribute(key, value, spec.ty),
            None => {
                let hint = did_you_mean(&key.name, allowed.iter().copied())
                    .unwrap_or_else(|| format!("`{kind}` accepts: {}", allowed.join(", ")));
                checker.push(
                    Diagnostic::new(
                        checker.at(key.pos),
                        format!("unknown key `{}` in a `{kind}` resource", key.name),
                    )
                    .key(key.name.clone())
                    .hint(hint),
                );
            }
        }
    }
    if checker.errors.len() > before {
        return Err(Some((kind, name.clone())));
    }
    let pos = type_key.pos;
    let Value::Map(mut entries) = item.value else {
        return Err(None);
    };
    let (_, name) = entries.remove(0);
    Ok(ResourceDecl {
        kind,
        pos,
        name,
        attrs: entries,
    })
}
