//! The what-if on hand-made runs, against the lab driver's real outcomes.

use super::*;
use huge_fault_common::{FaultRecord, level, source};

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

/// A completed fault at `addr` of VMA [start, end) that inserted one entry of `lvl`
/// mapping pfn `delta + page`, after asking the levels in `chain`.
fn fault(start: u64, end: u64, addr: u64, lvl: u8, delta: u64, chain: &[u8]) -> FaultRecord {
    let mut r = FaultRecord {
        source: source::KRETPROBE,
        tgid: 7,
        tid: 7,
        address: addr,
        vma_start: start,
        vma_end: end,
        flags: rflags::HAS_MAPPING | rflags::HAS_VMA | rflags::HAS_RET,
        ..Default::default()
    };
    let m = &mut r.mapping;
    for (i, l) in chain.iter().enumerate() {
        m.chain[i] = u32::from(*l) << 24;
        m.chain_len += 1;
    }
    let size = [0, 4096, MIB2, GIB][lvl as usize];
    let a = addr & !(size - 1);
    m.entries[lvl as usize] = 1;
    m.first_addr[lvl as usize] = a;
    m.last_addr[lvl as usize] = a;
    m.first_pfn[lvl as usize] = (a >> 12) + delta;
    m.last_pfn[lvl as usize] = (a >> 12) + delta;
    r
}

fn key(start: u64, end: u64) -> VmaKey {
    VmaKey {
        tgid: 7,
        start,
        end,
    }
}

fn observe(o: &mut Observer, r: &FaultRecord) {
    let e = r.mapping.entries;
    o.observe(key(r.vma_start, r.vma_end), r, false, &e);
}

/// pte-only on an aligned 1 GiB + 2 MiB + 8 KiB buffer, kernel asking PUD and PMD: the
/// helper maps it all in one fault, as the lab driver's range policy does (PUD, the PMD
/// in the second pass, 2 PTEs); a core-mm helper gets the same here.
#[test]
fn level_by_level_run_predicts_one_range_fault() {
    let (start, delta) = (16 * GIB, 0x100000);
    let end = start + GIB + MIB2 + 8192;
    let mut o = Observer::default();
    let mut a = start;
    while a < end {
        let chain: &[u8] = if a == start {
            &[level::PUD, level::PMD, level::PTE]
        } else {
            &[level::PTE]
        };
        observe(&mut o, &fault(start, end, a, level::PTE, delta, chain));
        a += 4096;
    }
    let w = &o.compute()[&key(start, end)];
    assert_eq!(w.skipped, None);
    let pages = (end - start) >> 12;
    assert_eq!(w.observed.as_ref().unwrap().faults, pages);
    assert_eq!(w.observed.as_ref().unwrap().pte, pages);
    let m = w.module_helper.as_ref().unwrap();
    assert_eq!(m.describe(), "1 fault: PUD 1, PMD 1, PTE 2");
    assert_eq!(m.bytes, end - start);
    assert_eq!(
        w.core_helper.as_ref().unwrap().describe(),
        "1 fault: PUD 1, PMD 1, PTE 2"
    );
    assert_eq!(w.asks, vec!["PUD", "PMD", "PTE"]);
    assert_eq!(
        w.run.as_ref().unwrap().pfn,
        format!("{:#x}", (start >> 12) + delta)
    );
}

/// Faults counted in the kernel have no addresses: their VMA's replay would be wrong.
#[test]
fn a_vma_with_faults_counted_in_the_kernel_is_skipped() {
    let start = 16 * GIB;
    let end = start + 4 * MIB2;
    let mut o = Observer::default();
    for a in (start..start + MIB2).step_by(4096) {
        observe(&mut o, &fault(start, end, a, level::PTE, 0, &[]));
    }
    assert_eq!(o.compute()[&key(start, end)].skipped, None);
    o.aggregated(key(start, end), 512);
    let w = &o.compute()[&key(start, end)];
    assert!(
        w.skipped
            .as_deref()
            .is_some_and(|r| r.starts_with("512 faults counted in the kernel")),
        "{:?}",
        w.skipped
    );
    assert!(w.module_helper.is_none());
}

/// A kernel that never asks huge_fault (6.1 and PFNMAP): the helper runs from the PTE
/// handler with the first GiB's PMD table allocated, so no PUD goes there.
#[test]
fn a_kernel_that_only_calls_the_pte_handler() {
    let start = 16 * GIB;
    let end = start + GIB + MIB2 + 8192;
    let mut o = Observer::default();
    for a in (start..end).step_by(4096) {
        observe(&mut o, &fault(start, end, a, level::PTE, 0, &[]));
    }
    let w = &o.compute()[&key(start, end)];
    assert_eq!(w.asks, vec!["PTE"]);
    assert_eq!(
        w.module_helper.as_ref().unwrap().describe(),
        "1 fault: PUD 0, PMD 513, PTE 2"
    );
}

/// Misaligned modulo 2 MiB: nothing huge fits; one fault of PTEs either way. The
/// module's helper called at PUD on an aligned 8 MiB buffer has no PMD table to put
/// its first PMD in; a core-mm helper has.
#[test]
fn module_and_core_helpers_differ_where_tables_are_missing() {
    let start = 16 * GIB + 0x10000;
    let end = start + (8 << 20);
    // Physical at a 2 MiB boundary, virtual 64 KiB past one.
    let delta = (1 << 18) - 16;
    let mut o = Observer::default();
    for a in (start..end).step_by(4096) {
        let chain: &[u8] = if a == start { &[level::PUD] } else { &[] };
        observe(&mut o, &fault(start, end, a, level::PTE, delta, chain));
    }
    let w = &o.compute()[&key(start, end)];
    assert_eq!(
        w.module_helper.as_ref().unwrap().describe(),
        "1 fault: PUD 0, PMD 0, PTE 2048"
    );

    let start = 32 * GIB;
    let end = start + (8 << 20);
    let mut o = Observer::default();
    for a in (start..end).step_by(2 << 20) {
        let chain: &[u8] = if a == start {
            &[level::PUD, level::PMD]
        } else {
            &[level::PMD]
        };
        observe(&mut o, &fault(start, end, a, level::PMD, 0, chain));
    }
    let w = &o.compute()[&key(start, end)];
    assert_eq!(
        w.observed.as_ref().unwrap().describe(),
        "4 faults: PUD 0, PMD 4, PTE 0"
    );
    // The module's helper maps the first 2 MiB with PTEs, which allocates the PMD
    // table, and the other three as PMDs in its second pass.
    assert_eq!(
        w.module_helper.as_ref().unwrap().describe(),
        "1 fault: PUD 0, PMD 3, PTE 512"
    );
    assert_eq!(
        w.core_helper.as_ref().unwrap().describe(),
        "1 fault: PUD 0, PMD 4, PTE 0"
    );
}

#[test]
fn inserts_off_one_run_or_without_pfn_are_not_planned() {
    let (start, end) = (GIB, GIB + (1 << 20));
    let mut o = Observer::default();
    observe(&mut o, &fault(start, end, start, level::PTE, 5, &[]));
    observe(&mut o, &fault(start, end, start + 4096, level::PTE, 9, &[]));
    let w = &o.compute()[&key(start, end)];
    assert_eq!(
        w.skipped.as_deref(),
        Some("the VMA's pfns are not one contiguous run")
    );

    let mut o = Observer::default();
    observe(&mut o, &fault(start, end, start, level::PTE, 5, &[]));
    let mut r = fault(start, end, start + 4096, level::PTE, 5, &[]);
    r.mapping.first_pfn[1] = NO_PFN;
    r.mapping.pfn_missing = 1 << level::PTE;
    observe(&mut o, &r);
    let w = &o.compute()[&key(start, end)];
    assert_eq!(w.skipped.as_deref(), Some("1 entries without a known pfn"));

    // Anonymous memory (no pfns at all): no what-if.
    let mut o = Observer::default();
    let mut r = fault(start, end, start, level::PTE, 5, &[]);
    r.mapping.entries = [0; 4];
    observe(&mut o, &r);
    assert!(o.compute().is_empty());
}

/// Faults that the replayed helper already covered do not count; a partly populated
/// start is the observed order's business: a second VMA's faults in the same GiB make
/// its PMD table, so the first VMA gets no PUD.
#[test]
fn neighbours_decide_the_tables() {
    let start = 16 * GIB;
    let end = start + GIB;
    let other = (start + GIB, start + GIB + (1 << 20));
    let mut o = Observer::default();
    let r = fault(other.0, other.1, other.0, level::PTE, 0, &[]);
    observe(&mut o, &r);
    // The big VMA starts at a GiB boundary but the neighbour's table is in the next GiB:
    // PUD still possible.
    for a in (start..end).step_by(2 << 20) {
        observe(
            &mut o,
            &fault(start, end, a, level::PMD, 0, &[level::PUD, level::PMD]),
        );
    }
    let w = o.compute();
    assert_eq!(
        w[&key(start, end)]
            .module_helper
            .as_ref()
            .unwrap()
            .describe(),
        "1 fault: PUD 1, PMD 0, PTE 0"
    );
    assert_eq!(
        w[&key(other.0, other.1)]
            .module_helper
            .as_ref()
            .unwrap()
            .describe(),
        "1 fault: PUD 0, PMD 0, PTE 256"
    );
}

/// A mapping faulted and unmapped before the aligned buffer was mapped over its place:
/// munmap freed its tables, so the buffer's PUD slot is empty again and the helper maps a
/// PUD (the lab's drv-pud-aligned failed so when mmap reused such a range). While the
/// earlier mapping is still there (it does not overlap), its table stays and only PMDs fit.
#[test]
fn an_unmapped_vma_leaves_no_tables_behind() {
    let start = 16 * GIB;
    let end = start + GIB + MIB2 + 8192;
    let run = |earlier: (u64, u64)| {
        let mut o = Observer::default();
        let mut r = fault(
            earlier.0,
            earlier.1,
            earlier.0,
            level::PTE,
            0,
            &[level::PTE],
        );
        r.mapping.pfn_missing = 1 << level::PTE;
        observe(&mut o, &r);
        let mut a = start;
        while a < end {
            let chain: &[u8] = if a == start {
                &[level::PUD, level::PMD, level::PTE]
            } else {
                &[level::PTE]
            };
            observe(&mut o, &fault(start, end, a, level::PTE, 0x100000, chain));
            a += 4096;
        }
        let w = o.compute();
        w[&key(start, end)]
            .module_helper
            .as_ref()
            .unwrap()
            .describe()
    };
    // Overlapping the buffer: it was unmapped first.
    assert_eq!(
        run((start + 4 * MIB2, start + 8 * MIB2)),
        "1 fault: PUD 1, PMD 1, PTE 2"
    );
    // Below the buffer, in another GiB: no effect either way.
    assert_eq!(
        run((start - 2 * MIB2, start - MIB2)),
        "1 fault: PUD 1, PMD 1, PTE 2"
    );
}

/// A live neighbour in the buffer's GiB keeps the PMD table there: the buffer gets PMDs.
#[test]
fn a_live_neighbour_keeps_its_table() {
    let start = 16 * GIB + 4 * MIB2;
    let end = start + 8 * MIB2;
    let mut o = Observer::default();
    let mut r = fault(
        16 * GIB,
        16 * GIB + MIB2,
        16 * GIB,
        level::PTE,
        0,
        &[level::PTE],
    );
    r.mapping.pfn_missing = 1 << level::PTE;
    observe(&mut o, &r);
    for a in (start..end).step_by(MIB2 as usize) {
        observe(
            &mut o,
            &fault(start, end, a, level::PMD, 0x100000, &[level::PMD]),
        );
    }
    assert_eq!(
        o.compute()[&key(start, end)]
            .module_helper
            .as_ref()
            .unwrap()
            .describe(),
        "1 fault: PUD 0, PMD 8, PTE 0"
    );
}
