//! Who runs what: the pending builds in queue order, the running ones with
//! their leases, busy workers and held resources. Pure in-memory logic behind
//! one mutex, so a claim is atomic however many workers ask at once; the
//! store is written by the caller, which holds the truth across restarts.
//!
//! Rules enforced at claim time:
//! - a build goes only to a worker its builder lists (and a user worker only
//!   takes its own repo's builds, which its graph guarantees);
//! - one build per worker;
//! - a resource is held by one build at a time, across all repos, and granted
//!   in queue order: a pending build that waits for a resource keeps later
//!   builds from taking it, as long as a worker that could run it is around.

use crate::store::BuildRecord;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// What the dispatcher needs to know of a pending build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub build: u64,
    pub workers: Vec<String>,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub worker: String,
    pub lease: String,
    pub resources: Vec<String>,
    pub expires: Instant,
}

#[derive(Debug, Default)]
pub struct Dispatcher {
    /// Queue sequence → pending build.
    pending: BTreeMap<u64, Pending>,
    running: HashMap<u64, Running>,
    busy: HashMap<String, u64>,
    held: HashMap<String, u64>,
    /// When each worker last asked for work or reported.
    seen: HashMap<String, Instant>,
}

impl Dispatcher {
    pub fn enqueue(&mut self, sequence: u64, pending: Pending) {
        self.pending.insert(sequence, pending);
    }

    /// Takes a queued build out of the queue (cancelled before it ran).
    pub fn dequeue(&mut self, build: u64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|_, p| p.build != build);
        before != self.pending.len()
    }

    pub fn is_pending(&self, build: u64) -> bool {
        self.pending.values().any(|p| p.build == build)
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn running(&self, build: u64) -> Option<&Running> {
        self.running.get(&build)
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Restores a build that was running when the megatron stopped.
    pub fn restore_running(&mut self, build: u64, running: Running) {
        self.busy.insert(running.worker.clone(), build);
        for resource in &running.resources {
            self.held.insert(resource.clone(), build);
        }
        self.running.insert(build, running);
    }

    pub fn saw(&mut self, worker: &str, now: Instant) {
        self.seen.insert(worker.to_string(), now);
    }

    pub fn is_busy(&self, worker: &str) -> bool {
        self.busy.contains_key(worker)
    }

    /// Picks the first pending build this worker may run now and marks it
    /// running under `lease`. `recent` is how long a worker counts as around
    /// after it was last seen.
    pub fn claim(
        &mut self,
        worker: &str,
        lease: &str,
        expires: Instant,
        now: Instant,
        recent: Duration,
    ) -> Option<u64> {
        self.saw(worker, now);
        if self.busy.contains_key(worker) {
            return None;
        }
        let mut reserved: HashSet<&str> = HashSet::new();
        let mut chosen = None;
        for (sequence, pending) in &self.pending {
            let free = pending
                .resources
                .iter()
                .all(|r| !self.held.contains_key(r) && !reserved.contains(r.as_str()));
            if free && pending.workers.iter().any(|w| w == worker) {
                chosen = Some(*sequence);
                break;
            }
            // A build that a worker around could run keeps its resources
            // for itself, so later builds do not overtake it.
            let runnable_soon = pending.workers.iter().any(|w| {
                w != worker
                    && self
                        .seen
                        .get(w)
                        .is_some_and(|t| now.duration_since(*t) < recent)
            });
            if runnable_soon {
                reserved.extend(pending.resources.iter().map(String::as_str));
            }
        }
        let sequence = chosen?;
        let pending = self.pending.remove(&sequence)?;
        self.busy.insert(worker.to_string(), pending.build);
        for resource in &pending.resources {
            self.held.insert(resource.clone(), pending.build);
        }
        self.running.insert(
            pending.build,
            Running {
                worker: worker.to_string(),
                lease: lease.to_string(),
                resources: pending.resources,
                expires,
            },
        );
        Some(pending.build)
    }

    /// Undoes a claim whose store write failed: the build goes back to the
    /// head of its old place.
    pub fn unclaim(&mut self, build: u64, sequence: u64, pending: Pending) {
        self.release(build);
        self.pending.insert(sequence, pending);
    }

    /// Whether `lease` is the current lease of a running build.
    pub fn holds(&self, build: u64, lease: &str) -> bool {
        self.running.get(&build).is_some_and(|r| r.lease == lease)
    }

    pub fn extend(&mut self, build: u64, lease: &str, expires: Instant) -> bool {
        match self.running.get_mut(&build) {
            Some(running) if running.lease == lease => {
                running.expires = expires;
                true
            }
            _ => false,
        }
    }

    /// Ends a running build: frees its worker and resources.
    pub fn release(&mut self, build: u64) -> Option<Running> {
        let running = self.running.remove(&build)?;
        if self.busy.get(&running.worker) == Some(&build) {
            self.busy.remove(&running.worker);
        }
        for resource in &running.resources {
            if self.held.get(resource) == Some(&build) {
                self.held.remove(resource);
            }
        }
        Some(running)
    }

    /// Running builds whose lease ran out, released.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, Running)> {
        let expired: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(build, _)| *build)
            .collect();
        expired
            .into_iter()
            .filter_map(|build| self.release(build).map(|r| (build, r)))
            .collect()
    }

    /// When a worker last asked for work or reported.
    pub fn last_seen(&self, worker: &str) -> Option<Instant> {
        self.seen.get(worker).copied()
    }

    /// The build a worker runs now.
    pub fn busy_with(&self, worker: &str) -> Option<u64> {
        self.busy.get(worker).copied()
    }

    /// The build holding a resource now.
    pub fn holder(&self, resource: &str) -> Option<u64> {
        self.held.get(resource).copied()
    }

    /// The pending builds in queue order.
    pub fn pending_in_order(&self) -> impl Iterator<Item = &Pending> {
        self.pending.values()
    }

    /// Who holds each resource now, for the API.
    pub fn held_resources(&self) -> Vec<(String, u64)> {
        let mut held: Vec<(String, u64)> = self.held.iter().map(|(r, b)| (r.clone(), *b)).collect();
        held.sort();
        held
    }
}

impl Pending {
    pub fn new(build: u64, workers: Vec<String>, resources: Vec<String>) -> Pending {
        Pending {
            build,
            workers,
            resources,
        }
    }
}

/// The dispatcher's view of a build.
pub fn pending_of(build: &BuildRecord) -> Pending {
    Pending::new(
        build.id,
        build.spec.workers.clone(),
        build.spec.resources.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(build: u64, workers: &[&str], resources: &[&str]) -> Pending {
        Pending {
            build,
            workers: workers.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
        }
    }

    const RECENT: Duration = Duration::from_secs(10);

    #[test]
    fn a_build_goes_only_to_a_listed_worker_and_one_at_a_time() {
        let now = Instant::now();
        let mut d = Dispatcher::default();
        d.enqueue(1, pending(10, &["a"], &[]));
        d.enqueue(2, pending(11, &["a", "b"], &[]));
        assert_eq!(d.claim("b", "l1", now, now, RECENT), Some(11));
        assert_eq!(d.claim("b", "l2", now, now, RECENT), None, "b is busy");
        assert_eq!(
            d.claim("c", "l3", now, now, RECENT),
            None,
            "c is listed nowhere"
        );
        assert_eq!(d.claim("a", "l4", now, now, RECENT), Some(10));
        d.release(11);
        assert!(!d.is_busy("b"));
    }

    #[test]
    fn resources_are_exclusive_and_granted_in_queue_order() {
        let now = Instant::now();
        let mut d = Dispatcher::default();
        d.enqueue(1, pending(10, &["a"], &["lab"]));
        d.enqueue(2, pending(11, &["a"], &["lab"]));
        d.enqueue(3, pending(12, &["b"], &["lab"]));
        assert_eq!(d.claim("a", "l1", now, now, RECENT), Some(10));
        assert_eq!(d.claim("b", "l2", now, now, RECENT), None, "lab is held");
        d.release(10);
        // 11 comes first and its worker "a" is around: b may not overtake it.
        assert_eq!(d.claim("b", "l3", now, now, RECENT), None);
        assert_eq!(d.claim("a", "l4", now, now, RECENT), Some(11));
        d.release(11);
        assert_eq!(d.claim("b", "l5", now, now, RECENT), Some(12));
    }

    #[test]
    fn a_build_whose_workers_are_gone_does_not_block_a_resource() {
        let now = Instant::now();
        let mut d = Dispatcher::default();
        d.enqueue(1, pending(10, &["gone"], &["lab"]));
        d.enqueue(2, pending(11, &["b"], &["lab"]));
        assert_eq!(d.claim("b", "l", now, now, RECENT), Some(11));
    }

    #[test]
    fn leases_expire_and_free_everything() {
        let now = Instant::now();
        let mut d = Dispatcher::default();
        d.enqueue(1, pending(10, &["a"], &["lab"]));
        assert_eq!(
            d.claim("a", "l", now + Duration::from_secs(1), now, RECENT),
            Some(10)
        );
        assert!(d.holds(10, "l"));
        assert!(!d.holds(10, "other"));
        assert!(d.expire(now).is_empty());
        let expired = d.expire(now + Duration::from_secs(2));
        assert_eq!(expired.len(), 1);
        assert!(!d.is_busy("a"));
        assert!(d.held_resources().is_empty());
    }
}
