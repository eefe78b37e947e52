//! A hostile recording: `huge-fault report FILE` on any bytes must report or refuse,
//! never panic or allocate without bound, through the analysis, the what-if and the report.
#![no_main]

use huge_fault::{
    record::replay,
    report::{Extras, Report},
    run_info::RunInfo,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = replay(data, 64);
    let run = match &r.trailer {
        Some(t) => t.run.clone(),
        None => RunInfo::truncated(),
    };
    let extras = Extras::finished(&r.analyzer, &run, true);
    let report = Report::build_with(&r.analyzer, &run, extras);
    let _ = report.render(20, None, None);
    let _ = report.to_json();
});
