//! The sled store: the only module that names sled, its trees and its key
//! encodings.
//!
//! Trees:
//! - `repos`: repo name → [`RepoRecord`]
//! - `graphs`: repo name, 0, version (u64 BE) → [`GraphRecord`]
//! - `builds`: build id (u64 BE) → [`BuildRecord`]
//! - `history`: builder name, 0, number (u64 BE) → build id
//! - `logs`: build id (u64 BE), step (u32 BE), chunk (u32 BE) → bytes: a
//!   step log's first [`step_logs::INLINE_LOG`] bytes, in chunk 0 (stores from before the
//!   log files hold whole logs in several chunks, read and removed)
//!
//! Step logs that outgrow that live in files beside the trees (`logs/` in
//! the store's directory, see `logs`).
//! - `queue`: sequence (u64 BE) → build id, the pending builds in order
//! - `tokens`: worker name → sha256 of its token
//! - `access`: people's tokens (`token/` + sha256 → [`PersonToken`]), browser
//!   sessions (`session/` + sha256 → [`SessionRecord`]) and one-time login
//!   links (`link/` + sha256 → [`LoginLink`]); see `access`
//! - `pulls`: repo name, 0, number (u64 BE) → [`pulls::PullRecord`]
//! - `outbox`: commit statuses waiting to be posted (see `outbox`)
//! - `meta`: counters (next build number per builder), and under `heads/`
//!   the branch heads the poller last saw (see `heads`)
//!
//! Values are JSON. Every write a user would miss after a crash is followed by
//! [`Store::flush`] before it is acknowledged; callers on the async runtime
//! call the async wrappers in `megatron`, which run these on blocking threads.

mod access;
mod heads;
mod logs;
pub mod outbox;
pub mod pulls;
mod records;
mod schedule;
mod step_logs;

pub use records::*;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Db, Tree};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    /// Another process has the store open.
    #[error("the store is in use by another process")]
    Locked,
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    #[error("store: undecodable record {key}: {message}")]
    Decode { key: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone)]
pub struct Store {
    db: Db,
    repos: Tree,
    graphs: Tree,
    builds: Tree,
    history: Tree,
    logs: Tree,
    queue: Tree,
    tokens: Tree,
    meta: Tree,
    access: Tree,
    outbox: Tree,
    pulls: Tree,
    log_files: logs::LogFiles,
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our record types serialise to JSON without fail (string keys only).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// How much of a builder's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest builds kept whatever their age.
    pub builds: usize,
    /// Builds that finished before this (ms since the epoch) go, even among
    /// the newest.
    pub finished_before: Option<u64>,
    /// The newest build that passed stays, however old.
    pub keep_last_success: bool,
}

/// The `meta` key of the last build id given.
const BUILD_ID: &[u8] = b"build-id";

fn history_key(builder: &str, number: u64) -> Vec<u8> {
    let mut key = builder.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&number.to_be_bytes());
    key
}

fn graph_key(repo: &str, version: u64) -> Vec<u8> {
    history_key(repo, version)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(buf)
}

impl Store {
    /// Opens (or creates) the store in `dir`, with a small page cache: the
    /// megatron keeps what it needs in memory itself.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = match sled::Config::new()
            .path(dir)
            .cache_capacity(8 << 20)
            .mode(sled::Mode::LowSpace)
            .open()
        {
            Ok(db) => db,
            // sled holds an exclusive lock on its files while open.
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                return Err(Error::Locked)
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store {
            repos: db.open_tree("repos")?,
            graphs: db.open_tree("graphs")?,
            builds: db.open_tree("builds")?,
            history: db.open_tree("history")?,
            logs: db.open_tree("logs")?,
            queue: db.open_tree("queue")?,
            tokens: db.open_tree("tokens")?,
            meta: db.open_tree("meta")?,
            access: db.open_tree("access")?,
            outbox: db.open_tree("outbox")?,
            pulls: db.open_tree("pulls")?,
            log_files: logs::LogFiles::open(dir.join("logs"))?,
            db,
        };
        // A store from before the counter: go on from its newest build.
        if store.meta.get(BUILD_ID)?.is_none() {
            let last = store.builds.last()?.map_or(0, |(key, _)| be_u64(&key));
            store.meta.insert(BUILD_ID, &last.to_be_bytes())?;
        }
        Ok(store)
    }

    /// Bytes sled's files take on disk (a stat of each, no walk of the
    /// trees); step logs are files of their own, not counted here.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    // Repos and graphs.

    pub fn repo(&self, name: &str) -> Result<Option<RepoRecord>> {
        self.repos
            .get(name)?
            .map(|bytes| decode(name.as_bytes(), &bytes))
            .transpose()
    }

    pub fn repos(&self) -> Result<Vec<RepoRecord>> {
        self.repos
            .iter()
            .map(|item| {
                let (key, bytes) = item?;
                decode(&key, &bytes)
            })
            .collect()
    }

    pub fn put_repo(&self, repo: &RepoRecord) -> Result<()> {
        self.repos.insert(repo.name.as_bytes(), encode(repo))?;
        Ok(())
    }

    /// Forgets a repo and its graph versions (its builds stay in history).
    pub fn remove_repo(&self, name: &str) -> Result<()> {
        self.repos.remove(name)?;
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        for key in self.graphs.scan_prefix(&prefix).keys() {
            self.graphs.remove(key?)?;
        }
        Ok(())
    }

    /// Stores a new graph version of a repo and returns its number.
    pub fn add_graph(&self, mut record: GraphRecord) -> Result<u64> {
        let version = self.db.generate_id()? + 1;
        record.version = version;
        self.graphs
            .insert(graph_key(&record.repo, version), encode(&record))?;
        Ok(version)
    }

    pub fn graph(&self, repo: &str, version: u64) -> Result<Option<GraphRecord>> {
        let key = graph_key(repo, version);
        self.graphs
            .get(&key)?
            .map(|bytes| decode(&key, &bytes))
            .transpose()
    }

    // Builds.

    /// Creates a queued build: assigns its id and number and puts it in the
    /// queue, in one transaction.
    pub fn create_build(&self, mut build: BuildRecord) -> Result<BuildRecord> {
        let sequence = self.db.generate_id()? + 1;
        build.queue_sequence = Some(sequence);
        let number_key = format!("number/{}", build.builder);
        let result: std::result::Result<BuildRecord, TransactionError<()>> =
            (&self.builds, &self.history, &self.queue, &self.meta).transaction(
                |(builds, history, queue, meta)| {
                    // Ids count up by one, across restarts: a counter in
                    // the same transaction, not sled's id generator (which
                    // leaps after every restart).
                    let id = meta.get(BUILD_ID)?.map_or(0, |b| be_u64(&b)) + 1;
                    meta.insert(BUILD_ID, &id.to_be_bytes())?;
                    let number = meta.get(number_key.as_bytes())?.map_or(0, |b| be_u64(&b)) + 1;
                    meta.insert(number_key.as_bytes(), &number.to_be_bytes())?;
                    let mut build = build.clone();
                    build.id = id;
                    build.number = number;
                    builds.insert(&build.id.to_be_bytes(), encode(&build))?;
                    history.insert(history_key(&build.builder, number), &build.id.to_be_bytes())?;
                    queue.insert(&sequence.to_be_bytes(), &build.id.to_be_bytes())?;
                    Ok::<_, ConflictableTransactionError<()>>(build)
                },
            );
        result.map_err(|e| match e {
            TransactionError::Storage(e) => Error::Sled(e),
            TransactionError::Abort(()) => Error::Conflict("build creation aborted".into()),
        })
    }

    pub fn build(&self, id: u64) -> Result<BuildRecord> {
        let key = id.to_be_bytes();
        match self.builds.get(key)? {
            Some(bytes) => decode(&key, &bytes),
            None => Err(Error::NotFound(format!("build {id}"))),
        }
    }

    /// Writes a build's record; when it left the queue, its queue entry goes too.
    pub fn put_build(&self, build: &BuildRecord) -> Result<()> {
        let key = build.id.to_be_bytes();
        if build.state != BuildState::Queued {
            if let Some(sequence) = build.queue_sequence {
                let result: std::result::Result<(), TransactionError<()>> =
                    (&self.builds, &self.queue).transaction(|(builds, queue)| {
                        builds.insert(&key, encode(build))?;
                        queue.remove(&sequence.to_be_bytes())?;
                        Ok(())
                    });
                return result.map_err(|e| match e {
                    TransactionError::Storage(e) => Error::Sled(e),
                    TransactionError::Abort(()) => Error::Conflict("build update aborted".into()),
                });
            }
        }
        self.builds.insert(key, encode(build))?;
        Ok(())
    }

    /// Puts a build back in the queue under a new sequence number (it keeps
    /// its id and number).
    pub fn requeue_build(&self, build: &mut BuildRecord) -> Result<()> {
        let sequence = self.db.generate_id()? + 1;
        build.state = BuildState::Queued;
        build.queue_sequence = Some(sequence);
        let result: std::result::Result<(), TransactionError<()>> = (&self.builds, &self.queue)
            .transaction(|(builds, queue)| {
                builds.insert(&build.id.to_be_bytes(), encode(&*build))?;
                queue.insert(&sequence.to_be_bytes(), &build.id.to_be_bytes())?;
                Ok(())
            });
        result.map_err(|e| match e {
            TransactionError::Storage(e) => Error::Sled(e),
            TransactionError::Abort(()) => Error::Conflict("requeue aborted".into()),
        })
    }

    /// The queued builds, in queue order.
    pub fn queued_builds(&self) -> Result<Vec<BuildRecord>> {
        let mut builds = Vec::new();
        for item in self.queue.iter() {
            let (_, id) = item?;
            match self.build(be_u64(&id)) {
                Ok(build) if build.state == BuildState::Queued => builds.push(build),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(builds)
    }

    /// The builds a worker was running when the megatron stopped.
    pub fn running_builds(&self) -> Result<Vec<BuildRecord>> {
        let mut builds = Vec::new();
        for item in self.builds.iter() {
            let (key, bytes) = item?;
            let build: BuildRecord = decode(&key, &bytes)?;
            if build.state == BuildState::Running {
                builds.push(build);
            }
        }
        Ok(builds)
    }

    /// A builder's builds, newest first, at most `limit`.
    pub fn builder_builds(&self, builder: &str, limit: usize) -> Result<Vec<BuildRecord>> {
        let mut prefix = builder.as_bytes().to_vec();
        prefix.push(0);
        let mut builds = Vec::new();
        for item in self.history.scan_prefix(&prefix).rev().take(limit) {
            let (_, id) = item?;
            match self.build(be_u64(&id)) {
                Ok(build) => builds.push(build),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(builds)
    }

    /// A builder's build by its number.
    pub fn build_by_number(&self, builder: &str, number: u64) -> Result<BuildRecord> {
        match self.history.get(history_key(builder, number))? {
            Some(id) => self.build(be_u64(&id)),
            None => Err(Error::NotFound(format!("build {builder} #{number}"))),
        }
    }

    /// A builder's builds numbered below `before` (all when `None`), newest
    /// first, at most `limit`: one page of its history, read without
    /// touching the pages after it.
    pub fn builder_builds_before(
        &self,
        builder: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<BuildRecord>> {
        let start = history_key(builder, 0);
        let end = match before {
            Some(number) => history_key(builder, number),
            None => {
                let mut end = builder.as_bytes().to_vec();
                end.push(1);
                end
            }
        };
        let mut builds = Vec::new();
        for item in self.history.range(start..end).rev().take(limit) {
            let (_, id) = item?;
            match self.build(be_u64(&id)) {
                Ok(build) => builds.push(build),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(builds)
    }

    /// Deletes a builder's finished builds beyond the newest `keep`, with their
    /// logs; returns the ids removed.
    pub fn apply_horizon(&self, builder: &str, keep: usize) -> Result<Vec<u64>> {
        self.apply_retention(
            builder,
            Retention {
                builds: keep,
                finished_before: None,
                keep_last_success: false,
            },
            false,
        )
    }

    /// Deletes a builder's finished builds that `retention` lets go, with
    /// their logs; returns the ids removed.
    ///
    /// Builds are looked at oldest first and decoded only when they may go:
    /// those beyond the count always, and with `finished_before`, older ones
    /// up to the first that finished since (`thorough` looks at every one:
    /// a long build may finish after newer ones). So a build's end costs
    /// what it removes, not the builder's whole history.
    pub fn apply_retention(
        &self,
        builder: &str,
        retention: Retention,
        thorough: bool,
    ) -> Result<Vec<u64>> {
        let mut prefix = builder.as_bytes().to_vec();
        prefix.push(0);
        let entries: Vec<(sled::IVec, sled::IVec)> = self
            .history
            .scan_prefix(&prefix)
            .collect::<std::result::Result<_, _>>()?;
        let count = entries.len();
        let mut last_success: Option<Option<u64>> = None;
        let mut removed = Vec::new();
        for (i, (key, id)) in entries.iter().enumerate() {
            let beyond = i + retention.builds < count;
            if !beyond && retention.finished_before.is_none() {
                break;
            }
            let build = match self.build(be_u64(id)) {
                Ok(build) => build,
                Err(Error::NotFound(_)) => {
                    self.history.remove(key)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let aged = retention
                .finished_before
                .is_some_and(|cut| build.finished.is_some_and(|f| f < cut));
            if !(beyond || aged) {
                if thorough {
                    continue;
                }
                break;
            }
            if build.state != BuildState::Finished {
                continue;
            }
            if retention.keep_last_success {
                let last = *last_success.get_or_insert_with(|| {
                    // The newest that passed: looked for from the newest down.
                    entries.iter().rev().find_map(|(_, id)| {
                        self.build(be_u64(id))
                            .ok()
                            .filter(|b| b.result.is_some_and(crate::protocol::BuildResult::passed))
                            .map(|b| b.id)
                    })
                });
                if last == Some(build.id) {
                    continue;
                }
            }
            self.history.remove(key)?;
            self.builds.remove(build.id.to_be_bytes())?;
            self.delete_logs(build.id)?;
            removed.push(build.id);
        }
        Ok(removed)
    }

    // Worker tokens.

    pub fn token_hash(&self, worker: &str) -> Result<Option<String>> {
        Ok(self
            .tokens
            .get(worker)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    pub fn put_token_hash(&self, worker: &str, hash: &str) -> Result<()> {
        self.tokens.insert(worker, hash.as_bytes())?;
        Ok(())
    }

    /// Forgets a worker's token: the worker is refused until it gets a new
    /// one. Returns whether it had one.
    pub fn delete_token_hash(&self, worker: &str) -> Result<bool> {
        Ok(self.tokens.remove(worker)?.is_some())
    }

    pub fn workers_with_tokens(&self) -> Result<Vec<String>> {
        self.tokens
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
