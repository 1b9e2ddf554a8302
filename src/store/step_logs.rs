//! A step's log as the store keeps it: its first [`INLINE_LOG`] bytes in
//! the `logs` tree, flushed with the record that counts them, and past that
//! in its file (see `logs`); logs of stores from before the files, in
//! several chunks of the tree, are read and removed.

use super::{Result, Store};

impl Store {
    /// Writes a piece of a step's log at `at`, its acknowledged length,
    /// durably once the caller flushes; returns where it went (the log's
    /// end, if that is short of `at`). The caller records the new length.
    ///
    /// A log's first [`INLINE_LOG`] bytes live in the `logs` tree and are
    /// made durable by the same flush as the record that counts them: a
    /// quiet step's output costs no file, no directory and no sync of its
    /// own (each is a few milliseconds on a real disk). A log that grows
    /// past that moves to its file, which is synced at each append.
    pub fn append_log(&self, build: u64, step: u32, at: u64, bytes: &[u8]) -> Result<u64> {
        if !self.log_files.exists(build, step) {
            let (keys, held) = self.inline_log(build, step)?;
            let at = at.min(held.len() as u64);
            if at as usize + bytes.len() <= INLINE_LOG {
                let mut log = held;
                log.truncate(at as usize);
                log.extend_from_slice(bytes);
                let mut batch = sled::Batch::default();
                for key in keys {
                    batch.remove(key);
                }
                batch.insert(log_key(build, step, 0), log);
                self.logs.apply_batch(batch)?;
                return Ok(at);
            }
            if at > 0 {
                // It outgrew the tree: its file starts with what it held.
                self.log_files
                    .append(build, step, 0, &held[..at as usize])?;
                let written = self.log_files.append(build, step, at, bytes)?;
                for key in keys {
                    self.logs.remove(key)?;
                }
                return Ok(written);
            }
        }
        Ok(self.log_files.append(build, step, at, bytes)?)
    }

    /// What the `logs` tree holds of a step's log, in order, and the keys
    /// it is under.
    fn inline_log(&self, build: u64, step: u32) -> Result<(Vec<sled::IVec>, Vec<u8>)> {
        let mut keys = Vec::new();
        let mut log = Vec::new();
        for item in self.logs.scan_prefix(log_prefix(build, step)) {
            let (key, chunk) = item?;
            keys.push(key);
            log.extend_from_slice(&chunk);
        }
        Ok((keys, log))
    }

    /// A step's log from byte `offset` up to `end` (its acknowledged
    /// length), at most `max` bytes.
    pub fn read_log(
        &self,
        build: u64,
        step: u32,
        offset: u64,
        end: u64,
        max: usize,
    ) -> Result<Vec<u8>> {
        if let Some(bytes) = self.log_files.read(build, step, offset, end, max)? {
            return Ok(bytes);
        }
        let max = max.min(end.saturating_sub(offset) as usize);
        let mut out = Vec::new();
        let mut position = 0u64;
        for item in self.logs.scan_prefix(log_prefix(build, step)) {
            let (_, chunk) = item?;
            let end = position + chunk.len() as u64;
            if end > offset {
                let start = offset.saturating_sub(position) as usize;
                out.extend_from_slice(&chunk[start..]);
                if out.len() >= max {
                    break;
                }
            }
            position = end;
        }
        out.truncate(max);
        Ok(out)
    }

    /// Removes every log of a build (it is being run again, or it goes).
    pub fn delete_logs(&self, build: u64) -> Result<()> {
        self.log_files.remove_build(build)?;
        for key in self.logs.scan_prefix(build.to_be_bytes()).keys() {
            self.logs.remove(key?)?;
        }
        Ok(())
    }
}

pub(super) fn log_key(build: u64, step: u32, chunk: u32) -> Vec<u8> {
    let mut key = log_prefix(build, step);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

pub(super) fn log_prefix(build: u64, step: u32) -> Vec<u8> {
    let mut key = build.to_be_bytes().to_vec();
    key.extend_from_slice(&step.to_be_bytes());
    key
}

/// The most of a step's log kept in the `logs` tree before it moves to a
/// file of its own ([`Store::append_log`]).
pub const INLINE_LOG: usize = 64 * 1024;
