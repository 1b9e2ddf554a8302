//! What a worker is told at start: where the megatron is, who the worker
//! is, where it builds, and its intervals. The claim loop and the runner
//! both read it, so it lives apart from both.

use std::path::PathBuf;
use std::time::Duration;

/// The spool's default bound, in MiB; `--spool-mb` in `cli.rs` says the same.
const DEFAULT_SPOOL_MB: u64 = 1024;

/// Everything a worker is told at start.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The megatron's base URL, e.g. `http://127.0.0.1:9120`.
    pub megatron: String,
    pub name: String,
    pub token: String,
    /// Holds `constructicons/<repo>/...`; created if missing.
    pub workdir: PathBuf,
    /// How long the megatron may hold a claim open when it has no job.
    pub claim_wait: Duration,
    /// Between SIGTERM and SIGKILL when a step is killed.
    pub kill_grace: Duration,
    /// The longest wait between retries of a failed call.
    pub max_backoff: Duration,
    /// The most of a step's output held in memory while it waits to be
    /// sent.
    pub log_queue_bytes: usize,
    /// The most of a step's output kept on disk, in `<workdir>/spool/`,
    /// while the megatron is unreachable; beyond it the step waits.
    pub spool_bytes: u64,
}

impl WorkerConfig {
    /// A config with the default intervals: 30 s claims, 5 s kill grace,
    /// 5 s maximum backoff; 64 MiB of output in memory, 1 GiB spooled.
    pub fn new(megatron: &str, name: &str, token: &str, workdir: PathBuf) -> WorkerConfig {
        WorkerConfig {
            megatron: megatron.to_string(),
            name: name.to_string(),
            token: token.to_string(),
            workdir,
            claim_wait: Duration::from_secs(30),
            kill_grace: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            log_queue_bytes: super::log_stream::LOG_QUEUE_LIMIT,
            spool_bytes: DEFAULT_SPOOL_MB << 20,
        }
    }
}
