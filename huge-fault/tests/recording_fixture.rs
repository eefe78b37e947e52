//! A recording of a real kprobe-mode run in the lab (Debian 6.12 guest: drv-mid-gib-pud,
//! gpu-runtime, thp-aligned and drv-partial-range; retried faults, chains, what-if), kept
//! with the JSON report huge-fault printed for it when it was made. Every later huge-fault
//! must replay it to the same JSON, byte for byte: the recording format and the report are
//! a contract with files users keep. A deliberate change of the report updates the JSON in
//! the same commit, and says what changed: so far, once, when the `[heap]` VMAs the kernel
//! grew by brk became one row each (`merged_vmas: 2`) instead of two overlapping ones; and
//! where fields were added with nothing else changing (`fallback_reasons`;
//! `loss.program_misses`, `loss.program_misses_by_program`, `anomalies.returns_missed`);
//! and when anonymous `MADV_NOHUGEPAGE` VMAs began to get reasons for the PMDs never asked
//! (two faults of one such VMA, 2 MiB or larger, whose blocks do not fit: `vma-range`);
//! and when `handlers` was added (`null` throughout: the recording predates the handler
//! table, so which handler served a VMA is not known, not none); and when `reinserts` was
//! added (0 throughout: no VMA of the recording had a driver re-insert over a present
//! entry).

use std::io::Read as _;

#[test]
fn a_lab_recording_replays_to_the_json_it_gave_when_recorded() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lab-6.12-kprobe");
    let gz = std::fs::read(format!("{data}.hfrec.gz")).expect("the recording");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut bytes)
        .expect("gzip");
    let want = std::fs::read_to_string(format!("{data}.json")).expect("its report");
    let dir = std::env::temp_dir().join(format!("hf-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lab.hfrec");
    std::fs::write(&file, &bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huge-fault"))
        .args(["report", "--json"])
        .arg(&file)
        .output()
        .expect("huge-fault report runs");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "huge-fault report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).expect("UTF-8");
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "the replay differs from the report made with the recording, first at line {}:\n got: {}\nwant: {}",
            line + 1,
            got.lines().nth(line).unwrap_or(""),
            want.lines().nth(line).unwrap_or("")
        );
    }
}
