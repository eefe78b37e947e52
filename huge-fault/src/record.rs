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

use std::io::Write;

use huge_fault_common::{AggKey, FaultRecord};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{Analyzer, VmaDesc, VmaResolver},
    report::RunInfo,
};

pub const MAGIC: &[u8; 8] = b"HFREC004";

/// The last entry of a recording.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trailer {
    pub run: RunInfo,
    pub max_vmas: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Answer {
    tgid: u32,
    addr: u64,
    vma: Option<VmaDesc>,
}

/// Writes a recording as the run goes.
pub struct Recorder {
    w: std::io::BufWriter<std::fs::File>,
    pub path: std::path::PathBuf,
    /// The first write error; recording stops there and the run reports it.
    pub error: Option<String>,
}

impl Recorder {
    pub fn create(path: &std::path::Path) -> Result<Self, String> {
        let f = std::fs::File::create(path)
            .map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
        let mut r = Recorder {
            w: std::io::BufWriter::new(f),
            path: path.into(),
            error: None,
        };
        r.write(MAGIC);
        Ok(r)
    }

    fn write(&mut self, b: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.w.write_all(b)
        {
            self.error = Some(format!("recording to {} failed: {e}", self.path.display()));
        }
    }

    fn json(&mut self, tag: u8, v: &impl Serialize) {
        let body = serde_json::to_vec(v).expect("serializes");
        self.write(&[tag]);
        self.write(&(body.len() as u32).to_le_bytes());
        self.write(&body);
    }

    pub fn record(&mut self, r: &FaultRecord) {
        self.write(b"R");
        self.write(r.as_bytes());
    }

    /// `n` more faults of class `k`, counted in the kernel.
    pub fn aggregate(&mut self, k: &AggKey, n: u64) {
        self.write(b"A");
        self.write(k.as_bytes());
        self.write(&n.to_le_bytes());
    }

    pub fn finish(mut self, trailer: &Trailer) -> Result<(), String> {
        self.json(b'E', trailer);
        if self.error.is_none()
            && let Err(e) = self.w.flush()
        {
            self.error = Some(format!("recording to {} failed: {e}", self.path.display()));
        }
        self.error.map_or(Ok(()), Err)
    }
}

/// A resolver that writes every answer of the one it wraps into the recording.
pub struct Recording<'a> {
    pub inner: &'a mut dyn VmaResolver,
    pub rec: Option<&'a mut Recorder>,
}

impl Recording<'_> {
    fn remember(&mut self, tgid: u32, addr: u64, vma: &Option<VmaDesc>) {
        if let Some(r) = self.rec.as_deref_mut() {
            r.json(
                b'V',
                &Answer {
                    tgid,
                    addr,
                    vma: vma.clone(),
                },
            );
        }
    }
}

impl VmaResolver for Recording<'_> {
    fn lookup_fresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        let vma = self.inner.lookup_fresh(tgid, addr);
        self.remember(tgid, addr, &vma);
        vma
    }

    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        let vma = self.inner.lookup(tgid, addr);
        self.remember(tgid, addr, &vma);
        vma
    }
}

/// Replays the answers that follow a record, in order.
struct Replaying<'a> {
    answers: std::collections::VecDeque<Answer>,
    mismatch: &'a mut Option<String>,
}

impl VmaResolver for Replaying<'_> {
    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        match self.answers.pop_front() {
            Some(a) if a.tgid == tgid && a.addr == addr => a.vma,
            other => {
                if self.mismatch.is_none() {
                    *self.mismatch = Some(format!(
                        "recorded VMA answers out of step (asked {tgid}:{addr:#x}, have {:?})",
                        other.map(|a| (a.tgid, a.addr))
                    ));
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
    pub error: Option<String>,
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
pub fn replay_file(path: &std::path::Path, default_max_vmas: usize) -> Result<Replay, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let open = || {
        std::fs::File::open(path)
            .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    // Fail early on a file that cannot be opened; a later failure is reported like damage.
    open()?;
    Ok(replay_from(open, len, default_max_vmas))
}

/// One item read from a recording.
#[expect(
    clippy::large_enum_variant,
    reason = "an entry is read per record of the file; boxing it would allocate for each"
)]
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
    /// Fills `buf`; returns how many bytes there were (fewer at the end of the input).
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.pos += n as u64;
        n
    }

    /// The next item with its offset; `Ok(None)` at the end of the input; the error names
    /// the bad entry's offset.
    fn next(&mut self) -> Result<Option<(u64, Item)>, String> {
        let at = self.pos;
        let mut tag = [0u8; 1];
        if self.fill(&mut tag) == 0 {
            return Ok(None);
        }
        match tag[0] {
            b'R' => {
                let mut b = [0u8; FaultRecord::SIZE];
                if self.fill(&mut b) < b.len() {
                    return Err(format!("truncated record at offset {at}"));
                }
                let rec = FaultRecord::from_bytes(&b).expect("a whole record");
                Ok(Some((at, Item::Entry(Entry::Record(rec)))))
            }
            b'A' => {
                let mut b = [0u8; AggKey::SIZE + 8];
                if self.fill(&mut b) < b.len() {
                    return Err(format!("truncated aggregate at offset {at}"));
                }
                let k = AggKey::from_bytes(&b).expect("a whole key");
                let n = u64::from_le_bytes(b[AggKey::SIZE..].try_into().expect("8 bytes"));
                Ok(Some((at, Item::Entry(Entry::Aggregate(k, n)))))
            }
            b'V' | b'E' => {
                let mut l = [0u8; 4];
                if self.fill(&mut l) < 4 {
                    return Err(format!("truncated entry length at offset {at}"));
                }
                let len = u64::from(u32::from_le_bytes(l));
                if self.pos + len > self.len {
                    return Err(format!(
                        "truncated entry at offset {at} ({len} bytes announced)"
                    ));
                }
                let mut body = vec![0u8; len as usize];
                if self.fill(&mut body) < body.len() {
                    return Err(format!(
                        "truncated entry at offset {at} ({len} bytes announced)"
                    ));
                }
                if tag[0] == b'V' {
                    serde_json::from_slice::<Answer>(&body)
                        .map(|a| Some((at, Item::Entry(Entry::Answer(a)))))
                        .map_err(|e| format!("corrupt VMA answer at offset {at}: {e}"))
                } else {
                    serde_json::from_slice::<Trailer>(&body)
                        .map(|t| Some((at, Item::Trailer(t))))
                        .map_err(|e| format!("corrupt trailer at offset {at}: {e}"))
                }
            }
            other => Err(format!(
                "corrupt recording: unknown entry tag {other:#04x} at offset {at}"
            )),
        }
    }
}

/// The replay proper: `open` gives the recording from its first byte, twice.
fn replay_from<R: std::io::Read>(
    open: impl Fn() -> Result<R, String>,
    len: u64,
    default_max_vmas: usize,
) -> Replay {
    let fail = |error: String| Replay {
        analyzer: Analyzer::new(default_max_vmas),
        trailer: None,
        records: 0,
        error: Some(error),
    };
    let start = |open: &dyn Fn() -> Result<R, String>| -> Result<Reader<R>, String> {
        let mut reader = Reader {
            r: open()?,
            pos: 0,
            len,
        };
        let mut magic = [0u8; 8];
        let n = reader.fill(&mut magic);
        if n == magic.len() && magic[..5] == MAGIC[..5] && magic != *MAGIC {
            let v = String::from_utf8_lossy(&magic[5..]).into_owned();
            return Err(format!(
                "recording format {v} is not the format this huge-fault reads ({}): record it again",
                String::from_utf8_lossy(&MAGIC[5..])
            ));
        }
        if n < magic.len() || magic != *MAGIC {
            return Err("not a huge-fault recording (bad magic at offset 0)".into());
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
                    error = Some(format!("data after the trailer at offset {}", reader.pos));
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
        error = Some(format!(
            "recording ends at offset {} without its trailer (the run was cut off)",
            reader.pos
        ));
    }
    drop(reader);
    // Second pass: every entry before `end`; the VMA answers that follow a record or class
    // are what the resolver said while it was ingested.
    let mut analyzer = Analyzer::new(trailer.as_ref().map_or(default_max_vmas, |t| t.max_vmas));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::tests::{rec, with_vma},
        kernel::Mode,
        report::Report,
    };
    use huge_fault_common::source;

    /// Answers lookups for one mapping, like /proc/PID/maps would.
    struct Maps;
    impl VmaResolver for Maps {
        fn lookup(&mut self, _tgid: u32, addr: u64) -> Option<VmaDesc> {
            (0x10000..0x20000).contains(&addr).then(|| VmaDesc {
                start: 0x10000,
                end: 0x20000,
                pgoff: 0,
                inode: 5,
                shared: true,
                name: Some("/dev/dax0.0".into()),
            })
        }
    }

    fn run_info() -> RunInfo {
        RunInfo {
            kernel_release: "6.1.0-test".into(),
            mode: Mode::Kprobe,
            filter_pid: None,
            duration_s: 1.25,
            ended_by: "signal".into(),
            probes: vec![],
            counters: vec![0; huge_fault_common::counter::COUNT as usize],
            aggregate: false,
        }
    }

    /// Records a small run, returning the file bytes and the live report's JSON.
    fn live_run(dir: &std::path::Path) -> (Vec<u8>, String) {
        let path = dir.join("run.hfrec");
        let mut recorder = Recorder::create(&path).unwrap();
        let mut live = Analyzer::new(64);
        let mut maps = Maps;
        for i in 0..20u64 {
            // Half the records carry their VMA; the others need /proc (recorded answers).
            let r = if i % 2 == 0 {
                with_vma(
                    rec(source::PERF_MINOR, 7, 7, 0x4000 + i * 4096),
                    0x4000,
                    0x40000,
                )
            } else {
                rec(source::PERF_MINOR, 7, 7, 0x10000 + i * 4096)
            };
            recorder.record(&r);
            live.ingest(
                &r,
                &mut Recording {
                    inner: &mut maps,
                    rec: Some(&mut recorder),
                },
            );
        }
        // Faults counted in the kernel (ring buffer full): one class with its VMA, one
        // whose VMA user space looks up.
        for (k, n) in [
            (
                AggKey {
                    vma_start: 0x4000,
                    vma_end: 0x40000,
                    tgid: 7,
                    source: source::PERF_MINOR,
                    flags: huge_fault_common::rflags::HAS_VMA,
                    latency_bucket: huge_fault_common::latency::NONE,
                    ..Default::default()
                },
                5,
            ),
            (
                AggKey {
                    address: 0x12000,
                    tgid: 7,
                    source: source::PERF_MINOR,
                    latency_bucket: 40,
                    ..Default::default()
                },
                3,
            ),
        ] {
            recorder.aggregate(&k, n);
            live.ingest_aggregate(
                &k,
                n,
                &mut Recording {
                    inner: &mut maps,
                    rec: Some(&mut recorder),
                },
            );
        }
        let trailer = Trailer {
            run: run_info(),
            max_vmas: 64,
        };
        let json = Report::build(&live, &trailer.run).to_json();
        recorder.finish(&trailer).unwrap();
        (std::fs::read(&path).unwrap(), json)
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("hf-rec-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_replay_reproduces_the_live_report_exactly() {
        let d = tmp("exact");
        let (bytes, live_json) = live_run(&d);
        let r = replay(&bytes, 1);
        assert_eq!(r.error, None);
        assert_eq!(r.records, 20);
        assert_eq!(r.analyzer.aggregated, 8);
        assert_eq!(r.analyzer.totals.faults, 28);
        let t = r.trailer.expect("trailer");
        let replayed = Report::build(&r.analyzer, &t.run).to_json();
        assert_eq!(replayed, live_json);
        assert!(
            replayed.contains("/dev/dax0.0"),
            "names come back from the recorded answers"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn truncated_and_corrupt_files_keep_what_came_before_and_name_the_offset() {
        let d = tmp("bad");
        let (bytes, _) = live_run(&d);
        // Cut inside the 5th record: 4 whole records before it (with their answers).
        let mut offsets = Vec::new();
        let mut pos = MAGIC.len();
        while pos < bytes.len() {
            offsets.push(pos);
            pos += match bytes[pos] {
                b'R' => 1 + FaultRecord::SIZE,
                b'A' => 1 + AggKey::SIZE + 8,
                _ => 5 + u32::from_le_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize,
            };
        }
        let fifth = offsets
            .iter()
            .copied()
            .filter(|&o| bytes[o] == b'R')
            .nth(4)
            .unwrap();
        let r = replay(&bytes[..fifth + 100], 64);
        assert_eq!(r.records, 4);
        assert_eq!(r.analyzer.totals.faults, 4);
        assert_eq!(
            r.error.as_deref(),
            Some(format!("truncated record at offset {fifth}").as_str())
        );
        // A flipped tag.
        let mut bad = bytes.clone();
        bad[fifth] = b'X';
        let r = replay(&bad, 64);
        assert_eq!(r.records, 4);
        assert!(
            r.error
                .unwrap()
                .contains(&format!("unknown entry tag 0x58 at offset {fifth}"))
        );
        // No trailer: every record and class is there, and the cut is reported.
        let last = *offsets.last().unwrap();
        assert_eq!(bytes[last], b'E');
        let r = replay(&bytes[..last], 64);
        assert_eq!(r.records, 20);
        assert_eq!(r.analyzer.aggregated, 8);
        assert!(r.error.unwrap().contains("without its trailer"));
        // A cut inside the last class.
        let cut = offsets
            .iter()
            .copied()
            .rfind(|&o| bytes[o] == b'A')
            .unwrap();
        let r = replay(&bytes[..cut + 20], 64);
        assert_eq!(r.analyzer.aggregated, 5);
        assert_eq!(
            r.error.as_deref(),
            Some(format!("truncated aggregate at offset {cut}").as_str())
        );
        // From a file, streamed: the same as from memory.
        let path = d.join("whole.hfrec");
        std::fs::write(&path, &bytes).unwrap();
        let f = replay_file(&path, 64).unwrap();
        let m = replay(&bytes, 64);
        let (ft, mt) = (f.trailer.unwrap(), m.trailer.unwrap());
        assert_eq!(
            Report::build(&f.analyzer, &ft.run).to_json(),
            Report::build(&m.analyzer, &mt.run).to_json()
        );
        assert!(replay_file(&d.join("missing"), 64).is_err());
        // Not a recording at all.
        assert!(replay(b"hello", 64).error.unwrap().contains("bad magic"));
        // An older format is named as such.
        let old = replay(b"HFREC001R", 64).error.unwrap();
        assert!(old.contains("recording format 001"), "{old}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
