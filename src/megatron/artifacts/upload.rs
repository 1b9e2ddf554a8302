//! An upload under way: checked against the worker's lease and the build's
//! cap, streamed to a temp file beside its target, then renamed into place
//! or extracted. And the download side's entry point, for a build that
//! exists.

use super::archive::extract_zip;
use super::error::{ArtifactError, Result};
use super::files::{create_folders, open_artifact, used_bytes, OpenArtifact, TempPath};
use super::paths::check_path;
use crate::megatron::state::State;
use crate::protocol::UploadKind;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

/// An upload under way: its bytes go to a temp file beside the target.
#[derive(Debug)]
pub struct Upload {
    pub build: u64,
    pub target: PathBuf,
    /// Extract the body (a zip) into the folder `target`, rather than
    /// storing it as the file `target`.
    pub unzip: bool,
    /// Bytes this upload may add: the cap less what the build already holds.
    pub allowance: u64,
    /// The build's whole cap, for the error that names it.
    pub cap: u64,
    temp: TempPath,
    file: Option<File>,
}

impl Upload {
    /// Writes the chunks `next` gives until it gives `None`, then makes the
    /// file durable. The caller counts bytes against [`Upload::allowance`]
    /// as they arrive and stops feeding when it is exceeded.
    pub fn write_all_from<B: AsRef<[u8]>>(
        mut self,
        mut next: impl FnMut() -> Option<B>,
    ) -> Result<Upload> {
        let Some(file) = self.file.as_mut() else {
            return Ok(self);
        };
        while let Some(chunk) = next() {
            file.write_all(chunk.as_ref())?;
        }
        file.sync_all()?;
        self.file = None;
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
        self.check_lease(build, worker, lease)?;
        let spec = self.store.build(build)?.spec;
        let unzip = kind == UploadKind::Zip && spec.unzip.iter().any(|d| d == path);
        let dir = self.artifact_dir(build);
        fs::create_dir_all(&dir)?;
        let (parent_relative, _) = path.rsplit_once('/').unwrap_or(("", path));
        create_folders(&dir, parent_relative)?;
        let target = dir.join(path);
        let used = used_bytes(&dir, &target)?;
        let cap = self.max_artifact_bytes;
        if used >= cap {
            return Err(ArtifactError::TooLarge { cap });
        }
        let parent = target.parent().unwrap_or(&dir).to_path_buf();
        let temp = TempPath::fresh_in(&parent)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(temp.path())?;
        Ok(Upload {
            build,
            target,
            unzip,
            allowance: cap - used,
            cap,
            temp,
            file: Some(file),
        })
    }

    /// Puts a fully received upload in place, if the worker still holds the
    /// build: renamed over its target, or extracted into it.
    pub fn finish_upload(&self, upload: Upload, worker: &str, lease: &str) -> Result<()> {
        // The lease may have been lost while the bytes were arriving.
        self.check_lease(upload.build, worker, lease)?;
        if upload.unzip {
            extract_zip(
                upload.temp.path(),
                &upload.target,
                upload.allowance,
                upload.cap,
            )?;
            // The archive itself is not kept: dropping `upload` removes it.
        } else {
            upload.temp.persist(&upload.target)?;
        }
        Ok(())
    }

    /// A stored artifact opened for download.
    pub fn open_artifact(&self, build: u64, path: &str) -> Result<OpenArtifact> {
        self.store.build(build)?;
        open_artifact(&self.artifact_dir(build), path)
    }
}
