//! The report of hand-made runs: JSON schema, nulls, tables.

use super::*;
use crate::{
    analysis::tests::{rec, with_vma},
    run_info::{ProbeStatus, Reason},
    vma::NoResolver,
};
use huge_fault_common::{counter, source};

fn run(mode: Mode) -> RunInfo {
    let mut counters = vec![0; counter::COUNT as usize];
    counters[counter::RINGBUF_DROPS as usize] = 4;
    counters[counter::EXC_USER as usize] = 12;
    RunInfo {
        kernel_release: "6.1.0-test".into(),
        mode,
        filter_pid: Some(7),
        duration_s: 2.5,
        ended_by: EndedBy::Duration,
        probes: vec![ProbeReport {
            program: "hf_kprobe_handle_mm_fault".into(),
            target: "handle_mm_fault".into(),
            mode: Mode::Kprobe,
            role: "fault entry".into(),
            status: ProbeStatus::Skipped,
            reason: Some(Reason::from(
                "kprobes unavailable: kernel built without CONFIG_KPROBES",
            )),
        }],
        counters,
        aggregate: false,
        program_misses: Default::default(),
        program_costs: None,
        handlers: Vec::new(),
    }
}

/// The generic size probes, attached in kprobe mode: a run that claims sizes.
fn size_probes() -> Vec<ProbeReport> {
    crate::kernel::GENERIC_SIZE_FUNCTIONS
        .iter()
        .map(|f| ProbeReport {
            program: "p".into(),
            target: (*f).into(),
            mode: Mode::Kprobe,
            role: "size".into(),
            status: ProbeStatus::Attached,
            reason: None,
        })
        .collect()
}

fn analyzer() -> Analyzer {
    let mut a = Analyzer::new(16);
    for i in 0..10u64 {
        let mut r = with_vma(
            rec(source::PERF_MINOR, 7, 7, 0x7f00_0000_0000 + i * 4096),
            0x7f00_0000_0000,
            0x7f00_0400_0000,
        );
        r.start_ns = 1000;
        r.end_ns = 1000 + 500 * (i + 1);
        r.flags |= huge_fault_common::rflags::HAS_START;
        a.ingest(&r, &mut NoResolver);
    }
    a
}

#[test]
fn json_schema_v3_has_versions_visibility_and_ranges() {
    let rep = Report::build(&analyzer(), &run(Mode::TracepointOnly));
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    assert_eq!(v["schema"], "huge-fault.report");
    assert_eq!(v["version"], 3);
    assert_eq!(v["mode"], "tracepoint-only");
    assert_eq!(v["visibility"]["return_codes"], false);
    assert_eq!(v["loss"]["ringbuf_drops"], 4);
    assert_eq!(v["kernel_counters"]["user_fault_exceptions"], 12);
    assert_eq!(v["totals"]["faults"], 10);
    // What the mode cannot see is null, not zero.
    assert!(v["totals"]["retry_calls"].is_null());
    assert!(v["totals"]["vma_lock_retries"].is_null());
    assert!(v["totals"]["unlinked_retries"].is_null());
    assert!(v["totals"]["errors"].is_null());
    assert_eq!(v["processes"][0]["pid"], 7);
    assert_eq!(v["processes"][0]["faults"], 10);
    let vma = &v["vmas"][0];
    assert_eq!(vma["start"], "0x7f0000000000");
    assert_eq!(vma["end"], "0x7f0004000000");
    assert_eq!(vma["size_bytes"], 64 << 20);
    assert_eq!(vma["faults"], 10);
    assert_eq!(vma["latency_ns"]["min"], 500);
    assert_eq!(vma["latency_ns"]["max"], 5000);
    assert_eq!(v["probes"][0]["status"], "skipped");
}

#[test]
fn kprobe_mode_reports_retries_and_errors_as_numbers() {
    let rep = Report::build(&analyzer(), &run(Mode::Kprobe));
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    assert_eq!(v["totals"]["retry_calls"], 0);
    assert_eq!(v["totals"]["errors"], 0);
    // Sizes are claimed only with the generic size probes attached.
    assert!(!rep.render(20, None, None).contains("sizes:"));
    let mut r = run(Mode::Kprobe);
    r.probes = size_probes();
    let text = Report::build(&analyzer(), &r).render(20, None, None);
    // The ten faults of analyzer() are completions without nested-probe data.
    assert!(
        text.contains("sizes: 0 (0 mapped), fallback 0.0% of faults"),
        "{text}"
    );
}

#[test]
fn tables_show_rows_loss_and_the_skip_reason() {
    let r = run(Mode::TracepointOnly);
    let rep = Report::build(&analyzer(), &r);
    let text = rep.render(20, None, None);
    assert!(
        text.starts_with("10 faults in 2.5s (tracepoint-only mode)"),
        "{text}"
    );
    assert!(text.contains("lost: 4 ring-buffer drops"), "{text}");
    assert!(
        text.contains(" 7f0000000000 ") && text.ends_with("7f0004000000\n"),
        "{text}"
    );
    assert!(text.contains("64.0M"), "{text}");
    // At 80 columns: no line wider, the essential columns there, the end address gone.
    let narrow = rep.render(20, Some(80), None);
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    for col in [
        "PID", "COMM", "KIND", "START", "SIZE", "FAULTS", "ENTRIES", "FALLBACK", "P99",
    ] {
        assert!(narrow.contains(col), "{col}: {narrow}");
    }
    assert!(!narrow.contains("7f0004000000"), "{narrow}");
    let summary = Report::attach_summary(&r.probes, Mode::TracepointOnly);
    assert!(summary.contains("kprobes unavailable: kernel built without CONFIG_KPROBES"));
    assert!(summary.contains("cannot see:"));
    // No histograms unless asked for, in the text or the JSON.
    assert!(!text.contains("latency, all faults"));
    assert!(!rep.to_json().contains("latency_log2"));
    // Asked for: latencies 500 ns .. 5 µs fall into [256ns, 512ns) .. [4.1µs, 8.2µs).
    let a = analyzer();
    let rep = Report::build_with(
        &a,
        &r,
        Extras {
            histograms: true,
            ..Extras::default()
        },
    );
    let text = rep.render(20, None, None);
    assert!(text.contains("latency, all faults:"), "{text}");
    assert!(
        text.contains("latency, pid 7 VMA 7f0000000000-7f0004000000:"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    let b = v["vmas"][0]["latency_log2"].as_array().unwrap();
    let total: u64 = b.iter().map(|x| x["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 10);
    assert_eq!(b[0]["from_ns"], 256);
    assert_eq!(v["totals"]["latency_log2"], v["vmas"][0]["latency_log2"]);
}

#[test]
fn sizes_are_human() {
    assert_eq!(fmt_size(4096), "4.0K");
    assert_eq!(fmt_size(2 << 20), "2.0M");
    assert_eq!(fmt_size(1 << 30), "1.0G");
    assert_eq!(fmt_size(100), "100");
}

#[test]
fn skipped_program_runs_are_reported_by_program_and_in_the_text() {
    let mut r = run(Mode::Fentry);
    r.program_misses
        .insert("hf_fexit_handle_mm_fault".into(), 3);
    r.program_misses
        .insert("hf_fentry_handle_mm_fault".into(), 1);
    let mut a = analyzer();
    a.returns_missed = 3;
    let rep = Report::build(&a, &r);
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    assert_eq!(v["loss"]["program_misses"], 4);
    assert_eq!(
        v["loss"]["program_misses_by_program"]["hf_fexit_handle_mm_fault"],
        3
    );
    assert_eq!(v["anomalies"]["returns_missed"], 3);
    let text = rep.render(10, None, None);
    assert!(
        text.contains(
            "missed: the kernel skipped 4 runs of these programs (already running on that CPU): \
             hf_fentry_handle_mm_fault 1, hf_fexit_handle_mm_fault 3; 3 faults counted without their return"
        ),
        "{text}"
    );
    // Nothing skipped: no line.
    let quiet = Report::build(&analyzer(), &run(Mode::Fentry)).render(10, None, None);
    assert!(!quiet.contains("missed:"), "{quiet}");
}

#[test]
fn program_costs_are_null_unless_accounted_and_per_run_when_they_are() {
    let mut r = run(Mode::Fentry);
    let a = analyzer();
    let v: serde_json::Value = serde_json::from_str(&Report::build(&a, &r).to_json()).unwrap();
    assert!(v["program_costs"].is_null());
    assert!(
        !Report::build(&a, &r)
            .render(10, None, None)
            .contains("kernel time per run")
    );
    r.program_costs = Some(
        [(
            "hf_fexit_handle_mm_fault".to_string(),
            crate::run_info::ProgramCost {
                runs: 3,
                run_time_ns: 1000,
            },
        )]
        .into(),
    );
    let rep = Report::build(&a, &r);
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    let c = &v["program_costs"]["hf_fexit_handle_mm_fault"];
    assert_eq!(
        (c["runs"].as_u64(), c["run_time_ns"].as_u64()),
        (Some(3), Some(1000))
    );
    assert_eq!(c["ns_per_run"].as_f64(), Some(333.3));
    assert!(
        rep.render(10, None, None)
            .contains("kernel time per run: hf_fexit_handle_mm_fault 333 ns × 3")
    );
}

#[test]
fn each_vma_names_the_huge_fault_handlers_its_faults_asked() {
    use huge_fault_common::{kabi, rflags, step};
    let mut a = Analyzer::new(16);
    // Three PMD faults on a driver's VMA, the last refused by its handler (FALLBACK then a
    // PTE), all asking handler 2; one anonymous fault asking none.
    for (i, ret) in [0u32, 0, kabi::VM_FAULT_FALLBACK].into_iter().enumerate() {
        let mut r = with_vma(
            rec(
                source::KRETPROBE,
                7,
                7,
                0x4000_0000 + (i as u64) * (2 << 20),
            ),
            0x4000_0000,
            0x4100_0000,
        );
        r.flags |= rflags::HAS_RET | rflags::HAS_MAPPING;
        r.mapping.chain[0] = step(huge_fault_common::level::PMD, ret);
        r.mapping.chain_len = 1;
        r.mapping.handler = 2;
        a.ingest(&r, &mut NoResolver);
    }
    let mut anon = with_vma(
        rec(source::KRETPROBE, 7, 7, 0x9000_0000),
        0x9000_0000,
        0x9001_0000,
    );
    anon.flags |= rflags::HAS_RET | rflags::HAS_MAPPING;
    a.ingest(&anon, &mut NoResolver);
    let mut r = run(Mode::Kprobe);
    r.probes = size_probes();
    r.handlers = vec![
        "dev_dax_huge_fault [device_dax]".into(),
        "hfgpu_huge_fault [hfgpu]".into(),
    ];
    let rep = Report::build(&a, &r);
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    let drv = &v["vmas"][0];
    assert_eq!(drv["start"], "0x40000000");
    assert_eq!(drv["handlers"][0]["handler"], "hfgpu_huge_fault [hfgpu]");
    assert_eq!(drv["handlers"][0]["faults"], 3);
    assert_eq!(drv["handlers"].as_array().unwrap().len(), 1);
    // Faults that asked no handler: an empty list, not null.
    assert_eq!(v["vmas"][1]["handlers"], serde_json::json!([]));
    assert_eq!(v["totals"]["handlers"][0]["faults"], 3);
    let text = rep.render(20, None, None);
    assert!(
        text.contains("huge_fault handlers asked, per VMA:\n  7  40000000: hfgpu_huge_fault [hfgpu] for 3 faults"),
        "{text}"
    );
    // Without a handler table (none attached, or an older recording) nothing is claimed.
    r.handlers.clear();
    let v: serde_json::Value = serde_json::from_str(&Report::build(&a, &r).to_json()).unwrap();
    assert!(v["vmas"][0]["handlers"].is_null());
    // Nor in a mode that sees no levels.
    let v: serde_json::Value =
        serde_json::from_str(&Report::build(&a, &run(Mode::TracepointOnly)).to_json()).unwrap();
    assert!(v["vmas"][0]["handlers"].is_null());
}
