//! constructicon: a continuous-integration system whose build descriptions
//! are Rhai scripts evaluated in a sandbox.
//!
//! # Layout
//! - [`alloc`]: the counting allocator that lets the sandbox bound memory.
//! - [`model`]: shared vocabulary: name rules and derivations.
//! - [`config`]: `cybertron.rhai` and `constructicon.rhai` → builder graph or
//!   errors; pure, no I/O beyond reading the scripts.
//! - [`eval_command`]: `constructicon eval`, the dry run users run before they push.
//! - [`cli`]: the command line.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod eval_command;
pub mod model;
