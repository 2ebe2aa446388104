//! Reading one resource declaration for one host: attributes rendered,
//! typed, and every problem recorded against the attribute's position.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::{Mode, Reference, ResourceId};
use crate::manifest::diagnostic::{Diagnostic, Location};
use crate::manifest::node::{Node, Value};
use crate::manifest::role::{ResourceDecl, Role};
use crate::template::Renderer;

pub struct Attrs<'a> {
    pub decl: &'a ResourceDecl,
    pub role: &'a Role,
    /// The repository's real path (symlinks resolved).
    pub repo_root: &'a Path,
    pub renderer: &'a mut Renderer,
    pub errors: Vec<Diagnostic>,
    /// Per-resource template variables (`vars:`), when the type has them.
    pub extra_vars: Option<Map<String, Json>>,
    /// Files of the role read for this resource (templates, sources),
    /// relative to the repository.
    pub inputs: Vec<PathBuf>,
}

impl<'a> Attrs<'a> {
    pub fn new(
        decl: &'a ResourceDecl,
        role: &'a Role,
        repo_root: &'a Path,
        renderer: &'a mut Renderer,
    ) -> Self {
        Self {
            decl,
            role,
            repo_root,
            renderer,
            errors: Vec::new(),
            extra_vars: None,
            inputs: Vec::new(),
        }
    }

    pub fn at(&self, node: &Node) -> Location {
        Location::new(&self.role.file, node.pos)
    }

    pub fn has(&self, key: &str) -> bool {
        self.decl.attr(key).is_some()
    }

    /// Records a problem with attribute `key` (or the name when absent).
    pub fn error(&mut self, key: &str, message: impl Into<String>, hint: impl Into<String>) {
        let (at, key) = match self.decl.attr(key) {
            Some((k, v)) => (Location::new(&self.role.file, v.pos), k.name.clone()),
            None => (self.at(&self.decl.name), self.decl.kind.name().to_owned()),
        };
        self.errors
            .push(Diagnostic::new(at, message).key(key).hint(hint));
    }

    /// The resource's name, rendered.
    pub fn name(&mut self) -> Option<String> {
        let node = &self.decl.name;
        let text = scalar_text(node)?;
        let at = self.at(node);
        self.render(&text, &at, self.decl.kind.name())
    }

    fn render(&mut self, text: &str, at: &Location, key: &str) -> Option<String> {
        match self
            .renderer
            .render_str(text, at, key, self.extra_vars.as_ref())
        {
            Ok(s) => Some(s),
            Err(d) => {
                self.errors.push(d);
                None
            }
        }
    }

    /// A string attribute, rendered.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let (_, node) = self.decl.attr(key)?;
        let text = scalar_text(node)?;
        let at = self.at(node);
        self.render(&text, &at, key)
    }

    /// A whole number (checked to be non-negative when loaded).
    pub fn int(&mut self, key: &str) -> Option<u64> {
        match self.decl.attr(key)?.1.value {
            Value::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// A list of strings, each rendered.
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        let items = self.rendered_list(key)?;
        Some(items.into_iter().map(|(text, _)| text).collect())
    }

    /// The items of a list attribute (a single string is a list of one),
    /// each rendered, with its place; `None` when absent or not renderable.
    fn rendered_list(&mut self, key: &str) -> Option<Vec<(String, Location)>> {
        let (_, node) = self.decl.attr(key)?;
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            _ => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            let Some(text) = scalar_text(item) else {
                continue;
            };
            let at = self.at(item);
            out.push((self.render(&text, &at, key)?, at));
        }
        Some(out)
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.decl.attr(key)?.1.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn mode(&mut self, key: &str) -> Option<Mode> {
        let text = self.string(key)?;
        match Mode::parse(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error(key, e, "write e.g. mode: \"0644\"");
                None
            }
        }
    }

    /// `state:` rendered and checked against the allowed words; `default`
    /// when absent.
    pub fn state(&mut self, allowed: &[&str], default: &'static str) -> String {
        let Some(state) = self.string("state") else {
            return default.to_owned();
        };
        if !allowed.contains(&state.as_str()) {
            let hint = format!("write one of: {}", allowed.join(", "));
            self.error("state", format!("`state` cannot be `{state}`"), hint);
        }
        state
    }

    /// `vars:` as JSON, for per-resource template variables.
    pub fn vars(&mut self, key: &str) -> Option<Map<String, Json>> {
        let (_, node) = self.decl.attr(key)?;
        match node.to_json() {
            Json::Object(map) => Some(map),
            _ => None,
        }
    }

    /// A list of references to other resources (rendered, parsed).
    pub fn references(&mut self, key: &str) -> Vec<Reference> {
        let mut out = Vec::new();
        for (text, at) in self.rendered_list(key).unwrap_or_default() {
            match ResourceId::parse(&text) {
                Ok(id) => out.push(Reference { id, location: at }),
                Err(e) => self.errors.push(
                    Diagnostic::new(at, e)
                        .key(key.to_owned())
                        .hint("refer to resources as `type:name`, e.g. `service:nginx`"),
                ),
            }
        }
        out
    }

    /// Resolves `rel` inside the role folder `sub` (`templates` or `files`),
    /// refusing anything that would leave it.
    pub fn role_file(&mut self, key: &str, rel: &str, sub: &str) -> Option<(PathBuf, PathBuf)> {
        let escapes = Path::new(rel).is_absolute()
            || Path::new(rel)
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            || rel.is_empty();
        let base = self.role.dir.join(sub);
        if escapes {
            self.error(
                key,
                format!("`{rel}` leaves the role's `{sub}/` folder"),
                format!(
                    "name a file inside `{}/`, without `..` or a leading `/`",
                    base.display()
                ),
            );
            return None;
        }
        let repo_rel = base.join(rel);
        let abs = self.repo_root.join(&repo_rel);
        self.inputs.push(repo_rel.clone());
        if self.renderer.has_template(&repo_rel) {
            return Some((repo_rel, abs));
        }
        // The file itself must not be a symlink pointing out of the repository.
        match fs_err::canonicalize(&abs) {
            Ok(real) => {
                if !real.starts_with(self.repo_root) {
                    self.error(
                        key,
                        format!(
                            "`{}` is a link to `{}`, outside the repository",
                            repo_rel.display(),
                            real.display()
                        ),
                        "keep templates and files as regular files inside the repository",
                    );
                    return None;
                }
            }
            Err(_) => {
                self.error(
                    key,
                    format!("`{}` does not exist", repo_rel.display()),
                    format!("create it, or check the file name in `{}`", base.display()),
                );
                return None;
            }
        }
        Some((repo_rel, abs))
    }

    /// Renders a template file of the role.
    pub fn template(&mut self, key: &str, rel: &str) -> Option<String> {
        let (repo_rel, abs) = self.role_file(key, rel, "templates")?;
        let text = if self.renderer.has_template(&repo_rel) {
            String::new()
        } else {
            match fs_err::read_to_string(&abs) {
                Ok(t) => t,
                Err(e) => {
                    self.error(
                        key,
                        format!("cannot read the template: {e}"),
                        "templates must be UTF-8 text",
                    );
                    return None;
                }
            }
        };
        let used_at = self
            .decl
            .attr(key)
            .map_or_else(|| self.at(&self.decl.name), |(_, v)| self.at(v));
        match self
            .renderer
            .render_file(&repo_rel, &text, &used_at, self.extra_vars.as_ref())
        {
            Ok(s) => Some(s),
            Err(d) => {
                self.errors.push(d);
                None
            }
        }
    }

    /// The bytes of a static file of the role.
    pub fn source(&mut self, key: &str, rel: &str) -> Option<Vec<u8>> {
        let (_, abs) = self.role_file(key, rel, "files")?;
        match fs_err::read(&abs) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.error(
                    key,
                    format!("cannot read the file: {e}"),
                    "check its permissions",
                );
                None
            }
        }
    }
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}
