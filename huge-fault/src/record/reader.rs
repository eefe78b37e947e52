//! Reading a recording back: two streaming passes (the trailer first, which sets the
//! analyzer's table sizes, then every entry before it), the VMA answers replayed in order.

use huge_fault_common::{AggKey, FaultRecord};

use super::{Answer, MAGIC, ReadError, Trailer};
use crate::{
    analysis::Analyzer,
    vma::{VmaDesc, VmaResolver},
};

/// Replays the answers that follow a record, in order.
struct Replaying<'a> {
    answers: std::collections::VecDeque<Answer>,
    mismatch: &'a mut Option<ReadError>,
}

impl VmaResolver for Replaying<'_> {
    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        match self.answers.pop_front() {
            Some(a) if a.tgid == tgid && a.addr == addr => a.vma,
            other => {
                if self.mismatch.is_none() {
                    *self.mismatch = Some(ReadError::AnswersOutOfStep {
                        tgid,
                        addr,
                        have: format!("{:?}", other.map(|a| (a.tgid, a.addr))),
                    });
                }
                None
            }
        }
    }
}

/// One entry of a recording, once read.
enum Entry {
    Record(FaultRecord),
    Aggregate(AggKey, u64),
    Answer(Answer),
}

/// What a replay produced: the analyzer fed with every good record, the trailer when the
/// file had one, and the first problem with its byte offset.
pub struct Replay {
    pub analyzer: Analyzer,
    pub trailer: Option<Trailer>,
    pub records: u64,
    pub error: Option<ReadError>,
}

/// Reads a recording held in memory. Never fails outright: a bad file yields what came
/// before the error.
pub fn replay(bytes: &[u8], default_max_vmas: usize) -> Replay {
    replay_from(
        || Ok(std::io::Cursor::new(bytes)),
        bytes.len() as u64,
        default_max_vmas,
    )
}

/// Reads a recording file in two streaming passes (the trailer, which sets the analyzer's
/// table sizes, comes last): memory does not grow with the file.
pub fn replay_file(path: &std::path::Path, default_max_vmas: usize) -> std::io::Result<Replay> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(std::io::ErrorKind::IsADirectory.into());
    }
    if !meta.is_file() {
        // Two passes need a file that can be read twice (not a pipe or a device).
        return Err(std::io::Error::other("not a regular file"));
    }
    let len = meta.len();
    let open = || {
        std::fs::File::open(path)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| ReadError::Unreadable(format!("cannot read {}: {e}", path.display())))
    };
    // Fail early on a file that cannot be opened; a later failure is reported like damage.
    std::fs::File::open(path)?;
    Ok(replay_from(open, len, default_max_vmas))
}

/// One item read from a recording.
enum Item {
    Entry(Entry),
    Trailer(Trailer),
}

/// Reads a recording's entries one at a time, after its magic.
struct Reader<R> {
    r: R,
    pos: u64,
    len: u64,
}

impl<R: std::io::Read> Reader<R> {
    /// Fills `buf`; returns how many bytes there were (fewer at the end of the input). A
    /// read error is the file's error at that offset.
    fn fill(&mut self, buf: &mut [u8]) -> std::result::Result<usize, ReadError> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ReadError::Unreadable(format!(
                        "read error at offset {}: {e}",
                        self.pos + n as u64
                    )));
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// The next item with its offset; `Ok(None)` at the end of the input; the error names
    /// the bad entry's offset.
    fn next(&mut self) -> std::result::Result<Option<(u64, Item)>, ReadError> {
        let at = self.pos;
        let mut tag = [0u8; 1];
        if self.fill(&mut tag)? == 0 {
            return Ok(None);
        }
        match tag[0] {
            b'R' => {
                let mut b = [0u8; FaultRecord::SIZE];
                if self.fill(&mut b)? < b.len() {
                    return Err(ReadError::Truncated { what: "record", at });
                }
                let rec = FaultRecord::from_bytes(&b).expect("a whole record");
                Ok(Some((at, Item::Entry(Entry::Record(rec)))))
            }
            b'A' => {
                let mut b = [0u8; AggKey::SIZE + 8];
                if self.fill(&mut b)? < b.len() {
                    return Err(ReadError::Truncated {
                        what: "aggregate",
                        at,
                    });
                }
                let k = AggKey::from_bytes(&b).expect("a whole key");
                let n = u64::from_le_bytes(b[AggKey::SIZE..].try_into().expect("8 bytes"));
                Ok(Some((at, Item::Entry(Entry::Aggregate(k, n)))))
            }
            b'V' | b'E' => {
                let mut l = [0u8; 4];
                if self.fill(&mut l)? < 4 {
                    return Err(ReadError::Truncated {
                        what: "entry length",
                        at,
                    });
                }
                let len = u64::from(u32::from_le_bytes(l));
                if self.pos + len > self.len {
                    return Err(ReadError::TruncatedBody { at, len });
                }
                let mut body = vec![0u8; len as usize];
                if self.fill(&mut body)? < body.len() {
                    return Err(ReadError::TruncatedBody { at, len });
                }
                if tag[0] == b'V' {
                    serde_json::from_slice::<Answer>(&body)
                        .map(|a| Some((at, Item::Entry(Entry::Answer(a)))))
                        .map_err(|e| ReadError::Corrupt {
                            what: "VMA answer",
                            at,
                            why: e.to_string(),
                        })
                } else {
                    serde_json::from_slice::<Trailer>(&body)
                        .map(|t| Some((at, Item::Trailer(t))))
                        .map_err(|e| ReadError::Corrupt {
                            what: "trailer",
                            at,
                            why: e.to_string(),
                        })
                }
            }
            tag => Err(ReadError::UnknownTag { tag, at }),
        }
    }
}

/// The replay proper: `open` gives the recording from its first byte, twice.
fn replay_from<R: std::io::Read>(
    open: impl Fn() -> std::result::Result<R, ReadError>,
    len: u64,
    default_max_vmas: usize,
) -> Replay {
    let fail = |error: ReadError| Replay {
        analyzer: Analyzer::new(default_max_vmas),
        trailer: None,
        records: 0,
        error: Some(error),
    };
    type Opened<R> = std::result::Result<R, ReadError>;
    let start = |open: &dyn Fn() -> Opened<R>| -> Opened<Reader<R>> {
        let mut reader = Reader {
            r: open()?,
            pos: 0,
            len,
        };
        let mut magic = [0u8; 8];
        let n = reader.fill(&mut magic)?;
        if n == magic.len() && magic[..5] == MAGIC[..5] && magic != *MAGIC {
            return Err(ReadError::OtherFormat(
                String::from_utf8_lossy(&magic[5..]).into_owned(),
            ));
        }
        if n < magic.len() || magic != *MAGIC {
            return Err(ReadError::BadMagic);
        }
        Ok(reader)
    };
    // First pass: the trailer, and where the good entries end.
    let mut reader = match start(&open) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut error = None;
    let mut trailer = None;
    let mut end = len;
    loop {
        match reader.next() {
            Ok(None) => break,
            Ok(Some((_, Item::Entry(_)))) => {}
            Ok(Some((at, Item::Trailer(t)))) => {
                trailer = Some(t);
                end = at;
                if reader.pos != len {
                    error = Some(ReadError::AfterTrailer(reader.pos));
                }
                break;
            }
            Err(e) => {
                end = reader.pos;
                error = Some(e);
                break;
            }
        }
    }
    if error.is_none() && trailer.is_none() {
        error = Some(ReadError::NoTrailer(reader.pos));
    }
    drop(reader);
    // Second pass: every entry before `end`; the VMA answers that follow a record or class
    // are what the resolver said while it was ingested.
    let mut analyzer = Analyzer::new(trailer.as_ref().map_or(default_max_vmas, |t| t.max_vmas));
    if let Some(t) = &trailer {
        analyzer.reasons = crate::analysis::reason::Context::new(&t.run.kernel_release);
    }
    let mut records = 0;
    let mut mismatch = None;
    let mut reader = match start(&open) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let entry_at = |reader: &mut Reader<R>| -> Option<Entry> {
        if reader.pos >= end {
            return None;
        }
        match reader.next() {
            Ok(Some((at, Item::Entry(e)))) if at < end => Some(e),
            _ => None,
        }
    };
    let mut next = entry_at(&mut reader);
    while let Some(entry) = next.take() {
        let mut answers = std::collections::VecDeque::new();
        next = entry_at(&mut reader);
        while let Some(Entry::Answer(a)) = next {
            answers.push_back(a);
            next = entry_at(&mut reader);
        }
        let mut resolver = Replaying {
            answers,
            mismatch: &mut mismatch,
        };
        match entry {
            Entry::Record(rec) => {
                analyzer.ingest(&rec, &mut resolver);
                records += 1;
            }
            Entry::Aggregate(k, n) => analyzer.ingest_aggregate(&k, n, &mut resolver),
            // Answers before any record: nothing asked for them.
            Entry::Answer(_) => {}
        }
    }
    Replay {
        analyzer,
        trailer,
        records,
        error: error.or(mismatch),
    }
}
