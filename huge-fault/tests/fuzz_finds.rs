//! Every input the fuzzers (`fuzz/`) made crash the tool, kept and replayed: each must now
//! be reported or refused without a panic, through the same paths the fuzz targets drive.
//! (The same files are in `fuzz/seeds/`, so the fuzzers start from them too.)

use huge_fault::{
    analysis::Analyzer,
    btf::Btf,
    record::replay,
    report::{Extras, Report},
    run_info::RunInfo,
    vma::NoResolver,
};
use huge_fault_common::{AggKey, FaultRecord};

fn find(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/fuzz-finds/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the kept input")
}

fn report_of(a: &Analyzer, run: &RunInfo) -> Report {
    let extras = Extras::finished(a, run, true);
    let r = Report::build_with(a, run, extras);
    let _ = r.render(20, None, None);
    let _ = r.to_json();
    r
}

/// A recording whose classes carry latency buckets past the last one, and one whose
/// class counts overflow the histogram's arithmetic.
#[test]
fn hostile_recordings_report_without_a_panic() {
    for name in [
        "recording-latency-bucket",
        "recording-histogram-overflow",
        "recording-quantile-overflow",
        "recording-whatif-overflow",
    ] {
        let r = replay(&find(name), 64);
        let run = r
            .trailer
            .as_ref()
            .map_or_else(RunInfo::truncated, |t| t.run.clone());
        report_of(&r.analyzer, &run);
    }
}

/// The records fuzzer's input format: a tag byte (even: a record, odd: a class with a
/// u16 count), then the bytes.
#[test]
fn hostile_records_and_classes_report_without_a_panic() {
    for name in ["records-latency-bucket", "records-count-overflow"] {
        let data = find(name);
        let mut a = Analyzer::new(16);
        let mut rest = &data[..];
        while let Some((tag, body)) = rest.split_first() {
            if tag & 1 == 0 {
                let Some(rec) = FaultRecord::from_bytes(body) else {
                    break;
                };
                a.ingest(&rec, &mut NoResolver);
                rest = &body[FaultRecord::SIZE..];
            } else {
                if body.len() < AggKey::SIZE + 2 {
                    break;
                }
                let k = AggKey::from_bytes(body).unwrap();
                let n = u64::from(u16::from_le_bytes([
                    body[AggKey::SIZE],
                    body[AggKey::SIZE + 1],
                ]));
                a.ingest_aggregate(&k, n, &mut NoResolver);
                rest = &body[AggKey::SIZE + 2..];
            }
        }
        report_of(&a, &RunInfo::truncated());
    }
}

/// A BTF file whose struct names itself as its anonymous member.
#[test]
fn a_self_nesting_btf_is_refused_without_a_stack_overflow() {
    if let Ok(btf) = Btf::parse(&find("btf-self-nesting")) {
        let _ = btf.member_offset("vm_fault", "address");
        let _ = btf.member_offset("vm_area_struct", "vm_flags");
        let _ = btf.member_offset("folio", "_flags_1");
    }
}
