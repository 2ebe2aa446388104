//! Where the manifests come from: a git checkout.

pub mod git;
