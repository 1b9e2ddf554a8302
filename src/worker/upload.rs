//! The `upload` step: files and folders of the build folder sent to the
//! megatron, each source to its destination, zipped first when listed in
//! `zip`.
//!
//! Sources come from the build's config, whose author is not the worker's
//! owner, so nothing here leaves the build folder: a source must be
//! relative, without `..`, and must not lead outside through a symlink;
//! inside a folder, symlinks are never followed (skipped with a note) and
//! neither are fifos, sockets or devices, which could block or leak.

use super::client::{url_encode, Client};
use super::transfer;
use super::workspace::{StepError, Workspace};
use crate::config::spec::unsafe_relative_path;
use crate::protocol::{Job, UploadKind};
use anyhow::Context;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// What the step needs besides the job.
pub struct Uploader<'a> {
    pub client: &'a Client,
    pub workspace: &'a Workspace,
    pub job: &'a Job,
    pub log: &'a mut dyn FnMut(&str),
    pub stop: &'a dyn Fn() -> bool,
}

impl Uploader<'_> {
    /// Uploads every source, in the order of their names; the first problem
    /// ends the step.
    pub fn run(&mut self) -> Result<(), StepError> {
        let root = self
            .workspace
            .build_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", self.workspace.build_dir.display()))?;
        sweep_temp(&self.workspace.tmp_dir);
        let mut sent = 0u64;
        for (source, destination) in &self.job.upload {
            if (self.stop)() {
                return Err(StepError::Stopped);
            }
            let from = resolve_source(&root, source)?;
            if let Some(why) = unsafe_relative_path(destination) {
                return Err(StepError::Failure(format!(
                    "upload destination {destination:?} {why}"
                )));
            }
            let destination = destination.trim_end_matches('/');
            if self.job.zip.iter().any(|z| z == source) {
                let zip = TempZip::create(&self.workspace.tmp_dir, self.job.build)?;
                let entries = zip_source(&from, &zip.path, self.log, self.stop)?;
                (self.log)(&format!("zipped {source}: {entries} entries"));
                self.put(&zip.path, destination, UploadKind::Zip, &mut sent)?;
            } else if from.is_file() {
                self.put(&from, destination, UploadKind::File, &mut sent)?;
            } else if from.is_dir() {
                let files: Vec<Entry> = walk(&from, self.log)?
                    .into_iter()
                    .filter(|e| e.size.is_some())
                    .collect();
                if files.is_empty() {
                    (self.log)(&format!("{source} holds no files: nothing to upload"));
                }
                for file in files {
                    let to = format!("{destination}/{}", file.relative);
                    self.put(&file.path, &to, UploadKind::File, &mut sent)?;
                }
            } else {
                return Err(StepError::Failure(format!(
                    "upload source {source:?} is neither a file nor a folder"
                )));
            }
        }
        (self.log)(&format!("uploaded {sent} bytes"));
        Ok(())
    }

    /// One PUT, counted against the megatron's cap before it is sent.
    fn put(
        &mut self,
        from: &Path,
        destination: &str,
        kind: UploadKind,
        sent: &mut u64,
    ) -> Result<(), StepError> {
        let size = std::fs::metadata(from)
            .with_context(|| format!("inspecting {}", from.display()))?
            .len();
        let cap = self.job.max_upload_bytes;
        // Zero: the megatron set no cap.
        if cap > 0 && sent.saturating_add(size) > cap {
            return Err(StepError::Failure(format!(
                "uploads exceed the megatron's cap of {} MiB",
                mebibytes(cap)
            )));
        }
        let kind_name = match kind {
            UploadKind::File => "file",
            UploadKind::Zip => "zip",
        };
        let path = format!(
            "/api/v1/worker/builds/{}/artifacts/{}?lease={}&kind={kind_name}",
            self.job.build,
            transfer::encode_path(destination),
            url_encode(&self.job.lease)
        );
        (self.log)(&format!(
            "uploading {destination} ({size} bytes, {kind_name})"
        ));
        transfer::upload(self.client, &path, from, self.stop, self.log).map_err(
            |error| match error {
                StepError::Failure(message) => {
                    StepError::Failure(format!("uploading {destination}: {message}"))
                }
                other => other,
            },
        )?;
        *sent += size;
        Ok(())
    }
}

fn mebibytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0}")
    } else {
        format!("{mib:.1}")
    }
}

/// The real path of `source` below `root` (itself canonical), or why it
/// cannot be uploaded.
pub fn resolve_source(root: &Path, source: &str) -> Result<PathBuf, StepError> {
    let refuse = |why: &str| StepError::Failure(format!("upload source {source:?} {why}"));
    if let Some(why) = unsafe_relative_path(source) {
        return Err(refuse(why));
    }
    let joined = root.join(source);
    match std::fs::symlink_metadata(&joined) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("does not exist"))
        }
        Err(error) => {
            return Err(StepError::Exception(
                anyhow::Error::new(error).context(format!("inspecting {}", joined.display())),
            ))
        }
    }
    let real = joined
        .canonicalize()
        .map_err(|_| refuse("is a symlink to nothing"))?;
    if !real.starts_with(root) {
        return Err(refuse("leads outside the build folder through a symlink"));
    }
    Ok(real)
}

/// One entry below a folder being uploaded or zipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated, relative to the folder walked.
    pub relative: String,
    pub path: PathBuf,
    /// The size of a regular file; `None` for a folder.
    pub size: Option<u64>,
    pub mode: u32,
}

/// Folders and regular files below `dir`, depth first, sorted by name.
/// Symlinks, special files and names that are not UTF-8 are skipped with a
/// note in the log.
pub fn walk(dir: &Path, log: &mut dyn FnMut(&str)) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    walk_into(dir, "", &mut entries, log)?;
    Ok(entries)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    entries: &mut Vec<Entry>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let mut children: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let Some(name) = child.file_name().to_str().map(str::to_string) else {
            log(&format!(
                "skipping {}: its name is not UTF-8",
                path.display()
            ));
            continue;
        };
        let relative = format!("{prefix}{name}");
        // Of the entry itself: DirEntry does not follow symlinks.
        let metadata = std::fs::symlink_metadata(&path)
            .with_context(|| format!("inspecting {}", path.display()))?;
        let kind = metadata.file_type();
        let mode = metadata.permissions().mode() & 0o777;
        if kind.is_symlink() {
            log(&format!("skipping {relative}: a symlink, never followed"));
        } else if kind.is_dir() {
            entries.push(Entry {
                relative: relative.clone(),
                path: path.clone(),
                size: None,
                mode,
            });
            walk_into(&path, &format!("{relative}/"), entries, log)?;
        } else if kind.is_file() {
            entries.push(Entry {
                relative,
                path,
                size: Some(metadata.len()),
                mode,
            });
        } else {
            log(&format!("skipping {relative}: not a regular file"));
        }
    }
    Ok(())
}

/// Zips `source` (a file: one entry of its name; a folder: everything below
/// it, relative to it) into the file `to`, deflated. Returns the number of
/// entries.
pub fn zip_source(
    source: &Path,
    to: &Path,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<usize, StepError> {
    let entries = if source.is_dir() {
        walk(source, log)?
    } else {
        let metadata = std::fs::metadata(source)
            .with_context(|| format!("inspecting {}", source.display()))?;
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .context("the zipped file's name is not UTF-8")?;
        vec![Entry {
            relative: name.to_string(),
            path: source.to_path_buf(),
            size: Some(metadata.len()),
            mode: metadata.permissions().mode() & 0o777,
        }]
    };
    let out = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let zipping = |e: zip::result::ZipError| anyhow::anyhow!("zipping into {}: {e}", to.display());
    for entry in &entries {
        if stop() {
            return Err(StepError::Stopped);
        }
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(entry.mode);
        match entry.size {
            None => writer
                .add_directory(entry.relative.as_str(), options)
                .map_err(zipping)?,
            Some(size) => {
                // Zip64 only where needed: older unzip tools dislike it.
                let options = options.large_file(size >= u32::MAX as u64);
                writer
                    .start_file(entry.relative.as_str(), options)
                    .map_err(zipping)?;
                let mut file = File::open(&entry.path)
                    .with_context(|| format!("opening {}", entry.path.display()))?;
                std::io::copy(&mut file, &mut writer)
                    .with_context(|| format!("zipping {}", entry.path.display()))?;
            }
        }
    }
    let mut out = writer.finish().map_err(zipping)?;
    out.flush()
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(entries.len())
}

/// A zip being uploaded, removed when dropped.
struct TempZip {
    path: PathBuf,
}

impl TempZip {
    fn create(dir: &Path, build: u64) -> anyhow::Result<TempZip> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempZip {
            path: dir.join(format!("upload-{build}.zip")),
        })
    }
}

impl Drop for TempZip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes zips a killed worker left behind; one build at a time runs on a
/// worker, so none of them is in use.
fn sweep_temp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("upload-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
