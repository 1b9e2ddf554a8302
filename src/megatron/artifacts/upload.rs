//! An upload under way: checked against the worker's lease and the build's
//! cap, streamed to a temp file beside its target, then renamed into place
//! or extracted. An upload is bound to its lease to the end: one for a build
//! that was requeued, cancelled or finished meanwhile is stopped and
//! discarded, never moved into place. And the download side's entry point,
//! for a build that exists.

use super::archive::extract_zip_in;
use super::error::{ArtifactError, Result};
use super::files::{create_folders, open_artifact, used_bytes, OpenArtifact, TempPath};
use super::in_flight::Reservation;
use super::paths::check_path;
use crate::megatron::state::State;
use crate::protocol::UploadKind;
use crate::sync::lock;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Instant;

/// While unpacking, the lease is checked at least this often by entries (and
/// by time, every `Timing::lease_check`).
const CHECK_EVERY_ENTRIES: usize = 1000;

/// An upload under way: its bytes go to a temp file beside the target, and
/// count against the build's cap from the first.
#[derive(Debug)]
pub struct Upload {
    pub build: u64,
    pub target: PathBuf,
    /// Extract the body (a zip) into the folder `target`, rather than
    /// storing it as the file `target`.
    pub unzip: bool,
    /// Bytes received so far.
    pub received: u64,
    /// This upload's share of the build's cap.
    reservation: Reservation,
    /// Removed when the upload is dropped, whatever ended it: an error, a
    /// lost lease, a client gone.
    temp: TempPath,
    file: Option<File>,
}

impl Upload {
    /// Writes the chunks `next` gives until it gives `None`, then makes the
    /// file durable. Each chunk counts against the build's cap, with the
    /// other uploads under way, before it is written: past the cap the
    /// upload is refused, and its partial file removed.
    pub fn write_all_from<B: AsRef<[u8]>>(
        mut self,
        mut next: impl FnMut() -> Option<B>,
    ) -> Result<Upload> {
        let Some(mut file) = self.file.take() else {
            return Ok(self);
        };
        while let Some(chunk) = next() {
            let chunk = chunk.as_ref();
            self.received = self.received.saturating_add(chunk.len() as u64);
            self.reservation.grow_to(self.received)?;
            file.write_all(chunk)?;
        }
        file.sync_all()?;
        Ok(self)
    }
}

impl State {
    /// Checks an upload's lease and path and opens its temp file.
    pub fn begin_upload(
        &self,
        build: u64,
        worker: &str,
        lease: &str,
        path: &str,
        kind: UploadKind,
    ) -> Result<Upload> {
        check_path(path)?;
        // A call from the worker: like its reports, it extends the lease.
        self.check_lease(build, worker, lease)?;
        let spec = self.store.build(build)?.spec;
        let unzip = kind == UploadKind::Zip && spec.unzip.iter().any(|d| d == path);
        let dir = self.artifact_dir(build);
        let target = dir.join(path);
        let mut reservation = self.uploads_in_flight.begin(build, self.max_artifact_bytes);
        let (temp, file) = {
            // A requeue takes the build's folder away under this lock: the
            // folder is made again only for a build this worker still runs.
            let _write = lock(&self.build_write);
            self.check_upload_lease(build, worker, lease)?;
            fs::create_dir_all(&dir)?;
            let (parent_relative, _) = path.rsplit_once('/').unwrap_or(("", path));
            create_folders(&dir, parent_relative)?;
            let parent = target.parent().unwrap_or(&dir).to_path_buf();
            let temp = TempPath::fresh_in(&parent)?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(temp.path())?;
            (temp, file)
        };
        reservation.measured(used_bytes(&dir, &target)?)?;
        Ok(Upload {
            build,
            target,
            unzip,
            received: 0,
            reservation,
            temp,
            file: Some(file),
        })
    }

    /// Puts a fully received upload in place, if the worker still holds the
    /// build: renamed over its target, or extracted into it. The lease is
    /// checked before unpacking, while unpacking, and last under
    /// `build_write` together with the move into place, so nothing lands
    /// in a build that was requeued, cancelled or finished meanwhile.
    /// Returns the bytes stored.
    pub fn finish_upload(&self, upload: Upload, worker: &str, lease: &str) -> Result<u64> {
        let Upload {
            build,
            target,
            unzip,
            received,
            mut reservation,
            temp,
            file: _,
        } = upload;
        self.check_upload_lease(build, worker, lease)?;
        let (ready, bytes, _archive) = if unzip {
            let parent = target.parent().ok_or_else(|| {
                ArtifactError::BadPath(format!("{} has no folder", target.display()))
            })?;
            let every = self.timing.lease_check;
            let mut checked = (Instant::now(), 0usize);
            let extracted = extract_zip_in(temp.path(), parent, &mut |progress| {
                // The archive stays on disk until the end: the upload holds
                // its bytes, or the unpacked ones once they are more.
                reservation.grow_to(progress.bytes.max(received))?;
                if progress.entries >= checked.1 + CHECK_EVERY_ENTRIES
                    || checked.0.elapsed() >= every
                {
                    self.check_upload_lease(build, worker, lease)?;
                    checked = (Instant::now(), progress.entries);
                }
                Ok(())
            });
            match extracted {
                // The archive itself is not kept: dropping it removes it.
                Ok((folder, bytes)) => (folder, bytes, Some(temp)),
                Err(error) => {
                    // Unpacking fails when the build's folder is taken away
                    // under it: then the lost lease is the answer.
                    self.check_upload_lease(build, worker, lease)?;
                    return Err(error);
                }
            }
        } else {
            (temp, received, None)
        };
        let replaced = {
            let _write = lock(&self.build_write);
            self.check_upload_lease(build, worker, lease)?;
            ready.swap_in(&target)?
        };
        // A replaced folder is removed outside the lock.
        drop(replaced);
        reservation.landed(bytes);
        Ok(bytes)
    }

    /// A stored artifact opened for download.
    pub fn open_artifact(&self, build: u64, path: &str) -> Result<OpenArtifact> {
        self.store.build(build)?;
        open_artifact(&self.artifact_dir(build), path)
    }
}
