//! Any bytes as kernel records and classes: a record the programs got wrong (or a bug in
//! them) must be counted as malformed or analysed, never crash the tool.
#![no_main]

use huge_fault::{
    analysis::Analyzer,
    report::{Extras, Report},
    run_info::RunInfo,
    vma::NoResolver,
};
use huge_fault_common::{AggKey, FaultRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut a = Analyzer::new(16);
    let mut rest = data;
    // Alternate records and classes, as the ring buffer and the class table give them.
    while !rest.is_empty() {
        let (tag, body) = rest.split_first().expect("not empty");
        if tag & 1 == 0 {
            let Some(rec) = FaultRecord::from_bytes(body) else { break };
            a.ingest(&rec, &mut NoResolver);
            rest = &body[FaultRecord::SIZE..];
        } else {
            if body.len() < AggKey::SIZE + 2 {
                break;
            }
            let k = AggKey::from_bytes(body).expect("long enough");
            let n = u64::from(u16::from_le_bytes([body[AggKey::SIZE], body[AggKey::SIZE + 1]]));
            a.ingest_aggregate(&k, n, &mut NoResolver);
            rest = &body[AggKey::SIZE + 2..];
        }
    }
    let run = RunInfo::truncated();
    let extras = Extras::finished(&a, &run, true);
    let report = Report::build_with(&a, &run, extras);
    let _ = report.render(20, None, None);
    let _ = serde_json::to_value(&report);
});
