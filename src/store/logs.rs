//! Step logs as append-only files beside the sled trees, one per step:
//! `logs/<build id>/<step>.log`. A log grows the data dir by its own size
//! (sled chunks took about twice it, and its page cache kept them in
//! memory), reads stream from the file in pieces, and a build's logs go
//! with one directory.
//!
//! The build record, not the file, says how much of a log is acknowledged:
//! an append writes at the record's length, so bytes a crash left past it
//! (written, never acknowledged) are overwritten by the next append and
//! never read, since readers stop at the record's `log_bytes`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct LogFiles {
    root: PathBuf,
}

impl LogFiles {
    pub fn open(root: PathBuf) -> io::Result<LogFiles> {
        fs::create_dir_all(&root)?;
        Ok(LogFiles { root })
    }

    fn build_dir(&self, build: u64) -> PathBuf {
        self.root.join(build.to_string())
    }

    fn path(&self, build: u64, step: u32) -> PathBuf {
        self.build_dir(build).join(format!("{step}.log"))
    }

    /// Whether a step's log has its file.
    pub fn exists(&self, build: u64, step: u32) -> bool {
        self.path(build, step).exists()
    }

    /// Writes `bytes` at `at` (the log's acknowledged length), or at the
    /// file's end if it is shorter, and makes them durable. Returns where
    /// they were written.
    pub fn append(&self, build: u64, step: u32, at: u64, bytes: &[u8]) -> io::Result<u64> {
        let path = self.path(build, step);
        let (file, created) = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => (file, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = self.build_dir(build);
                let new_dir = !dir.exists();
                fs::create_dir_all(&dir)?;
                if new_dir {
                    sync_dir(&self.root)?;
                }
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?;
                (file, true)
            }
            Err(e) => return Err(e),
        };
        let length = file.metadata()?.len();
        let at = at.min(length);
        if length > at {
            file.set_len(at)?;
        }
        file.write_all_at(bytes, at)?;
        file.sync_data()?;
        if created {
            sync_dir(&self.build_dir(build))?;
        }
        Ok(at)
    }

    /// At most `max` bytes of a step's log from `offset`, and no further
    /// than `end`; `None` if the step has no log file.
    pub fn read(
        &self,
        build: u64,
        step: u32,
        offset: u64,
        end: u64,
        max: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        let file = match File::open(self.path(build, step)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let end = end.min(file.metadata()?.len());
        let want = end.saturating_sub(offset).min(max as u64) as usize;
        let mut out = vec![0; want];
        let mut filled = 0;
        while filled < want {
            let n = file.read_at(&mut out[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        out.truncate(filled);
        Ok(Some(out))
    }

    /// Removes every log of a build.
    pub fn remove_build(&self, build: u64) -> io::Result<()> {
        match fs::remove_dir_all(self.build_dir(build)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Makes a new entry in `dir` survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
