//! Recordings: every per-fault record of a live run, with what the run needs to be
//! reported again offline to the same numbers (`huge-fault report FILE`).
//!
//! Layout: the magic `HFREC004`, then tagged entries:
//! - `R` + one 336-byte [`FaultRecord`], as the kernel wrote it;
//! - `A` + one 176-byte [`AggKey`] + u64 count: faults of one class counted in the kernel
//!   since the previous sweep (`--aggregate`, or the ring buffer was full);
//! - `V` + u32 length + JSON: an answer of the VMA resolver (/proc/PID/maps) during the
//!   ingest of the record (or class) before it, so that the replay names VMAs as the live
//!   run did;
//! - `E` + u32 length + JSON: the run's [`RunInfo`] and the analyzer's settings, last.
//!
//! A truncated or corrupt file is read up to the first bad byte; the error names its offset.

mod reader;
#[cfg(test)]
mod tests;
mod writer;

use serde::{Deserialize, Serialize};

pub use reader::{Replay, replay, replay_file};
pub use writer::{CreateError, Recorder, Recording, partial_path};

use crate::{run_info::RunInfo, vma::VmaDesc};

pub const MAGIC: &[u8; 8] = b"HFREC004";

/// The last entry of a recording.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trailer {
    pub run: RunInfo,
    pub max_vmas: usize,
}

/// An answer of the VMA resolver, kept for the replay.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Answer {
    tgid: u32,
    addr: u64,
    vma: Option<VmaDesc>,
}

/// The format version this huge-fault writes and reads (`004`).
fn format_version() -> String {
    String::from_utf8_lossy(&MAGIC[5..]).into_owned()
}

/// What is wrong with a recording, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not a huge-fault recording (bad magic at offset 0)")]
    BadMagic,
    #[error(
        "recording format {0} is not the format this huge-fault reads ({v}): record it again",
        v = format_version()
    )]
    OtherFormat(String),
    #[error("truncated {what} at offset {at}")]
    Truncated { what: &'static str, at: u64 },
    #[error("truncated entry at offset {at} ({len} bytes announced)")]
    TruncatedBody { at: u64, len: u64 },
    #[error("corrupt {what} at offset {at}: {why}")]
    Corrupt {
        what: &'static str,
        at: u64,
        why: String,
    },
    #[error("corrupt recording: unknown entry tag {tag:#04x} at offset {at}")]
    UnknownTag { tag: u8, at: u64 },
    #[error("data after the trailer at offset {0}")]
    AfterTrailer(u64),
    #[error("recording ends at offset {0} without its trailer (the run was cut off)")]
    NoTrailer(u64),
    #[error("recorded VMA answers out of step (asked {tgid}:{addr:#x}, have {have})")]
    AnswersOutOfStep { tgid: u32, addr: u64, have: String },
    #[error("{0}")]
    Unreadable(String),
}

impl ReadError {
    /// The file failed before its first entry: it is not a recording (or not one this
    /// huge-fault reads), as opposed to one damaged further on.
    pub fn before_any_entry(&self) -> bool {
        matches!(self, ReadError::BadMagic | ReadError::OtherFormat(_))
    }
}
