//! Artifacts on disk: the walk over a build's stored files, temp files
//! renamed into place when complete, and reads that cannot leave the
//! build's folder.
//!
//! Everything a build uploads lives under `State::artifact_dir`, one plain
//! file per artifact, so artifacts survive a restart without any index and a
//! build's removal is one `remove_dir_all`. All of it is blocking file work.

use super::error::{ArtifactError, Result};
use super::paths::{check_path, TEMP_PREFIX};
use crate::protocol::Artifact;
use crate::token::random_secret;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Read and write in pieces of this size, so no file is ever whole in memory.
pub const CHUNK: usize = 64 << 10;

/// Calls `visit(relative path, size)` for every stored file under
/// `dir`, skipping uploads in progress and anything `skip` names. Links
/// (which we never create) are neither visited nor followed. Something that
/// vanishes during the walk (an upload replacing a folder) is passed over;
/// a missing `dir` has no files.
fn walk_files(dir: &Path, skip: Option<&Path>, visit: &mut dyn FnMut(&str, u64)) -> io::Result<()> {
    fn gone(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::NotFound
    }
    fn walk(
        dir: &Path,
        prefix: &str,
        skip: Option<&Path>,
        visit: &mut dyn FnMut(&str, u64),
    ) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(TEMP_PREFIX) || skip == Some(path.as_path()) {
                continue;
            }
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            // file_type() does not follow links.
            let kind = match entry.file_type() {
                Err(e) if gone(&e) => continue,
                other => other?,
            };
            if kind.is_dir() {
                walk(&path, &relative, skip, visit)?;
            } else if kind.is_file() {
                match entry.metadata() {
                    Err(e) if gone(&e) => continue,
                    other => visit(&relative, other?.len()),
                }
            }
        }
        Ok(())
    }
    walk(dir, "", skip, visit)
}

/// Every stored file under `dir`, sorted by path, `/`-separated. A build
/// that uploaded nothing (no folder) has none.
pub fn list_artifacts(dir: &Path) -> io::Result<Vec<Artifact>> {
    let mut out = Vec::new();
    walk_files(dir, None, &mut |path, size| {
        out.push(Artifact {
            path: path.to_string(),
            size,
        })
    })?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Bytes of the files under `dir`, leaving out `except` (what an upload is
/// about to replace) and uploads in progress.
pub fn used_bytes(dir: &Path, except: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    walk_files(dir, Some(except), &mut |_, size| {
        total = total.saturating_add(size)
    })?;
    Ok(total)
}

/// A temporary file or folder that is removed when dropped, unless it was
/// renamed into place first.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    /// A fresh name in `parent`, not yet created: the caller creates the
    /// file or folder, and it is removed on drop from then on.
    pub fn fresh_in(parent: &Path) -> io::Result<TempPath> {
        let random = random_secret().map_err(io::Error::other)?;
        Ok(TempPath {
            path: Some(parent.join(format!("{TEMP_PREFIX}{random}"))),
        })
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames it over `target` (replacing a file or a whole folder there)
    /// and makes the rename durable.
    pub fn persist(self, target: &Path) -> io::Result<()> {
        // What it replaced goes now.
        drop(self.swap_in(target)?);
        Ok(())
    }

    /// Renames it over `target` and makes the rename durable. A folder (or
    /// anything but a file) in the way is renamed aside first, since
    /// rename(2) replaces a file atomically but not a folder, and returned:
    /// dropping it removes it, which may take a while, so a caller holding
    /// a lock drops it after. If the rename fails, what was there is put
    /// back.
    pub fn swap_in(mut self, target: &Path) -> io::Result<Option<TempPath>> {
        let Some(path) = self.path.take() else {
            return Ok(None);
        };
        let result = (|| {
            let aside = match fs::symlink_metadata(target) {
                Ok(meta) if !meta.is_file() => {
                    let parent = target.parent().unwrap_or(Path::new("."));
                    let aside = TempPath::fresh_in(parent)?;
                    fs::rename(target, aside.path())?;
                    Some(aside)
                }
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if let Err(e) = fs::rename(&path, target) {
                if let Some(old) = aside.and_then(|mut a| a.path.take()) {
                    let _ = fs::rename(old, target);
                }
                return Err(e);
            }
            sync_parent(target)?;
            Ok(aside)
        })();
        if result.is_err() && fs::symlink_metadata(&path).is_ok() {
            self.path = Some(path);
        }
        result
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let removed = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "removing a partial artifact");
                }
            }
        }
    }
}

/// Makes a rename or creation in `path`'s folder durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Creates the folders from `root` down to `folder` (inside it), refusing
/// when an artifact file or anything but a folder is in the way.
pub(crate) fn create_folders(root: &Path, relative: &str) -> Result<()> {
    let mut current = root.to_path_buf();
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        current.push(segment);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                let taken = current.strip_prefix(root).unwrap_or(&current);
                return Err(ArtifactError::BadPath(format!(
                    "\"{}\" is already an artifact file, so nothing can be stored under it",
                    taken.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&current)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A file ready to stream.
#[derive(Debug)]
pub struct OpenArtifact {
    pub file: File,
    pub size: u64,
    /// The path actually served (`index.html` of a folder).
    pub path: String,
}

/// Opens `path` under `dir` for reading, refusing anything that could reach
/// outside `dir`: a bad path, a symlink anywhere on the way, a resolved path
/// that is not inside `dir`. A folder serves its `index.html`, if any.
pub fn open_artifact(dir: &Path, path: &str) -> Result<OpenArtifact> {
    check_path(path)?;
    let not_found = || ArtifactError::NotFound(format!("no artifact {path}"));
    let root = match dir.canonicalize() {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let mut current = dir.to_path_buf();
    let mut served = path.to_string();
    let mut segments: Vec<&str> = path.split('/').collect();
    let mut at = 0;
    while at < segments.len() {
        current.push(segments[at]);
        at += 1;
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(not_found())
            }
            Err(e) => return Err(e.into()),
        };
        if meta.file_type().is_symlink() {
            return Err(not_found());
        }
        if at == segments.len() && meta.is_dir() {
            let index = current.join("index.html");
            match fs::symlink_metadata(&index) {
                Ok(meta) if meta.is_file() => {
                    segments.push("index.html");
                    served = format!("{path}/index.html");
                }
                _ => {
                    return Err(ArtifactError::NotFound(format!(
                        "{path} is a folder of artifacts; list them at the build's artifacts"
                    )))
                }
            }
        }
    }
    let real = current.canonicalize()?;
    if !real.starts_with(&root) {
        return Err(not_found());
    }
    // O_NOFOLLOW: the last component cannot have been swapped for a link
    // since it was checked.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(),
            _ if e.raw_os_error() == Some(libc::ELOOP) => not_found(),
            _ => e.into(),
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_found());
    }
    Ok(OpenArtifact {
        file,
        size: meta.len(),
        path: served,
    })
}

/// Takes a build's artifacts away at once and removes them: the folder is
/// renamed aside first, so an upload of the attempt before that is still
/// writing (by path) cannot put anything back in it, and a new attempt
/// starts from no folder at all.
pub fn discard_build_artifacts(dir: &Path) -> io::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let aside = TempPath::fresh_in(parent)?;
    match fs::rename(dir, aside.path()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    // Dropping `aside` removes what was moved there.
}

/// Removes a build's artifacts (the horizon dropped the build).
pub fn remove_build_artifacts(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes what uploads and extractions under way left behind when the
/// process died (their temp names), anywhere under `root`; returns how many.
/// Called at start-up, when no upload can be under way.
pub fn remove_partials(root: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            if kind.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
            removed += 1;
        } else if kind.is_dir() {
            removed += remove_partials(&path)?;
        }
    }
    Ok(removed)
}
