//! DRM drivers' own buffer mappings: dumb buffers (`DRM_IOCTL_MODE_CREATE_DUMB`,
//! `DRM_IOCTL_MODE_MAP_DUMB`, `mmap` of the card) of TTM drivers and of the GEM shmem
//! helpers, written once per 4 KiB page. The workload stays 1.5 s after its touches so
//! that `--aggregate`, which names VMAs when it sweeps (every second), finds it alive.
//!
//! From Debian's sources of each lab kernel:
//! - TTM (`drivers/gpu/drm/ttm/ttm_bo_vm.c`, every kernel): `ttm_bo_vm_fault_reserved`
//!   inserts up to `TTM_BO_VM_NUM_PREFAULT` (16) PTEs per fault with
//!   `vmf_insert_pfn_prot`, from the faulting page on, stopping at the buffer's end. A PTE
//!   already present is re-inserted (nothing changes, the answer is still NOPAGE): touched
//!   last to first, every fault maps one new PTE and re-inserts up to 15. bochs uses TTM
//!   through the VRAM helpers up to 6.12, qxl on every kernel. No `huge_fault` since 5.16;
//!   no `map_pages`, so on 6.12+ every fault's first call, under the per-VMA lock, returns
//!   RETRY before the handler.
//! - GEM shmem (`drivers/gpu/drm/drm_gem_shmem_helper.c`; vgem, and bochs since 6.13):
//!   6.1 and 6.12 map one PTE per fault (`drm_gem_shmem_fault`, `vmf_insert_pfn`). 7.2's
//!   `drm_gem_shmem_any_fault` is the `huge_fault` handler and the PTE handler's body
//!   (order 0): a PMD with `vmf_insert_pfn_pmd` when the page is part of a PMD-size folio
//!   at a PMD-aligned address, else FALLBACK. Its PTEs are read-only at first
//!   (`drm_gem_shmem_pfn_mkwrite` tracks dirty pages), so a write makes two faults per page:
//!   the insert, then the write-protect fault (`PTE:PRESENT`, nothing inserted). The shmem
//!   object gets PMD-size folios when `shmem_enabled` allows huge pages for it.

use crate::check::*;
use crate::scenarios::Scenario;

/// The VMA is named as /proc/PID/maps names it: the card the workload opened.
const PATH_IS_CARD: Check = Check {
    needs_return: false,
    ..same("path", Source::Truth("card"))
};
const SHMEM_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
const BOCHS_TTM_UNTIL: &str = "bochs uses the GEM shmem helpers since 6.13 (see drm-bochs-shmem)";
/// The kernels whose GEM shmem helpers have a `huge_fault` handler and `pfn_mkwrite`, as
/// Debian's 7.2 has them (7.0 had the handler, without `pfn_mkwrite`; the lab boots
/// neither 7.0 nor 7.1).
pub const SHMEM_HUGE_SINCE: (u32, u32) = (7, 1);
const TTM_HANDLER: &str = "event:kprobe:ttm_bo_vm_fault_reserved";
const PTE_INSERTS: &str = "event:kprobe:vmf_insert_pfn_prot";
const SHMEM_MKWRITE: &str = "event:kprobe:drm_gem_shmem_pfn_mkwrite";
const SHMEM_FALLBACKS: &str = "event:kretprobe:drm_gem_shmem_any_fault if ret == 2048";

const TTM: Scenario = Scenario {
    name: "",
    kind: "DRM TTM",
    needs: Needs::Always,
    todo: None,
    counted_by: None,
    predicts: None,
    sysfs: &[],
    mount: None,
    workload: &[],
    checks: &[],
};

/// 3 MiB touched first to last: 48 faults of 16 new PTEs each, checked against the kernel's
/// own count of TTM's fault handler and of its PTE inserts.
const TTM_IN_ORDER: &[Check] = &[
    truth("touches", 768),
    truth("minflt", 48),
    tool("faults", 48),
    sized("entries.pte", 768),
    sized("reinserts.pte", 0),
    sized("bytes_mapped", 3 << 20),
    before(sized_s("chains.0.chain", "PTE:OK×16"), 6, 12),
    since(sized_s("chains.0.chain", "RETRY PTE:OK×16"), 6, 12),
    sized("chains.0.count", 48),
    before(sized("retried_faults", 0), 6, 12),
    since(sized("retried_faults", 48), 6, 12),
    sized("fallback_steps", 0),
    same("faults", Source::Vmstat(TTM_HANDLER)),
    same("entries.pte+reinserts.pte", Source::Vmstat(PTE_INSERTS)),
    PATH_IS_CARD,
    tool_s("kind", "pfnmap"),
];

/// 3 MiB touched last to first: every fault maps its own page and re-inserts the (up to
/// 15) present PTEs after it: 768 faults, 768 new PTEs, 12,168 inserts
/// (16 × 753 + 15 + 14 + … + 1), 11,400 of them re-inserts.
const TTM_REVERSE: &[Check] = &[
    truth("touches", 768),
    truth("minflt", 768),
    tool("faults", 768),
    sized("entries.pte", 768),
    sized("reinserts.pte", 11_400),
    sized("bytes_mapped", 3 << 20),
    before(sized_s("chains.0.chain", "PTE:OK PTE:PRESENT×15"), 6, 12),
    since(
        sized_s("chains.0.chain", "RETRY PTE:OK PTE:PRESENT×15"),
        6,
        12,
    ),
    sized("chains.0.count", 753),
    // The last page: nothing after it to prefault.
    before(sized_s("chains.1.chain", "PTE:OK"), 6, 12),
    since(sized_s("chains.1.chain", "RETRY PTE:OK"), 6, 12),
    sized("chains.1.count", 1),
    before(sized("retried_faults", 0), 6, 12),
    since(sized("retried_faults", 768), 6, 12),
    same("faults", Source::Vmstat(TTM_HANDLER)),
    same("entries.pte+reinserts.pte", Source::Vmstat(PTE_INSERTS)),
    PATH_IS_CARD,
];

const HOLD: [&str; 2] = ["--hold-ms", "1500"];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "drm-bochs-ttm",
        needs: Needs::Below(6, 13, BOCHS_TTM_UNTIL),
        workload: &[
            "drm",
            "--driver",
            "bochs-drm",
            "--size",
            "3M",
            HOLD[0],
            HOLD[1],
        ],
        checks: TTM_IN_ORDER,
        ..TTM
    },
    Scenario {
        name: "drm-bochs-ttm-reverse",
        needs: Needs::Below(6, 13, BOCHS_TTM_UNTIL),
        workload: &[
            "drm",
            "--driver",
            "bochs-drm",
            "--size",
            "3M",
            "--reverse",
            HOLD[0],
            HOLD[1],
        ],
        checks: TTM_REVERSE,
        ..TTM
    },
    Scenario {
        name: "drm-qxl-ttm",
        workload: &["drm", "--driver", "qxl", "--size", "3M", HOLD[0], HOLD[1]],
        checks: TTM_IN_ORDER,
        ..TTM
    },
    Scenario {
        name: "drm-qxl-ttm-reverse",
        workload: &[
            "drm",
            "--driver",
            "qxl",
            "--size",
            "3M",
            "--reverse",
            HOLD[0],
            HOLD[1],
        ],
        checks: TTM_REVERSE,
        ..TTM
    },
    Scenario {
        name: "drm-vgem-shmem",
        kind: "DRM GEM shmem",
        // shmem_enabled as the guest boots (never): 4 KiB folios. 4 MiB at a 2 MiB boundary.
        workload: &[
            "drm", "--driver", "vgem", "--size", "4M", "--align", "2M", HOLD[0], HOLD[1],
        ],
        checks: SHMEM_PTE,
        ..TTM
    },
    Scenario {
        name: "drm-bochs-shmem",
        kind: "DRM GEM shmem",
        needs: Needs::Kernel(6, 13, "bochs uses TTM before 6.13 (see drm-bochs-ttm)"),
        workload: &[
            "drm",
            "--driver",
            "bochs-drm",
            "--size",
            "4M",
            "--align",
            "2M",
            HOLD[0],
            HOLD[1],
        ],
        checks: SHMEM_PTE,
        ..TTM
    },
    Scenario {
        name: "drm-vgem-shmem-huge",
        kind: "DRM GEM shmem",
        // shmem_enabled=always: the object's folios are PMD-size. 4 MiB at a 2 MiB
        // boundary: two PMDs where the kernel has the huge fault, PTEs before.
        sysfs: &[(SHMEM_ENABLED, "always")],
        workload: &[
            "drm", "--driver", "vgem", "--size", "4M", "--align", "2M", HOLD[0], HOLD[1],
        ],
        checks: &[
            truth("touches", 1024),
            sh_before(truth("minflt", 1024)),
            sh_since(truth("minflt", 2)),
            sh_before(tool("faults", 1024)),
            sh_since(tool("faults", 2)),
            sh_before(sized("entries.pte", 1024)),
            sh_since(sized("entries.pte", 0)),
            sh_before(sized("entries.pmd", 0)),
            sh_since(sized("entries.pmd", 2)),
            sized("bytes_mapped", 4 << 20),
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            sh_since(sized_s("chains.0.chain", "PMD:OK")),
            sh_since(sized("chains.0.count", 2)),
            sized("fallback_steps", 0),
            // 6.12 has PMD-size folios but no handler to map them: the first fault of each
            // block finds none, the others the PMD table populated.
            between(
                sized("fallback_reasons.pmd.no-huge-fault", 2),
                (6, 12),
                SHMEM_HUGE_SINCE,
            ),
            sh_since(same(
                "entries.pmd",
                Source::Vmstat("event:kprobe:vmf_insert_pfn_pmd"),
            )),
            PATH_IS_CARD,
        ],
        ..TTM
    },
    Scenario {
        name: "drm-vgem-shmem-huge-misaligned",
        kind: "DRM GEM shmem",
        // PMD-size folios, but the mapping starts 1 MiB past a 2 MiB boundary: the one
        // 2 MiB block inside it maps the second half of one folio and the first of the
        // next (pfn misaligned), the edge blocks do not fit the VMA. Each of the three
        // blocks' first fault asks the PMD in both calls and falls back.
        sysfs: &[(SHMEM_ENABLED, "always")],
        workload: &[
            "drm", "--driver", "vgem", "--size", "4M", "--align", "2M", "--offset", "1M", HOLD[0],
            HOLD[1],
        ],
        checks: &[
            truth("touches", 1024),
            sh_before(truth("minflt", 1024)),
            sh_since(truth("minflt", 2048)),
            sh_before(tool("faults", 1024)),
            sh_since(tool("faults", 2048)),
            sized("entries.pte", 1024),
            sized("entries.pmd", 0),
            sized("bytes_mapped", 4 << 20),
            sh_since(sized_s("chains.0.chain", "RETRY PTE:PRESENT")),
            sh_since(sized("chains.0.count", 1024)),
            sh_since(sized_s("chains.1.chain", "RETRY PTE:OK")),
            sh_since(sized("chains.1.count", 1021)),
            sh_since(sized_s(
                "chains.2.chain",
                "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK",
            )),
            sh_since(sized("chains.2.count", 3)),
            sh_before(sized("fallback_steps", 0)),
            sh_since(sized("fallback_steps", 6)),
            sh_since(same("fallback_steps", Source::Vmstat(SHMEM_FALLBACKS))),
            sh_since(same("chains.0.count", Source::Vmstat(SHMEM_MKWRITE))),
            same("entries.pte", Source::Vmstat("event:kprobe:vmf_insert_pfn")),
            // Every kernel: the edge blocks do not fit, the middle one is 1 MiB off its pfn.
            sized("fallback_reasons.pmd.vma-range", 512),
            sized("fallback_reasons.pmd.pfn-misaligned", 512),
            sized("fallback_reasons.pfn_offset.bytes", 1 << 20),
            PATH_IS_CARD,
        ],
        ..TTM
    },
];

const fn sh_since(c: Check) -> Check {
    since(c, SHMEM_HUGE_SINCE.0, SHMEM_HUGE_SINCE.1)
}
const fn sh_before(c: Check) -> Check {
    before(c, SHMEM_HUGE_SINCE.0, SHMEM_HUGE_SINCE.1)
}

/// 4 MiB of 4 KiB folios at a 2 MiB boundary. 6.1, 6.12: one PTE per fault. 7.2: each
/// page's insert (the first in each 2 MiB block after the PMD's FALLBACK, in both calls),
/// then its write-protect fault; every fault retried once under the per-VMA lock.
const SHMEM_PTE: &[Check] = &[
    truth("touches", 1024),
    sh_before(truth("minflt", 1024)),
    sh_since(truth("minflt", 2048)),
    sh_before(tool("faults", 1024)),
    sh_since(tool("faults", 2048)),
    sized("entries.pte", 1024),
    sized("entries.pmd", 0),
    sized("reinserts.pte", 0),
    sized("bytes_mapped", 4 << 20),
    before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
    before(sized("chains.0.count", 1024), 6, 12),
    between(
        sized_s("chains.0.chain", "RETRY PTE:OK"),
        (6, 12),
        SHMEM_HUGE_SINCE,
    ),
    between(sized("chains.0.count", 1024), (6, 12), SHMEM_HUGE_SINCE),
    sh_since(sized_s("chains.0.chain", "RETRY PTE:PRESENT")),
    sh_since(sized("chains.0.count", 1024)),
    sh_since(sized_s("chains.1.chain", "RETRY PTE:OK")),
    sh_since(sized("chains.1.count", 1022)),
    sh_since(sized_s(
        "chains.2.chain",
        "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK",
    )),
    sh_since(sized("chains.2.count", 2)),
    sh_before(sized("fallback_steps", 0)),
    sh_since(sized("fallback_steps", 4)),
    sh_since(same("fallback_steps", Source::Vmstat(SHMEM_FALLBACKS))),
    sh_since(same("chains.0.count", Source::Vmstat(SHMEM_MKWRITE))),
    same("entries.pte", Source::Vmstat("event:kprobe:vmf_insert_pfn")),
    PATH_IS_CARD,
];
