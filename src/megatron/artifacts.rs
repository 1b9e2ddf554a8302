//! A build's artifacts on the megatron: where uploads land, how archives are
//! unpacked, and how stored files are found again for download.
//!
//! Everything a build uploads lives under [`State::artifact_dir`], one plain
//! file per artifact, so artifacts survive a restart without any index and a
//! build's removal is one `remove_dir_all`. What arrives from a worker is
//! untrusted: paths are checked before they touch the disk, archives are
//! checked entry by entry before anything is extracted, and every byte
//! actually written (never a size some header claims) counts against the
//! build's cap. Uploads and extractions are written under a temporary name
//! beside their target and renamed when complete, so a crash or a refused
//! upload never leaves a half artifact under the real name.
//!
//! All functions here do blocking file work: callers run them on a blocking
//! thread ([`State::blocking`] or `spawn_blocking`).

use super::{Error, State};
use crate::config::spec::unsafe_relative_path;
use crate::protocol::{Artifact, UploadKind};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Names starting with this are ours (uploads and extractions in progress):
/// never listed, never served, and refused as a path segment.
pub const TEMP_PREFIX: &str = ".constructicon-partial-";

/// More entries than this in one archive is refused: each is an inode, and no
/// build's results need that many.
pub const MAX_ENTRIES: usize = 100_000;

/// File-type bits of a unix mode (as zip keeps them in external attributes).
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Read and write in pieces of this size, so no file is ever whole in memory.
pub const CHUNK: usize = 64 << 10;

/// Why an artifact operation was refused; the HTTP layer branches on it.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A path (of an upload, a download or an archive entry) that could
    /// leave the artifact folder or is malformed: 400.
    #[error("{0}")]
    BadPath(String),
    /// An archive that cannot be read or has entries we refuse: 400.
    #[error("{0}")]
    BadArchive(String),
    /// The build's artifacts would exceed the cap: 413.
    #[error("the build's artifacts may take at most {} in all; this upload would exceed that", human_bytes(*cap))]
    TooLarge { cap: u64 },
    /// No such build or artifact: 404.
    #[error("{0}")]
    NotFound(String),
    /// Refused by the megatron (lease lost, unknown build...).
    #[error(transparent)]
    Megatron(#[from] Error),
    /// A failure of ours (disk full, permissions): 500.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<crate::store::Error> for ArtifactError {
    fn from(error: crate::store::Error) -> ArtifactError {
        ArtifactError::Megatron(error.into())
    }
}

pub type Result<T> = std::result::Result<T, ArtifactError>;

/// `1 MiB`, `3 GiB`, or the bytes when not a whole number of either.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why `path` may not name something under a build's artifacts, or `None`.
/// Stricter than the config's check: the path also becomes a URL and a file
/// name, so empty and `.` segments, backslashes and our temp names are out.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if let Some(why) = unsafe_relative_path(path) {
        return Some(why);
    }
    if path.contains('\\') {
        return Some("must not contain a backslash");
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Some("must not have empty segments (a leading, trailing or double \"/\")");
        }
        if segment == "." {
            return Some("must not contain \".\" segments");
        }
        if segment.starts_with(TEMP_PREFIX) {
            return Some("uses a name reserved for uploads in progress");
        }
    }
    None
}

/// Checks an upload or download path.
pub fn check_path(path: &str) -> Result<()> {
    match path_problem(path) {
        Some(why) => Err(ArtifactError::BadPath(format!(
            "artifact path \"{}\" {why}",
            path.escape_debug()
        ))),
        None => Ok(()),
    }
}

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

/// The `links` of a build's artifact listing: each `url` destination →
/// where its link points, `/api/v1/builds/{id}/artifacts/{destination}/{suffix}`.
pub fn links(build: u64, url: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    url.iter()
        .map(|(destination, suffix)| {
            let mut link = format!("/api/v1/builds/{build}/artifacts");
            for part in [destination.as_str(), suffix.as_str()] {
                for segment in part.split('/').filter(|s| !s.is_empty() && *s != ".") {
                    link.push('/');
                    link.push_str(&encode_segment(segment));
                }
            }
            (destination.clone(), link)
        })
        .collect()
}

/// Percent-encodes what may not stand in a URL path segment as it is.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The Content-Type served for a file, from its extension.
pub fn content_type(path: &str) -> &'static str {
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// A temporary file or folder that is removed when dropped, unless it was
/// renamed into place first.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    /// A fresh name in `parent`, not yet created.
    fn name_in(parent: &Path) -> io::Result<PathBuf> {
        let random = super::random_secret().map_err(io::Error::other)?;
        Ok(parent.join(format!("{TEMP_PREFIX}{random}")))
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames it over `target` (replacing a file or a whole folder there)
    /// and makes the rename durable.
    pub fn persist(mut self, target: &Path) -> io::Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        let result = (|| {
            match fs::symlink_metadata(target) {
                // rename(2) replaces a file atomically, but not a folder.
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(target)?,
                Ok(meta) if !meta.is_file() => fs::remove_file(target)?,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            fs::rename(&path, target)?;
            sync_parent(target)
        })();
        if result.is_err() {
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
fn create_folders(root: &Path, relative: &str) -> Result<()> {
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
    pub fn write_all_from(
        mut self,
        mut next: impl FnMut() -> Option<axum::body::Bytes>,
    ) -> Result<Upload> {
        let Some(file) = self.file.as_mut() else {
            return Ok(self);
        };
        while let Some(chunk) = next() {
            file.write_all(&chunk)?;
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
        let temp_path = TempPath::name_in(&parent)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp_path)?;
        Ok(Upload {
            build,
            target,
            unzip,
            allowance: cap - used,
            cap,
            temp: TempPath {
                path: Some(temp_path),
            },
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

/// One archive entry that passed the checks.
#[derive(Debug)]
struct Entry {
    index: usize,
    /// Relative, `/`-separated, without a trailing `/`.
    path: String,
    dir: bool,
}

/// Reads an archive's entries and refuses the whole archive if any could
/// write outside its folder or is not a plain file or folder. Nothing has
/// been written when this fails.
fn check_entries<R: Read + io::Seek>(zip: &mut zip::ZipArchive<R>) -> Result<Vec<Entry>> {
    if zip.len() > MAX_ENTRIES {
        return Err(ArtifactError::BadArchive(format!(
            "the archive has {} entries; at most {MAX_ENTRIES} are taken",
            zip.len()
        )));
    }
    let mut entries = Vec::with_capacity(zip.len());
    // Path → whether it is a folder, to catch clashes before writing.
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    for index in 0..zip.len() {
        let file = zip.by_index_raw(index).map_err(|e| {
            ArtifactError::BadArchive(format!("the archive's entry {index} cannot be read: {e}"))
        })?;
        let name = file.name().to_string();
        let shown = name.escape_debug().to_string();
        let refuse = |why: &str| ArtifactError::BadPath(format!("archive entry \"{shown}\" {why}"));
        let file_type = file.unix_mode().unwrap_or(0) & S_IFMT;
        if file_type == S_IFLNK {
            return Err(refuse("is a symbolic link; links are not taken"));
        }
        if file_type != 0 && file_type != S_IFREG && file_type != S_IFDIR {
            return Err(refuse(
                "is not a plain file or folder (a device, fifo or socket); only those are taken",
            ));
        }
        if file.encrypted() {
            return Err(ArtifactError::BadArchive(format!(
                "archive entry \"{shown}\" is encrypted; encrypted archives are not taken"
            )));
        }
        let dir = name.ends_with('/') || file_type == S_IFDIR;
        let path = name.strip_suffix('/').unwrap_or(&name).to_string();
        if let Some(why) = path_problem(&path) {
            return Err(refuse(why));
        }
        // No entry may sit under a file, nor be both a file and a folder,
        // nor be a file twice.
        let mut ancestor = String::new();
        for segment in path.split('/') {
            if !ancestor.is_empty() {
                if seen.get(&ancestor) == Some(&false) {
                    return Err(refuse(&format!(
                        "is inside \"{ancestor}\", which is a file"
                    )));
                }
                ancestor.push('/');
            }
            ancestor.push_str(segment);
        }
        match seen.get(&path) {
            Some(true) if dir => {}
            Some(_) => return Err(refuse("appears twice, or as both a file and a folder")),
            None => {
                let prefix = format!("{path}/");
                if !dir
                    && seen
                        .range(prefix.clone()..)
                        .next()
                        .is_some_and(|(k, _)| k.starts_with(&prefix))
                {
                    return Err(refuse("is a file, but other entries are inside it"));
                }
            }
        }
        seen.insert(path.clone(), dir);
        entries.push(Entry { index, path, dir });
    }
    Ok(entries)
}

/// Extracts the zip at `archive` into the folder `target` (replacing what is
/// there), writing at most `allowance` bytes; `cap` is named in the error.
/// Refuses, leaving nothing behind, an archive with an entry that could
/// escape `target` or is not a plain file or folder, and one whose contents
/// exceed the allowance. Returns the bytes written.
pub fn extract_zip(archive: &Path, target: &Path, allowance: u64, cap: u64) -> Result<u64> {
    let reader = BufReader::new(File::open(archive)?);
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        ArtifactError::BadArchive(format!("the upload is not a readable zip archive: {e}"))
    })?;
    let entries = check_entries(&mut zip)?;
    let parent = target
        .parent()
        .ok_or_else(|| ArtifactError::BadPath(format!("{} has no folder", target.display())))?;
    let temp = TempPath {
        path: Some(TempPath::name_in(parent)?),
    };
    fs::create_dir(temp.path())?;
    let mut written = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    for entry in &entries {
        // Entry paths were checked: relative, no `..`, no empty segments,
        // and nothing created so far is a link, so this stays in `temp`.
        let destination = temp.path().join(&entry.path);
        if entry.dir {
            fs::create_dir_all(&destination)?;
            continue;
        }
        if let Some(folder) = destination.parent() {
            fs::create_dir_all(folder)?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&destination)?;
        let mut reader = zip.by_index(entry.index).map_err(|e| {
            ArtifactError::BadArchive(format!(
                "archive entry \"{}\" cannot be read: {e}",
                entry.path
            ))
        })?;
        loop {
            let n = reader.read(&mut buffer).map_err(|e| {
                ArtifactError::BadArchive(format!(
                    "archive entry \"{}\" cannot be decompressed: {e}",
                    entry.path
                ))
            })?;
            if n == 0 {
                break;
            }
            // Counted as written, whatever the entry's header claimed.
            written = written.saturating_add(n as u64);
            if written > allowance {
                return Err(ArtifactError::TooLarge { cap });
            }
            out.write_all(&buffer[..n])?;
        }
        out.sync_all()?;
    }
    temp.persist(target)?;
    Ok(written)
}

/// Removes a build's artifacts (the horizon dropped the build).
pub fn remove_build_artifacts(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn options() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
    }

    /// Writes a zip with these (name, contents) files; a name ending in `/`
    /// is a folder.
    fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).expect("create zip"));
        for (name, contents) in files {
            if let Some(folder) = name.strip_suffix('/') {
                zip.add_directory(folder, options()).expect("add folder");
            } else {
                zip.start_file(*name, options()).expect("start file");
                zip.write_all(contents).expect("write entry");
            }
        }
        zip.finish().expect("finish zip");
    }

    /// Every path under `dir`, relative, sorted (folders too).
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for entry in entries {
                let entry = entry.expect("entry");
                let path = entry.path();
                out.push(
                    path.strip_prefix(root)
                        .expect("inside")
                        .display()
                        .to_string(),
                );
                if entry.file_type().expect("type").is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn paths_must_stay_inside() {
        for good in ["a", "a/b.txt", "dist/app.tar.gz", "a b/c", ".hidden"] {
            assert_eq!(path_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "/abs",
            "..",
            "a/../../b",
            "a/..",
            "a//b",
            "a/",
            "/",
            "./a",
            "a\\b",
            "C:x",
            "a\nb",
            "a/\u{0}",
            ".constructicon-partial-x",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?} accepted");
        }
        let error = check_path("../x").expect_err("refused");
        assert!(
            matches!(error, ArtifactError::BadPath(ref m) if m.contains("../x") && m.contains("..")),
            "{error}"
        );
    }

    #[test]
    fn a_good_zip_is_extracted_with_its_folders() {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("site.zip");
        write_zip(
            &archive,
            &[
                ("index.html", b"<h1>hi</h1>"),
                ("css/", b""),
                ("css/site.css", b"body {}"),
                ("deep/er/still/file.txt", b"deep"),
                ("empty/", b""),
            ],
        );
        let store = temp.path().join("artifacts");
        fs::create_dir(&store).expect("mkdir");
        let target = store.join("site");
        // What was there is replaced.
        fs::create_dir_all(target.join("old")).expect("old");
        let written = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect("extracted");
        assert_eq!(written, 11 + 7 + 4);
        assert_eq!(
            tree(&target),
            [
                "css",
                "css/site.css",
                "deep",
                "deep/er",
                "deep/er/still",
                "deep/er/still/file.txt",
                "empty",
                "index.html"
            ]
        );
        assert_eq!(
            fs::read(target.join("deep/er/still/file.txt")).expect("read"),
            b"deep"
        );
        assert_eq!(
            tree(&store)
                .iter()
                .filter(|p| p.contains(TEMP_PREFIX))
                .count(),
            0
        );
        let listed: Vec<(String, u64)> = list_artifacts(&store)
            .expect("list")
            .into_iter()
            .map(|a| (a.path, a.size))
            .collect();
        assert_eq!(
            listed,
            [
                ("site/css/site.css".to_string(), 7),
                ("site/deep/er/still/file.txt".to_string(), 4),
                ("site/index.html".to_string(), 11),
            ]
        );
    }

    #[test]
    fn zip_slip_entries_are_refused_and_nothing_is_written() {
        for evil in [
            "../evil",
            "/abs",
            "a/../../evil",
            "a/../b",
            "a\\..\\..\\evil",
            "ok//x",
        ] {
            let temp = tempfile::tempdir().expect("tempdir");
            let archive = temp.path().join("evil.zip");
            // A good entry first: the refusal must not leave it behind.
            write_zip(&archive, &[("good.txt", b"fine"), (evil, b"pwned")]);
            let store = temp.path().join("store").join("artifacts");
            fs::create_dir_all(&store).expect("mkdir");
            let target = store.join("out");
            let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err(evil);
            assert!(
                matches!(error, ArtifactError::BadPath(ref m) if m.contains(&evil.escape_debug().to_string())),
                "{evil}: {error}"
            );
            assert!(!target.exists(), "{evil}: the target exists");
            assert!(tree(&store).is_empty(), "{evil}: {:?}", tree(&store));
            let outside = tree(temp.path());
            assert_eq!(outside, ["evil.zip", "store", "store/artifacts"], "{evil}");
        }
    }

    #[test]
    fn a_symlink_entry_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("link.zip");
        let mut zip = zip::ZipWriter::new(File::create(&archive).expect("create"));
        zip.start_file("a.txt", options()).expect("start");
        zip.write_all(b"a").expect("write");
        zip.add_symlink("passwd", "/etc/passwd", options())
            .expect("symlink");
        zip.finish().expect("finish");
        let target = temp.path().join("out");
        let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err("refused");
        assert!(
            matches!(error, ArtifactError::BadPath(ref m) if m.contains("passwd") && m.contains("symbolic link")),
            "{error}"
        );
        assert!(!target.exists());
        assert_eq!(tree(temp.path()), ["link.zip"]);
    }

    /// Rewrites the file type in every central-directory entry's external
    /// attributes: the zip writer cannot make device or fifo entries.
    fn set_file_type(archive: &Path, file_type: u32) {
        let mut bytes = fs::read(archive).expect("read");
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
            let header = at + found;
            let attributes = header + 38;
            let mut value = [0u8; 4];
            value.copy_from_slice(&bytes[attributes..attributes + 4]);
            let mode = (u32::from_le_bytes(value) >> 16) & !S_IFMT | file_type;
            bytes[attributes..attributes + 4].copy_from_slice(&(mode << 16).to_le_bytes());
            at = header + 4;
        }
        fs::write(archive, bytes).expect("write");
    }

    #[test]
    fn device_and_fifo_entries_are_refused() {
        for (file_type, what) in [
            (0o020_000, "character device"),
            (0o060_000, "block device"),
            (0o010_000, "fifo"),
        ] {
            let temp = tempfile::tempdir().expect("tempdir");
            let archive = temp.path().join("dev.zip");
            write_zip(&archive, &[("null", b"")]);
            set_file_type(&archive, file_type);
            let target = temp.path().join("out");
            let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err(what);
            assert!(
                matches!(error, ArtifactError::BadPath(ref m) if m.contains("null") && m.contains("not a plain file")),
                "{what}: {error}"
            );
            assert!(!target.exists(), "{what}");
        }
    }

    #[test]
    fn clashing_entries_are_refused() {
        // (Duplicate names cannot reach us: the zip reader keeps one entry
        // per name.)
        let clashes: [[(&str, &[u8]); 2]; 2] =
            [[("a", b"1"), ("a/b", b"2")], [("a/b", b"1"), ("a", b"2")]];
        for files in &clashes {
            let temp = tempfile::tempdir().expect("tempdir");
            let archive = temp.path().join("clash.zip");
            write_zip(&archive, files);
            let target = temp.path().join("out");
            match extract_zip(&archive, &target, 1 << 20, 1 << 20) {
                Err(ArtifactError::BadPath(m)) => assert!(m.contains("\"a"), "{m}"),
                other => panic!("{files:?}: {other:?}"),
            }
            assert!(!target.exists());
        }
    }

    #[test]
    fn a_zip_bomb_hits_the_cap_and_leaves_nothing() {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("bomb.zip");
        let mut zip = zip::ZipWriter::new(File::create(&archive).expect("create"));
        zip.start_file("zeros", options().compression_level(Some(9)))
            .expect("start");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            zip.write_all(&zeros).expect("write");
        }
        zip.finish().expect("finish");
        assert!(
            fs::metadata(&archive).expect("meta").len() < 1 << 20,
            "it compresses"
        );
        let target = temp.path().join("out");
        let cap = 10 << 20;
        let error = extract_zip(&archive, &target, cap, cap).expect_err("too large");
        assert!(
            matches!(error, ArtifactError::TooLarge { cap: c } if c == cap),
            "{error}"
        );
        assert!(error.to_string().contains("10 MiB"), "{error}");
        assert!(!target.exists());
        assert_eq!(tree(temp.path()), ["bomb.zip"]);
    }

    #[test]
    fn a_corrupt_archive_is_a_bad_archive() {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("junk.zip");
        fs::write(&archive, b"this is not a zip").expect("write");
        let error =
            extract_zip(&archive, &temp.path().join("out"), 1 << 20, 1 << 20).expect_err("refused");
        assert!(matches!(error, ArtifactError::BadArchive(_)), "{error}");
    }

    #[test]
    fn reads_stay_inside_and_skip_links() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("artifacts").join("1");
        fs::create_dir_all(dir.join("site/sub")).expect("mkdir");
        fs::write(dir.join("site/index.html"), "<p>").expect("write");
        fs::write(dir.join("a.txt"), "hello").expect("write");
        fs::write(temp.path().join("secret"), "secret").expect("write");
        std::os::unix::fs::symlink(temp.path().join("secret"), dir.join("link")).expect("link");
        std::os::unix::fs::symlink(temp.path(), dir.join("up")).expect("link");

        let file = open_artifact(&dir, "a.txt").expect("a.txt");
        assert_eq!(file.size, 5);
        let index = open_artifact(&dir, "site").expect("index");
        assert_eq!(index.path, "site/index.html");
        assert!(matches!(
            open_artifact(&dir, "site/sub"),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "nope"),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "a.txt/x"),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "link"),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "up/secret"),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "../secret"),
            Err(ArtifactError::BadPath(_))
        ));
        assert!(matches!(
            open_artifact(&dir, "/etc/passwd"),
            Err(ArtifactError::BadPath(_))
        ));
        assert!(matches!(
            open_artifact(&temp.path().join("none"), "a.txt"),
            Err(ArtifactError::NotFound(_))
        ));
        // Links are not listed either.
        let listed: Vec<String> = list_artifacts(&dir)
            .expect("list")
            .into_iter()
            .map(|a| a.path)
            .collect();
        assert_eq!(listed, ["a.txt", "site/index.html"]);
    }

    #[test]
    fn links_and_content_types() {
        let url = BTreeMap::from([
            ("docs".to_string(), "index.html".to_string()),
            ("report".to_string(), "/a b/c.html".to_string()),
            ("bin".to_string(), String::new()),
        ]);
        let links = links(7, &url);
        assert_eq!(links["docs"], "/api/v1/builds/7/artifacts/docs/index.html");
        assert_eq!(
            links["report"],
            "/api/v1/builds/7/artifacts/report/a%20b/c.html"
        );
        assert_eq!(links["bin"], "/api/v1/builds/7/artifacts/bin");
        assert_eq!(content_type("a/b.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("build.log"), "text/plain; charset=utf-8");
        assert_eq!(content_type("x.tar.gz"), "application/gzip");
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("Makefile"), "application/octet-stream");
        assert_eq!(content_type(".bashrc"), "application/octet-stream");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
