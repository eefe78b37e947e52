//! The exporter's series from hand-made classes, as Prometheus would read them.

use huge_fault_common::{AggKey, Level, kabi, latency, rflags, source, step};

use super::*;

fn class(vma_flags: u64, inode: u64, ns: u64, chain: &[u32], entries: [u32; 4]) -> AggKey {
    let mut k = AggKey {
        vma_flags,
        inode,
        source: source::KRETPROBE,
        flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_START | rflags::HAS_MAPPING,
        latency_bucket: latency::bucket(ns),
        entries,
        ..Default::default()
    };
    for (i, s) in chain.iter().enumerate() {
        k.chain[i] = *s;
    }
    k.chain_len = chain.len() as u16;
    k
}

fn scrape(s: State) -> String {
    let shared = Shared(Arc::new(Mutex::new(s)));
    exposition(&registry(&shared))
}

#[test]
fn classes_become_bounded_series_with_exact_counts() {
    let mut s = State::new("0.1.0", "6.12.117".into(), "kprobe", 0, Sees::default());
    // 2048 anonymous PTE faults of 3 µs, and 4 devdax PMD faults of 40 µs after a PUD
    // FALLBACK.
    let pte = step(Level::Pte as u8, 0);
    s.add(&class(0, 0, 3_000, &[pte], [0, 1, 0, 0]), 2048);
    let fb = step(Level::Pud as u8, kabi::VM_FAULT_FALLBACK);
    let pmd = step(Level::Pmd as u8, kabi::VM_FAULT_NOPAGE);
    s.add(
        &class(
            kabi::VM_SHARED | kabi::VM_PFNMAP,
            1,
            40_000,
            &[fb, pmd],
            [0, 0, 4, 0],
        ),
        1,
    );
    s.add(
        &class(
            kabi::VM_SHARED | kabi::VM_PFNMAP,
            1,
            40_000,
            &[fb, pmd],
            [0, 0, 1, 0],
        ),
        3,
    );
    s.skipped_runs.insert("hf_fexit_handle_mm_fault".into(), 3);
    let text = scrape(s);
    for line in [
        r#"hugefault_build_info{version="0.1.0",kernel="6.12.117",mode="kprobe"} 1"#,
        r#"hugefault_faults_total{kind="anon"} 2048"#,
        r#"hugefault_faults_total{kind="pfnmap"} 4"#,
        r#"hugefault_entries_total{kind="anon",level="pte"} 2048"#,
        r#"hugefault_entries_total{kind="pfnmap",level="pmd"} 7"#,
        r#"hugefault_mapped_bytes_total{kind="anon",level="pte"} 8388608"#,
        r#"hugefault_fallbacks_total{kind="pfnmap",level="pud"} 4"#,
        r#"hugefault_level_answers_total{kind="pfnmap",level="pmd",result="ok"} 4"#,
        r#"hugefault_level_answers_total{kind="pfnmap",level="pud",result="fallback"} 4"#,
        r#"hugefault_fault_latency_seconds_count{kind="anon"} 2048"#,
        r#"hugefault_fault_latency_seconds_bucket{le="0.000002048",kind="anon"} 0"#,
        r#"hugefault_fault_latency_seconds_bucket{le="0.000004096",kind="anon"} 2048"#,
        r#"hugefault_fault_latency_seconds_bucket{le="+Inf",kind="anon"} 2048"#,
        r#"hugefault_fault_latency_seconds_bucket{le="0.000032768",kind="pfnmap"} 0"#,
        r#"hugefault_fault_latency_seconds_bucket{le="0.000065536",kind="pfnmap"} 4"#,
        "hugefault_lost_faults_total 0",
        r#"hugefault_skipped_program_runs_total{program="hf_fexit_handle_mm_fault"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("hugefault_retry_calls_total{kind=\"anon\"} 0"),
        "{text}"
    );
    // A mode that cannot see retries, errors or levels exports no such series.
    let mut blind = State::new(
        "0.1.0",
        "6.18".into(),
        "tracepoint-only",
        0,
        Sees {
            retries: false,
            errors: false,
            levels: false,
        },
    );
    blind.add(&class(0, 0, 3_000, &[pte], [0, 1, 0, 0]), 5);
    let text = scrape(blind);
    assert!(
        text.contains("hugefault_faults_total{kind=\"anon\"} 5"),
        "{text}"
    );
    for absent in [
        "hugefault_retry_calls_total{",
        "hugefault_entries_total{",
        "hugefault_level_answers_total{",
    ] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    // No pid, address or path ever becomes a label.
    assert!(!text.contains("pid=") && !text.contains("addr"), "{text}");
}

#[test]
fn command_names_beyond_the_cap_are_other_and_series_never_vanish() {
    let mut s = State::new("0.1.0", "k".into(), "kprobe", 2, Sees::default());
    let pte = step(Level::Pte as u8, 0);
    for (comm, n) in [("a", 1), ("b", 2), ("c", 4), ("a", 8), ("d", 16)] {
        let mut k = class(0, 0, 3_000, &[pte], [0, 1, 0, 0]);
        k.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        s.add(&k, n);
    }
    let text = scrape(s);
    for line in [
        r#"hugefault_faults_total{kind="anon",comm="a"} 9"#,
        r#"hugefault_faults_total{kind="anon",comm="b"} 2"#,
        r#"hugefault_faults_total{kind="anon",comm="other"} 20"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
}
