//! The analysis on hand-made records.

use super::*;
use crate::vma::{NoResolver, VmaDesc, VmaResolver};

pub fn rec(src: u8, tgid: u32, tid: u32, addr: u64) -> FaultRecord {
    let mut r = FaultRecord {
        source: src,
        tgid,
        tid,
        address: addr,
        flags: rflags::HAS_ADDRESS,
        ..Default::default()
    };
    r.comm[..4].copy_from_slice(b"work");
    r
}

pub fn with_vma(mut r: FaultRecord, start: u64, end: u64) -> FaultRecord {
    r.vma_start = start;
    r.vma_end = end;
    r.flags |= rflags::HAS_VMA;
    r
}

fn ret_call(tid: u32, addr: u64, ret: u32, fault_flags: u32, t: (u64, u64)) -> FaultRecord {
    let mut r = with_vma(
        rec(source::KRETPROBE, 100, tid, addr),
        0x1000_0000,
        0x1100_0000,
    );
    r.ret = ret;
    r.fault_flags = fault_flags;
    r.start_ns = t.0;
    r.end_ns = t.1;
    r.flags |= rflags::HAS_RET | rflags::HAS_START | rflags::HAS_FAULT_FLAGS;
    r
}

#[test]
fn counts_faults_per_process_and_vma() {
    let mut a = Analyzer::new(16);
    for i in 0..10 {
        let r = with_vma(
            rec(source::PERF_MINOR, 7, 7, 0x4000_0000 + i * 4096),
            0x4000_0000,
            0x4100_0000,
        );
        a.ingest(&r, &mut NoResolver);
    }
    for i in 0..3 {
        let r = with_vma(
            rec(source::PERF_MAJOR, 7, 8, 0x5000_0000 + i * 4096),
            0x5000_0000,
            0x5000_4000,
        );
        a.ingest(&r, &mut NoResolver);
    }
    a.ingest(
        &with_vma(rec(source::PERF_MINOR, 9, 9, 0x1000), 0x1000, 0x2000),
        &mut NoResolver,
    );
    assert_eq!(a.totals.faults, 14);
    assert_eq!(a.totals.major, 3);
    assert_eq!(a.processes[&7].stats.faults, 13);
    assert_eq!(a.processes[&9].stats.faults, 1);
    let rows = a.vmas_sorted();
    assert_eq!(rows.len(), 3);
    assert_eq!((rows[0].0.start, rows[0].1.stats.faults), (0x4000_0000, 10));
    assert_eq!(
        (
            rows[1].0.start,
            rows[1].1.stats.faults,
            rows[1].1.stats.major
        ),
        (0x5000_0000, 3, 3)
    );
    assert_eq!(rows[0].1.kind(), "anon");
}

/// A class of faults counted in the kernel reads as that many records of the class, its
/// retries (linked in the kernel) included.
#[test]
fn faults_counted_in_the_kernel_add_up_like_their_records() {
    use huge_fault_common::{latency, level};
    let class = |ret: u32, bucket: u32| AggKey {
        vma_start: 0x1000_0000,
        vma_end: 0x1100_0000,
        tgid: 100,
        ret,
        fault_flags: kernel::FAULT_FLAG_WRITE,
        latency_bucket: bucket,
        source: source::KRETPROBE,
        flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_FAULT_FLAGS | rflags::HAS_MAPPING,
        entries: [0, 0, 1, 0],
        chain: [
            huge_fault_common::step(level::PUD, kernel::VM_FAULT_FALLBACK),
            huge_fault_common::step(level::PMD, 0x100),
            0,
            0,
            0,
            0,
            0,
            0,
        ],
        chain_len: 2,
        comm: *b"work\0\0\0\0\0\0\0\0\0\0\0\0",
        ..Default::default()
    };
    // Faults whose first call returned VM_FAULT_RETRY under the per-VMA lock: linked in
    // the kernel, their class has the retry in its chain and counts.
    let mut retried = class(0x100, latency::bucket(2_000));
    retried.chain[1] = huge_fault_common::step(
        level::RETRY,
        kernel::VM_FAULT_RETRY | huge_fault_common::STEP_VMA_LOCK,
    );
    retried.chain[2] = huge_fault_common::step(level::PMD, 0x100);
    retried.chain_len = 3;
    retried.retries = 1;
    retried.vma_lock_retries = 1;
    let classes = [
        (class(0x100, latency::bucket(5_000)), 7),
        (class(0x100, latency::bucket(900_000)), 1),
        (retried, 2),
    ];
    let mut agg = Analyzer::new(16);
    let mut one_by_one = Analyzer::new(16);
    for (k, n) in &classes {
        agg.ingest_aggregate(k, *n, &mut NoResolver);
        for i in 0..*n {
            // The records each have their own thread: no retry links either.
            let mut r = k.to_record();
            r.tid = 1000 + i as u32 + r.ret;
            one_by_one.ingest(&r, &mut NoResolver);
        }
    }
    assert_eq!(agg.aggregated, 10);
    assert_eq!(agg.records, 0);
    let t = &agg.totals;
    assert_eq!((t.faults, t.retry_calls, t.writes), (10, 2, 10));
    assert_eq!((t.retried_faults, t.vma_lock_retries), (2, 2));
    assert_eq!(t.entries, [0, 0, 10, 0]);
    assert_eq!(t.bytes_mapped, 10 * (2 << 20));
    assert_eq!(t.fallback_faults, 10);
    assert_eq!(t.chains_text().get("PUD:FALLBACK PMD:OK"), Some(&8));
    assert_eq!(t.chains_text().get("PUD:FALLBACK RETRY PMD:OK"), Some(&2));
    let o = &one_by_one.totals;
    assert_eq!(
        (
            t.faults,
            t.retry_calls,
            t.retried_faults,
            &t.entries,
            &t.chains,
            t.bytes_mapped
        ),
        (
            o.faults,
            o.retry_calls,
            o.retried_faults,
            &o.entries,
            &o.chains,
            o.bytes_mapped
        )
    );
    assert_eq!(t.latency.summary(), o.latency.summary());
    let p50 = t.latency.summary().unwrap().p50;
    assert_eq!(p50, latency::upper(latency::bucket(5_000)));
    let rows = agg.vmas_sorted();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.stats.faults, 10);
    assert_eq!(agg.unlinked_retries(), 0);
    assert_eq!(agg.pending_retries(), 0);
}

/// A fault whose first call (under the per-VMA lock) returned VM_FAULT_RETRY: the kernel
/// side folds both calls into one record, its chain holding the steps of both.
fn retried_fault(tid: u32, addr: u64) -> FaultRecord {
    use huge_fault_common::{STEP_VMA_LOCK, level, step};
    let mut r = ret_call(tid, addr, 0x100, kernel::FAULT_FLAG_WRITE, (1000, 9000));
    r.retries = 1;
    r.vma_lock_retries = 1;
    r.flags |= rflags::HAS_MAPPING;
    let m = &mut r.mapping;
    for st in [
        step(level::PUD, kernel::VM_FAULT_FALLBACK),
        step(level::PMD, kernel::VM_FAULT_FALLBACK),
        step(level::RETRY, kernel::VM_FAULT_RETRY | STEP_VMA_LOCK),
        step(level::PMD, kernel::VM_FAULT_FALLBACK),
        step(level::PTE, 0x100),
    ] {
        m.push_step(st);
    }
    m.entries[1] = 1;
    r
}

#[test]
fn a_retried_fault_is_one_fault_with_the_steps_of_all_its_calls() {
    let mut a = Analyzer::new(16);
    a.ingest(&retried_fault(5, 0x1000_2345), &mut NoResolver);
    let t = &a.totals;
    assert_eq!(
        (
            t.faults,
            t.retry_calls,
            t.retried_faults,
            t.vma_lock_retries
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((t.unlinked_retries, t.pending_retries), (0, 0));
    assert_eq!(
        t.chains_text().keys().collect::<Vec<_>>(),
        ["PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"]
    );
    // One fault that fell back three times (two levels in the first call, one in the
    // second): one fallback fault, three FALLBACK answers.
    assert_eq!((t.fallback_faults, t.fallback_steps), (1, 3));
    assert_eq!(t.entries, [0, 1, 0, 0]);
    // Latency spans both calls: 9000 - 1000.
    assert_eq!(t.latency.summary().unwrap().max, 8000);
    let v = &a.vmas_sorted()[0].1.stats;
    assert_eq!((v.faults, v.retry_calls, v.retried_faults), (1, 1, 1));
}

#[test]
fn retry_calls_no_call_completed_are_unlinked_or_pending_not_faults() {
    let mut a = Analyzer::new(16);
    // The kernel side gave up waiting: the thread's next call was on another page.
    let mut gone = retried_fault(5, 0x1000_0000);
    gone.ret = kernel::VM_FAULT_RETRY;
    gone.retries = 2;
    gone.flags |= rflags::RETRY_UNLINKED;
    a.ingest(&gone, &mut NoResolver);
    // A return without an entry that returned VM_FAULT_RETRY: one call.
    let mut orphan = ret_call(6, 0x1000_8000, kernel::VM_FAULT_RETRY, 0, (0, 4));
    orphan.flags = (orphan.flags & !rflags::HAS_START) | rflags::NO_ENTRY;
    a.ingest(&orphan, &mut NoResolver);
    // Still waiting when tracing ended.
    let mut waiting = retried_fault(7, 0x1000_9000);
    waiting.ret = kernel::VM_FAULT_RETRY;
    waiting.flags |= rflags::RETRY_PENDING;
    a.ingest(&waiting, &mut NoResolver);
    let t = &a.totals;
    assert_eq!((t.faults, t.retried_faults, t.retry_calls), (0, 0, 4));
    assert_eq!((t.unlinked_retries, t.pending_retries), (3, 1));
    assert_eq!((a.unlinked_retries(), a.pending_retries()), (3, 1));
    assert!(t.chains.is_empty() && t.latency.summary().is_none());
    let v = &a.vmas_sorted()[0].1.stats;
    assert_eq!((v.unlinked_retries, v.pending_retries), (3, 1));
}

#[test]
fn a_batch_of_inserts_in_one_call_is_one_step_with_a_count() {
    use huge_fault_common::{level, step};
    let mut r = ret_call(5, 0x1000_0000, 0x100, kernel::FAULT_FLAG_WRITE, (1, 2));
    r.flags |= rflags::HAS_MAPPING;
    for _ in 0..16 {
        r.mapping.push_step(step(level::PTE, 0x100));
    }
    r.mapping.entries[1] = 16;
    let m = mapped(&r);
    assert_eq!(
        (m.chain.to_string().as_str(), m.entries),
        ("PTE:OK×16", [0, 16, 0, 0])
    );
    assert_eq!(m.bytes, 16 * 4096);
}

#[test]
fn errors_and_writes_are_counted() {
    let mut a = Analyzer::new(16);
    a.ingest(
        &ret_call(
            5,
            0x1000_0000,
            kernel::VM_FAULT_SIGBUS,
            kernel::FAULT_FLAG_WRITE,
            (1, 2),
        ),
        &mut NoResolver,
    );
    let mut tp = rec(source::PERF_MINOR, 100, 5, 0x1000_1000);
    tp.error_code = kernel::X86_PF_WRITE | kernel::X86_PF_USER;
    tp.flags |= rflags::HAS_EXCEPTION;
    a.ingest(&tp, &mut NoResolver);
    assert_eq!(
        (a.totals.faults, a.totals.errors, a.totals.writes),
        (2, 1, 2)
    );
}

#[test]
fn a_full_vma_table_counts_overflow_instead_of_dropping() {
    let mut a = Analyzer::new(2);
    for i in 0..5u64 {
        let base = 0x10_0000 * (i + 1);
        a.ingest(
            &with_vma(rec(source::PERF_MINOR, 1, 1, base), base, base + 0x1000),
            &mut NoResolver,
        );
    }
    assert_eq!(a.vmas.len(), 2);
    assert_eq!(a.vma_overflow, 3);
    assert_eq!(a.processes[&1].vma_overflow, 3);
    assert_eq!(a.totals.faults, 5);
}

#[test]
fn a_full_process_table_counts_overflow() {
    let mut a = Analyzer::new(2);
    for tgid in [1, 2, 3, 3, 1] {
        a.ingest(
            &rec(source::PERF_MINOR, tgid, tgid, 0x1000),
            &mut NoResolver,
        );
    }
    assert_eq!(a.processes.len(), 2);
    assert_eq!(a.processes[&1].stats.faults, 2);
    assert_eq!(a.process_overflow, 2);
    assert_eq!(a.totals.faults, 5);
}

struct OneVma;
impl VmaResolver for OneVma {
    fn lookup(&mut self, _tgid: u32, addr: u64) -> Option<VmaDesc> {
        (0x7000..0x9000).contains(&addr).then(|| VmaDesc {
            start: 0x7000,
            end: 0x9000,
            pgoff: 0,
            inode: 42,
            shared: true,
            name: Some("/dev/shm/x".into()),
        })
    }
}

#[test]
fn user_space_resolves_vmas_the_kernel_did_not_give() {
    let mut a = Analyzer::new(8);
    a.ingest(&rec(source::PERF_MINOR, 3, 3, 0x7123), &mut OneVma);
    a.ingest(&rec(source::PERF_MINOR, 3, 3, 0x1), &mut OneVma);
    let rows = a.vmas_sorted();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.name.as_deref(), Some("/dev/shm/x"));
    assert_eq!(rows[0].1.kind(), "file-shared");
    assert!(rows[0].1.from_proc);
    assert_eq!(a.processes[&3].no_vma, 1);
}

fn step(r: &mut FaultRecord, lvl: u8, ret: u32, size: u64) {
    let m = &mut r.mapping;
    m.chain[m.chain_len as usize] = (u32::from(lvl) << 24) | ret;
    m.chain_len += 1;
    if ret & (kernel::VM_FAULT_ERROR | kernel::VM_FAULT_RETRY) == 0 {
        m.entries[lvl as usize] += 1;
        m.first_addr[lvl as usize] = r.address & !(size - 1);
    }
}

#[test]
fn chains_entries_and_bytes_per_fault() {
    use huge_fault_common::level;
    let base = ret_call(5, 0x1020_0000, 0, kernel::FAULT_FLAG_WRITE, (1, 2));
    let mut pmd = base;
    pmd.flags |= rflags::HAS_MAPPING;
    step(&mut pmd, level::PMD, 0, 2 << 20);
    let m = mapped(&pmd);
    assert_eq!(
        (
            m.chain.to_string().as_str(),
            m.entries,
            m.bytes,
            m.fallback_steps
        ),
        ("PMD:OK", [0, 0, 1, 0], 2 << 20, 0)
    );

    let mut fb = base;
    fb.flags |= rflags::HAS_MAPPING;
    step(&mut fb, level::PMD, kernel::VM_FAULT_FALLBACK, 2 << 20);
    let m = mapped(&fb);
    assert_eq!(
        (
            m.chain.to_string().as_str(),
            m.entries,
            m.bytes,
            m.fallback_steps
        ),
        ("PMD:FALLBACK PTE:OK", [0, 1, 0, 0], 4096, 1)
    );

    let mut pud = base;
    step(&mut pud, level::PUD, 0x100, 1 << 30);
    assert_eq!(mapped(&pud).chain.to_string(), "PUD:OK");
    assert_eq!(mapped(&pud).bytes, 1 << 30);

    let mut wp = base;
    wp.flags |= rflags::HAS_EXCEPTION;
    wp.error_code = kernel::X86_PF_PROT | kernel::X86_PF_WRITE;
    assert_eq!(
        (mapped(&wp).chain.to_string().as_str(), mapped(&wp).entries),
        ("PTE:PRESENT", [0; 4])
    );

    // DAX: the handler was asked for a PMD, fell back, then for a PTE.
    let mut dax = base;
    dax.flags |= rflags::HAS_MAPPING;
    step(&mut dax, level::PMD, kernel::VM_FAULT_FALLBACK, 2 << 20);
    dax.mapping.chain[1] = (u32::from(level::PTE) << 24) | 0x100;
    dax.mapping.chain_len = 2;
    let m = mapped(&dax);
    assert_eq!(
        (m.chain.to_string().as_str(), m.entries, m.fallback_steps),
        ("PMD:FALLBACK PTE:OK", [0, 1, 0, 0], 1)
    );

    let mut bus = base;
    bus.ret = kernel::VM_FAULT_SIGBUS;
    assert_eq!(
        (mapped(&bus).chain.to_string().as_str(), mapped(&bus).bytes),
        ("PTE:SIGBUS", 0)
    );

    // The analyzer adds them up per VMA, and counts fallback faults.
    let mut a = Analyzer::new(8);
    for r in [pmd, fb, fb] {
        a.ingest(&r, &mut NoResolver);
    }
    let v = &a.vmas_sorted()[0].1.stats;
    assert_eq!(v.entries, [0, 2, 1, 0]);
    assert_eq!(v.bytes_mapped, (2 << 20) + 2 * 4096);
    assert_eq!(v.fallback_faults, 2);
    assert_eq!(v.chains_text()["PMD:FALLBACK PTE:OK"], 2);
    // Without the nested probes, nothing is claimed.
    let mut b = Analyzer::new(8);
    b.sizes_visible = false;
    b.ingest(&pmd, &mut NoResolver);
    assert!(b.totals.chains.is_empty());
    assert_eq!(b.totals.bytes_mapped, 0);
}

#[test]
fn unknown_sources_are_counted_as_malformed() {
    let mut a = Analyzer::new(8);
    a.ingest(&rec(99, 1, 1, 0), &mut NoResolver);
    assert_eq!((a.malformed, a.records, a.totals.faults), (1, 0, 0));
}

#[test]
fn a_fault_whose_return_was_missed_counts_with_what_it_did_and_no_latency() {
    use huge_fault_common::{level, step};
    let mut a = Analyzer::new(16);
    // Closed at the thread's next entry: no return value, no start, its steps so far.
    let mut r = with_vma(
        rec(source::FEXIT, 100, 101, 0x1000_0000),
        0x1000_0000,
        0x1100_0000,
    );
    r.flags |= rflags::HAS_FAULT_FLAGS | rflags::HAS_MAPPING | rflags::RETURN_MISSED;
    r.fault_flags = kernel::FAULT_FLAG_WRITE;
    r.start_ns = 1000;
    r.end_ns = 900_000;
    r.mapping.push_step(step(level::PTE, 0x100));
    r.mapping.entries[1] = 1;
    a.ingest(&r, &mut NoResolver);
    a.ingest(
        &ret_call(101, 0x1000_1000, 0x100, kernel::FAULT_FLAG_WRITE, (1, 5)),
        &mut NoResolver,
    );
    let t = &a.totals;
    assert_eq!((t.faults, t.errors, t.major, t.writes), (2, 0, 0, 2));
    assert_eq!(a.returns_missed, 1);
    // Only the fault with a return has a latency.
    assert_eq!(t.latency.summary().map(|s| s.count), Some(1));
    let c = classify(&r, true);
    assert!(!c.retry && c.latency_ns.is_none());
    assert_eq!(c.mapped.map(|m| m.entries), Some([0, 1, 0, 0]));
}

#[test]
fn a_prefault_over_present_ptes_counts_re_inserts_not_entries() {
    use huge_fault_common::{STEP_PRESENT, level, step};
    // TTM touched in reverse: the fault maps its own page and re-inserts 15 present ones.
    let mut r = ret_call(
        1,
        0x7f00_0000_0000,
        0x100,
        kernel::FAULT_FLAG_WRITE,
        (1000, 9000),
    );
    r.flags |= rflags::HAS_MAPPING;
    r.mapping.push_step(step(level::PTE, 0x100));
    r.mapping.note_entry(level::PTE, 0x7f00_0000_0000, 0x500);
    for _ in 0..15 {
        r.mapping.push_step(step(level::PTE, 0x100 | STEP_PRESENT));
    }
    let m = crate::analysis::mapped(&r);
    assert_eq!(m.chain.to_string(), "PTE:OK PTE:PRESENT×15");
    assert_eq!(m.entries, [0, 1, 0, 0]);
    assert_eq!(m.reinserts, [0, 15, 0, 0]);
    assert_eq!(m.bytes, 4096);
    let mut a = Analyzer::new(16);
    a.ingest(&r, &mut NoResolver);
    a.ingest(&r, &mut NoResolver);
    assert_eq!(a.totals.entries[1], 2);
    assert_eq!(a.totals.reinserts[1], 30);
}
