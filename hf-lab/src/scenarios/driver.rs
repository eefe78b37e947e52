//! The GPU-like lab driver (lab-driver/hfgpu) on aligned buffer objects, level by level and with the range insert.

use crate::check::*;
use crate::scenarios::{
    GIB_2M_8K, GIB_2M_8K_PAGES, MID_OFFSET, MID_SIZE, NO_PFNMAP_HUGE_FAULT_BEFORE, Scenario,
};

pub const SCENARIOS: &[Scenario] = &[
    // The GPU-like driver (lab-driver/hfgpu): a 4 GiB BAR at a 4 GiB-aligned physical
    // address, mapped VM_PFNMAP. 6.12 and later call its huge_fault handler level by level;
    // 6.1's hugepage_vma_check refuses VM_SPECIAL VMAs, so there only the PTE fault handler
    // runs and every level-by-level policy ends in PTEs.
    Scenario {
        name: "drv-pud-aligned",
        kind: "GPU driver",
        needs: Needs::Kernel(6, 12, NO_PFNMAP_HUGE_FAULT_BEFORE),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-range-aligned"),
        sysfs: &[],
        mount: None,
        // 1 GiB + 2 MiB + 8 KiB placed by the driver at a 1 GiB boundary: one PUD, one PMD,
        // two PTEs, each a fault of its own.
        workload: &["gpu", "--size", GIB_2M_8K, "--policy", "pud"],
        checks: &[
            truth("minflt", 4),
            tool("faults", 4),
            tool("writes", 4),
            sized("entries.pud", 1),
            sized("entries.pmd", 1),
            sized("entries.pte", 2),
            sized("bytes_mapped", (1 << 30) + (2 << 20) + (8 << 10)),
            // Which chain the fault at the second 1 GiB gets is not checked. 6.12+ asks
            // huge_fault for a PUD wherever the PUD slot is empty, fit or not; but the
            // driver places this mapping next to others, whose page tables may already
            // fill that slot (`PMD:OK`) or not (`PUD:FALLBACK PMD:OK`), run to run. The
            // drv-mid-gib-* workload owns its whole 1 GiB neighbourhood and checks it.
        ],
    },
    Scenario {
        name: "drv-pud-aligned-6.1",
        kind: "GPU driver",
        needs: Needs::Below(6, 12, "the kernel calls huge_fault for PFNMAP VMAs"),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-range-aligned-6.1"),
        sysfs: &[],
        mount: None,
        // The same mapping on 6.1: huge_fault is never called, every page is a PTE fault.
        workload: &["gpu", "--size", GIB_2M_8K, "--policy", "pud"],
        checks: &[
            truth("minflt", GIB_2M_8K_PAGES),
            tool("faults", GIB_2M_8K_PAGES),
            sized("entries.pud", 0),
            sized("entries.pmd", 0),
            sized("entries.pte", GIB_2M_8K_PAGES),
            sized_s("chains.0.chain", "PTE:OK"),
            sized("chains.0.count", GIB_2M_8K_PAGES),
        ],
    },
    Scenario {
        name: "drv-pmd-only-aligned",
        kind: "GPU driver",
        needs: Needs::Kernel(6, 12, NO_PFNMAP_HUGE_FAULT_BEFORE),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-range-aligned"),
        sysfs: &[],
        mount: None,
        // FALLBACK at PUD, then PMDs: 513 PMD faults, 2 PTE faults.
        workload: &["gpu", "--size", GIB_2M_8K, "--policy", "pmd-only"],
        checks: &[
            truth("minflt", 515),
            tool("faults", 515),
            sized("entries.pud", 0),
            sized("entries.pmd", 513),
            sized("entries.pte", 2),
            // Not checked, as in drv-pud-aligned: whether the second 1 GiB's PUD slot is
            // still empty at its first fault (neighbouring mappings' page tables), so
            // `PMD:OK` counts 511 or 512 and `fallback_faults` 2 or 3.
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "drv-pte-only-aligned",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // 8 MiB at a 1 GiB boundary (congruent with its BAR address): FALLBACK at PMD in
        // each 2 MiB on 6.12+, then 4 KiB entries only.
        workload: &[
            "gpu", "--size", "8M", "--align", "1G", "--policy", "pte-only",
        ],
        checks: &[
            truth("minflt", 2048),
            tool("faults", 2048),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            sized("bytes_mapped", 8 << 20),
            // 6.12+: every fault's first call, under the per-VMA lock, returns RETRY before
            // the PTE fault handler (no `map_pages`); the first fault of each 2 MiB range
            // asks for a PMD in both calls, the very first for a PUD too (the PMD table is
            // allocated in its first call, so the second asks no PUD).
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            since(sized_s("chains.0.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.0.count", 2044), 6, 12),
            since(
                sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
                6,
                12,
            ),
            since(sized("chains.1.count", 3), 6, 12),
            since(
                sized_s(
                    "chains.2.chain",
                    "PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK",
                ),
                6,
                12,
            ),
            since(sized("fallback_faults", 4), 6, 12),
            since(sized("fallback_steps", 9), 6, 12),
            since(sized("retried_faults", 2048), 6, 12),
            before(sized("fallback_faults", 0), 6, 12),
            // Reasons: the driver refused the four aligned PMDs, whose PTEs then populate
            // each block (the other 2044 faults are not asked); the PUD does not fit in
            // 8 MiB. 6.1 never asks a PFNMAP VMA.
            since(sized("fallback_reasons.pmd.driver", 4), 6, 12),
            since(sized("fallback_reasons.pmd.populated", 2044), 6, 12),
            since(sized("fallback_reasons.pud.vma-range", 1), 6, 12),
            since(sized("fallback_reasons.not_asked", 2044), 6, 12),
            before(sized("fallback_reasons.pmd.kernel-policy", 2048), 6, 12),
            before(sized("fallback_reasons.not_asked", 2048), 6, 12),
            // What-if, by hand: one fault either way. On 6.12+ the kernel asks this VMA for
            // a PUD first, where a module's helper has no PMD table: 512 PTEs make it, then
            // 3 PMDs; a core-mm helper allocates it: 4 PMDs. On 6.1 the PTE handler runs
            // with the PMD table allocated: 4 PMDs for both.
            sized("what_if.module_helper.faults", 1),
            since(sized("what_if.module_helper.pmd", 3), 6, 12),
            since(sized("what_if.module_helper.pte", 512), 6, 12),
            before(sized("what_if.module_helper.pmd", 4), 6, 12),
            before(sized("what_if.module_helper.pte", 0), 6, 12),
            sized("what_if.core_helper.faults", 1),
            sized("what_if.core_helper.pmd", 4),
            sized("what_if.core_helper.pte", 0),
        ],
    },
    Scenario {
        name: "drv-range-aligned",
        kind: "GPU driver",
        needs: Needs::Kernel(6, 12, NO_PFNMAP_HUGE_FAULT_BEFORE),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // One fault: huge_fault(PUD) hands the whole buffer object to the range insert,
        // which maps the PUD, the PMD (second pass, once the tail PTEs made its table) and
        // two PTEs.
        workload: &["gpu", "--size", GIB_2M_8K, "--policy", "range"],
        checks: &[
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 1),
            sized("entries.pmd", 1),
            sized("entries.pte", 2),
            sized("bytes_mapped", (1 << 30) + (2 << 20) + (8 << 10)),
            sized_s("chains.0.chain", "PUD:RANGE"),
        ],
    },
    Scenario {
        name: "drv-range-aligned-6.1",
        kind: "GPU driver",
        needs: Needs::Below(6, 12, "the kernel calls huge_fault for PFNMAP VMAs"),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // On 6.1 the range insert runs from the PTE fault handler, as TTM's huge faults did
        // before 5.16. The core VM has allocated the PMD table of the first 1 GiB by then,
        // so no PUD can go there: 513 PMDs and 2 PTEs, still one fault.
        workload: &["gpu", "--size", GIB_2M_8K, "--policy", "range"],
        checks: &[
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 0),
            sized("entries.pmd", 513),
            sized("entries.pte", 2),
            sized("bytes_mapped", (1 << 30) + (2 << 20) + (8 << 10)),
            sized_s("chains.0.chain", "PTE:RANGE"),
        ],
    },
    Scenario {
        name: "drv-remap-6.1",
        kind: "GPU driver",
        needs: Needs::Below(
            6,
            3,
            "remap_pfn_range sets the VMA's flags under its write lock from 6.3: no fault handler calls it",
        ),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // The whole 1 GiB buffer object remapped by the PTE fault handler at its first
        // fault, as vfio-pci did with a BAR before 6.12: one fault, 262,144 PTEs. The
        // workload touches every page and only the first faults: every PTE was there after
        // it (pagemap and smaps cannot count them: the kernel's page walk skips PFNMAP
        // VMAs).
        workload: &["gpu", "--size", "1G", "--policy", "remap"],
        checks: &[
            truth("touches", 262_144),
            truth("minflt", 1),
            truth("drv_fault_calls", 1),
            tool("faults", 1),
            sized("entries.pte", 262_144),
            sized("entries.pmd", 0),
            sized("entries.pud", 0),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PTE:OK"),
        ],
    },
    Scenario {
        name: "drv-mid-gib-pud",
        kind: "GPU driver",
        needs: Needs::Kernel(6, 12, NO_PFNMAP_HUGE_FAULT_BEFORE),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-mid-gib-range"),
        sysfs: &[],
        mount: None,
        // Virtual ≡ physical modulo 1 GiB, starting 2 MiB + 64 KiB before a 1 GiB boundary
        // and ending 2 MiB + 64 KiB after the next: level by level that is 16 PTE faults,
        // a PMD, a PUD, a PMD and 16 PTE faults.
        workload: &[
            "gpu",
            "--size",
            MID_SIZE,
            "--bo-offset",
            MID_OFFSET,
            "--align",
            "1G",
            "--offset",
            MID_OFFSET,
            "--policy",
            "pud",
        ],
        checks: &[
            truth("minflt", 35),
            tool("faults", 35),
            sized("entries.pud", 1),
            sized("entries.pmd", 2),
            sized("entries.pte", 32),
            sized("bytes_mapped", (1 << 30) + (4 << 20) + (128 << 10)),
            // The workload owns the 1 GiB blocks around the buffer, so every empty PUD slot
            // is asked for. Each edge's first fault asks for a PMD in both of its calls (the
            // first, under the per-VMA lock, returns RETRY before the PTE handler), the
            // lower edge's for a PUD too in its first call; the third GiB's fault falls back
            // from PUD to PMD; the PTE faults retry once each.
            sized("fallback_faults", 3),
            sized("fallback_steps", 6),
            sized("retried_faults", 32),
            sized_s("chains.0.chain", "RETRY PTE:OK"),
            sized("chains.0.count", 30),
            sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
            sized_s("chains.2.chain", "PMD:OK"),
            sized_s(
                "chains.3.chain",
                "PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK",
            ),
            sized_s("chains.4.chain", "PUD:FALLBACK PMD:OK"),
            sized_s("chains.5.chain", "PUD:OK"),
        ],
    },
    Scenario {
        name: "drv-mid-gib-range",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // The same buffer object with the range insert: one fault from the PTE handler
        // (the first page is far from any huge boundary), huge entries in the middle and
        // PTEs at the edges, on every kernel.
        workload: &[
            "gpu",
            "--size",
            MID_SIZE,
            "--bo-offset",
            MID_OFFSET,
            "--align",
            "1G",
            "--offset",
            MID_OFFSET,
            "--policy",
            "range",
        ],
        checks: &[
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 1),
            sized("entries.pmd", 2),
            sized("entries.pte", 32),
            sized("bytes_mapped", (1 << 30) + (4 << 20) + (128 << 10)),
            // 6.12+ asks huge_fault for a PUD at the first fault even though that 1 GiB
            // is not inside the VMA (in a fault the handler checks the fit): the range
            // insert answers there. 6.1 only calls the PTE fault handler.
            since(sized_s("chains.0.chain", "PUD:RANGE"), 6, 12),
            before(sized_s("chains.0.chain", "PTE:RANGE"), 6, 12),
        ],
    },
];
