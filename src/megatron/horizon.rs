//! The horizon: how much history each builder keeps. Builds past it go
//! from the store with their logs, and their artifacts from the disk.

use super::artifacts::remove_build_artifacts;
use super::error::Result;
use super::state::State;
use crate::sync::read;

impl State {
    pub(crate) fn apply_horizon(&self, builder: &str) -> Result<()> {
        let horizon = read(&self.cybertron).spec.horizon as usize;
        for id in self.store.apply_horizon(builder, horizon)? {
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
        Ok(())
    }
}
