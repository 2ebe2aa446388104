//! Packages are planned one by one but applied together: the first install
//! a run reaches takes every package install that is ready at that point
//! into one apt transaction (likewise removals), and later package
//! resources report the outcome of that transaction.

use std::collections::HashMap;

use super::apply::Executor;
use super::plan::Op;
use super::plan::package;
use crate::catalog::Catalog;
use crate::provider::apt;
use crate::report::Status;
use crate::resource::Desired;
use crate::resource::package::PackageSpec;

pub struct Packages {
    /// A dry-run keeps apt's cache in memory (it writes nothing).
    apt_cache: apt::Cache,
    facts: Option<Result<package::Facts, String>>,
    /// Outcomes of transactions already run, by resource index.
    results: HashMap<usize, Result<(), String>>,
}

impl Packages {
    pub fn new(dry_run: bool) -> Self {
        Packages {
            apt_cache: if dry_run {
                apt::Cache::InMemory
            } else {
                apt::Cache::OnDisk
            },
            facts: None,
            results: HashMap::new(),
        }
    }

    /// What dpkg and apt say, asked once for all packages of the catalog.
    pub fn facts(&mut self, catalog: &Catalog) -> Result<&package::Facts, String> {
        let apt_cache = self.apt_cache;
        let facts = self.facts.get_or_insert_with(|| {
            let specs: Vec<&PackageSpec> = specs(catalog).map(|(_, s)| s).collect();
            package::Facts::gather(&specs, apt_cache)
        });
        facts.as_ref().map_err(Clone::clone)
    }

    /// Applies the package resource `index`, with every other package of the
    /// same kind of change that is ready, in one transaction.
    pub fn apply(
        &mut self,
        catalog: &Catalog,
        index: usize,
        status: &[Option<Status>],
        executor: &mut Executor,
    ) -> Result<(), String> {
        if let Some(result) = self.results.remove(&index) {
            return result;
        }
        let facts = self.facts(catalog)?;
        let op_of = |spec: &PackageSpec| {
            package::plan(spec, facts)
                .ok()
                .flatten()
                .and_then(|p| p.ops.into_iter().next())
        };
        let Desired::Package(this) = &catalog.resources[index].desired else {
            return Err("not a package".to_owned());
        };
        let installing = matches!(op_of(this), Some(Op::InstallPackage { .. }));
        // Ready: not yet run, same kind of change, and everything it
        // requires is done (and did not fail) or is a package that can be
        // planned (one that cannot will fail, and must fail this one too).
        let mut batch: Vec<(usize, String, String)> = Vec::new();
        for (j, spec) in specs(catalog) {
            if j != index && status[j].is_some() {
                continue;
            }
            let ready = catalog.requires[j].iter().all(|&d| {
                match (&catalog.resources[d].desired, status[d]) {
                    (_, Some(s)) => s != Status::Failed && s != Status::Unknown,
                    (Desired::Package(p), None) => package::plan(p, facts).is_ok(),
                    (_, None) => false,
                }
            });
            if !ready {
                continue;
            }
            match op_of(spec) {
                Some(Op::InstallPackage { name, spec }) if installing => {
                    batch.push((j, name, spec))
                }
                Some(Op::RemovePackage { name }) if !installing => {
                    batch.push((j, name.clone(), name))
                }
                _ => {}
            }
        }
        let results = executor.packages(installing, &batch);
        for (j, result) in results {
            self.results.insert(j, result);
        }
        self.results
            .remove(&index)
            .unwrap_or_else(|| Err("the package transaction did not include it".to_owned()))
    }
}

fn specs(catalog: &Catalog) -> impl Iterator<Item = (usize, &PackageSpec)> {
    catalog
        .resources
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.desired {
            Desired::Package(p) => Some((i, p)),
            _ => None,
        })
}
