//! Recordings written and replayed, whole, cut and corrupt.

use super::*;
use crate::{
    analysis::{
        Analyzer,
        tests::{rec, with_vma},
    },
    kernel::Mode,
    report::Report,
    run_info::RunInfo,
    vma::VmaResolver,
};
use huge_fault_common::{AggKey, FaultRecord, source};

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
        ended_by: crate::run_info::EndedBy::Signal,
        probes: vec![],
        counters: vec![0; huge_fault_common::counter::COUNT as usize],
        aggregate: false,
        program_misses: Default::default(),
        program_costs: None,
        handlers: Vec::new(),
    }
}

/// Records a small run, returning the file bytes and the live report's JSON.
fn live_run(dir: &std::path::Path) -> (Vec<u8>, String) {
    let path = dir.join("run.hfrec");
    let mut recorder = Recorder::create(&path, false).unwrap();
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
        r.error.map(|e| e.to_string()).as_deref(),
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
            .to_string()
            .contains(&format!("unknown entry tag 0x58 at offset {fifth}"))
    );
    // No trailer: every record and class is there, and the cut is reported.
    let last = *offsets.last().unwrap();
    assert_eq!(bytes[last], b'E');
    let r = replay(&bytes[..last], 64);
    assert_eq!(r.records, 20);
    assert_eq!(r.analyzer.aggregated, 8);
    assert!(r.error.unwrap().to_string().contains("without its trailer"));
    // A cut inside the last class.
    let cut = offsets
        .iter()
        .copied()
        .rfind(|&o| bytes[o] == b'A')
        .unwrap();
    let r = replay(&bytes[..cut + 20], 64);
    assert_eq!(r.analyzer.aggregated, 5);
    assert_eq!(
        r.error.map(|e| e.to_string()).as_deref(),
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
    assert_eq!(replay(b"hello", 64).error, Some(ReadError::BadMagic));
    // An older format is named as such.
    let old = replay(b"HFREC001R", 64).error.unwrap().to_string();
    assert!(old.contains("recording format 001"), "{old}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn recordings_are_private_partial_until_the_end_and_never_clobber() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let d = tmp("safe");
    let path = d.join("r.hfrec");
    let partial = partial_path(&path);
    assert_eq!(partial, d.join("r.hfrec.partial"));
    let mut r = Recorder::create(&path, false).unwrap();
    r.record(&rec(source::PERF_MINOR, 7, 7, 0x4000));
    r.flush();
    // While the run goes, only the partial file exists, mode 0600, readable so far.
    assert!(!path.exists());
    let meta = std::fs::metadata(&partial).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{:o}",
        meta.mode()
    );
    let so_far = replay_file(&partial, 64).unwrap();
    assert_eq!(so_far.records, 1);
    assert!(matches!(so_far.error, Some(ReadError::NoTrailer(_))));
    // A second recorder for the same file refuses the partial file it finds.
    let e = Recorder::create(&path, false).err().unwrap();
    assert!(matches!(e, CreateError::Partial(..)), "{e:?}");
    r.finish(&Trailer {
        run: run_info(),
        max_vmas: 64,
    })
    .unwrap();
    assert!(path.exists() && !partial.exists());
    // An existing file is refused unless --force; a symlink always.
    assert!(matches!(
        Recorder::create(&path, false),
        Err(CreateError::Exists)
    ));
    let victim = d.join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let link = d.join("link.hfrec");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for force in [false, true] {
        assert!(matches!(
            Recorder::create(&link, force),
            Err(CreateError::Symlink)
        ));
    }
    // A symlink planted as the partial file is not followed.
    let planted = d.join("p.hfrec");
    std::os::unix::fs::symlink(&victim, partial_path(&planted)).unwrap();
    assert!(matches!(
        Recorder::create(&planted, true),
        Err(CreateError::Partial(..))
    ));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    // A file that appears during the run is not replaced at the end...
    let late = d.join("late.hfrec");
    let r = Recorder::create(&late, false).unwrap();
    std::fs::write(&late, "theirs").unwrap();
    let e = r
        .finish(&Trailer {
            run: run_info(),
            max_vmas: 64,
        })
        .unwrap_err();
    assert!(matches!(e, CreateError::Exists), "{e:?}");
    assert_eq!(std::fs::read_to_string(&late).unwrap(), "theirs");
    // ...and is with --force.
    std::fs::remove_file(partial_path(&late)).unwrap();
    let r = Recorder::create(&late, true).unwrap();
    r.finish(&Trailer {
        run: run_info(),
        max_vmas: 64,
    })
    .unwrap();
    assert_eq!(replay_file(&late, 64).unwrap().error, None);
    // Not a regular file.
    let e = replay_file(&d, 64).err().unwrap();
    assert_eq!(e.to_string(), "is a directory");
    std::fs::remove_dir_all(d).unwrap();
}
