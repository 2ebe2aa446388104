//! tend: a pull-based configuration agent.
//!
//! The path of a run: [`manifest`] reads roles and environments from the
//! repository, [`catalog`] resolves them into the desired state of one host,
//! [`engine`] plans (and in a real run applies) the changes through the
//! [`resource`] types, and [`report`] says what happened. [`fsutil`] is the
//! only module that writes files; [`state`] keeps what was applied.

pub use tend_common::{flags, manifest, rollout, source};

pub mod agent;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod converge;
pub mod engine;
pub mod facts;
pub mod fsutil;
pub mod provider;
pub mod report;
pub mod resource;
pub mod review;
pub mod state;
pub mod template;
