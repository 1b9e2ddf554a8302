//! A step's output kept on disk while the megatron is unreachable, so the
//! step runs on instead of waiting for it to come back.
//!
//! One file per step, `<workdir>/spool/<build>-<step>`, read from the front
//! and written at the end: a FIFO of bytes. It is created when the first
//! byte is spooled and removed as soon as the last one was taken, so a
//! worker with nothing to resend has an empty spool folder. Its size on disk
//! is bounded: the file is written only up to its limit and is never reused
//! in place, only emptied whole; once it is full, the caller waits.
//!
//! Reads and writes name their offset (`pread`/`pwrite`), so a write that
//! failed half-way (a full disk) leaves nothing that a later read could see.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The spool of one step's log.
#[derive(Debug, Default)]
pub struct Spool {
    path: PathBuf,
    /// Most bytes the file may hold; zero spools nothing.
    limit: u64,
    /// Open while the spool holds anything.
    file: Option<File>,
    /// Where the next read starts.
    read: u64,
    /// Where the next write starts: everything before it is written.
    written: u64,
    /// A write failed: nothing more is written until the file was emptied,
    /// and the caller waits for the megatron instead.
    broken: bool,
}

impl Spool {
    /// A spool at `path` of at most `limit` bytes; nothing is created yet.
    pub fn new(path: PathBuf, limit: u64) -> Spool {
        Spool {
            path,
            limit,
            file: None,
            read: 0,
            written: 0,
            broken: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written and not yet taken.
    pub fn unread(&self) -> u64 {
        self.written - self.read
    }

    pub fn is_empty(&self) -> bool {
        self.unread() == 0
    }

    /// Whether `len` more bytes may be written.
    pub fn has_room(&self, len: usize) -> bool {
        !self.broken && self.written + len as u64 <= self.limit
    }

    /// Writes `bytes` at the end. On an error nothing of them counts, and
    /// the spool takes no more until it was emptied.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = self.written;
        let result = self
            .file()
            .and_then(|file| file.write_all_at(bytes, written));
        match result {
            Ok(()) => {
                self.written += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                self.broken = true;
                if let Some(file) = &self.file {
                    // Give the disk back; the bytes beyond `written` are
                    // never read either way.
                    let _ = file.set_len(written);
                }
                if self.is_empty() {
                    self.discard();
                }
                Err(error)
            }
        }
    }

    /// Up to `max` bytes from the front. The file is removed once all of it
    /// was taken. On an error the spool is emptied: what it held is lost,
    /// and [`Spool::unread`] told how much before the call.
    pub fn take(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let len = self.unread().min(max as u64) as usize;
        let mut bytes = vec![0; len];
        if len > 0 {
            let result = match &self.file {
                Some(file) => file.read_exact_at(&mut bytes, self.read),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "the file is gone")),
            };
            if let Err(error) = result {
                self.discard();
                return Err(error);
            }
            self.read += len as u64;
        }
        if self.is_empty() {
            self.discard();
        }
        Ok(bytes)
    }

    /// Forgets everything and removes the file.
    pub fn discard(&mut self) {
        if self.file.take().is_some() {
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!("removing the spool {}: {error}", self.path.display());
            }
        }
        self.read = 0;
        self.written = 0;
        self.broken = false;
    }

    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            if let Some(folder) = self.path.parent() {
                std::fs::create_dir_all(folder)?;
            }
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Removes what an earlier worker process left in `folder`: its builds were
/// given back or requeued when it went, so no lease would take their logs.
pub fn remove_strays(folder: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_and_the_file_goes_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool").join("7-1");
        let mut spool = Spool::new(path.clone(), 100);
        assert!(
            !path.exists(),
            "nothing is created before a byte is spooled"
        );
        spool.append(b"one\n").unwrap();
        spool.append(b"two\n").unwrap();
        assert!(path.exists());
        assert_eq!(spool.take(6).unwrap(), b"one\ntw");
        spool.append(b"three\n").unwrap();
        assert_eq!(spool.unread(), 8);
        assert_eq!(spool.take(100).unwrap(), b"o\nthree\n");
        assert!(spool.is_empty());
        assert!(!path.exists(), "an emptied spool is removed");
    }

    #[test]
    fn a_full_spool_takes_no_more_until_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().join("s"), 10);
        assert!(spool.has_room(10));
        spool.append(b"12345678").unwrap();
        assert!(!spool.has_room(3), "the limit bounds the file");
        assert!(spool.has_room(2));
        // Taking from the front frees no room: the file only shrinks whole.
        assert_eq!(spool.take(4).unwrap(), b"1234");
        assert!(!spool.has_room(3));
        assert_eq!(spool.take(4).unwrap(), b"5678");
        assert!(spool.has_room(10));
        assert!(!Spool::default().has_room(1), "a zero limit spools nothing");
    }

    #[test]
    fn a_spool_that_cannot_be_read_says_so_and_empties() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut spool = Spool::new(path.clone(), 100);
        spool.append(b"lost bytes").unwrap();
        // Someone cut the file under the worker.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2)
            .unwrap();
        assert_eq!(spool.unread(), 10);
        assert!(spool.take(100).is_err());
        assert!(spool.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn strays_of_an_earlier_process_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remove_strays(&dir.path().join("none")).unwrap(), 0);
        std::fs::write(dir.path().join("3-1"), "old").unwrap();
        std::fs::create_dir(dir.path().join("odd")).unwrap();
        assert_eq!(remove_strays(dir.path()).unwrap(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
