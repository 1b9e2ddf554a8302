//! The workers as people see them (declared where, with which features,
//! online or when last seen, running what) and why each pending build
//! waits. Read from the dispatcher under its lock, decided by pure
//! functions the tests call directly.

use super::dispatch::{Dispatcher, Pending};
use super::state::State;
use crate::config::spec::Features;
use crate::store::now_ms;
use crate::sync::{lock, read};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// One worker, for the workers page and `GET /api/v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkerView {
    pub name: String,
    /// Its features as cybertron (or its repo's config) declares them.
    #[schema(value_type = Object)]
    pub features: Features,
    /// The repo a user worker serves; `None` for cybertron's workers.
    pub repo: Option<String>,
    pub online: bool,
    /// Unix milliseconds of its last call, if it called since the megatron
    /// started.
    pub last_seen: Option<u64>,
    /// The build it runs now.
    pub build: Option<u64>,
}

/// Why a pending build has not started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// None of the workers that accept it is online.
    NoWorker { accepted: Vec<String> },
    /// A resource it needs is held by a running build.
    Resource { resource: String, build: u64 },
    /// An earlier pending build will take the resource first.
    Behind { resource: String, build: u64 },
    /// Every online worker that accepts it runs something.
    Busy { workers: Vec<(String, u64)> },
    /// Nothing stands in its way: a worker takes it at its next call.
    Ready,
}

impl Wait {
    /// The reason in words, for pages and the command line.
    pub fn describe(&self) -> String {
        match self {
            Wait::NoWorker { accepted } if accepted.is_empty() => {
                "no worker accepts it".to_string()
            }
            Wait::NoWorker { accepted } => format!(
                "no online worker accepts it (accepted: {})",
                accepted.join(", ")
            ),
            Wait::Resource { resource, build } => {
                format!("resource \"{resource}\" is held by build {build}")
            }
            Wait::Behind { resource, build } => {
                format!("build {build}, earlier in the queue, takes resource \"{resource}\" first")
            }
            Wait::Busy { workers } => {
                let busy: Vec<String> = workers
                    .iter()
                    .map(|(w, b)| format!("{w} runs build {b}"))
                    .collect();
                format!("all its workers are busy ({})", busy.join("; "))
            }
            Wait::Ready => "about to start: a worker takes it at its next call".to_string(),
        }
    }
}

/// Why each pending build waits, in queue order. `online` says whether a
/// worker counts as around.
pub fn waits(dispatcher: &Dispatcher, online: &dyn Fn(&str) -> bool) -> Vec<(u64, Wait)> {
    let mut reserved: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for pending in dispatcher.pending_in_order() {
        out.push((
            pending.build,
            wait_of(dispatcher, pending, &reserved, online),
        ));
        // An earlier build that some online worker could run keeps its
        // resources from the builds behind it, as claims do.
        if pending.workers.iter().any(|w| online(w)) {
            for resource in &pending.resources {
                reserved.entry(resource.clone()).or_insert(pending.build);
            }
        }
    }
    out
}

fn wait_of(
    dispatcher: &Dispatcher,
    pending: &Pending,
    reserved: &BTreeMap<String, u64>,
    online: &dyn Fn(&str) -> bool,
) -> Wait {
    let around: Vec<&String> = pending.workers.iter().filter(|w| online(w)).collect();
    if around.is_empty() {
        return Wait::NoWorker {
            accepted: pending.workers.clone(),
        };
    }
    for resource in &pending.resources {
        if let Some(build) = dispatcher.holder(resource) {
            return Wait::Resource {
                resource: resource.clone(),
                build,
            };
        }
        if let Some(build) = reserved.get(resource) {
            return Wait::Behind {
                resource: resource.clone(),
                build: *build,
            };
        }
    }
    let busy: Vec<(String, u64)> = around
        .iter()
        .filter_map(|w| dispatcher.busy_with(w).map(|b| (w.to_string(), b)))
        .collect();
    if busy.len() == around.len() {
        return Wait::Busy { workers: busy };
    }
    Wait::Ready
}

impl State {
    /// How long after its last call a worker still counts as online: a
    /// worker long-polls, so it may be silent for a whole claim wait.
    pub fn online_window(&self) -> Duration {
        self.timing.claim_wait + self.timing.lease
    }

    /// Every declared worker (cybertron's, then the repos' own), with its
    /// state now.
    pub fn workers(&self) -> Vec<WorkerView> {
        let mut declared: BTreeMap<String, (Features, Option<String>)> = read(&self.cybertron)
            .spec
            .workers
            .iter()
            .map(|(name, features)| (name.clone(), (features.clone(), None)))
            .collect();
        for repo in read(&self.repos).values() {
            if let Some(graph) = &repo.graph {
                for (name, features) in &graph.graph.workers {
                    declared
                        .entry(name.clone())
                        .or_insert_with(|| (features.clone(), Some(repo.record.name.clone())));
                }
            }
        }
        let dispatcher = lock(&self.dispatcher);
        let (now, wall) = (Instant::now(), now_ms());
        let window = self.online_window();
        declared
            .into_iter()
            .map(|(name, (features, repo))| {
                let seen = dispatcher.last_seen(&name);
                WorkerView {
                    online: seen.is_some_and(|t| now.duration_since(t) < window),
                    last_seen: seen
                        .map(|t| wall.saturating_sub(now.duration_since(t).as_millis() as u64)),
                    build: dispatcher.busy_with(&name),
                    name,
                    features,
                    repo,
                }
            })
            .collect()
    }

    /// Why each pending build waits, in queue order.
    pub fn queue_waits(&self) -> Vec<(u64, Wait)> {
        let dispatcher = lock(&self.dispatcher);
        let now = Instant::now();
        let window = self.online_window();
        waits(&dispatcher, &|worker| {
            dispatcher
                .last_seen(worker)
                .is_some_and(|t| now.duration_since(t) < window)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(build: u64, workers: &[&str], resources: &[&str]) -> Pending {
        Pending::new(
            build,
            workers.iter().map(|w| w.to_string()).collect(),
            resources.iter().map(|r| r.to_string()).collect(),
        )
    }

    #[test]
    fn each_pending_build_says_why_it_waits() {
        let mut dispatcher = Dispatcher::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        // w1 runs build 1, which holds the lab.
        dispatcher.enqueue(1, pending(1, &["w1"], &["lab"]));
        assert_eq!(
            dispatcher.claim("w1", "l", later, now, Duration::from_secs(30)),
            Some(1)
        );
        dispatcher.saw("w2", now);
        dispatcher.enqueue(2, pending(2, &["gone"], &[]));
        dispatcher.enqueue(3, pending(3, &["w2"], &["lab"]));
        dispatcher.enqueue(4, pending(4, &["w1"], &[]));
        dispatcher.enqueue(5, pending(5, &["w2"], &["bench"]));
        dispatcher.enqueue(6, pending(6, &["w2"], &["bench"]));
        let online = |w: &str| w == "w1" || w == "w2";
        let found = waits(&dispatcher, &online);
        assert_eq!(
            found,
            vec![
                (
                    2,
                    Wait::NoWorker {
                        accepted: vec!["gone".into()]
                    }
                ),
                (
                    3,
                    Wait::Resource {
                        resource: "lab".into(),
                        build: 1
                    }
                ),
                (
                    4,
                    Wait::Busy {
                        workers: vec![("w1".into(), 1)]
                    }
                ),
                (5, Wait::Ready),
                (
                    6,
                    Wait::Behind {
                        resource: "bench".into(),
                        build: 5
                    }
                ),
            ]
        );
        assert_eq!(
            found[2].1.describe(),
            "all its workers are busy (w1 runs build 1)"
        );
        assert_eq!(
            found[0].1.describe(),
            "no online worker accepts it (accepted: gone)"
        );
    }
}
