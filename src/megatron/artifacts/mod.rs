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
//! thread (`State::blocking` or `spawn_blocking`).

//! - [`paths`]: names and links; [`files`]: storage and reads;
//!   [`archive`]: extraction; [`upload`]: an upload under way, bound to
//!   its worker's lease; [`in_flight`]: the bytes of uploads under way,
//!   counted against the build's cap.

pub mod archive;
pub mod error;
pub mod files;
pub mod in_flight;
pub mod paths;
pub mod upload;

pub use archive::{extract_zip, extract_zip_in, Progress, MAX_ENTRIES};
pub use error::{human_bytes, ArtifactError, Result};
pub use files::{
    discard_build_artifacts, list_artifacts, open_artifact, remove_build_artifacts, used_bytes,
    OpenArtifact, TempPath, CHUNK,
};
pub use in_flight::{InFlight, Reservation};
pub use paths::{check_path, content_type, links, path_problem, TEMP_PREFIX};
pub use upload::Upload;

#[cfg(test)]
mod tests;
