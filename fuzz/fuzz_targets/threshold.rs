//! Any `--fail-if` text: parsed, then judged against a report.
#![no_main]

use huge_fault::threshold::{Threshold, evaluate};
use libfuzzer_sys::fuzz_target;

const REPORT: &str = r#"{"totals":{"faults":10,"fallback_rate":0.5,"latency_ns":{"p99":100}},
"loss":{"ringbuf_drops":0},"vmas":[{"path":"/dev/dax0.0","kind":"pfnmap","faults":3,
"entries":{"pte":1,"pmd":2,"pud":0},"bytes_mapped":4198400,"latency_ns":{"p99":null}}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(t) = text.parse::<Threshold>() else { return };
    let report: serde_json::Value = serde_json::from_str(REPORT).expect("valid");
    let _ = evaluate(&[t], &report);
});
