//! The manifest language: loading roles and environments from a repository,
//! with every value's position kept for diagnostics.
//!
//! This module knows the files; [`crate::catalog`] turns them into the desired
//! state of one host.

pub mod diagnostic;
pub mod environment;
pub mod json_schema;
pub mod kinds;
pub mod node;
pub mod role;
pub mod schema;
pub mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use diagnostic::{Diagnostic, Location, Sources, did_you_mean};
use environment::{Environment, HostEntry};
use node::{Node, Pos};
use role::Role;
use schema::Checker;

/// Variable names that templates get from tend itself.
pub const RESERVED_VARS: &[&str] = &["host", "env", "roles"];

/// A repository of manifests, loaded on demand.
pub struct Repo {
    pub root: PathBuf,
    pub sources: Sources,
    pub environments: Vec<Environment>,
    /// Roles loaded so far; `None` when the role could not be read.
    roles: BTreeMap<String, Option<Arc<Role>>>,
    /// Problems found while loading.
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read so far, relative to the root (for the catalog cache).
    pub inputs: std::collections::BTreeSet<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("`{0}` has no `manifests/` folder; is this a tend repository? (use `--repo DIR`)")]
    NotARepo(PathBuf),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Repo {
    /// Opens a repository and reads all its environment files.
    pub fn open(root: &Path) -> Result<Repo, RepoError> {
        let manifests = root.join("manifests");
        if !manifests.is_dir() {
            return Err(RepoError::NotARepo(root.to_path_buf()));
        }
        let mut repo = Repo {
            root: root.to_path_buf(),
            sources: Sources::new(root),
            environments: Vec::new(),
            roles: BTreeMap::new(),
            diagnostics: Vec::new(),
            inputs: std::collections::BTreeSet::new(),
        };
        let mut names = Vec::new();
        for entry in fs_err::read_dir(&manifests)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if let Some(stem) = file_name
                .strip_suffix(".yaml")
                .or_else(|| file_name.strip_suffix(".yml"))
            {
                names.push((stem.to_owned(), file_name.to_owned()));
            }
        }
        names.sort();
        for (name, file_name) in names {
            let rel = PathBuf::from("manifests").join(file_name);
            if let Some(root_node) = repo.parse(&rel)? {
                let file: Arc<Path> = Arc::from(rel.as_path());
                let mut checker = Checker::new(&file);
                let env = environment::read(&name, &root_node, &mut checker);
                repo.diagnostics.append(&mut checker.errors);
                repo.environments.push(env);
            }
        }
        Ok(repo)
    }

    /// Reads and parses one YAML file (path relative to the repository).
    /// A syntax error becomes a diagnostic and `None`.
    fn parse(&mut self, rel: &Path) -> Result<Option<Node>, std::io::Error> {
        let file: Arc<Path> = Arc::from(rel);
        // Refused before it is read: memory stays bounded whatever the
        // repository holds.
        let size = fs_err::metadata(self.root.join(rel))?.len();
        let limit = node::max_file_bytes();
        if size > limit {
            self.inputs.insert(rel.to_path_buf());
            self.diagnostics.push(
                Diagnostic::new(
                    Location::new(&file, Pos { line: 1, col: 1 }),
                    format!("this file is {size} bytes, more than a manifest may be ({limit} bytes)"),
                )
                .hint(format!(
                    "split it (roles can include roles; big contents belong in `files/`), or raise the limit with `TEND_YAML_LIMITS={}`",
                    node::limit_factor() * 2
                )),
            );
            return Ok(None);
        }
        let text = fs_err::read_to_string(self.root.join(rel))?;
        self.inputs.insert(rel.to_path_buf());
        match parse_text(&file, &text) {
            Ok(node) => Ok(Some(node)),
            Err(d) => {
                self.diagnostics.push(*d);
                Ok(None)
            }
        }
    }

    /// The names of the roles in `roles/`, sorted.
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(self.root.join("roles"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("role.yaml").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// Loads a role once; `None` if it does not exist or is not valid YAML.
    /// Problems found are added to `diagnostics`.
    pub fn role(&mut self, name: &str) -> Result<Option<Arc<Role>>, std::io::Error> {
        if let Some(loaded) = self.roles.get(name) {
            return Ok(loaded.clone());
        }
        let dir = PathBuf::from("roles").join(name);
        let rel = dir.join("role.yaml");
        if !self.has_role_file(name) {
            self.roles.insert(name.to_owned(), None);
            return Ok(None);
        }
        // A role with errors is still returned (its valid resources), so
        // that one run reports the problems of the rest too.
        let loaded = self.parse(&rel)?.map(|root| {
            let file: Arc<Path> = Arc::from(rel.as_path());
            let mut checker = Checker::new(&file);
            let role = role::read(name, dir, root, &mut checker);
            self.diagnostics.append(&mut checker.errors);
            Arc::new(role)
        });
        self.roles.insert(name.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// Whether `roles/<name>/role.yaml` exists, for a name that cannot
    /// point outside `roles/`.
    fn has_role_file(&self, name: &str) -> bool {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        valid
            && self
                .root
                .join("roles")
                .join(name)
                .join("role.yaml")
                .is_file()
    }

    /// A diagnostic for a role name that names no role.
    pub fn unknown_role(&self, name: &str, at: &Location) -> Diagnostic {
        let names = self.role_names();
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Diagnostic::new(at.clone(), format!("`{name}` is not a role name")).hint(
                format!(
                    "a role is a folder of `roles/`, named plainly; existing roles: {}",
                    names.join(", ")
                ),
            );
        }
        let hint = did_you_mean(name, names.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "create `roles/{name}/role.yaml`; existing roles: {}",
                names.join(", ")
            )
        });
        Diagnostic::new(at.clone(), format!("no role named `{name}`")).hint(hint)
    }

    /// The roles a host gets, included roles first, each once. An include
    /// cycle or a missing role is a diagnostic.
    pub fn resolve_roles(
        &mut self,
        roots: &[(String, Location)],
    ) -> Result<Vec<Arc<Role>>, Vec<Diagnostic>> {
        let mut ordered: Vec<Arc<Role>> = Vec::new();
        let mut errors = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        for (name, at) in roots {
            self.visit_role(name, at, &mut stack, &mut ordered, &mut errors)
                .map_err(|e| vec![io_diagnostic(at, &e)])?;
        }
        if errors.is_empty() {
            Ok(ordered)
        } else {
            Err(errors)
        }
    }

    fn visit_role(
        &mut self,
        name: &str,
        at: &Location,
        stack: &mut Vec<String>,
        ordered: &mut Vec<Arc<Role>>,
        errors: &mut Vec<Diagnostic>,
    ) -> Result<(), std::io::Error> {
        if ordered.iter().any(|r| r.name == name) {
            return Ok(());
        }
        if let Some(start) = stack.iter().position(|s| s == name) {
            let mut cycle: Vec<&str> = stack[start..].iter().map(String::as_str).collect();
            cycle.push(name);
            errors.push(
                Diagnostic::new(at.clone(), format!("include cycle: {}", cycle.join(" -> ")))
                    .key("include")
                    .hint("a role cannot include itself, directly or through other roles"),
            );
            return Ok(());
        }
        let Some(role) = self.role(name)? else {
            if !self.has_role_file(name) {
                errors.push(self.unknown_role(name, at));
            }
            // Otherwise it is not valid YAML, which is already reported.
            return Ok(());
        };
        stack.push(name.to_owned());
        for (include, include_at) in &role.includes {
            self.visit_role(include, include_at, stack, ordered, errors)?;
        }
        stack.pop();
        if !ordered.iter().any(|r| r.name == name) {
            ordered.push(role);
        }
        Ok(())
    }

    /// The environment and host entry a host belongs to: exactly one.
    pub fn find_host(
        &self,
        env: Option<&str>,
        host: &str,
    ) -> Result<(&Environment, &HostEntry), Diagnostic> {
        let manifests: Arc<Path> = Arc::from(Path::new("manifests"));
        let whole = Location::new(&manifests, Pos::default());
        let envs: Vec<&Environment> = match env {
            Some(name) => {
                let Some(found) = self.environments.iter().find(|e| e.name == name) else {
                    let names: Vec<&str> =
                        self.environments.iter().map(|e| e.name.as_str()).collect();
                    return Err(
                        Diagnostic::new(whole, format!("no environment named `{name}`")).hint(
                            did_you_mean(name, names.iter().copied())
                                .unwrap_or_else(|| format!("environments: {}", names.join(", "))),
                        ),
                    );
                };
                vec![found]
            }
            None => self.environments.iter().collect(),
        };
        let matches: Vec<(&Environment, &HostEntry)> = envs
            .iter()
            .flat_map(|e| {
                e.hosts
                    .iter()
                    .filter(|h| h.matches(host))
                    .map(move |h| (*e, h))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => {
                let scope = env.map_or_else(
                    || "no environment".to_owned(),
                    |e| format!("environment `{e}`"),
                );
                let patterns: Vec<String> = envs
                    .iter()
                    .flat_map(|e| {
                        e.hosts
                            .iter()
                            .map(move |h| format!("{} ({})", h.pattern, e.name))
                    })
                    .collect();
                Err(Diagnostic::new(whole, format!("host `{host}` is matched by {scope}"))
                    .key("match")
                    .hint(format!(
                        "add a host entry whose `match:` covers it, or pass `--host`; entries: {}",
                        patterns.join(", ")
                    )))
            }
            [(first_env, first), rest @ ..] => {
                let mut d = Diagnostic::new(
                    first.location.clone(),
                    format!(
                        "host `{host}` is matched by more than one host entry (`{}` in `{}` and others)",
                        first.pattern, first_env.name
                    ),
                )
                .key("match")
                .hint("make the `match:` globs disjoint so each host has exactly one entry");
                for (e, h) in rest {
                    d = d.related(
                        h.location.clone(),
                        format!("also matched by `{}` in `{}`", h.pattern, e.name),
                    );
                }
                Err(d)
            }
        }
    }
}

/// Parses one manifest file's text, with the loader's limits; a YAML
/// error (or a limit reached) is a diagnostic at its place.
fn parse_text(file: &Arc<Path>, text: &str) -> Result<Node, Box<Diagnostic>> {
    if text.trim().is_empty() {
        return Ok(Node {
            pos: Pos { line: 1, col: 1 },
            value: node::Value::Null,
        });
    }
    match serde_saphyr::from_str_with_options::<Node>(text, node::parse_options(text.len())) {
        Ok(node) => Ok(node),
        Err(e) if node::limit_reached(&e, text.len()).is_some() => {
            let (what, limit) = node::limit_reached(&e, text.len()).expect("checked");
            let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                line: u32::try_from(l.line()).unwrap_or(1).max(1),
                col: u32::try_from(l.column()).unwrap_or(1).max(1),
            });
            let factor = node::limit_factor();
            Err(Box::new(
                Diagnostic::new(
                    Location::new(file, pos),
                    format!(
                        "this file goes past a YAML limit: more than {limit} {what} (the limit for a file of {} bytes{})",
                        text.len(),
                        if factor > 1 { format!(", times TEND_YAML_LIMITS={factor}") } else { String::new() }
                    ),
                )
                .hint(format!(
                    "the limits guard against alias bombs and runaway nesting and grow with the file's size; if this file is meant to be so, raise them all with `TEND_YAML_LIMITS={}`",
                    factor * 4
                )),
            ))
        }
        Err(e) => {
            let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                line: u32::try_from(l.line()).unwrap_or(1).max(1),
                col: u32::try_from(l.column()).unwrap_or(1).max(1),
            });
            let line = text.lines().nth(pos.line as usize - 1).unwrap_or("");
            let hint = if line.contains(": {{") || line.contains("- {{") {
                "a value that starts with `{{` must be quoted: write \"{{root}}/motd\""
            } else {
                "check the indentation and quoting around this place"
            };
            Err(Box::new(
                Diagnostic::new(
                    Location::new(file, pos),
                    format!("invalid YAML: {}", yaml_message(&e)),
                )
                .hint(hint),
            ))
        }
    }
}

/// A manifest file checked on its own, from its text: what the loader does
/// to each role or environment file (for fuzzing, and tools that have the
/// text but no repository).
pub fn check_text(environment: bool, name: &str, text: &str) -> Vec<Diagnostic> {
    let path = if environment {
        "manifests/file.yaml"
    } else {
        "roles/role/role.yaml"
    };
    let file: Arc<Path> = Arc::from(Path::new(path));
    let root = match parse_text(&file, text) {
        Ok(root) => root,
        Err(d) => return vec![*d],
    };
    let mut checker = Checker::new(&file);
    if environment {
        environment::read(name, &root, &mut checker);
    } else {
        role::read(name, PathBuf::from("roles").join(name), root, &mut checker);
    }
    checker.errors
}

pub fn io_diagnostic(at: &Location, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(at.clone(), format!("cannot read: {e}"))
}

/// serde-saphyr's message without its own location suffix (we print ours).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("syntax error");
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_owned(),
        None => first.to_owned(),
    }
}
