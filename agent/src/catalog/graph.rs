//! Ordering: implicit and explicit edges, references checked, cycles shown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::manifest::diagnostic::{Diagnostic, did_you_mean};
use crate::resource::{Desired, Kind, Resource, ResourceId};

/// Returns the application order and, per resource, what it requires; or
/// records errors (unknown references, cycles) and returns `None`.
pub struct Graph {
    pub order: Vec<usize>,
    pub requires: Vec<Vec<usize>>,
    /// For each resource, the resources that notify it.
    pub notifiers: Vec<Vec<usize>>,
}

pub fn build(
    resources: &[Resource],
    by_id: &HashMap<ResourceId, usize>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Graph> {
    let n = resources.len();
    let mut requires: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut notifiers: Vec<Vec<usize>> = vec![Vec::new(); n];
    let before_errors = errors.len();
    let edge = |from: usize, to: usize, requires: &mut Vec<Vec<usize>>| {
        if from != to && !requires[to].contains(&from) {
            requires[to].push(from);
        }
    };
    // Explicit edges.
    for (i, r) in resources.iter().enumerate() {
        for (key, refs) in [
            ("require", &r.require),
            ("before", &r.before),
            ("notify", &r.notify),
        ] {
            for reference in refs {
                let Some(&j) = by_id.get(&reference.id) else {
                    let names: Vec<String> = by_id.keys().map(ToString::to_string).collect();
                    let wanted = reference.id.to_string();
                    let hint = did_you_mean(&wanted, names.iter().map(String::as_str))
                        .unwrap_or_else(|| {
                            "declare that resource in one of this host's roles, or fix the name"
                                .to_owned()
                        });
                    errors.push(
                        Diagnostic::new(
                            reference.location.clone(),
                            format!("`{wanted}` refers to no resource of this host"),
                        )
                        .key(key)
                        .hint(hint),
                    );
                    continue;
                };
                if key == "require" {
                    edge(j, i, &mut requires);
                } else {
                    edge(i, j, &mut requires);
                }
                if key == "notify" && !notifiers[j].contains(&i) {
                    notifiers[j].push(i);
                }
            }
        }
    }
    // One path, one resource: a file and a directory (or symlink) of the
    // same path would undo each other on every run.
    let mut by_path: HashMap<&Path, usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        let Some(path) = r.desired.path() else {
            continue;
        };
        if let Some(&first) = by_path.get(path) {
            errors.push(
                Diagnostic::new(
                    r.origin.clone(),
                    format!(
                        "`{}` manages the same path as `{}`",
                        r.id, resources[first].id
                    ),
                )
                .key(r.id.kind.name())
                .related(resources[first].origin.clone(), "also managed")
                .hint("keep one resource per path"),
            );
        } else {
            by_path.insert(path, i);
        }
    }
    // Implicit edges: a path after the nearest managed directory above it
    // (or before it, when both are being removed).
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
            (true, _) => edge(d, i, &mut requires),
            (false, false) => edge(i, d, &mut requires),
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
    // A path after the user and group that own it; a user after its
    // groups; a service after the package of the same name.
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
                edge(j, i, &mut requires);
            }
        }
    }
    if errors.len() > before_errors {
        return None;
    }
    match topological(resources, &requires) {
        Ok(order) => Some(Graph {
            order,
            requires,
            notifiers,
        }),
        Err(cycle) => {
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
            errors.push(d);
            None
        }
    }
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
