//! Rendering templates for one host: handlebars in strict mode, no HTML
//! escaping (config files are not HTML), errors mapped to manifest places.

use std::collections::HashMap;
use std::path::Path;

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Handlebars, Path as HbPath, RenderErrorReason};
use serde_json::{Map, Value};

use crate::manifest::diagnostic::{Diagnostic, Location, did_you_mean};
use crate::manifest::node::Pos;

pub struct Renderer {
    handlebars: Handlebars<'static>,
    /// Variables and facts, as one JSON object.
    data: Value,
    /// Template files compiled so far, with their text and syntax tree.
    registered: HashMap<String, (String, Option<Template>)>,
}

impl Renderer {
    pub fn new(data: Map<String, Value>) -> Self {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(handlebars::no_escape);
        Self {
            handlebars,
            data: Value::Object(data),
            registered: HashMap::new(),
        }
    }

    pub fn data(&self) -> &Map<String, Value> {
        self.data.as_object().expect("render data is an object")
    }

    /// Whether a template file was already read and compiled.
    pub fn has_template(&self, name: &Path) -> bool {
        self.registered
            .contains_key(name.to_string_lossy().as_ref())
    }

    /// Renders a string from a manifest. Strings without `{{` are returned
    /// as they are, which keeps large catalogs cheap.
    pub fn render_str(
        &mut self,
        text: &str,
        at: &Location,
        key: &str,
        extra: Option<&Map<String, Value>>,
    ) -> Result<String, Diagnostic> {
        if !text.contains("{{") {
            return Ok(text.to_owned());
        }
        if let Some(done) = substitute(text, &self.data, extra) {
            return Ok(done);
        }
        if let Ok(compiled) = Template::compile(text)
            && let Some((path, line, _)) = undefined_condition(&compiled, &self.data, extra)
        {
            let pos = if line > 1 {
                Pos {
                    line: at.pos.line + u32::try_from(line - 1).unwrap_or(0),
                    col: 1,
                }
            } else {
                at.pos
            };
            return Err(undefined_condition_error(
                &path,
                Location::new(&at.file, pos),
                key,
            ));
        }
        let result = match extra {
            None => self.handlebars.render_template(text, &self.data),
            Some(extra) => self
                .handlebars
                .render_template(text, &merged(&self.data, extra)),
        };
        result.map_err(|e| {
            let pos = match (e.line_no, e.column_no) {
                // Point into the string when the error is on a later line of it.
                (Some(line), _) if line > 1 => Pos {
                    line: at.pos.line + u32::try_from(line - 1).unwrap_or(0),
                    col: 1,
                },
                _ => at.pos,
            };
            self.diagnostic(&e, Location::new(&at.file, pos), key, extra)
        })
    }

    /// Renders a template file (`name` is its path relative to the repository).
    pub fn render_file(
        &mut self,
        name: &Path,
        text: &str,
        used_at: &Location,
        extra: Option<&Map<String, Value>>,
    ) -> Result<String, Diagnostic> {
        let key = name.to_string_lossy().into_owned();
        let file: std::sync::Arc<Path> = std::sync::Arc::from(name);
        if !self.registered.contains_key(&key) {
            if let Err(e) = self.handlebars.register_template_string(&key, text) {
                let pos = e.pos().map_or(Pos { line: 1, col: 1 }, |(l, c)| Pos {
                    line: u32::try_from(l).unwrap_or(1),
                    col: u32::try_from(c).unwrap_or(1),
                });
                return Err(Diagnostic::new(
                    Location::new(&file, pos),
                    format!("invalid template: {}", e.reason()),
                )
                .key("template")
                .related(used_at.clone(), "used")
                .hint("handlebars syntax: {{name}}, {{#if x}}…{{/if}}, {{#each list}}…{{/each}}"));
            }
            let compiled = Template::compile(text).ok();
            self.registered
                .insert(key.clone(), (text.to_owned(), compiled));
        }
        let (text, compiled) = &self.registered[&key];
        if let Some(done) = substitute(text, &self.data, extra) {
            return Ok(done);
        }
        if let Some((path, line, col)) = compiled
            .as_ref()
            .and_then(|c| undefined_condition(c, &self.data, extra))
        {
            let pos = Pos {
                line: u32::try_from(line).unwrap_or(1),
                col: u32::try_from(col).unwrap_or(1),
            };
            return Err(
                undefined_condition_error(&path, Location::new(&file, pos), "template")
                    .related(used_at.clone(), "used"),
            );
        }
        let result = match extra {
            None => self.handlebars.render(&key, &self.data),
            Some(extra) => self.handlebars.render(&key, &merged(&self.data, extra)),
        };
        result.map_err(|e| {
            let pos = Pos {
                line: e.line_no.and_then(|l| u32::try_from(l).ok()).unwrap_or(1),
                col: e.column_no.and_then(|c| u32::try_from(c).ok()).unwrap_or(1),
            };
            self.diagnostic(&e, Location::new(&file, pos), "template", extra)
                .related(used_at.clone(), "used")
        })
    }

    fn diagnostic(
        &self,
        e: &handlebars::RenderError,
        at: Location,
        key: &str,
        extra: Option<&Map<String, Value>>,
    ) -> Diagnostic {
        match e.reason() {
            RenderErrorReason::MissingVariable(path) => {
                let path = path.clone().unwrap_or_default();
                let mut known: Vec<String> = self.data().keys().cloned().collect();
                if let Some(extra) = extra {
                    known.extend(extra.keys().cloned());
                }
                if let Some(Value::Object(host)) = self.data().get("host") {
                    known.extend(host.keys().map(|k| format!("host.{k}")));
                }
                let hint = did_you_mean(&path, known.iter().map(String::as_str)).unwrap_or_else(|| {
                    format!("define `{path}` under `vars:` in the role, the environment or the host entry")
                });
                Diagnostic::new(at, format!("undefined variable `{path}` in `{key}`"))
                    .key(key.to_owned())
                    .hint(hint)
            }
            other => Diagnostic::new(at, format!("cannot render `{key}`: {other}"))
                .key(key.to_owned())
                .hint("check the template's handlebars syntax"),
        }
    }
}

/// Handlebars treats an undefined variable in `{{#if x}}` or
/// `{{#unless x}}` as false, even in strict mode. tend's rule is that a
/// variable a template uses must be defined, so those are found here: the
/// first such path, with its line and column. Blocks that change the scope
/// (`#each`, `#with`) are not entered.
fn undefined_condition(
    template: &Template,
    data: &Value,
    extra: Option<&Map<String, Value>>,
) -> Option<(String, usize, usize)> {
    for (i, element) in template.elements.iter().enumerate() {
        let TemplateElement::HelperBlock(block) = element else {
            continue;
        };
        let Parameter::Name(name) = &block.name else {
            continue;
        };
        if name != "if" && name != "unless" {
            continue;
        }
        if let Some(Parameter::Path(HbPath::Relative((_, raw)))) = block.params.first() {
            let path = raw.strip_prefix("this.").unwrap_or(raw);
            if !path.starts_with('@') && !path.contains('/') && !defined(path, data, extra) {
                let (line, col) = template.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
                return Some((path.to_owned(), line, col));
            }
        }
        for inner in [&block.template, &block.inverse].into_iter().flatten() {
            if let Some(found) = undefined_condition(inner, data, extra) {
                return Some(found);
            }
        }
    }
    None
}

fn defined(path: &str, data: &Value, extra: Option<&Map<String, Value>>) -> bool {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut value) = extra.and_then(|e| e.get(first)).or_else(|| data.get(first)) else {
        return false;
    };
    for part in parts {
        match value.as_object().and_then(|o| o.get(part)) {
            Some(v) => value = v,
            None => return false,
        }
    }
    true
}

fn undefined_condition_error(path: &str, at: Location, key: &str) -> Diagnostic {
    Diagnostic::new(at, format!("undefined variable `{path}` in a condition of `{key}`"))
        .key(key.to_owned())
        .hint(format!(
            "handlebars would read it as false; give `{path}` a default (e.g. `{path}: false`) under the role's `vars:`"
        ))
}

fn merged(base: &Value, extra: &Map<String, Value>) -> Value {
    let mut data = base.clone();
    if let Value::Object(map) = &mut data {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    data
}

/// Renders a template made only of text and `{{name}}` / `{{a.b}}` references
/// to strings, numbers and booleans, as handlebars would. Anything else
/// (helpers, blocks, missing or non-scalar values) returns `None` and goes
/// through handlebars. Resource names are nearly always of this simple form,
/// and compiling each with handlebars dominated large catalogs.
fn substitute(text: &str, data: &Value, extra: Option<&Map<String, Value>>) -> Option<String> {
    if text.contains("\\{{") {
        // An escaped mustache: leave it to handlebars.
        return None;
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let name = &after[..end];
        let simple = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..");
        if !simple {
            return None;
        }
        let mut parts = name.split('.');
        let first = parts.next()?;
        let mut value = extra
            .and_then(|e| e.get(first))
            .or_else(|| data.get(first))?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        match value {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            _ => return None,
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_substitution_agrees_with_handlebars() {
        let data = serde_json::json!({
            "root": "/srv", "port": 8080, "ratio": 1.5, "on": true,
            "host": { "name": "web-1" }, "list": [1, 2], "nothing": null,
        });
        let Value::Object(map) = data.clone() else {
            unreachable!()
        };
        let mut r = Renderer::new(map);
        let at = Location::new(&std::sync::Arc::from(Path::new("x")), Pos::default());
        for template in [
            "{{root}}/a",
            "{{host.name}}:{{port}}",
            "{{ratio}} {{on}}",
            "x{{root}}{{root}}y",
            "{{list}}",
            "{{#if on}}yes{{/if}}",
            "{{ root }}",
            "{{nothing}}",
            "\\{{root}} {{root}}",
            "{{~root}} x",
            "{{this.root}}",
        ] {
            let expected = r.handlebars.render_template(template, &data).unwrap();
            assert_eq!(
                r.render_str(template, &at, "k", None).unwrap(),
                expected,
                "{template}"
            );
        }
        assert!(substitute("{{missing}}", &data, None).is_none());
        assert!(r.render_str("{{missing}}", &at, "k", None).is_err());
    }
}
