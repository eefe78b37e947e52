//! The reason rules on hand-made faults.

use huge_fault_common::{AggKey, kabi::VM_FAULT_FALLBACK, level, rflags, source, step};

use super::*;
use crate::{analysis::Analyzer, vma::NoResolver};

const G: u64 = 0x7f00_4000_0000;
const M2: u64 = 2 << 20;

/// A completed fault at `va` of a VMA: a PMD FALLBACK step first when `asked`, then a
/// PTE the driver inserted with `pfn`.
fn fault(va: u64, vma: (u64, u64, u64, u64, u64), asked: bool, pfn: u64) -> FaultRecord {
    let mut r = FaultRecord {
        source: source::KRETPROBE,
        tgid: 7,
        tid: 7,
        address: va,
        vma_start: vma.0,
        vma_end: vma.1,
        vma_flags: vma.2,
        vma_pgoff: vma.3,
        inode: vma.4,
        flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
        ..Default::default()
    };
    if asked {
        r.mapping.push_step(step(level::PMD, VM_FAULT_FALLBACK));
    }
    r.mapping.push_step(step(level::PTE, 0x100));
    r.mapping.note_entry(level::PTE, va, pfn);
    r
}

fn touch(a: &mut Analyzer, vma: (u64, u64, u64, u64, u64), pfn0: u64, asks: bool) {
    let mut asked_blocks = HashSet::new();
    for va in (vma.0..vma.1).step_by(4096) {
        let asked = asks && asked_blocks.insert(va & !(M2 - 1));
        let pfn = pfn0 + ((va - vma.0) >> 12);
        a.ingest(&fault(va, vma, asked, pfn), &mut NoResolver);
    }
}

fn reasons(a: &Analyzer) -> Vec<(&'static str, &'static str, u64)> {
    a.totals
        .reasons
        .iter()
        .map(|((l, r), n)| (l.name(), r.name(), *n))
        .collect()
}

#[test]
fn a_misaligned_device_buffer_is_out_of_range_at_its_ends_and_pfn_misaligned_inside() {
    // 8 MiB 64 KiB past a 1 GiB boundary, physically at one: drv-misaligned-2m.
    let vma = (
        G + (64 << 10),
        G + (8 << 20) + (64 << 10),
        kabi::VM_PFNMAP,
        0,
        5,
    );
    let mut a = Analyzer::new(16);
    a.reasons = Context::new("6.12.117+deb12-amd64");
    touch(&mut a, vma, 0x10_0000, true);
    assert_eq!(
        reasons(&a),
        [("PMD", "vma-range", 512), ("PMD", "pfn-misaligned", 1536)]
    );
    assert_eq!(a.totals.not_asked, 2048 - 5);
    assert_eq!(a.totals.pfn_offset, Some((Level::Pmd, 64 << 10)));
    let top = a.totals.top_reason().unwrap();
    assert_eq!((top.1, top.2, top.3), (Reason::PfnMisaligned, 1536, 2048));
}

#[test]
fn an_aligned_driver_that_refuses_is_the_driver_then_populated_and_never_asked_on_6_1() {
    let vma = (G, G + (8 << 20), kabi::VM_PFNMAP, 0, 5);
    let mut a = Analyzer::new(16);
    a.reasons = Context::new("6.12.117+deb12-amd64");
    touch(&mut a, vma, 0x10_0000, true);
    assert_eq!(
        reasons(&a),
        [("PMD", "populated", 2044), ("PMD", "driver", 4)]
    );
    let mut old = Analyzer::new(16);
    old.reasons = Context::new("6.1.0-57-amd64");
    touch(&mut old, vma, 0x10_0000, false);
    assert_eq!(reasons(&old), [("PMD", "kernel-policy", 2048)]);
    // Without the kernel's release the policy is not assumed.
    let mut unknown = Analyzer::new(16);
    touch(&mut unknown, vma, 0x10_0000, false);
    assert_eq!(
        reasons(&unknown),
        [("PMD", "populated", 2044), ("PMD", "unknown", 4)]
    );
}

#[test]
fn an_aligned_pfnmap_that_never_asks_a_handler_on_6_12_has_no_huge_fault() {
    // GEM shmem on 6.12 (vgem with PMD-size folios): PTEs only, pfns aligned, no handler
    // asked: the first fault of each block has no huge_fault, the others find it populated.
    let vma = (G, G + (4 << 20), kabi::VM_PFNMAP, 0, 5);
    let mut a = Analyzer::new(16);
    a.reasons = Context::new("6.12.118+deb12-amd64");
    touch(&mut a, vma, 0x10_0000, false);
    assert_eq!(
        reasons(&a),
        [("PMD", "populated", 1022), ("PMD", "no-huge-fault", 2)]
    );
    // A fault that asked a handler (its order-0 call on 7.x) is not that.
    let mut asked = Analyzer::new(16);
    asked.reasons = Context::new("7.2.13+deb14-amd64");
    let mut r = fault(G, vma, false, 0x10_0000);
    r.mapping.handler = 1;
    asked.ingest(&r, &mut NoResolver);
    assert_eq!(reasons(&asked), [("PMD", "unknown", 1)]);
}

#[test]
fn file_offsets_thp_advice_and_what_no_rule_explains() {
    // A DAX file (VM_HUGEPAGE) mapped at an aligned address from a 64 KiB offset, its
    // inserts without pfns (folio inserts): the offset is the reason.
    let dax = (G, G + (4 << 20), kabi::VM_SHARED | kabi::VM_HUGEPAGE, 16, 9);
    let mut c = Context::default();
    let r = fault(G + 4096, dax, true, NO_PFN);
    let m = crate::analysis::mapped(&r);
    let view = |v: (u64, u64, u64, u64, u64)| VmaView {
        start: v.0,
        end: v.1,
        flags: v.2,
        pgoff: v.3,
        inode: v.4,
    };
    assert_eq!(
        c.explain(&r, &m, &view(dax))[0].reason,
        Reason::PgoffMisaligned
    );
    // Anonymous memory that fell back: MADV_NOHUGEPAGE, else unknown (no cause told);
    // never asked: MADV_NOHUGEPAGE says why without the settings, else not counted.
    let anon = (G, G + (4 << 20), kabi::VM_NOHUGEPAGE, G >> 12, 0);
    let r = fault(G, anon, true, NO_PFN);
    let m = crate::analysis::mapped(&r);
    assert_eq!(
        c.explain(&r, &m, &view(anon))[0].reason,
        Reason::ThpDisabled
    );
    let r = fault(G + 4096, anon, false, NO_PFN);
    let m = crate::analysis::mapped(&r);
    let f = c.explain(&r, &m, &view(anon));
    assert_eq!((f[0].reason, f[0].asked), (Reason::ThpDisabled, false));
    let anon = (G, G + (4 << 20), 0, G >> 12, 0);
    let r = fault(G + M2, anon, true, NO_PFN);
    let m = crate::analysis::mapped(&r);
    assert_eq!(c.explain(&r, &m, &view(anon))[0].reason, Reason::Unknown);
    let r = fault(G + 4096, anon, false, NO_PFN);
    let m = crate::analysis::mapped(&r);
    assert!(c.explain(&r, &m, &view(anon)).is_empty());
}

/// Anonymous faults the kernel never asked for a PMD: the THP settings the closing
/// program read say why (thp-never, madvise without the advice, PR_SET_THP_DISABLE);
/// with THP allowed they are populated or unknown, and without the settings (an older
/// recording, tracepoint mode) they get no reason at all.
#[test]
fn anonymous_pmds_never_asked_are_explained_by_the_thp_settings() {
    let view = |flags| VmaView {
        start: G,
        end: G + (4 << 20),
        flags,
        pgoff: G >> 12,
        inode: 0,
    };
    let explain = |flags, byte: u8, va: u64| {
        let mut c = Context::new("6.12.1");
        let mut r = fault(va, (G, G + (4 << 20), flags, G >> 12, 0), false, NO_PFN);
        r.mapping.thp = byte;
        let m = crate::analysis::mapped(&r);
        c.explain(&r, &m, &view(flags))
            .first()
            .map(|f| (f.level, f.reason, f.asked))
    };
    let v = thp::VALID;
    let off = Some((Level::Pmd, Reason::ThpDisabled, false));
    assert_eq!(explain(0, v | thp::NEVER, G), off);
    assert_eq!(explain(kabi::VM_HUGEPAGE, v | thp::NEVER, G), off);
    assert_eq!(explain(0, v | thp::MADVISE, G), off);
    assert_eq!(explain(0, v | thp::ALWAYS | thp::PROCESS_OFF, G), off);
    assert_eq!(
        explain(0, v | thp::ALWAYS | thp::PROCESS_OFF_EXCEPT_ADVISED, G),
        off
    );
    assert_eq!(
        explain(
            kabi::VM_HUGEPAGE,
            v | thp::MADVISE | thp::PROCESS_OFF_EXCEPT_ADVISED,
            G
        ),
        Some((Level::Pmd, Reason::Unknown, false)),
        "advised, so allowed: the kernel should have asked"
    );
    assert_eq!(
        explain(0, v | thp::ALWAYS, G),
        Some((Level::Pmd, Reason::Unknown, false))
    );
    assert_eq!(explain(0, 0, G), None, "no settings: no reason");
    // A VMA smaller than a PMD is not made for one.
    let mut c = Context::new("6.12.1");
    let small = (G, G + (1 << 20), 0, G >> 12, 0);
    let mut r = fault(G, small, false, NO_PFN);
    r.mapping.thp = v | thp::NEVER;
    let m = crate::analysis::mapped(&r);
    let sv = VmaView {
        start: small.0,
        end: small.1,
        flags: 0,
        pgoff: small.3,
        inode: 0,
    };
    assert!(c.explain(&r, &m, &sv).is_empty());
    // A 2 MiB VMA 64 KiB past a boundary: out of range comes first.
    let mis = (G + (64 << 10), G + (64 << 10) + M2, 0, 0, 0);
    let mut r = fault(G + (64 << 10), mis, false, NO_PFN);
    r.mapping.thp = v | thp::NEVER;
    let m = crate::analysis::mapped(&r);
    let mv = VmaView {
        start: mis.0,
        end: mis.1,
        flags: 0,
        pgoff: (G + (64 << 10)) >> 12,
        inode: 0,
    };
    assert_eq!(c.explain(&r, &m, &mv)[0].reason, Reason::VmaRange);
}

/// With THP allowed, a block an earlier fault filled with PTEs is populated; with it
/// off, every fault of the block says so, whatever the table holds.
#[test]
fn anonymous_thp_off_comes_before_populated() {
    let vma = (G, G + (4 << 20), 0, G >> 12, 0);
    let view = VmaView {
        start: vma.0,
        end: vma.1,
        flags: 0,
        pgoff: vma.3,
        inode: 0,
    };
    for (byte, want) in [
        (
            thp::VALID | thp::ALWAYS,
            [Reason::Unknown, Reason::Populated],
        ),
        (
            thp::VALID | thp::NEVER,
            [Reason::ThpDisabled, Reason::ThpDisabled],
        ),
    ] {
        let mut c = Context::new("6.12.1");
        for (va, w) in [(G, want[0]), (G + 4096, want[1])] {
            let mut r = fault(va, vma, false, NO_PFN);
            r.mapping.thp = byte;
            let m = crate::analysis::mapped(&r);
            assert_eq!(c.explain(&r, &m, &view)[0].reason, w, "{byte:#x} {va:#x}");
        }
    }
}

#[test]
fn a_range_insert_populates_every_block_it_covers() {
    let vma = (G, G + (8 << 20), kabi::VM_PFNMAP, 0, 5);
    let mut c = Context::new("6.12.1");
    let mut r = fault(G + (3 << 20), vma, false, 0x10_0300);
    // One call mapped PTEs from 3 MiB to 4 MiB + 4 KiB (two PMD blocks).
    r.mapping
        .note_entry(level::PTE, G + (4 << 20) + 4096, 0x10_0401);
    let m = crate::analysis::mapped(&r);
    let view = VmaView {
        start: vma.0,
        end: vma.1,
        flags: vma.2,
        pgoff: vma.3,
        inode: vma.4,
    };
    assert_eq!(c.explain(&r, &m, &view)[0].reason, Reason::NoHugeFault);
    for (va, want) in [
        (G + (3 << 20) + 4096, Reason::Populated),
        (G + (4 << 20) + 8192, Reason::Populated),
        (G + (7 << 20), Reason::NoHugeFault),
    ] {
        let r = fault(va, vma, false, 0x10_0000 + ((va - G) >> 12));
        let m = crate::analysis::mapped(&r);
        assert_eq!(c.explain(&r, &m, &view)[0].reason, want, "{va:#x}");
    }
}

#[test]
fn classes_counted_in_the_kernel_are_unattributed() {
    let mut a = Analyzer::new(16);
    let mut k = AggKey {
        vma_start: G,
        vma_end: G + (8 << 20),
        vma_flags: kabi::VM_PFNMAP,
        source: source::KRETPROBE,
        flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
        ..Default::default()
    };
    k.chain[0] = step(level::PMD, VM_FAULT_FALLBACK);
    k.chain[1] = step(level::PTE, 0x100);
    k.chain_len = 2;
    k.entries[1] = 1;
    a.ingest_aggregate(&k, 5, &mut NoResolver);
    assert_eq!((a.totals.unattributed, a.totals.reasons.len()), (5, 0));
}

#[test]
fn releases_give_their_version_and_reasons_their_names() {
    assert_eq!(kernel_version("6.12.117+deb12-amd64"), Some((6, 12)));
    assert_eq!(kernel_version("7.2.0-rc1"), Some((7, 2)));
    assert_eq!(kernel_version(""), None);
    for r in Reason::ALL {
        assert_eq!(Reason::from_name(r.name()), Some(r));
    }
}

/// An anonymous THP attempt that fell back, with the cause the kernel side told: the
/// charge wins over the allocation, and a fallback whose cause was not told (no memory
/// cgroup offsets) is unknown on an aligned block.
#[test]
fn anonymous_fallbacks_tell_charge_and_allocation_failures() {
    let vma = (G, G + (4 << 20), kabi::VM_HUGEPAGE, G >> 12, 0);
    let view = VmaView {
        start: vma.0,
        end: vma.1,
        flags: vma.2,
        pgoff: vma.3,
        inode: 0,
    };
    for (cause, want) in [
        (thp::CHARGE_FAILED | thp::ALLOC_FAILED, Reason::ChargeFailed),
        (thp::CHARGE_FAILED, Reason::ChargeFailed),
        (thp::ALLOC_FAILED, Reason::AllocFailed),
        (0, Reason::Unknown),
    ] {
        let mut c = Context::new("6.12.1");
        let mut r = fault(G, vma, true, NO_PFN);
        r.mapping.thp = thp::VALID | thp::ALWAYS | cause;
        let m = crate::analysis::mapped(&r);
        let f = c.explain(&r, &m, &view)[0];
        assert_eq!((f.reason, f.asked), (want, true), "{cause:#x}");
    }
    // MADV_NOHUGEPAGE still comes first, and the names parse back.
    assert_eq!(
        Reason::from_name("charge-failed"),
        Some(Reason::ChargeFailed)
    );
    assert_eq!(Reason::from_name("alloc-failed"), Some(Reason::AllocFailed));
}
