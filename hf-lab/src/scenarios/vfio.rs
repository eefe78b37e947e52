//! vfio-pci: BAR 2 of an emulated PCI device (a 2 GiB ivshmem BAR, 2 GiB-aligned in guest
//! physical memory) mapped through VFIO's type1 container behind the emulated IOMMU, as a
//! VMM maps a passed-through GPU's BAR.
//!
//! From Debian's sources of each lab kernel (`drivers/vfio/pci/vfio_pci_core.c`):
//! - 6.12 and 7.2: `vfio_pci_mmap_huge_fault(vmf, order)` aligns the fault address down to
//!   the order, answers VM_FAULT_FALLBACK unless that block lies inside the VMA and its pfn
//!   is aligned to the order, else inserts with `vmf_insert_pfn{,_pmd,_pud}` (7.2 through
//!   its exported `vfio_pci_vmf_insert_pfn`). Its PTE `fault` handler,
//!   `vfio_pci_mmap_page_fault`, tail-calls it with order 0 (a jump, not inlined: the
//!   handler's probe sees that call), and there is no `map_pages`, so each PTE fault's
//!   first call, under the per-VMA lock, returns RETRY before it.
//! - 6.1: no `huge_fault`; `vfio_pci_mmap_fault` maps the whole VMA with
//!   `io_remap_pfn_range` at its first fault.
//!
//! The workload owns the whole 1 GiB block around each mapping, so every fault that finds
//! the block's PUD slot empty asks for a PUD.

use crate::check::*;
use crate::scenarios::{Scenario, THP};

const HUGE_FAULT_SINCE: &str =
    "vfio-pci has a huge_fault handler from 6.12 (before, see vfio-remap-6.1)";

/// Both lab kernels (Debian's 6.12 and 7.2) ask a PFNMAP VMA's huge_fault whatever the THP
/// setting and MADV_HUGEPAGE: 4 MiB at BAR offset 0 and a 1 GiB boundary make two PMDs,
/// the first fault asking for the PUD first.
const THP_IGNORED: &[Check] = &[
    truth("touches", 1024),
    truth("minflt", 2),
    tool("faults", 2),
    sized("entries.pmd", 2),
    sized("entries.pte", 0),
    sized_s("chains.0.chain", "PMD:OK"),
    sized_s("chains.1.chain", "PUD:FALLBACK PMD:OK"),
    sized("fallback_reasons.pud.vma-range", 1),
];

/// What the scenarios of vfio-pci's huge_fault handler (6.12+) share.
const HUGE: Scenario = Scenario {
    name: "",
    kind: "vfio-pci",
    needs: Needs::Kernel(6, 12, HUGE_FAULT_SINCE),
    todo: None,
    counted_by: Some(SecondCount::Vfio),
    predicts: None,
    sysfs: &[],
    mount: None,
    workload: &[],
    checks: &[],
};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "vfio-pud",
        // 1 GiB of the BAR at its start, at a 1 GiB boundary, MADV_HUGEPAGE: one PUD. The
        // workload stays 1.5 s after its touches, so that `--aggregate`, which names VMAs
        // when it sweeps the kernel's counts (every second), finds it alive too.
        workload: &[
            "vfio",
            "--size",
            "1G",
            "--align",
            "1G",
            "--thp",
            "always",
            "--hold-ms",
            "1500",
        ],
        checks: &[
            truth("touches", 262_144),
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 1),
            sized("entries.pmd", 0),
            sized("entries.pte", 0),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PUD:OK"),
            sized("fallback_faults", 0),
            sized("retried_faults", 0),
            // The VMA is named as /proc/PID/maps names it.
            tool_s("path", "anon_inode:[vfio-device]"),
            tool_s("kind", "pfnmap"),
        ],
        ..HUGE
    },
    Scenario {
        name: "vfio-pmd-in-gib",
        // 8 MiB, 2 MiB into a 1 GiB block, at BAR offset 2 MiB (virtual ≡ physical modulo
        // 1 GiB): the first fault asks for the PUD, which does not fit the VMA, then maps a
        // PMD; the other three find the PMD table and map a PMD each.
        workload: &[
            "vfio",
            "--size",
            "8M",
            "--align",
            "1G",
            "--offset",
            "2M",
            "--bo-offset",
            "2M",
            "--thp",
            "always",
        ],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            sized("entries.pud", 0),
            sized("entries.pmd", 4),
            sized("entries.pte", 0),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
            sized("chains.0.count", 3),
            sized_s("chains.1.chain", "PUD:FALLBACK PMD:OK"),
            sized("chains.1.count", 1),
            sized("fallback_faults", 1),
            sized("fallback_steps", 1),
            sized("retried_faults", 0),
            sized("fallback_reasons.pud.vma-range", 1),
            sized("fallback_reasons.not_asked", 0),
        ],
        ..HUGE
    },
    Scenario {
        name: "vfio-misaligned",
        // 4 MiB at a 1 GiB boundary of the address space but 64 KiB into the BAR: no
        // PMD's pfn is aligned, every page is a PTE fault. The first fault of each 2 MiB
        // asks for a PMD in both calls (the first under the per-VMA lock, which returns
        // RETRY before the PTE handler), the very first for a PUD too; every fault retries
        // once.
        workload: &[
            "vfio",
            "--size",
            "4M",
            "--align",
            "1G",
            "--bo-offset",
            "64K",
            "--thp",
            "always",
        ],
        checks: &[
            truth("touches", 1024),
            truth("minflt", 1024),
            tool("faults", 1024),
            sized("entries.pud", 0),
            sized("entries.pmd", 0),
            sized("entries.pte", 1024),
            sized("bytes_mapped", 4 << 20),
            sized_s("chains.0.chain", "RETRY PTE:OK"),
            sized("chains.0.count", 1022),
            sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
            sized("chains.1.count", 1),
            sized_s(
                "chains.2.chain",
                "PUD:FALLBACK PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK",
            ),
            sized("fallback_faults", 2),
            sized("fallback_steps", 5),
            sized("retried_faults", 1024),
            // Reasons: the PMD's pfn is 64 KiB off (the 1022 faults not asked, their PMD
            // table being there, count under the same reason), the PUD does not fit.
            sized("fallback_reasons.pmd.pfn-misaligned", 1024),
            sized("fallback_reasons.pud.vma-range", 1),
            sized("fallback_reasons.not_asked", 1022),
            sized("fallback_reasons.pfn_offset.bytes", 2_031_616),
        ],
        ..HUGE
    },
    Scenario {
        name: "vfio-thp-madvise",
        // The lab's THP setting (`madvise`) and no MADV_HUGEPAGE (vfio-pci sets no
        // VM_HUGEPAGE): huge entries all the same.
        workload: &["vfio", "--size", "4M", "--align", "1G"],
        checks: THP_IGNORED,
        ..HUGE
    },
    Scenario {
        name: "vfio-thp-never",
        sysfs: &[(THP, "never")],
        // THP `never`, with MADV_HUGEPAGE: huge entries all the same.
        workload: &["vfio", "--size", "4M", "--align", "1G", "--thp", "always"],
        checks: THP_IGNORED,
        ..HUGE
    },
    Scenario {
        name: "vfio-remap-6.1",
        kind: "vfio-pci",
        needs: Needs::Below(6, 12, "from 6.12 vfio-pci maps at each fault (vfio-pud)"),
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // 1 GiB of the BAR: the first fault remaps all of it, 262,144 PTEs; the workload
        // touches every page and only the first faults.
        workload: &["vfio", "--size", "1G", "--align", "1G"],
        checks: &[
            truth("touches", 262_144),
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pte", 262_144),
            sized("entries.pmd", 0),
            sized("entries.pud", 0),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PTE:OK"),
            sized("retried_faults", 0),
            // The kernel never asks a PFNMAP VMA for a huge entry here; the what-if: a range
            // insert from this fault handler would have made 512 PMDs.
            sized("fallback_reasons.pmd.kernel-policy", 1),
            sized("what_if.core_helper.faults", 1),
            sized("what_if.core_helper.pmd", 512),
            sized("what_if.core_helper.pte", 0),
            // The kernel's own count: one fault handler call, one remap.
            vmstat("event:kprobe:vfio_pci_mmap_fault", 1),
            vmstat("event:kprobe:remap_pfn_range", 1),
        ],
    },
];
