//! What one job's threads share: the flags that stop a build (a cancel, a
//! lost lease, a shutdown) and why a build stopped without its end being
//! reported. The claim loop in `mod.rs` makes them and the runner reads
//! them, so they live apart from both.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The state one job's threads share.
pub(super) struct JobControl {
    /// The megatron cancelled the build (heartbeat answered `cancel`).
    pub(super) cancel: AtomicBool,
    /// A call answered 409: another worker may hold the build now.
    pub(super) lease_lost: AtomicBool,
    /// The job is over; the heartbeat thread ends.
    pub(super) done: AtomicBool,
    pub(super) shutdown: Arc<AtomicBool>,
}

impl JobControl {
    /// Whether the running step must be killed.
    pub(super) fn stop_step(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.give_up()
    }

    /// Whether retrying calls is pointless: nobody will read the answer.
    pub(super) fn give_up(&self) -> bool {
        self.lease_lost.load(Ordering::SeqCst) || self.shutdown.load(Ordering::SeqCst)
    }
}

/// Why a build stopped without its end being reported.
pub(super) enum Abort {
    LeaseLost,
    Shutdown,
    /// The megatron refused a report: the build ends as an exception.
    Refused(String),
}
