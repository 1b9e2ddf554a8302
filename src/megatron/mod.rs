//! The megatron's domain core: repos and their graphs, builds from start to
//! end, the queue, leases and artifacts. It knows no HTTP and no triggers:
//! the layers above call [`State`]'s methods, which are synchronous (sled,
//! git2) and run on blocking threads.
//!
//! - [`state`]: [`State`] itself, opened and restored from the data dir.
//! - [`error`]: why a request was refused.
//! - [`dispatch`]: who runs what, in memory, behind one mutex.
//! - [`mirror`]: each repo's bare mirror, fetched, and what git2 reads from it.
//! - [`repos`]: taking and removing repos, config evaluation, reconfig and
//!   cybertron reload.
//! - [`speculate`]: a config from files in memory, evaluated as a reconfig
//!   would be and compared with the live graph, storing nothing.
//! - [`pulls`]: pull and merge requests, built with their own config.
//! - [`queue`]: force, start, collapse, cancel.
//! - [`claim`]: a worker's claim and `get` resolution.
//! - [`secrets`]: each repo's key pair, and the secrets a claimed build gets.
//! - [`reports`]: a worker's reports on its build.
//! - [`leases`]: lease checks and expiry.
//! - [`horizon`]: history kept per builder.
//! - [`artifacts`]: uploads, archives and reads of build results.
//! - [`workers`]: the workers as people see them; why pending builds wait.
//! - [`statuses`]: the commit status each build calls for, into the outbox.
//! - [`measure`]: what the core tells the metrics.
//! - [`usage`]: disk used per repo and builder, counted; [`disk_use`] its answer.

pub mod artifacts;
pub mod claim;
pub mod disk_use;
pub mod dispatch;
pub mod error;
pub mod horizon;
pub mod leases;
pub mod measure;
pub mod mirror;
pub mod pulls;
pub mod queue;
pub mod reports;
pub mod repos;
pub mod secrets;
pub mod speculate;
pub mod state;
pub mod statuses;
pub mod usage;
pub mod workers;

pub use error::{Error, Result};
pub use state::{admin_token_path, Options, RepoState, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
