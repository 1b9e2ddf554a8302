//! constructicon: a continuous-integration system whose build descriptions
//! are Rhai scripts evaluated in a sandbox.
//!
//! # Layout
//! - [`alloc`]: the counting allocator that lets the sandbox bound memory.
//! - [`model`]: shared vocabulary: name rules and derivations.
//! - [`config`]: `cybertron.rhai` and `constructicon.rhai` → builder graph or
//!   errors; pure, no I/O beyond reading the scripts.
//! - [`eval_command`]: `constructicon eval`, the dry run users run before they push.
//! - [`protocol`]: the megatron ↔ worker wire types.
//! - [`store`]: sled, the only module that names it.
//! - [`megatron`]: the server: repos, builds, queue, leases.
//! - [`metrics`]: what the megatron counts, for `GET /metrics`.
//! - [`http`]: axum routes of the API, the worker protocol and the page.
//! - [`http_agent`]: the HTTP agent workers and the command line call with.
//! - [`worker`]: claims jobs, checks out, runs steps, reports.
//! - [`cli`], [`commands`], [`client`], [`demo`]: the command line and what
//!   its commands do.

pub mod access;
pub mod alloc;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod forge;
pub mod git_auth;
pub mod http;
pub mod http_agent;
pub mod humanize;
pub mod megatron;
pub mod metrics;
pub mod model;
pub mod process;
pub mod protocol;
pub mod reporter;
pub mod server;
pub mod store;
pub mod sync;
pub mod token;
pub mod triggers;
pub mod web;
pub mod worker;
