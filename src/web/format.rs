//! How results read on the pages: one word and colour class per build and
//! step state, and the times and sizes of `humanize`.

pub use crate::humanize::{absolute, ago, duration, iso, size};
use crate::protocol::BuildResult;
use crate::store::{BuildRecord, BuildState, StepRecord};

/// A state as a word and the class that colours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub word: &'static str,
    pub class: &'static str,
}

pub fn result_label(result: BuildResult) -> Label {
    let word = result.as_str();
    Label { word, class: word }
}

pub fn build_label(build: &BuildRecord) -> Label {
    match (build.state, build.result) {
        (BuildState::Queued, _) => Label {
            word: "queued",
            class: "queued",
        },
        (BuildState::Running, _) if build.cancel_requested => Label {
            word: "cancelling",
            class: "running",
        },
        (BuildState::Running, _) => Label {
            word: "running",
            class: "running",
        },
        (BuildState::Finished, Some(result)) => result_label(result),
        (BuildState::Finished, None) => Label {
            word: "finished",
            class: "cancelled",
        },
    }
}

pub fn step_label(step: &StepRecord, build_finished: bool) -> Label {
    match (step.result, step.started, build_finished) {
        (Some(result), _, _) => result_label(result),
        (None, Some(_), false) => Label {
            word: "running",
            class: "running",
        },
        (None, _, true) => Label {
            word: "skipped",
            class: "skipped",
        },
        (None, _, false) => Label {
            word: "pending",
            class: "queued",
        },
    }
}

/// How long a build (or step) took, or has run so far.
pub fn elapsed(started: Option<u64>, finished: Option<u64>, now: u64) -> Option<u64> {
    let started = started?;
    Some(finished.unwrap_or(now).saturating_sub(started))
}

/// The first characters of a commit.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
