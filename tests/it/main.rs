//! The one integration-test binary: every module below runs the real
//! `constructicon` binary or the library on real files in temp dirs.

mod access;
mod artifacts;
mod browser;
mod builds;
mod cli;
mod common;
mod diagnostics;
mod eval;
mod eval_against;
mod examples;
mod flow;
mod front_door;
mod hooks;
mod hostile;
mod layers;
mod logs;
mod metrics;
mod openapi;
mod polling;
mod protocol;
mod pulls;
mod reload;
mod resilience;
mod secrets;
mod shutdown;
mod spool;
mod statuses;
mod stdlib;
mod system;
mod timed;
