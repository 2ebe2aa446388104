//! The catalog: the resolved desired state of one host.
//!
//! Raw manifests go in; a validated catalog comes out, with every template
//! rendered, every reference resolved and the resources in the order they
//! must be applied. Nothing downstream sees unvalidated input.

pub mod cache;
mod graph;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::facts::Facts;
use crate::manifest::Repo;
use crate::manifest::diagnostic::{Diagnostic, Location};
use crate::manifest::role::{ResourceDecl, Role};
use crate::resource::attrs::Attrs;
use crate::resource::{self, Desired, Kind, Resource, ResourceId};
use crate::template::Renderer;

#[derive(Debug, Serialize)]
pub struct Catalog {
    pub host: String,
    pub environment: String,
    pub roles: Vec<String>,
    pub resources: Vec<Resource>,
    /// Indices into `resources`, in the order to apply them.
    #[serde(skip)]
    pub order: Vec<usize>,
    /// For each resource, the resources that must succeed before it.
    #[serde(skip)]
    pub requires: Vec<Vec<usize>>,
    /// For each resource, the resources whose change restarts (or runs) it.
    #[serde(skip)]
    pub notifiers: Vec<Vec<usize>>,
    /// For each resource, the digest of its desired state.
    #[serde(skip)]
    pub digests: Vec<resource::Digest>,
    /// Every file of the repository the catalog was compiled from.
    #[serde(skip)]
    pub inputs: BTreeSet<PathBuf>,
}

impl Catalog {
    /// Every path the catalog manages (present or absent).
    pub fn managed_paths(&self) -> BTreeSet<&Path> {
        self.resources
            .iter()
            .filter_map(|r| r.desired.path())
            .collect()
    }
}

/// What a catalog is compiled for.
pub struct Target<'a> {
    /// Only this environment, or all of them.
    pub environment: Option<&'a str>,
    pub host: &'a str,
    pub facts: &'a Facts,
}

/// Compiles the catalog of one host. All problems found are returned together.
pub fn compile(repo: &mut Repo, target: &Target) -> Result<Catalog, Vec<Diagnostic>> {
    compile_with(repo, target, &Map::new())
}

/// Compiles as [`compile`] does, with `overrides` above every var (how
/// `tend parity` asks which var makes two environments differ).
pub fn compile_with(
    repo: &mut Repo,
    target: &Target,
    overrides: &Map<String, Json>,
) -> Result<Catalog, Vec<Diagnostic>> {
    // A broken environment file could hide the entry this host belongs to.
    if !repo.diagnostics.is_empty() {
        return Err(std::mem::take(&mut repo.diagnostics));
    }
    let (env_name, entry_location, entry_roles, vars) = {
        let (env, entry) = repo
            .find_host(target.environment, target.host)
            .map_err(|d| vec![d])?;
        let mut vars = Map::new();
        for (k, v) in &env.vars {
            vars.insert(k.name.clone(), v.to_json());
        }
        let mut host_vars = Map::new();
        for (k, v) in &entry.vars {
            host_vars.insert(k.name.clone(), v.to_json());
        }
        host_vars.extend(
            overrides
                .iter()
                .filter(|(k, _)| k.as_str() != "env")
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        (
            env.name.clone(),
            entry.location.clone(),
            entry.roles.clone(),
            (vars, host_vars),
        )
    };
    if entry_roles.is_empty() {
        return Err(vec![
            Diagnostic::new(
                entry_location,
                format!("host entry for `{}` lists no roles", target.host),
            )
            .key("roles")
            .hint("add e.g. `roles: [base]`"),
        ]);
    }
    let clock = std::time::Instant::now();
    let roles = match repo.resolve_roles(&entry_roles) {
        Ok(roles) => roles,
        Err(mut errors) => {
            errors.append(&mut repo.diagnostics);
            return Err(errors);
        }
    };
    tracing::debug!(
        elapsed_ms = clock.elapsed().as_millis(),
        roles = roles.len(),
        "roles loaded"
    );
    // Problems in the roles' files; compiling goes on to find the rest.
    let load_errors = std::mem::take(&mut repo.diagnostics);
    let (env_vars, host_vars) = vars;
    // `env` is a var too, for the question which knob makes a difference.
    let env_name = match overrides.get("env") {
        Some(Json::String(name)) => name.clone(),
        _ => env_name,
    };
    compile_roles(
        repo,
        &roles,
        &env_name,
        target,
        env_vars,
        host_vars,
        load_errors,
    )
}

/// Variable precedence: role defaults (in role order) < environment < host entry.
fn template_data(
    roles: &[Arc<Role>],
    env: &str,
    facts: &Facts,
    env_vars: Map<String, Json>,
    host_vars: Map<String, Json>,
) -> Map<String, Json> {
    let mut data = Map::new();
    for role in roles {
        for (k, v) in &role.vars {
            data.insert(k.name.clone(), v.to_json());
        }
    }
    data.extend(env_vars);
    data.extend(host_vars);
    data.insert(
        "host".into(),
        serde_json::to_value(facts).expect("facts serialise"),
    );
    data.insert("env".into(), Json::String(env.to_owned()));
    data.insert(
        "roles".into(),
        Json::Array(roles.iter().map(|r| Json::String(r.name.clone())).collect()),
    );
    data
}

fn compile_roles(
    repo: &Repo,
    roles: &[Arc<Role>],
    env: &str,
    target: &Target,
    env_vars: Map<String, Json>,
    host_vars: Map<String, Json>,
    mut errors: Vec<Diagnostic>,
) -> Result<Catalog, Vec<Diagnostic>> {
    let mut renderer = Renderer::new(template_data(roles, env, target.facts, env_vars, host_vars));
    let root = fs_err::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
    let mut resources: Vec<Resource> = Vec::new();
    let mut by_id: HashMap<ResourceId, usize> = HashMap::new();
    let mut unbuilt = Unbuilt::default();
    let mut inputs = repo.inputs.clone();
    for role in roles {
        for (kind, name) in &role.unbuilt {
            let name = name.as_str().and_then(|text| {
                let at = Location::new(&role.file, name.pos);
                renderer.render_str(text, &at, kind.name(), None).ok()
            });
            unbuilt.add(*kind, name);
        }
        for decl in &role.resources {
            let resource = match build(decl, role, &root, &mut renderer, &mut errors, &mut inputs) {
                Ok(resource) => resource,
                Err(name) => {
                    unbuilt.add(decl.kind, name);
                    continue;
                }
            };
            match by_id.get(&resource.id) {
                Some(&first) if resources[first].same_as(&resource) => {}
                Some(&first) => errors.push(
                    Diagnostic::new(
                        resource.origin.clone(),
                        format!(
                            "`{}` is declared twice with different attributes",
                            resource.id
                        ),
                    )
                    .key(resource.id.kind.name())
                    .related(resources[first].origin.clone(), "first declared")
                    .hint("declare it once, or make both declarations identical"),
                ),
                None => {
                    by_id.insert(resource.id.clone(), resources.len());
                    resources.push(resource);
                }
            }
        }
    }
    tracing::debug!(resources = resources.len(), "resources rendered");
    // Ordered even when some resources had errors, so that problems of the
    // graph are reported in the same run; references to the resources that
    // could not be built are not reported again.
    let graph = graph::build(&resources, &by_id, &|id| unbuilt.covers(id), &mut errors);
    if !errors.is_empty() {
        errors.sort();
        errors.dedup();
        return Err(errors);
    }
    let graph = graph.expect("a graph when there are no errors");
    Ok(Catalog {
        host: target.host.to_owned(),
        environment: env.to_owned(),
        roles: roles.iter().map(|r| r.name.clone()).collect(),
        order: graph.order,
        requires: graph.requires,
        notifiers: graph.notifiers,
        digests: resources.iter().map(Resource::desired_digest).collect(),
        resources,
        inputs,
    })
}

/// Resources that had errors: references to them are not errors too.
#[derive(Default)]
struct Unbuilt {
    ids: std::collections::HashSet<ResourceId>,
    /// Kinds of which a resource had a name that could not be read: any
    /// reference to that kind may mean it.
    nameless: BTreeSet<Kind>,
}

impl Unbuilt {
    fn add(&mut self, kind: Kind, name: Option<String>) {
        match name {
            Some(name) => {
                self.ids.insert(ResourceId::new(kind, name));
            }
            None => {
                self.nameless.insert(kind);
            }
        }
    }

    fn covers(&self, id: &ResourceId) -> bool {
        self.ids.contains(id) || self.nameless.contains(&id.kind)
    }
}

/// Builds one resource of a role for this host; on errors (recorded in
/// `errors`), its rendered name if it has one.
fn build(
    decl: &ResourceDecl,
    role: &Role,
    root: &Path,
    renderer: &mut Renderer,
    errors: &mut Vec<Diagnostic>,
    inputs: &mut BTreeSet<PathBuf>,
) -> Result<Resource, Option<String>> {
    let mut a = Attrs::new(decl, role, root, renderer);
    let origin = Location::new(&role.file, decl.pos);
    let name = a.name();
    let desired = name.as_ref().and_then(|name| {
        if decl.kind.is_path() {
            match resource::check_absolute_path(name) {
                Ok(path) => typed(decl.kind, path, &mut a),
                Err(e) => {
                    a.error(
                        decl.kind.name(),
                        e,
                        "write an absolute path such as `/etc/motd`",
                    );
                    None
                }
            }
        } else {
            typed(decl.kind, PathBuf::from(name), &mut a)
        }
    });
    let sensitive = a.bool("sensitive").unwrap_or(false);
    let require = a.references("require");
    let before = a.references("before");
    let notify = a.references("notify");
    let failed = !a.errors.is_empty();
    errors.append(&mut a.errors);
    inputs.extend(a.inputs.drain(..));
    let (Some(name), Some(desired), false) = (name.clone(), desired, failed) else {
        return Err(name);
    };
    Ok(Resource {
        id: ResourceId::new(decl.kind, name),
        origin,
        role: role.name.clone(),
        desired,
        sensitive,
        require,
        before,
        notify,
    })
}

/// Builds the typed desired state; `name` is a path for path types.
fn typed(kind: Kind, name: PathBuf, a: &mut Attrs) -> Option<Desired> {
    let text = || name.to_string_lossy().into_owned();
    match kind {
        Kind::File => resource::file::build(name, a),
        Kind::Directory => resource::directory::build(name, a),
        Kind::Symlink => resource::symlink::build(name, a),
        Kind::Package => resource::package::build(text(), a),
        Kind::Service => resource::service::build(text(), a),
        Kind::User => resource::user::build(text(), a),
        Kind::Group => resource::group::build(text(), a),
        Kind::Exec => resource::exec::build(text(), a),
    }
}
