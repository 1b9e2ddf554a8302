//! Bytes of uploads under way, per build. A partial file or a half-unpacked
//! archive takes disk as surely as a stored artifact, so it counts against
//! the build's cap from its first byte: two uploads that each fit cannot
//! together pass the cap by both being in flight at once.
//!
//! The count is in memory only: at start-up no upload is under way (their
//! partial files are removed), so there is nothing to restore.

use super::error::{ArtifactError, Result};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One build's uploads under way.
#[derive(Debug, Default)]
struct Build {
    /// Bytes held by the uploads under way (received, or unpacked).
    reserved: u64,
    /// Bytes moved into place since the first of the uploads under way
    /// began: an upload that measured the build's folder before they landed
    /// did not see them.
    landed: u64,
    uploads: usize,
}

/// Bytes of uploads under way, by build. Held by `State`; each upload holds
/// a [`Reservation`] on it.
#[derive(Debug, Default)]
pub struct InFlight {
    builds: Mutex<HashMap<u64, Build>>,
}

impl InFlight {
    /// Starts counting an upload to `build`. Call it before measuring the
    /// build's stored bytes, so that an upload landing meanwhile is counted
    /// (perhaps twice, never not at all).
    pub fn begin(self: &Arc<Self>, build: u64, cap: u64) -> Reservation {
        let mut builds = lock(&self.builds);
        let entry = builds.entry(build).or_default();
        entry.uploads += 1;
        Reservation {
            in_flight: self.clone(),
            build,
            cap,
            stored: 0,
            landed_at_begin: entry.landed,
            bytes: 0,
        }
    }

    /// Bytes the uploads under way to `build` hold now.
    pub fn reserved(&self, build: u64) -> u64 {
        lock(&self.builds).get(&build).map_or(0, |b| b.reserved)
    }
}

/// One upload's share of its build's cap; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    in_flight: Arc<InFlight>,
    build: u64,
    cap: u64,
    /// The build's stored bytes when the upload began, less what it replaces.
    stored: u64,
    landed_at_begin: u64,
    /// What this upload holds.
    bytes: u64,
}

impl Reservation {
    /// Sets the bytes the build had stored when the upload began (less what
    /// the upload replaces), and refuses the upload if the build is already
    /// at its cap with them and the uploads under way.
    pub fn measured(&mut self, stored: u64) -> Result<()> {
        self.stored = stored;
        self.grow_to(0)
    }

    /// Holds `total` bytes for this upload (a running count: received so
    /// far, or unpacked so far), refusing if the build's stored bytes, what
    /// landed since, and every upload under way would pass the cap.
    pub fn grow_to(&mut self, total: u64) -> Result<()> {
        let mut builds = lock(&self.in_flight.builds);
        let entry = builds.entry(self.build).or_default();
        let more = total.saturating_sub(self.bytes);
        let landed = entry.landed.saturating_sub(self.landed_at_begin);
        let after = self
            .stored
            .saturating_add(landed)
            .saturating_add(entry.reserved)
            .saturating_add(more);
        // `>=` for an upload that has not begun: a build at its cap takes
        // nothing more, not even an empty file.
        if after > self.cap || (total == 0 && after >= self.cap) {
            return Err(ArtifactError::TooLarge { cap: self.cap });
        }
        entry.reserved += more;
        self.bytes += more;
        Ok(())
    }

    /// The upload was moved into place, `bytes` of it: from now on they
    /// are the build's stored bytes, and uploads that measured the folder
    /// before count them as landed.
    pub fn landed(mut self, bytes: u64) {
        let mut builds = lock(&self.in_flight.builds);
        if let Some(entry) = builds.get_mut(&self.build) {
            entry.landed = entry.landed.saturating_add(bytes);
            entry.reserved = entry.reserved.saturating_sub(self.bytes);
        }
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut builds = lock(&self.in_flight.builds);
        if let Some(entry) = builds.get_mut(&self.build) {
            entry.reserved = entry.reserved.saturating_sub(self.bytes);
            entry.uploads = entry.uploads.saturating_sub(1);
            if entry.uploads == 0 {
                builds.remove(&self.build);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_under_way_share_the_cap() {
        let in_flight = Arc::new(InFlight::default());
        let mut first = in_flight.begin(1, 100);
        first.measured(10).expect("room");
        first.grow_to(60).expect("fits alone");
        let mut second = in_flight.begin(1, 100);
        second.measured(10).expect("room");
        second.grow_to(30).expect("fits beside the first");
        assert!(matches!(
            second.grow_to(31),
            Err(ArtifactError::TooLarge { cap: 100 })
        ));
        // Another build has its own cap.
        let mut other = in_flight.begin(2, 100);
        other.measured(0).expect("room");
        other.grow_to(100).expect("a build of its own");
        assert_eq!(in_flight.reserved(1), 90);

        // The first lands: its bytes still count for the second, which
        // measured the folder before they were there.
        first.landed(60);
        assert_eq!(in_flight.reserved(1), 30);
        assert!(second.grow_to(31).is_err());
        drop(second);
        // No upload under way: the entry goes, the next one measures again.
        assert_eq!(in_flight.reserved(1), 0);
        let mut third = in_flight.begin(1, 100);
        assert!(matches!(
            third.measured(100),
            Err(ArtifactError::TooLarge { .. })
        ));
        third.measured(70).expect("room");
        third.grow_to(30).expect("up to the cap");
    }

    #[test]
    fn a_dropped_upload_gives_its_bytes_back() {
        let in_flight = Arc::new(InFlight::default());
        let mut first = in_flight.begin(1, 100);
        first.measured(0).expect("room");
        first.grow_to(80).expect("fits");
        let mut second = in_flight.begin(1, 100);
        second.measured(0).expect("room");
        assert!(second.grow_to(30).is_err());
        drop(first);
        second.grow_to(30).expect("the first gave its bytes back");
    }
}
