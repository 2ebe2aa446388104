//! Integration tests: one binary (links once), a module per area.

mod support;

mod agent;
mod cache;
mod converge;
mod crash;
mod delivery;
mod deploy_log;
mod devboxes;
mod diagnostics;
mod e2e;
mod example_repo;
mod exec_and_accounts;
mod fast_delivery;
mod faults;
mod flags;
mod gate_simulation;
mod hostile;
mod idempotence;
mod layers;
mod listing;
pub mod log_server;
mod review;
pub mod rollout;
mod secrets;
mod trust;
