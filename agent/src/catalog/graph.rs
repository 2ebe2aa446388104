//! Ordering: implicit and explicit edges, references checked, cycles shown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::manifest::diagnostic::{Diagnostic, did_you_mean};
use crate::resource::{Desired, Kind, Reference, Resource, ResourceId};

/// The order a catalog is applied in, and what ties its resources.
pub struct Graph {
    /// Indices of resources, in the order to apply them.
    pub order: Vec<usize>,
    /// For each resource, the resources that must succeed before it.
    pub requires: Vec<Vec<usize>>,
    /// For each resource, the resources that notify it.
    pub notifiers: Vec<Vec<usize>>,
}

/// Orders the resources; records errors (unknown references, two resources
/// for a path, a path inside an absent directory, cycles) and returns `None`
/// when there are any. References for which `unbuilt` is true name resources
/// that had errors of their own and are not reported again.
pub fn build(
    resources: &[Resource],
    by_id: &HashMap<ResourceId, usize>,
    unbuilt: &dyn Fn(&ResourceId) -> bool,
    errors: &mut Vec<Diagnostic>,
) -> Option<Graph> {
    let before = errors.len();
    let mut edges = Edges::new(resources.len());
    explicit_edges(resources, by_id, unbuilt, &mut edges, errors);
    one_resource_per_path(resources, errors);
    parent_directory_edges(resources, &mut edges, errors);
    implicit_edges(resources, by_id, &mut edges);
    if errors.len() > before {
        return None;
    }
    match topological(resources, &edges.requires) {
        Ok(order) => Some(Graph {
            order,
            requires: edges.requires,
            notifiers: edges.notifiers,
        }),
        Err(cycle) => {
            errors.push(cycle_error(resources, &cycle));
            None
        }
    }
}

struct Edges {
    requires: Vec<Vec<usize>>,
    notifiers: Vec<Vec<usize>>,
}

impl Edges {
    fn new(n: usize) -> Self {
        Self {
            requires: vec![Vec::new(); n],
            notifiers: vec![Vec::new(); n],
        }
    }

    /// `to` requires `from`.
    fn add(&mut self, from: usize, to: usize) {
        if from != to && !self.requires[to].contains(&from) {
            self.requires[to].push(from);
        }
    }
}

/// `require`, `before` and `notify`.
fn explicit_edges(
    resources: &[Resource],
    by_id: &HashMap<ResourceId, usize>,
    unbuilt: &dyn Fn(&ResourceId) -> bool,
    edges: &mut Edges,
    errors: &mut Vec<Diagnostic>,
) {
    for (i, r) in resources.iter().enumerate() {
        for (key, refs) in [
            ("require", &r.require),
            ("before", &r.before),
            ("notify", &r.notify),
        ] {
            for reference in refs {
                let Some(&j) = by_id.get(&reference.id) else {
                    if !unbuilt(&reference.id) {
                        errors.push(unknown_reference(by_id, key, reference));
                    }
                    continue;
                };
                if key == "require" {
                    edges.add(j, i);
                } else {
                    edges.add(i, j);
                }
                if key == "notify" && !edges.notifiers[j].contains(&i) {
                    edges.notifiers[j].push(i);
                }
            }
        }
    }
}

fn unknown_reference(
    by_id: &HashMap<ResourceId, usize>,
    key: &str,
    reference: &Reference,
) -> Diagnostic {
    let names: Vec<String> = by_id.keys().map(ToString::to_string).collect();
    let wanted = reference.id.to_string();
    let hint = did_you_mean(&wanted, names.iter().map(String::as_str)).unwrap_or_else(|| {
        "declare that resource in one of this host's roles, or fix the name".to_owned()
    });
    Diagnostic::new(
        reference.location.clone(),
        format!("`{wanted}` refers to no resource of this host"),
    )
    .key(key)
    .hint(hint)
}

/// One path, one resource: a file and a directory (or symlink) of the same
/// path would undo each other on every run.
fn one_resource_per_path(resources: &[Resource], errors: &mut Vec<Diagnostic>) {
    let mut by_path: HashMap<&Path, usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Some(path) = r.desired.path() else {
            continue;
        };
        let first = &resources[*by_path.entry(path).or_insert(i)];
        if std::ptr::eq(first, r) {
            continue;
        }
        errors.push(
            Diagnostic::new(
                r.origin.clone(),
                format!("`{}` manages the same path as `{}`", r.id, first.id),
            )
            .key(r.id.kind.name())
            .related(first.origin.clone(), "also managed")
            .hint("keep one resource per path"),
        );
    }
}

/// A path after the nearest managed directory above it (or before it, when
/// both are being removed).
fn parent_directory_edges(resources: &[Resource], edges: &mut Edges, errors: &mut Vec<Diagnostic>) {
    let dirs: HashMap<&Path, usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.id.kind == Kind::Directory)
        .filter_map(|(i, r)| r.desired.path().map(|p| (p, i)))
        .collect();
    for (i, r) in resources.iter().enumerate() {
        let Some(path) = r.desired.path() else {
            continue;
        };
        let Some(&d) = path.ancestors().skip(1).find_map(|a| dirs.get(a)) else {
            continue;
        };
        let parent = &resources[d];
        match (parent.desired.is_present(), r.desired.is_present()) {
            (true, _) => edges.add(d, i),
            (false, false) => edges.add(i, d),
            (false, true) => errors.push(
                Diagnostic::new(
                    r.origin.clone(),
                    format!("`{}` is inside `{}`, which is absent", r.id, parent.id),
                )
                .key(r.id.kind.name())
                .related(parent.origin.clone(), "the directory is declared absent")
                .hint("remove one of the two, or make the directory present"),
            ),
        }
    }
}

/// A path after the user and group that own it; a user after its groups; a
/// service after the package of the same name.
fn implicit_edges(resources: &[Resource], by_id: &HashMap<ResourceId, usize>, edges: &mut Edges) {
    for (i, r) in resources.iter().enumerate() {
        if !r.desired.is_present() {
            continue;
        }
        let mut wanted: Vec<ResourceId> = Vec::new();
        match &r.desired {
            Desired::File(_) | Desired::Directory(_) => {
                let (owner, group) = r.desired.ownership();
                wanted.extend(owner.map(|o| ResourceId::new(Kind::User, o)));
                wanted.extend(group.map(|g| ResourceId::new(Kind::Group, g)));
            }
            Desired::User(u) => {
                wanted.extend(
                    u.group
                        .iter()
                        .map(|g| ResourceId::new(Kind::Group, g.as_str())),
                );
                for g in u.groups.iter().flatten() {
                    wanted.push(ResourceId::new(Kind::Group, g.as_str()));
                }
            }
            Desired::Service(s) => wanted.push(ResourceId::new(Kind::Package, s.name.as_str())),
            _ => {}
        }
        for id in wanted {
            if let Some(&j) = by_id.get(&id) {
                edges.add(j, i);
            }
        }
    }
}

fn cycle_error(resources: &[Resource], cycle: &[usize]) -> Diagnostic {
    let names: Vec<String> = cycle.iter().map(|&i| resources[i].id.to_string()).collect();
    let first = &resources[cycle[0]];
    let mut d = Diagnostic::new(
        first.origin.clone(),
        format!("ordering cycle: {} -> {}", names.join(" -> "), names[0]),
    )
    .key(first.id.kind.name())
    .hint("remove one of the `require`, `before` or `notify` edges of the cycle");
    for &i in &cycle[1..] {
        d = d.related(
            resources[i].origin.clone(),
            format!("`{}`", resources[i].id),
        );
    }
    d
}

/// Kahn's algorithm, always taking the earliest declared resource that is
/// ready, so the order follows the manifests where the graph allows.
fn topological(resources: &[Resource], requires: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = resources.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, reqs) in requires.iter().enumerate() {
        waiting[i] = reqs.len();
        for &r in reqs {
            dependents[r].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(requires, &waiting))
}

/// One cycle among the resources Kahn's algorithm could not order.
fn find_cycle(requires: &[Vec<usize>], waiting: &[usize]) -> Vec<usize> {
    let start = (0..waiting.len()).find(|&i| waiting[i] > 0).unwrap_or(0);
    // Follow unresolved requirements until a resource repeats.
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = requires[current]
            .iter()
            .copied()
            .find(|&r| waiting[r] > 0)
            .unwrap_or(start);
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            // `requires` points backwards: show the cycle in apply order.
            cycle.reverse();
            return cycle;
        }
        path.push(next);
        current = next;
    }
}
