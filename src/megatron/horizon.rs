//! The horizon: how much history each builder keeps. Builds past it go
//! from the store with their logs, and their artifacts from the disk.

use super::artifacts::remove_build_artifacts;
use super::error::Result;
use super::state::State;
use crate::store::{now_ms, Retention};
use crate::sync::read;

impl State {
    /// What cybertron's `horizon` keeps, as of `now`.
    fn retention(&self, now: u64) -> Retention {
        let spec = &read(&self.cybertron).spec;
        Retention {
            builds: spec.horizon as usize,
            finished_before: spec
                .horizon_days
                .map(|days| now.saturating_sub(days * 86_400_000)),
            keep_last_success: spec.keep_last_success,
        }
    }

    /// One pass over every builder's history: builds that aged past the
    /// horizon go even when no new build pushes them out. Returns how many.
    pub fn retention_pass(&self, now: u64) -> Result<usize> {
        let builders: Vec<String> = read(&self.repos)
            .values()
            .filter_map(|r| r.graph.as_ref())
            .flat_map(|g| g.graph.builders.keys().cloned())
            .collect();
        let mut removed = 0;
        for builder in builders {
            removed += self.apply_retention(&builder, now, true)?;
        }
        if removed > 0 {
            self.store.flush()?;
        }
        Ok(removed)
    }

    pub(crate) fn apply_horizon(&self, builder: &str) -> Result<()> {
        self.apply_retention(builder, now_ms(), false).map(|_| ())
    }

    /// `thorough`: every build is looked at (the periodic pass), not only
    /// the oldest up to the first that may stay (a build's end).
    fn apply_retention(&self, builder: &str, now: u64, thorough: bool) -> Result<usize> {
        let removed = self
            .store
            .apply_retention(builder, self.retention(now), thorough)?;
        let count = removed.len();
        for id in removed {
            // The build is gone from the store; its artifacts go with it. A
            // folder that cannot be removed is only logged: the build's end
            // is already recorded and must not fail for it.
            let dir = self.artifact_dir(id);
            if let Err(e) = remove_build_artifacts(&dir) {
                tracing::warn!(
                    build = id,
                    dir = %dir.display(),
                    error = %e,
                    "removing the artifacts of a build past the horizon"
                );
            }
        }
        Ok(count)
    }
}

/// Applies the horizon to every builder now and then, so builds age out
/// even when no new build comes.
pub async fn retention_loop(state: std::sync::Arc<State>) {
    let mut tick = tokio::time::interval(state.timing.retention_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.blocking(|s| s.retention_pass(now_ms())).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(builds = removed, "builds past the horizon removed"),
            Err(e) => tracing::error!(error = %e, "applying the horizon"),
        }
    }
}
