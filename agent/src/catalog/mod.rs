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
    pub secrets: Secrets,
    /// Every `when: { flag }` counts as on (`tend parity` asks which
    /// resources only flags keep apart).
    pub all_flags_on: bool,
}

/// What `{ secret_file: PATH }` vars become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// The file's content, read now: converging on the host.
    Read,
    /// A placeholder naming the var: checking and reviewing, where the
    /// secrets are not (and must not be).
    Placeholder,
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
    // Where each var's winning value is set (for secrets' errors).
    let mut origins: HashMap<String, Location> = HashMap::new();
    let flags: Vec<(String, crate::flags::FlagValue)>;
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
        for (k, v) in env.vars.iter().chain(&entry.vars) {
            origins.insert(k.name.clone(), Location::new(&env.file, v.pos));
        }
        flags = env
            .flags
            .iter()
            .map(|(name, value, _)| (name.clone(), value.clone()))
            .collect();
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
    for role in &roles {
        for (k, v) in &role.vars {
            origins
                .entry(k.name.clone())
                .or_insert_with(|| Location::new(&role.file, v.pos));
        }
    }
    let (env_vars, host_vars) = vars;
    // `env` is a var too, for the question which knob makes a difference.
    let env_name = match overrides.get("env") {
        Some(Json::String(name)) => name.clone(),
        _ => env_name,
    };
    let knobs = Knobs {
        env_vars,
        host_vars,
        origins,
        flags,
    };
    compile_roles(repo, &roles, &env_name, target, knobs, load_errors)
}

/// What an environment and a host entry set for the roles.
struct Knobs {
    env_vars: Map<String, Json>,
    host_vars: Map<String, Json>,
    /// Where each var's winning value is set.
    origins: HashMap<String, Location>,
    flags: Vec<(String, crate::flags::FlagValue)>,
}

/// Replaces each `{ secret_file: PATH }` var by the file's content (less
/// a final newline) or a placeholder; returns the vars and values to look
/// for in resources, and the files read.
fn reveal(
    data: &mut Map<String, Json>,
    mode: Secrets,
    origins: &HashMap<String, Location>,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<(String, String)>, Vec<PathBuf>) {
    let mut values = Vec::new();
    let mut files = Vec::new();
    for (name, value) in data.iter_mut() {
        let Some(path) = value
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.get("secret_file"))
            .and_then(Json::as_str)
            .map(PathBuf::from)
        else {
            continue;
        };
        let at = || {
            origins.get(name).cloned().unwrap_or_else(|| {
                Location::new(
                    &Arc::from(Path::new("manifests")),
                    crate::manifest::node::Pos::default(),
                )
            })
        };
        if !path.is_absolute() {
            errors.push(
                Diagnostic::new(
                    at(),
                    format!(
                        "the secret file of var `{name}` must be an absolute path, not `{}`",
                        path.display()
                    ),
                )
                .key("secret_file")
                .hint(
                    "secrets live on the host, e.g. { secret_file: /etc/tend/secrets/db_password }",
                ),
            );
            continue;
        }
        let secret = match mode {
            Secrets::Placeholder => format!("(secret {name} from {})", path.display()),
            // std's error, not fs_err's: the message names the path already.
            Secrets::Read => match std::fs::read_to_string(&path) {
                Ok(text) => {
                    files.push(path);
                    text.strip_suffix('\n').unwrap_or(&text).to_owned()
                }
                Err(e) => {
                    errors.push(
                        Diagnostic::new(
                            at(),
                            format!(
                                "var `{name}` reads its secret from `{}`, which cannot be read: {}",
                                path.display(),
                                e
                            ),
                        )
                        .key("secret_file")
                        .hint("put the secret in that file on this host (root only, mode 0600); it never goes into git"),
                    );
                    continue;
                }
            },
        };
        if !secret.is_empty() {
            values.push((name.clone(), secret.clone()));
        }
        *value = Json::String(secret);
    }
    (values, files)
}

/// Whether a resource carries a secret (in a name, an attribute or a
/// file's content): it is then sensitive, whatever it says.
fn carries(resource: &Resource, secrets: &[(String, String)]) -> bool {
    let text = serde_json::to_string(resource).unwrap_or_default();
    let content = match &resource.desired {
        crate::resource::Desired::File(f) => f.content.as_deref().unwrap_or_default(),
        _ => &[],
    };
    secrets.iter().any(|(_, s)| {
        text.contains(s.as_str())
            || serde_json::to_string(s).is_ok_and(|quoted| text.contains(quoted.trim_matches('"')))
            || content.windows(s.len()).any(|w| w == s.as_bytes())
    })
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
    knobs: Knobs,
    mut errors: Vec<Diagnostic>,
) -> Result<Catalog, Vec<Diagnostic>> {
    let Knobs {
        env_vars,
        host_vars,
        origins,
        flags,
    } = knobs;
    let mut data = template_data(roles, env, target.facts, env_vars, host_vars);
    let (secrets, secret_files) = reveal(&mut data, target.secrets, &origins, &mut errors);
    let mut renderer = Renderer::new(data);
    let root = fs_err::canonicalize(&repo.root).unwrap_or_else(|_| repo.root.clone());
    let mut resources: Vec<Resource> = Vec::new();
    let mut by_id: HashMap<ResourceId, usize> = HashMap::new();
    let mut unbuilt = Unbuilt::default();
    let mut inputs = repo.inputs.clone();
    // A changed secret invalidates the cached catalog, as a changed
    // manifest does (absolute paths: the cache reads them as they are).
    inputs.extend(secret_files);
    for role in roles {
        for (kind, name) in &role.unbuilt {
            let name = name.as_str().and_then(|text| {
                let at = Location::new(&role.file, name.pos);
                renderer.render_str(text, &at, kind.name(), None).ok()
            });
            unbuilt.add(*kind, name);
        }
        for decl in &role.resources {
            let gate = Gate {
                flags: &flags,
                host: &target.facts.name,
                all_on: target.all_flags_on,
            };
            let resource = match build(
                decl,
                role,
                &root,
                &mut renderer,
                &mut errors,
                &mut inputs,
                &gate,
            ) {
                Ok(mut resource) => {
                    // A name is shown everywhere: it may not carry a secret.
                    let name = resource.id.to_string();
                    if let Some((var, _)) = secrets.iter().find(|(_, s)| name.contains(s.as_str()))
                    {
                        errors.push(
                            Diagnostic::new(
                                resource.origin.clone(),
                                format!(
                                    "the name of this {} comes from secret var `{var}`; names are shown in every listing and report",
                                    resource.id.kind.name()
                                ),
                            )
                            .key(resource.id.kind.name())
                            .hint("give it a plain name and put the secret in an attribute (an exec's `command:`, a file's content)"),
                        );
                        continue;
                    }
                    resource.sensitive |= !secrets.is_empty() && carries(&resource, &secrets);
                    resource
                }
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
/// The environment's flags, for `when: { flag: NAME }`, and the host.
struct Gate<'a> {
    flags: &'a [(String, crate::flags::FlagValue)],
    host: &'a str,
    all_on: bool,
}

fn build(
    decl: &ResourceDecl,
    role: &Role,
    root: &Path,
    renderer: &mut Renderer,
    errors: &mut Vec<Diagnostic>,
    inputs: &mut BTreeSet<PathBuf>,
    gate: &Gate,
) -> Result<Resource, Option<String>> {
    let mut a = Attrs::new(decl, role, root, renderer);
    let origin = Location::new(&role.file, decl.pos);
    let name = a.name();
    // Gated by a flag that is off here: the resource is not this host's
    // (nor are references to it errors).
    if let Some((_, when)) = decl.attr("when") {
        let flag = when
            .get("flag")
            .and_then(|n| n.as_str())
            .unwrap_or_default();
        match gate.flags.iter().find(|(n, _)| n == flag) {
            Some((_, value)) if gate.all_on || value.on(flag, gate.host) => {}
            Some(_) => return Err(name),
            None => {
                let hint = crate::manifest::diagnostic::did_you_mean(
                    flag,
                    gate.flags.iter().map(|(n, _)| n.as_str()),
                )
                .unwrap_or_else(|| "declare it under `flags:` in the environment file".to_owned());
                errors.push(
                    Diagnostic::new(
                        Location::new(&role.file, when.pos),
                        format!("unknown flag `{flag}`"),
                    )
                    .key("when")
                    .hint(hint),
                );
                return Err(name);
            }
        }
    }
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
        Kind::Flags => resource::flags::build(name, a),
    }
}
