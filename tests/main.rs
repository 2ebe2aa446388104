//! Integration tests: one binary (links once), a module per area.

mod support;

mod converge;
mod diagnostics;
mod example_repo;
mod idempotence;
mod listing;
