//! Structural checks shared by role and environment files: allowed keys,
//! value types, and the hints that go with each mistake.

use std::path::Path;
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Location, did_you_mean};
use super::kinds::AttrType;
use super::node::{Key, Node, Value};

/// Collects diagnostics for one file.
pub struct Checker<'a> {
    pub file: &'a Arc<Path>,
    pub errors: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a Arc<Path>) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    pub fn at(&self, pos: super::node::Pos) -> Location {
        Location::new(self.file, pos)
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.errors.push(diagnostic);
    }

    /// The entries of a mapping, or an error saying a mapping was expected.
    pub fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        key: Option<&str>,
    ) -> Option<&'n [(Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            Value::Null => Some(&[]),
            other => {
                let mut d = Diagnostic::new(
                    self.at(node.pos),
                    format!("{what} must be a mapping, found {}", other.kind()),
                );
                if let Some(key) = key {
                    d = d.key(key);
                }
                self.push(d);
                None
            }
        }
    }

    /// Reports every key not in `allowed`, with a suggestion.
    pub fn unknown_keys(&mut self, entries: &[(Key, Node)], allowed: &[&str], context: &str) {
        for (key, _) in entries {
            if !allowed.contains(&key.name.as_str()) {
                let hint = did_you_mean(&key.name, allowed.iter().copied())
                    .unwrap_or_else(|| format!("allowed keys here: {}", allowed.join(", ")));
                self.push(
                    Diagnostic::new(
                        self.at(key.pos),
                        format!("unknown key `{}` in {context}", key.name),
                    )
                    .key(key.name.clone())
                    .hint(hint),
                );
            }
        }
    }

    /// A string value (numbers are taken as their text), or an error.
    pub fn string(&mut self, key: &Key, node: &Node) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            other => {
                self.push(
                    Diagnostic::new(
                        self.at(node.pos),
                        format!("`{}` must be a string, found {}", key.name, other.kind()),
                    )
                    .key(key.name.clone())
                    .hint("quote the value"),
                );
                None
            }
        }
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn string_list(&mut self, key: &Key, node: &Node) -> Option<Vec<(String, Location)>> {
        match &node.value {
            Value::Str(s) => Some(vec![(s.clone(), self.at(node.pos))]),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    match &item.value {
                        Value::Str(s) => out.push((s.clone(), self.at(item.pos))),
                        other => self.push(
                            Diagnostic::new(
                                self.at(item.pos),
                                format!("`{}` must list strings, found {}", key.name, other.kind()),
                            )
                            .key(key.name.clone())
                            .hint("write a list like [a, b]"),
                        ),
                    }
                }
                Some(out)
            }
            Value::Null => Some(Vec::new()),
            other => {
                self.push(
                    Diagnostic::new(
                        self.at(node.pos),
                        format!(
                            "`{}` must be a list of strings, found {}",
                            key.name,
                            other.kind()
                        ),
                    )
                    .key(key.name.clone())
                    .hint("write a list like [a, b]"),
                );
                None
            }
        }
    }

    /// Checks a resource attribute against its declared type.
    pub fn attribute(&mut self, key: &Key, node: &Node, ty: AttrType) {
        let bad = |found: &str, expected: &str, hint: &str| {
            Diagnostic::new(
                Location::new(self.file, node.pos),
                format!("`{}` must be {expected}, found {found}", key.name),
            )
            .key(key.name.clone())
            .hint(hint.to_owned())
        };
        let d = match (ty, &node.value) {
            (AttrType::Str, Value::Str(_) | Value::Int(_) | Value::Float(_))
            | (AttrType::Bool, Value::Bool(_))
            | (AttrType::Mode, Value::Str(_))
            | (AttrType::Vars, Value::Map(_)) => return,
            (AttrType::Int, Value::Int(i)) if *i >= 0 => return,
            (AttrType::Int, other) => bad(
                other.kind(),
                "a whole number",
                "write a number such as 1001, unquoted",
            ),
            (AttrType::List, _) => {
                self.string_list(key, node);
                return;
            }
            (AttrType::Refs, _) => {
                self.string_list(key, node);
                return;
            }
            (AttrType::OneOf(words), Value::Str(s)) => {
                if s.contains("{{") || words.contains(&s.as_str()) {
                    return;
                }
                let hint = did_you_mean(s, words.iter().copied())
                    .unwrap_or_else(|| format!("write one of: {}", words.join(", ")));
                Diagnostic::new(self.at(node.pos), format!("`{}` cannot be `{s}`", key.name))
                    .key(key.name.clone())
                    .hint(hint)
            }
            (AttrType::OneOf(words), other) => bad(
                other.kind(),
                "a word",
                &format!("write one of: {}", words.join(", ")),
            ),
            (AttrType::Mode, Value::Int(i)) => bad(
                "an unquoted number",
                "a quoted octal string",
                &format!(
                    "YAML reads an unquoted {i} as a decimal number; write mode: \"{}\"",
                    if i.to_string().len() == 3 {
                        format!("0{i}")
                    } else {
                        i.to_string()
                    }
                ),
            ),
            (AttrType::Mode, other) => bad(
                other.kind(),
                "a quoted octal string",
                "write e.g. mode: \"0644\"",
            ),
            (AttrType::Bool, Value::Str(s)) => bad(
                &format!("the string `{s}`"),
                "true or false",
                "write true or false, unquoted",
            ),
            (AttrType::Bool, other) => bad(other.kind(), "true or false", "write true or false"),
            (AttrType::Str, Value::Map(_)) => bad(
                "a mapping",
                "a string",
                "a value that starts with `{{` must be quoted: write \"{{name}}\"",
            ),
            (AttrType::Str, other) => bad(other.kind(), "a string", "quote the value"),
            (AttrType::Vars, other) => bad(
                other.kind(),
                "a mapping of variables",
                "write e.g. vars: { port: 8080 }",
            ),
            (AttrType::When, Value::Map(entries))
                if entries.len() == 1
                    && entries[0].0.name == "flag"
                    && matches!(entries[0].1.value, Value::Str(_)) =>
            {
                return;
            }
            (AttrType::When, other) => bad(
                other.kind(),
                "`{ flag: NAME }`",
                "write e.g. when: { flag: search_v2 } (a flag of the environment's `flags:`)",
            ),
        };
        self.push(d);
    }
}
