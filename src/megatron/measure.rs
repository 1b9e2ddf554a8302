//! What the core tells [`crate::metrics`]: a build's end with its durations,
//! a claim's wait, and, when a scrape asks, the gauges read from the state
//! (queue depth, workers, the data dir's size).

use super::state::State;
use crate::protocol::BuildResult;
use crate::store::BuildRecord;
use crate::sync::read;

impl State {
    /// Counts a build that just finished, once its record was written.
    pub(crate) fn count_finished(&self, build: &BuildRecord) {
        let result = build.result.map_or("none", BuildResult::as_str);
        self.metrics.build_finished(
            result,
            build.started,
            build.finished,
            build.steps.iter().map(|s| (s.started, s.finished)),
        );
    }

    /// Observes how long a build waited for its first claim.
    pub(crate) fn count_claimed(&self, build: &BuildRecord) {
        if let (1, Some(started)) = (build.attempts, build.started) {
            let waited = started.saturating_sub(build.created);
            self.metrics.queue_wait.observe(waited as f64 / 1000.0);
        }
    }

    /// Sets the gauges that mirror the state, for a scrape: one look at the
    /// dispatcher, one at sled's files, and the last disk-use count for the
    /// logs and artifacts (a walk of every build is the usage loop's job,
    /// never a scrape's).
    pub fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics
            .queue_depth
            .set(i64::try_from(self.pending_of_dispatcher()).unwrap_or(i64::MAX));
        let workers = self.workers();
        let online = workers.iter().filter(|w| w.online).count();
        let busy = workers.iter().filter(|w| w.build.is_some()).count();
        metrics.workers_online.set(online as i64);
        metrics.workers_busy.set(busy as i64);
        match self.store.size_on_disk() {
            Ok(bytes) => metrics.store_size("tree", bytes),
            Err(e) => tracing::warn!(error = %e, "measuring the store"),
        }
        if let Some((_, usage)) = read(&self.usage_counted).as_ref() {
            metrics.store_size("logs", usage.iter().map(|r| r.log_bytes).sum());
            metrics.store_size("artifacts", usage.iter().map(|r| r.artifact_bytes).sum());
        }
    }
}
