//! Unzipping an uploaded archive: every entry is checked before anything is
//! written (no way out of the target, only plain files and folders, no
//! clashes), extraction goes to a temp folder renamed into place, and every
//! byte actually written counts against the build's cap.

use super::error::{ArtifactError, Result};
use super::files::{create_folders, TempPath, CHUNK};
use super::paths::path_problem;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// More entries than this in one archive is refused: each is an inode, and no
/// build's results need that many.
pub const MAX_ENTRIES: usize = 100_000;

/// File-type bits of a unix mode (as zip keeps them in external attributes).
pub(crate) const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

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

/// How far an extraction has come, told to its caller before each entry and
/// after each piece written.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Entries begun so far.
    pub entries: usize,
    /// Bytes written so far, counted as written, whatever the entries'
    /// headers claim.
    pub bytes: u64,
}

/// Extracts the zip at `archive` into the folder `target` (replacing what is
/// there), writing at most `allowance` bytes; `cap` is named in the error.
/// Refuses, leaving nothing behind, an archive with an entry that could
/// escape `target` or is not a plain file or folder, and one whose contents
/// exceed the allowance. Returns the bytes written.
pub fn extract_zip(archive: &Path, target: &Path, allowance: u64, cap: u64) -> Result<u64> {
    let parent = target
        .parent()
        .ok_or_else(|| ArtifactError::BadPath(format!("{} has no folder", target.display())))?;
    let (temp, written) = extract_zip_in(archive, parent, &mut |progress| {
        if progress.bytes > allowance {
            return Err(ArtifactError::TooLarge { cap });
        }
        Ok(())
    })?;
    temp.persist(target)?;
    Ok(written)
}

/// Extracts the zip at `archive` into a new temp folder in `parent`, and
/// returns it with the bytes written; the caller renames it into place, or
/// drops it, which removes it. `progress` is told before each entry and
/// after each piece written; its error stops the extraction, and nothing is
/// left behind. Folders are made one level at a time below the temp folder,
/// so an extraction whose folder was taken away (its build requeued) fails
/// rather than making it again.
pub fn extract_zip_in(
    archive: &Path,
    parent: &Path,
    progress: &mut dyn FnMut(Progress) -> Result<()>,
) -> Result<(TempPath, u64)> {
    let reader = BufReader::new(File::open(archive)?);
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        ArtifactError::BadArchive(format!("the upload is not a readable zip archive: {e}"))
    })?;
    let entries = check_entries(&mut zip)?;
    let temp = TempPath::fresh_in(parent)?;
    fs::create_dir(temp.path())?;
    let mut written = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    for (begun, entry) in entries.iter().enumerate() {
        progress(Progress {
            entries: begun + 1,
            bytes: written,
        })?;
        // Entry paths were checked: relative, no `..`, no empty segments,
        // and nothing created so far is a link, so this stays in `temp`.
        let destination = temp.path().join(&entry.path);
        if entry.dir {
            create_folders(temp.path(), &entry.path)?;
            continue;
        }
        if let Some((folder, _)) = entry.path.rsplit_once('/') {
            create_folders(temp.path(), folder)?;
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
            // Counted before it is written.
            written = written.saturating_add(n as u64);
            progress(Progress {
                entries: begun + 1,
                bytes: written,
            })?;
            out.write_all(&buffer[..n])?;
        }
        out.sync_all()?;
    }
    Ok((temp, written))
}
