//! Recordings: every per-fault record of a live run, with what the run needs to be
//! reported again offline to the same numbers (`huge-fault report FILE`).
//!
//! Layout: the magic `HFREC003`, then tagged entries:
//! - `R` + one 312-byte [`FaultRecord`], as the kernel wrote it;
//! - `A` + one 152-byte [`AggKey`] + u64 count: faults of one class counted in the kernel
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

pub const MAGIC: &[u8; 8] = b"HFREC003";

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

/// Reads a recording. Never fails outright: a bad file yields what came before the error.
pub fn replay(bytes: &[u8], default_max_vmas: usize) -> Replay {
    let fail = |analyzer, records, error: String| Replay {
        analyzer,
        trailer: None,
        records,
        error: Some(error),
    };
    if bytes.len() >= MAGIC.len()
        && bytes[..MAGIC.len() - 3] == MAGIC[..MAGIC.len() - 3]
        && bytes[..MAGIC.len()] != *MAGIC
    {
        let v = String::from_utf8_lossy(&bytes[MAGIC.len() - 3..MAGIC.len()]).into_owned();
        return fail(
            Analyzer::new(default_max_vmas),
            0,
            format!(
                "recording format {v} is not the format this huge-fault reads (003): record it again"
            ),
        );
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return fail(
            Analyzer::new(default_max_vmas),
            0,
            "not a huge-fault recording (bad magic at offset 0)".into(),
        );
    }
    // The trailer decides the analyzer's settings; find it first when the file is whole.
    let mut entries = Vec::new();
    let mut pos = MAGIC.len();
    let mut error = None;
    let mut trailer: Option<Trailer> = None;
    while pos < bytes.len() {
        let at = pos;
        let tag = bytes[pos];
        pos += 1;
        match tag {
            b'R' => {
                let Some(rec) = bytes
                    .get(pos..pos + FaultRecord::SIZE)
                    .and_then(FaultRecord::from_bytes)
                else {
                    error = Some(format!("truncated record at offset {at}"));
                    break;
                };
                entries.push((at, Entry::Record(rec)));
                pos += FaultRecord::SIZE;
            }
            b'A' => {
                let Some((k, n)) = bytes.get(pos..pos + AggKey::SIZE + 8).and_then(|b| {
                    Some((AggKey::from_bytes(b)?, b[AggKey::SIZE..].try_into().ok()?))
                }) else {
                    error = Some(format!("truncated aggregate at offset {at}"));
                    break;
                };
                entries.push((at, Entry::Aggregate(k, u64::from_le_bytes(n))));
                pos += AggKey::SIZE + 8;
            }
            b'V' | b'E' => {
                let Some(len) = bytes
                    .get(pos..pos + 4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                else {
                    error = Some(format!("truncated entry length at offset {at}"));
                    break;
                };
                pos += 4;
                let Some(body) = bytes.get(pos..pos + len) else {
                    error = Some(format!(
                        "truncated entry at offset {at} ({len} bytes announced)"
                    ));
                    break;
                };
                pos += len;
                if tag == b'V' {
                    match serde_json::from_slice::<Answer>(body) {
                        Ok(a) => entries.push((at, Entry::Answer(a))),
                        Err(e) => {
                            error = Some(format!("corrupt VMA answer at offset {at}: {e}"));
                            break;
                        }
                    }
                } else {
                    match serde_json::from_slice::<Trailer>(body) {
                        Ok(t) => trailer = Some(t),
                        Err(e) => {
                            error = Some(format!("corrupt trailer at offset {at}: {e}"));
                            break;
                        }
                    }
                    if pos != bytes.len() {
                        error = Some(format!("data after the trailer at offset {pos}"));
                    }
                    break;
                }
            }
            other => {
                error = Some(format!(
                    "corrupt recording: unknown entry tag {other:#04x} at offset {at}"
                ));
                break;
            }
        }
    }
    if error.is_none() && trailer.is_none() {
        error = Some(format!(
            "recording ends at offset {pos} without its trailer (the run was cut off)"
        ));
    }
    let mut analyzer = Analyzer::new(trailer.as_ref().map_or(default_max_vmas, |t| t.max_vmas));
    let mut records = 0;
    let mut mismatch = None;
    let mut i = 0;
    while i < entries.len() {
        let (_, entry) = &entries[i];
        i += 1;
        if matches!(entry, Entry::Answer(_)) {
            continue;
        }
        let mut answers = std::collections::VecDeque::new();
        while let Some((_, Entry::Answer(a))) = entries.get(i) {
            answers.push_back(a.clone());
            i += 1;
        }
        let mut resolver = Replaying {
            answers,
            mismatch: &mut mismatch,
        };
        match entry {
            Entry::Record(rec) => {
                analyzer.ingest(rec, &mut resolver);
                records += 1;
            }
            Entry::Aggregate(k, n) => analyzer.ingest_aggregate(k, *n, &mut resolver),
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
        // No trailer: every record is there, and the cut is reported.
        let last = *offsets.last().unwrap();
        let r = replay(&bytes[..last], 64);
        assert_eq!(r.records, 20);
        assert!(r.error.unwrap().contains("without its trailer"));
        // Not a recording at all.
        assert!(replay(b"hello", 64).error.unwrap().contains("bad magic"));
        // An older format is named as such.
        let old = replay(b"HFREC001R", 64).error.unwrap();
        assert!(old.contains("recording format 001"), "{old}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
