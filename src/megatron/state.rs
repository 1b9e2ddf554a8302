//! [`State`]: the store, the in-memory dispatcher and the current graph of
//! every repo, opened and restored from the data dir.
//!
//! Its methods (here and in the sibling files that add `impl State` blocks)
//! are synchronous: they touch sled and git2. The async layers call them
//! through [`State::blocking`], so no blocking work runs on the async
//! threads; long-polls wait on the [`Notify`]s kept here.

use super::artifacts::files::remove_partials;
use super::artifacts::in_flight::InFlight;
use super::dispatch::pending_of;
use super::dispatch::{Dispatcher, Running};
use crate::config::Cybertron;
use crate::store::{self, GraphRecord, RepoRecord, Store};
use crate::sync::{lock, read, write};
use crate::token::{random_secret, secret_hash};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Every interval of the megatron; tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// The longest a claim long-poll is held.
    pub claim_wait: Duration,
    /// How long a heartbeat long-poll is held; workers call it back to back.
    pub heartbeat: Duration,
    /// A running build's lease: without a heartbeat for this long, its worker
    /// counts as gone.
    pub lease: Duration,
    /// How often leases are checked, and time schedulers too.
    pub lease_check: Duration,
    /// How often aged builds are looked for (cybertron's `horizon.days`).
    pub retention_check: Duration,
    /// How often the disk each repo's history takes is counted again.
    pub usage_check: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            claim_wait: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            lease_check: Duration::from_secs(1),
            retention_check: Duration::from_secs(600),
            usage_check: Duration::from_secs(120),
        }
    }
}

pub struct Options {
    pub data_dir: PathBuf,
    pub cybertron: Cybertron,
    pub timing: Timing,
    /// The most bytes one build may upload (its unzipped archives included).
    pub max_artifact_bytes: u64,
    /// The cybertron file, read again on reload; `None` when it came from
    /// elsewhere (the demo's is built in).
    pub cybertron_path: Option<PathBuf>,
}

/// One build's uploads may take this much unless the megatron says otherwise.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// A repo as the megatron holds it: its record and its current graph.
#[derive(Clone)]
pub struct RepoState {
    pub record: RepoRecord,
    pub graph: Option<Arc<GraphRecord>>,
}

pub struct State {
    pub store: Store,
    pub timing: Timing,
    pub data_dir: PathBuf,
    pub cybertron: RwLock<Arc<Cybertron>>,
    /// Who runs what. Held only for in-memory decisions, never across I/O.
    pub dispatcher: Mutex<Dispatcher>,
    /// Woken whenever a build may have become claimable: a new build, a
    /// freed worker or resource. Claim long-polls wait on it.
    pub queue_changed: Notify,
    /// Woken when a build changes (cancel, new output, end): heartbeat and
    /// log-follow long-polls wait on it.
    pub build_changed: Notify,
    /// Woken when a commit status is put in the outbox: the reporter waits
    /// on it.
    pub statuses_waiting: Notify,
    /// Counts every change of a build or the queue; live pages watch it, so
    /// one that was busy when a change came still sees it.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Set when the megatron is going away: long-polls and live streams end
    /// at once, with an answer, so a stop takes well under a second.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Repos by name.
    pub repos: RwLock<HashMap<String, RepoState>>,
    /// The last count of the disk each repo's history takes, and when it
    /// was made (`usage::usage_loop`): pages show it without walking every
    /// build on each view.
    pub usage_counted: RwLock<Option<(u64, Arc<Vec<super::disk_use::RepoUsage>>)>>,
    /// Serialises read-modify-write of build records (worker reports and
    /// cancels race otherwise). Held across sled calls, never across a flush.
    pub build_write: Mutex<()>,
    /// One refresh at a time per repo.
    pub refreshing: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// The token that admin calls (issuing worker tokens) must present.
    pub admin_token_hash: String,
    pub max_artifact_bytes: u64,
    /// Bytes of uploads under way, per build: they count against the cap
    /// before they land.
    pub uploads_in_flight: Arc<InFlight>,
    pub cybertron_path: Option<PathBuf>,
    /// Polls repos this often instead of cybertron's `poll_interval` (tests
    /// and benches shorten it); `None` follows cybertron.
    pub poll_every: RwLock<Option<Duration>>,
    /// What `GET /metrics` shows. Atomics: counting takes none of the
    /// locks above.
    pub metrics: crate::metrics::Metrics,
}

/// The admin token file in the data dir, created (mode 0600) on first start.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

fn load_or_create_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = admin_token_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let token = random_secret()?;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

impl State {
    /// Opens the store in the data dir and restores repos, graphs, the queue
    /// and running builds as they were.
    pub fn open(options: Options) -> anyhow::Result<Arc<State>> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let store = match Store::open(&options.data_dir.join("store")) {
            Ok(store) => store,
            Err(store::Error::Locked) => {
                anyhow::bail!(
                    "the data dir {} is already in use by another megatron",
                    options.data_dir.display()
                )
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("opening the store in {}", options.data_dir.display())
                })
            }
        };
        let admin_token = load_or_create_admin_token(&options.data_dir)?;
        let state = State {
            store,
            timing: options.timing,
            data_dir: options.data_dir,
            cybertron: RwLock::new(Arc::new(options.cybertron)),
            dispatcher: Mutex::new(Dispatcher::default()),
            queue_changed: Notify::new(),
            build_changed: Notify::new(),
            statuses_waiting: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            repos: RwLock::new(HashMap::new()),
            usage_counted: RwLock::new(None),
            build_write: Mutex::new(()),
            refreshing: Mutex::new(HashMap::new()),
            admin_token_hash: secret_hash(&admin_token),
            max_artifact_bytes: options.max_artifact_bytes,
            uploads_in_flight: Arc::new(InFlight::default()),
            cybertron_path: options.cybertron_path,
            poll_every: RwLock::new(None),
            metrics: crate::metrics::Metrics::new(),
        };
        state.restore().context("restoring the megatron's state")?;
        // Uploads cut short by a crash leave temp files; none is under way
        // now, so every one of them goes.
        match remove_partials(&state.data_dir.join("artifacts")) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed the partial uploads of a crash"),
            Err(e) => tracing::warn!(error = %e, "removing partial uploads"),
        }
        Ok(Arc::new(state))
    }

    fn restore(&self) -> std::result::Result<(), store::Error> {
        let mut repos = HashMap::new();
        for record in self.store.repos()? {
            let graph = match record.graph_version {
                Some(version) => self.store.graph(&record.name, version)?.map(Arc::new),
                None => None,
            };
            repos.insert(record.name.clone(), RepoState { record, graph });
        }
        *write(&self.repos) = repos;
        let now = Instant::now();
        let mut dispatcher = lock(&self.dispatcher);
        for build in self.store.queued_builds()? {
            if let Some(sequence) = build.queue_sequence {
                dispatcher.enqueue(sequence, pending_of(&build));
            }
        }
        for build in self.store.running_builds()? {
            let (Some(worker), Some(lease)) = (build.worker.clone(), build.lease.clone()) else {
                continue;
            };
            // Its worker may still be at it: give it a full lease to call in.
            dispatcher.restore_running(
                build.id,
                Running {
                    worker,
                    lease,
                    resources: build.spec.resources.clone(),
                    expires: now + self.timing.lease,
                },
            );
        }
        Ok(())
    }

    /// Ends every long-poll and live stream: the megatron is going away.
    pub fn stop_serving(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.queue_changed.notify_waiters();
        self.build_changed.notify_waiters();
        self.announce();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Tells live pages that something changed.
    pub fn announce(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs synchronous work (sled, git2, evaluation) on the blocking pool.
    pub async fn blocking<T, F>(self: &Arc<Self>, work: F) -> T
    where
        F: FnOnce(&State) -> T + Send + 'static,
        T: Send + 'static,
    {
        let state = self.clone();
        match tokio::task::spawn_blocking(move || work(&state)).await {
            Ok(value) => value,
            // A panic in the work: surface it where it happened.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Where a build's artifacts are stored.
    pub fn artifact_dir(&self, build: u64) -> PathBuf {
        self.data_dir.join("artifacts").join(build.to_string())
    }

    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.data_dir.join("repos").join(format!("{repo}.git"))
    }

    /// The repo and current graph record that define a builder.
    pub fn builder_owner(&self, builder: &str) -> Option<(String, Arc<GraphRecord>)> {
        read(&self.repos).values().find_map(|repo| {
            let graph = repo.graph.as_ref()?;
            graph
                .graph
                .builders
                .contains_key(builder)
                .then(|| (repo.record.name.clone(), graph.clone()))
        })
    }

    /// Whether a worker is known: cybertron's, or a user worker of a repo.
    pub fn worker_known(&self, worker: &str) -> bool {
        read(&self.cybertron).spec.workers.contains_key(worker)
            || read(&self.repos).values().any(|r| {
                r.graph
                    .as_ref()
                    .is_some_and(|g| g.graph.workers.contains_key(worker))
            })
    }

    pub fn pending_of_dispatcher(&self) -> usize {
        lock(&self.dispatcher).pending_count()
    }
}
