//! The lab driver where nothing huge fits (virtual and physical addresses disagree), a partly populated range, and a write-notify mapping.

use crate::check::*;
use crate::scenarios::Scenario;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "drv-misaligned-2m",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-misaligned-2m-range"),
        sysfs: &[],
        mount: None,
        // Virtual 64 KiB past a 1 GiB boundary, physical at one: never congruent modulo
        // 2 MiB, nothing huge fits. 6.12+ asks for a PMD in each of the three 2 MiB ranges
        // inside the VMA and gets FALLBACK; 6.1 never asks.
        workload: &[
            "gpu", "--size", "8M", "--align", "1G", "--offset", "64K", "--policy", "pmd-only",
        ],
        checks: &[
            truth("minflt", 2048),
            tool("faults", 2048),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            // 6.12+: each fault retried once under the per-VMA lock (see
            // drv-pte-only-aligned); five 2 MiB ranges asked for a PMD in both calls, the
            // first for a PUD in its first call.
            since(sized_s("chains.0.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.0.count", 2043), 6, 12),
            since(
                sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
                6,
                12,
            ),
            since(sized("chains.1.count", 4), 6, 12),
            since(sized("fallback_steps", 11), 6, 12),
            since(sized("retried_faults", 2048), 6, 12),
            // 6.12+ asks in all five 2 MiB ranges the VMA touches, whole or not.
            since(sized("fallback_faults", 5), 6, 12),
            before(sized("fallback_faults", 0), 6, 12),
            // Reasons: the 496 + 16 pages at the ends lie in 2 MiB blocks the VMA does not
            // hold; the 1536 inside are 64 KiB off their pfns' alignment. 6.12+ also asks
            // the first fault for a PUD, which 8 MiB cannot hold.
            sized("fallback_reasons.pmd.vma-range", 512),
            sized("fallback_reasons.pmd.pfn-misaligned", 1536),
            sized("fallback_reasons.pfn_offset.bytes", 64 << 10),
            since(sized("fallback_reasons.pud.vma-range", 1), 6, 12),
            since(sized("fallback_reasons.not_asked", 2043), 6, 12),
            before(sized("fallback_reasons.not_asked", 2048), 6, 12),
        ],
    },
    Scenario {
        name: "drv-misaligned-2m-range",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // The range insert on the same layout: one fault, 2048 PTEs. 6.12+ asks for a PUD
        // first, since nothing else maps in that 1 GiB (the range insert answers it);
        // 6.1 calls the PTE fault handler.
        workload: &[
            "gpu", "--size", "8M", "--align", "1G", "--offset", "64K", "--policy", "range",
        ],
        checks: &[
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            since(sized_s("chains.0.chain", "PUD:RANGE"), 6, 12),
            before(sized_s("chains.0.chain", "PTE:RANGE"), 6, 12),
        ],
    },
    Scenario {
        name: "drv-partial-range",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // Partly populated: every 64th page first faulted under pte-only (32 faults), then
        // the policy switches to range and every page is touched: one more fault maps the
        // 2016 missing pages, all as PTEs (each 2 MiB already holds a PTE table).
        workload: &[
            "gpu",
            "--size",
            "8M",
            "--align",
            "1G",
            "--policy",
            "pte-only",
            "--stride",
            "256K",
            "--then-policy",
            "range",
        ],
        checks: &[
            truth("minflt_first", 32),
            truth("minflt", 33),
            tool("faults", 33),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            sized("bytes_mapped", 8 << 20),
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            before(sized_s("chains.1.chain", "PTE:RANGE"), 6, 12),
            // 6.12+: the range fault comes from the PTE fault handler too, after the per-VMA
            // lock retry.
            since(sized_s("chains.0.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.0.count", 28), 6, 12),
            since(sized_s("chains.3.chain", "RETRY PTE:RANGE"), 6, 12),
            since(sized("retried_faults", 33), 6, 12),
            // Reasons: the stride faults refused at PMD by pte-only in the four blocks
            // (6.12+), then every later fault finds its block populated; 6.1 never asks.
            since(sized("fallback_reasons.pmd.driver", 4), 6, 12),
            since(sized("fallback_reasons.pmd.populated", 29), 6, 12),
            before(sized("fallback_reasons.pmd.kernel-policy", 33), 6, 12),
        ],
    },
    Scenario {
        name: "drv-misaligned-pte-only",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("drv-misaligned-2m-range"),
        sysfs: &[],
        mount: None,
        // The misaligned layout of drv-misaligned-2m under pte-only, as a driver doing 4 KiB
        // dirty tracking: 2048 faults. 6.12+ still asks for a PMD in each of the five 2 MiB
        // ranges the VMA touches and gets FALLBACK.
        workload: &[
            "gpu", "--size", "8M", "--align", "1G", "--offset", "64K", "--policy", "pte-only",
        ],
        checks: &[
            truth("minflt", 2048),
            tool("faults", 2048),
            sized("entries.pud", 0),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            sized("bytes_mapped", 8 << 20),
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            // 6.12+: each fault retried once under the per-VMA lock (see
            // drv-pte-only-aligned); five 2 MiB ranges asked for a PMD in both calls, the
            // first for a PUD in its first call.
            since(sized_s("chains.0.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.0.count", 2043), 6, 12),
            since(
                sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
                6,
                12,
            ),
            since(sized("chains.1.count", 4), 6, 12),
            since(sized("fallback_steps", 11), 6, 12),
            since(sized("retried_faults", 2048), 6, 12),
            since(sized("fallback_faults", 5), 6, 12),
            before(sized("fallback_faults", 0), 6, 12),
            // Reasons: the 496 + 16 pages at the ends lie in 2 MiB blocks the VMA does not
            // hold; the 1536 inside are 64 KiB off their pfns' alignment. 6.12+ also asks
            // the first fault for a PUD, which 8 MiB cannot hold.
            sized("fallback_reasons.pmd.vma-range", 512),
            sized("fallback_reasons.pmd.pfn-misaligned", 1536),
            sized("fallback_reasons.pfn_offset.bytes", 64 << 10),
            since(sized("fallback_reasons.pud.vma-range", 1), 6, 12),
            since(sized("fallback_reasons.not_asked", 2043), 6, 12),
            before(sized("fallback_reasons.not_asked", 2048), 6, 12),
        ],
    },
    Scenario {
        name: "drv-write-notify",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // drv-pte-only-aligned's layout on a write-notify mapping (the driver has
        // `pfn_mkwrite`, so the core maps its pages read-only): every page takes a fault
        // that inserts its PTE and a write-protect fault that inserts nothing, as DRM GEM
        // shmem and DAX mappings with dirty tracking do.
        workload: &[
            "gpu",
            "--size",
            "8M",
            "--align",
            "1G",
            "--policy",
            "pte-only",
            "--write-notify",
        ],
        checks: &[
            truth("minflt", 4096),
            truth("drv_mkwrite_calls", 2048),
            truth("drv_fault_calls", 2048),
            tool("faults", 4096),
            tool("writes", 4096),
            // A write-protect fault inserts nothing: 2048 PTEs, not 4096.
            sized("entries.pte", 2048),
            sized("bytes_mapped", 8 << 20),
            // 6.1: one call per fault.
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            before(sized("chains.0.count", 2048), 6, 12),
            before(sized_s("chains.1.chain", "PTE:PRESENT"), 6, 12),
            before(sized("chains.1.count", 2048), 6, 12),
            // 6.12+: both kinds retry under the per-VMA lock (`pfn_mkwrite` needs the mmap
            // lock: wp_pfn_shared); the retried call keeps the exception's error code, so
            // the write-protect fault stays PTE:PRESENT.
            since(sized_s("chains.0.chain", "RETRY PTE:PRESENT"), 6, 12),
            since(sized("chains.0.count", 2048), 6, 12),
            since(sized_s("chains.1.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.1.count", 2044), 6, 12),
            since(sized("retried_faults", 4096), 6, 12),
        ],
    },
];
