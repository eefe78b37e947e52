//! Files: shmem THP (tmpfs `huge=always`) and ext4 DAX on an emulated NVDIMM, aligned, plain and misaligned.

use crate::check::*;
use crate::scenarios::Scenario;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "shmem-huge",
        kind: "shmem THP",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        // tmpfs with huge=always: each 2 MiB of the file is one huge folio, mapped by
        // do_set_pmd on the first write fault.
        mount: Some(("/mnt/shm-huge", "tmpfs", "huge=always,size=64M")),
        workload: &[
            "file",
            "--path",
            "/mnt/shm-huge/f",
            "--size",
            "8M",
            "--align",
            "2M",
        ],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            tool("writes", 4),
            tool_s("kind", "file-shared"),
            vmstat("thp_file_alloc", 4),
            vmstat("thp_file_mapped", 4),
            sized("entries.pmd", 4),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "fsdax-aligned",
        kind: "fsdax",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Dax),
        predicts: None,
        sysfs: &[],
        mount: None,
        workload: &[
            "file",
            "--path",
            "/mnt/fsdax-aligned/f",
            "--size",
            "8M",
            "--align",
            "2M",
        ],
        checks: &[
            truth("touches", 2048),
            tool("faults", 4),
            sized("entries.pmd", 4),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
            vmstat("thp_fault_fallback", 0),
        ],
    },
    Scenario {
        name: "fsdax-plain",
        kind: "fsdax",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Dax),
        predicts: None,
        sysfs: &[],
        mount: None,
        // Written with write(2) first on a plain mkfs, so the blocks come from the write
        // path, not from the faults. Measured on 6.1, 6.12 and 7.2: a fresh 1 GiB file
        // system still hands out 2 MiB-aligned extents, so the faults map PMDs.
        workload: &[
            "file",
            "--path",
            "/mnt/fsdax-plain/f",
            "--size",
            "8M",
            "--align",
            "2M",
            "--prewrite",
        ],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            sized("entries.pmd", 4),
            sized("entries.pte", 0),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
            vmstat("thp_fault_fallback", 0),
        ],
    },
    Scenario {
        name: "fsdax-misaligned",
        kind: "fsdax",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Dax),
        predicts: None,
        sysfs: &[],
        mount: None,
        // Mapped 64 KiB past a 2 MiB boundary: file offsets and addresses never line up for
        // a PMD, so every page is a PTE fault. The kernel still asks ext4 for a PMD at the
        // first fault in each of the five 2 MiB ranges the mapping touches (the workload
        // owns them all, so no other mapping's page table fills a PMD slot), which falls
        // back. Every fault allocates a block, which DAX reports as a major fault.
        workload: &[
            "file",
            "--path",
            "/mnt/fsdax-aligned/g",
            "--size",
            "8M",
            "--align",
            "2M",
            "--offset",
            "64K",
        ],
        checks: &[
            truth("touches", 2048),
            // DAX faults that allocate blocks are major (IOMAP_F_NEW).
            truth("majflt", 2048),
            truth("minflt", 0),
            tool("faults", 2048),
            tool("major", 2048),
            sized("entries.pmd", 0),
            sized("entries.pte", 2048),
            sized("bytes_mapped", 8 << 20),
            sized("fallback_faults", 5),
            // Reasons: the pages at both ends lie in 2 MiB blocks the VMA does not hold.
            sized("fallback_reasons.pmd.vma-range", 512),
            // Inside, the blocks ext4 allocated are 2 MiB-aligned on the device, the
            // mapping 64 KiB past it: the pfns say so where the inserts carry them (6.15+
            // DAX inserts folios, no pfn: the file offset says so).
            before(sized("fallback_reasons.pmd.pfn-misaligned", 1536), 6, 15),
            before(sized("fallback_reasons.pfn_offset.bytes", 64 << 10), 6, 15),
            since(sized("fallback_reasons.pmd.pgoff-misaligned", 1536), 6, 15),
            // 6.1 (no per-VMA lock): one call per fault, one PMD fallback per range.
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            before(sized("chains.0.count", 2043), 6, 12),
            before(sized_s("chains.1.chain", "PMD:FALLBACK PTE:OK"), 6, 12),
            before(sized("pmd_fallback_steps", 5), 6, 12),
            before(sized("retried_faults", 0), 6, 12),
            // 6.12+: the first call runs under the per-VMA lock; ext4's PMD attempt falls
            // back there, then the PTE path returns RETRY (ext4_dax_vm_ops has no
            // map_pages: vmf_can_call_fault), and the second call asks for the PMD again
            // (its PTE table is still missing): two fallbacks per range, every fault
            // retried once.
            since(sized_s("chains.0.chain", "RETRY PTE:OK"), 6, 12),
            since(sized("chains.0.count", 2043), 6, 12),
            since(
                sized_s("chains.1.chain", "PMD:FALLBACK RETRY PMD:FALLBACK PTE:OK"),
                6,
                12,
            ),
            since(sized("pmd_fallback_steps", 10), 6, 12),
            since(sized("retried_faults", 2048), 6, 12),
            since(sized("vma_lock_retries", 2048), 6, 12),
        ],
    },
];
