//! The kernel lab's scenarios, as data, and their evaluation.
//!
//! Each scenario runs `hf-workload` inside a QEMU guest while `huge-fault` traces, and
//! states what must come out: the tool's numbers for the workload's VMA range, the
//! workload's own ground truth, and the kernel's counters (/proc/vmstat deltas). Every
//! comparison is exact. Expectations on what the tool does not report yet are marked
//! pending; a pending expectation that starts passing fails until it is promoted.
//!
//! The guest side (`hf-lab-init`) runs the scenarios and calls [`evaluate`]; the host side
//! (`cargo xtask lab`) boots the kernels and collects the results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a checked number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A key of the tool's VMA row for the workload's range (dotted path into the JSON).
    Tool(&'static str),
    /// A key of the workload's ground-truth line.
    Truth(&'static str),
    /// A kernel count around the workload: the delta of a /proc/vmstat key or of a sysfs
    /// file holding one number (its absolute path), or `event:SYS:NAME[ if FILTER]`
    /// (`event:kprobe:FUNC` for a function) for the hits of a tracepoint or kprobe event by
    /// the workload's pid, counted by an ftrace hist trigger: the kernel's own tracing,
    /// independent of the tool.
    Vmstat(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    N(u64),
    S(&'static str),
    /// The value of another source: a second, independent count of the same thing (the
    /// driver's own count of its answers, a kernel counter).
    Same(Source),
}

#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub source: Source,
    pub expect: Expected,
    /// Why this is not checked yet (the tool does not report it yet).
    pub pending: Option<&'static str>,
    /// Only in modes that see every `handle_mm_fault` call and its return (not tracepoint-only).
    pub needs_return: bool,
    /// The kernels it holds on (the expectation differs elsewhere, see the scenario's twin
    /// check).
    pub kernels: Needs,
}

/// A check that holds on kernels at least (major, minor) only.
const fn since(mut c: Check, major: u32, minor: u32) -> Check {
    c.kernels = Needs::Kernel(major, minor, "");
    c
}

/// A check that holds on kernels older than (major, minor) only.
const fn before(mut c: Check, major: u32, minor: u32) -> Check {
    c.kernels = Needs::Below(major, minor, "");
    c
}

const fn tool(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
const fn tool_s(key: &'static str, s: &'static str) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::S(s),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
const fn truth(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Truth(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
/// The tool's `key` must equal a second count of the same thing, from `other`. Seen in the
/// modes that see every call.
const fn same(key: &'static str, other: Source) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::Same(other),
        pending: None,
        needs_return: true,
        kernels: Needs::Always,
    }
}
const fn vmstat(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Vmstat(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
/// An expectation on entries per size, chains or bytes: seen in the fentry and kprobe modes.
const fn sized(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: true,
        kernels: Needs::Always,
    }
}
const fn sized_s(key: &'static str, s: &'static str) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::S(s),
        pending: None,
        needs_return: true,
        kernels: Needs::Always,
    }
}
/// An expectation on per-size entries, chains or bytes that the tool does not report yet:
/// pending (with the reason), and a failure once it passes, until it is promoted to
/// [`sized`]. No scenario has one today.
pub const fn later(key: &'static str, n: u64, why: &'static str) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::N(n),
        pending: Some(why),
        needs_return: true,
        kernels: Needs::Always,
    }
}

/// When a scenario can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Always,
    /// Kernel at least (major, minor); the reason is printed as `n/a: ...`.
    Kernel(u32, u32, &'static str),
    /// Kernel older than (major, minor): the twin of a scenario whose expectations differ.
    Below(u32, u32, &'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub kind: &'static str,
    pub needs: Needs,
    /// Not built yet: the matrix shows the cell as pending with this reason.
    pub todo: Option<&'static str>,
    /// The `range`-policy twin whose real faults and entries this run's what-if section
    /// must predict exactly, VMA by VMA (checked when both ran in the same mode).
    pub predicts: Option<&'static str>,
    /// Who counts the scenario a second time, independently of the tool: its FALLBACK
    /// steps and retried faults must equal that count (in the modes that see every call).
    pub counted_by: Option<SecondCount>,
    /// sysfs writes before the workload, restored afterwards.
    pub sysfs: &'static [(&'static str, &'static str)],
    /// A filesystem the workload needs: (mount point, fstype, options), mounted once.
    pub mount: Option<(&'static str, &'static str, &'static str)>,
    pub workload: &'static [&'static str],
    pub checks: &'static [Check],
}

/// A second count of a scenario's fallbacks and retries, made without the tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondCount {
    /// The lab driver counts its handlers' answers (HFGPU_GET_STATS, read by the workload
    /// around its touch loops): the FALLBACK steps are its FALLBACK answers; the retried
    /// faults are the calls of its PTE fault handler and of its `pfn_mkwrite` on 6.12+
    /// (the core returns VM_FAULT_RETRY under the per-VMA lock before calling either of
    /// them, the driver having no `map_pages`: `vmf_can_call_fault`), each retried once
    /// under that lock; none before.
    Driver,
    /// DAX counts every PMD fallback in /proc/vmstat `thp_fault_fallback`
    /// (`dax_iomap_pmd_fault`): the FALLBACK steps. Its `fs_dax:dax_pte_fault` tracepoint
    /// fires in the PTE fault handler, which the core calls on 6.12+ only after the per-VMA
    /// lock's RETRY (ext4's DAX operations have no `map_pages`): the retried faults.
    Dax,
}

/// [`SecondCount::Driver`]'s checks.
const DRIVER_COUNTS: &[Check] = &[
    same("sum:fallback_steps", Source::Truth("drv_fallbacks")),
    since(
        same("sum:retried_faults", Source::Truth(NEED_MMAP_LOCK)),
        6,
        12,
    ),
    since(
        same("sum:retry_calls", Source::Truth(NEED_MMAP_LOCK)),
        6,
        12,
    ),
    since(
        same("sum:vma_lock_retries", Source::Truth(NEED_MMAP_LOCK)),
        6,
        12,
    ),
    before(sized("sum:retried_faults", 0), 6, 12),
    before(sized("sum:retry_calls", 0), 6, 12),
    // The core never calls a `fault` handler without `map_pages`, or `pfn_mkwrite`, under
    // the per-VMA lock.
    truth("drv_fault_calls_vma_lock", 0),
    truth("drv_mkwrite_calls_vma_lock", 0),
];

/// The driver's calls that only come after the per-VMA lock's RETRY on 6.12+.
const NEED_MMAP_LOCK: &str = "drv_calls_needing_mmap_lock";

/// [`SecondCount::Dax`]'s checks.
const DAX_COUNTS: &[Check] = &[
    same("fallback_steps", Source::Vmstat("thp_fault_fallback")),
    since(
        same("retried_faults", Source::Vmstat(DAX_PTE_FAULTS)),
        6,
        12,
    ),
    before(sized("retried_faults", 0), 6, 12),
];

/// The PTE faults DAX handled, by the workload (see [`SecondCount::Dax`]).
const DAX_PTE_FAULTS: &str = "event:fs_dax:dax_pte_fault";

impl SecondCount {
    /// The checks it stands for.
    fn checks(self) -> &'static [Check] {
        match self {
            SecondCount::Driver => DRIVER_COUNTS,
            SecondCount::Dax => DAX_COUNTS,
        }
    }
}

const THP: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
/// 1 GiB + 2 MiB + 8 KiB: room for one entry of each size.
const GIB_2M_8K: &str = "1050632K";
const GIB_2M_8K_PAGES: u64 = ((1 << 30) + (2 << 20) + (8 << 10)) >> 12;
/// A buffer object starting 2 MiB + 64 KiB before a 1 GiB boundary of the BAR and ending
/// 2 MiB + 64 KiB after the next one.
const MID_OFFSET: &str = "1046464K";
const MID_SIZE: &str = "1052800K";
const NO_PFNMAP_HUGE_FAULT_BEFORE: &str =
    "before 6.12 the kernel never calls huge_fault for PFNMAP VMAs (see the -6.1 twin)";
/// devdax devices the lab guest sets up on its emulated NVDIMMs.
pub const DAX_2M: &str = "/dev/hf-dax-2m";
pub const DAX_1G: &str = "/dev/hf-dax-1g";
/// ext4 `-o dax` on fsdax namespaces: a plain mkfs, and one with 2 MiB stripe alignment.
pub const FSDAX_PLAIN: &str = "/mnt/fsdax-plain";
pub const FSDAX_ALIGNED: &str = "/mnt/fsdax-aligned";
const THP_DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";
const MTHP_2M: &str = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled";
const MTHP_64K: &str = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled";
const MTHP_64K_ALLOC: &str =
    "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/stats/anon_fault_alloc";

/// Every lab scenario. The lab guest boots with `transparent_hugepage=madvise`, two 2 MiB
/// and one 1 GiB hugetlb pages reserved on the command line.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "thp-aligned",
        kind: "anonymous THP",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[(THP, "madvise"), (THP_DEFRAG, "madvise")],
        mount: None,
        // 8 MiB at a 2 MiB boundary with MADV_HUGEPAGE: four PMD faults.
        workload: &["anon", "--size", "8M", "--align", "2M", "--thp", "always"],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            tool("writes", 4),
            tool("major", 0),
            tool_s("kind", "anon"),
            vmstat("thp_fault_alloc", 4),
            vmstat("thp_fault_fallback", 0),
            sized("entries.pmd", 4),
            sized("entries.pte", 0),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "thp-misaligned",
        kind: "anonymous THP",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[(THP, "madvise"), (THP_DEFRAG, "madvise")],
        mount: None,
        // 2 MiB starting 64 KiB past a 2 MiB boundary: no aligned 2 MiB inside the VMA, so
        // the kernel never tries a PMD: 512 PTE faults, and no THP counted at all.
        workload: &[
            "anon", "--size", "2M", "--align", "2M", "--offset", "64K", "--thp", "always",
        ],
        checks: &[
            truth("minflt", 512),
            tool("faults", 512),
            tool("writes", 512),
            vmstat("thp_fault_alloc", 0),
            vmstat("thp_fault_fallback", 0),
            sized("entries.pmd", 0),
            sized("entries.pte", 512),
            sized("bytes_mapped", 2 << 20),
            sized_s("chains.0.chain", "PTE:OK"),
        ],
    },
    Scenario {
        name: "thp-nohugepage",
        kind: "anonymous THP",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[(THP, "madvise")],
        mount: None,
        workload: &["anon", "--size", "4M", "--align", "2M", "--thp", "never"],
        checks: &[
            truth("minflt", 1024),
            tool("faults", 1024),
            vmstat("thp_fault_alloc", 0),
            vmstat("thp_fault_fallback", 0),
            sized("entries.pte", 1024),
            sized("bytes_mapped", 4 << 20),
            sized_s("chains.0.chain", "PTE:OK"),
        ],
    },
    Scenario {
        name: "thp-never",
        kind: "anonymous THP",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        // THP off system-wide: MADV_HUGEPAGE changes nothing.
        sysfs: &[(THP, "never")],
        mount: None,
        workload: &["anon", "--size", "4M", "--align", "2M", "--thp", "always"],
        checks: &[
            truth("minflt", 1024),
            tool("faults", 1024),
            vmstat("thp_fault_alloc", 0),
            vmstat("thp_fault_fallback", 0),
            sized("entries.pmd", 0),
            sized("entries.pte", 1024),
            sized_s("chains.0.chain", "PTE:OK"),
        ],
    },
    Scenario {
        name: "hugetlb-2m",
        kind: "hugetlbfs",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        workload: &["hugetlb", "--page-size", "2M", "--size", "4M"],
        checks: &[
            truth("touches", 2),
            truth("minflt", 2),
            truth("huge_pages_used", 2),
            tool("faults", 2),
            tool("writes", 2),
            tool_s("kind", "hugetlb"),
            sized("entries.pmd", 2),
            sized("bytes_mapped", 4 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "hugetlb-1g",
        kind: "hugetlbfs",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        workload: &["hugetlb", "--page-size", "1G", "--size", "1G"],
        checks: &[
            truth("touches", 1),
            truth("minflt", 1),
            truth("huge_pages_used", 1),
            tool("faults", 1),
            tool_s("kind", "hugetlb"),
            sized("entries.pud", 1),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PUD:OK"),
        ],
    },
    Scenario {
        name: "mthp-64k",
        kind: "multi-size THP",
        needs: Needs::Kernel(
            6,
            9,
            "kernel older than 6.9 (no multi-size anonymous THP fault statistics)",
        ),
        todo: None,
        counted_by: None,
        predicts: None,
        // PMD-size THP off, 64 KiB anonymous folios always: 1 MiB is sixteen 64 KiB faults,
        // each mapping a 64 KiB folio with 16 PTEs.
        sysfs: &[(THP, "never"), (MTHP_2M, "never"), (MTHP_64K, "always")],
        mount: None,
        // The mTHP counter is system-wide: the workload reads it right around its touch loop,
        // so that its own start-up faults (which get 64 KiB folios too) stay out.
        workload: &[
            "anon",
            "--size",
            "1M",
            "--align",
            "2M",
            "--counter",
            MTHP_64K_ALLOC,
        ],
        checks: &[
            truth("touches", 256),
            truth("minflt", 16),
            tool("faults", 16),
            tool("writes", 16),
            tool_s("kind", "anon"),
            truth("counter_delta", 16),
            vmstat("thp_fault_alloc", 0),
            sized("entries.pte", 256),
            sized("bytes_mapped", 1 << 20),
            sized_s("chains.0.chain", "PTE:OK"),
        ],
    },
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
            // 6.1 (no per-VMA lock): one call per fault, one PMD fallback per range.
            before(sized_s("chains.0.chain", "PTE:OK"), 6, 12),
            before(sized("chains.0.count", 2043), 6, 12),
            before(sized_s("chains.1.chain", "PMD:FALLBACK PTE:OK"), 6, 12),
            before(sized("fallback_steps", 5), 6, 12),
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
            since(sized("fallback_steps", 10), 6, 12),
            since(sized("retried_faults", 2048), 6, 12),
            since(sized("vma_lock_retries", 2048), 6, 12),
        ],
    },
    Scenario {
        name: "devdax-2m",
        kind: "devdax",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // A devdax device with 2 MiB alignment (drivers/dax): each 2 MiB is one fault that
        // inserts a PMD through vmf_insert_pfn_pmd (vmf_insert_pfn_pmd_prot on 6.1).
        workload: &["dev", "--path", DAX_2M, "--size", "8M", "--align", "2M"],
        checks: &[
            truth("touches", 2048),
            truth("minflt", 4),
            tool("faults", 4),
            tool("writes", 4),
            sized("entries.pmd", 4),
            sized("entries.pte", 0),
            sized("entries.pud", 0),
            sized("bytes_mapped", 8 << 20),
            sized_s("chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "devdax-1g",
        kind: "devdax",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // 1 GiB alignment: one fault, one PUD through vmf_insert_pfn_pud.
        workload: &[
            "dev", "--path", DAX_1G, "--size", "1G", "--align", "1G", "--stride", "2M",
        ],
        checks: &[
            truth("touches", 512),
            truth("minflt", 1),
            tool("faults", 1),
            sized("entries.pud", 1),
            sized("entries.pmd", 0),
            sized("bytes_mapped", 1 << 30),
            sized_s("chains.0.chain", "PUD:OK"),
        ],
    },
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
    Scenario {
        name: "gpu-runtime",
        kind: "GPU driver",
        needs: Needs::Kernel(6, 12, NO_PFNMAP_HUGE_FAULT_BEFORE),
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: Some("gpu-runtime-range"),
        sysfs: &[],
        mount: None,
        // Five buffer objects under the pud policy, in a runtime's order (hf-workload's
        // RUNTIME_BOS): ring 16 PTEs; heap 1 PUD; texture 3 PMDs; staging 256 PTEs, a PMD,
        // 16 PTEs; vertex (64 KiB off) 512 PTEs.
        workload: &["gpu-runtime", "--policy", "pud"],
        checks: &[
            truth("minflt_ring", 16),
            truth("minflt_upload", 276),
            truth("minflt_heap", 1),
            truth("minflt_vertex", 512),
            truth("minflt", 805),
            tool("bo0:faults", 16),
            tool("bo1:faults", 1),
            tool("bo2:faults", 3),
            tool("bo3:faults", 273),
            tool("bo4:faults", 512),
            sized("bo0:entries.pte", 16),
            sized("bo1:entries.pud", 1),
            sized("bo1:entries.pmd", 0),
            sized("bo2:entries.pmd", 3),
            sized("bo2:entries.pte", 0),
            sized("bo3:entries.pmd", 1),
            sized("bo3:entries.pte", 272),
            sized("bo4:entries.pmd", 0),
            sized("bo4:entries.pte", 512),
            sized_s("bo1:chains.0.chain", "PUD:OK"),
            sized_s("bo2:chains.0.chain", "PMD:OK"),
        ],
    },
    Scenario {
        name: "gpu-runtime-range",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: Some(SecondCount::Driver),
        predicts: None,
        sysfs: &[],
        mount: None,
        // The same runtime with the range insert: one fault per buffer object. 6.12+ asks
        // for a PUD where the 1 GiB is still empty (ring, heap, staging first), then for a
        // PMD (texture, vertex); 6.1 calls the PTE handler, with the heap's PMD table
        // allocated: 512 PMDs instead of the PUD.
        workload: &["gpu-runtime", "--policy", "range"],
        checks: &[
            truth("minflt_ring", 1),
            truth("minflt_upload", 2),
            truth("minflt_heap", 1),
            truth("minflt_vertex", 1),
            tool("bo0:faults", 1),
            tool("bo1:faults", 1),
            tool("bo2:faults", 1),
            tool("bo3:faults", 1),
            tool("bo4:faults", 1),
            sized("bo0:entries.pte", 16),
            since(sized("bo1:entries.pud", 1), 6, 12),
            since(sized("bo1:entries.pmd", 0), 6, 12),
            before(sized("bo1:entries.pud", 0), 6, 12),
            before(sized("bo1:entries.pmd", 512), 6, 12),
            sized("bo2:entries.pmd", 3),
            sized("bo2:entries.pte", 0),
            sized("bo3:entries.pmd", 1),
            sized("bo3:entries.pte", 272),
            sized("bo4:entries.pmd", 0),
            sized("bo4:entries.pte", 512),
            since(sized_s("bo0:chains.0.chain", "PUD:RANGE"), 6, 12),
            since(sized_s("bo1:chains.0.chain", "PUD:RANGE"), 6, 12),
            since(sized_s("bo2:chains.0.chain", "PMD:RANGE"), 6, 12),
            since(sized_s("bo3:chains.0.chain", "PUD:RANGE"), 6, 12),
            since(sized_s("bo4:chains.0.chain", "PMD:RANGE"), 6, 12),
            before(sized_s("bo1:chains.0.chain", "PTE:RANGE"), 6, 12),
            before(sized_s("bo4:chains.0.chain", "PTE:RANGE"), 6, 12),
        ],
    },
    Scenario {
        name: "drv-bad-requests",
        kind: "GPU driver",
        needs: Needs::Always,
        todo: None,
        counted_by: None,
        predicts: None,
        sysfs: &[],
        mount: None,
        // A buffer object offset not on 64 KiB, a length or offset past the BAR, a private
        // mapping, an unknown policy: EINVAL (22); an unknown ioctl: ENOTTY (25).
        workload: &["gpu-errors"],
        checks: &[
            truth("ok_map", 0),
            truth("unaligned_offset", 22),
            truth("length_past_bar", 22),
            truth("offset_past_bar", 22),
            truth("private", 22),
            truth("unknown_policy", 22),
            truth("unknown_ioctl", 25),
        ],
    },
];

/// Kernel log lines that fail a lab boot: warnings, BUGs, oopses and their stack traces.
pub const KERNEL_LOG_ALARMS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "Call Trace:",
];

/// The kernel counters one scenario reads (see [`Source::Vmstat`]).
fn counter_keys(s: &Scenario) -> impl Iterator<Item = &'static str> {
    s.checks
        .iter()
        .chain(s.counted_by.map_or(&[][..], SecondCount::checks))
        .flat_map(|c| {
            let expected = match c.expect {
                Expected::Same(Source::Vmstat(k)) => Some(k),
                _ => None,
            };
            let read = match c.source {
                Source::Vmstat(k) => Some(k),
                _ => None,
            };
            read.into_iter().chain(expected)
        })
}

/// The kernel events one scenario counts around its workload (`event:` keys).
pub fn event_keys(s: &Scenario) -> Vec<&'static str> {
    let mut keys: Vec<_> = counter_keys(s)
        .filter(|k| k.starts_with("event:"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The /proc/vmstat counters (and sysfs files) a set of scenarios needs.
pub fn vmstat_keys(scenarios: &[&Scenario]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = scenarios
        .iter()
        .flat_map(|s| counter_keys(s))
        .filter(|k| !k.starts_with("event:"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// /proc/vmstat as a map.
pub fn parse_vmstat(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// (major, minor) of a release string like `6.1.0-56-amd64` or `7.2.13+deb14-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Whether a scenario applies to this kernel: `Err(reason)` for `n/a`.
pub fn applies(s: &Scenario, version: (u32, u32)) -> Result<(), String> {
    s.needs.met(version).map_err(str::to_string)
}

impl Needs {
    /// Whether a kernel of this (major, minor) qualifies: `Err(reason)` if not.
    pub fn met(self, version: (u32, u32)) -> Result<(), &'static str> {
        match self {
            Needs::Kernel(maj, min, why) if version < (maj, min) => Err(why),
            Needs::Below(maj, min, why) if version >= (maj, min) => Err(why),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// Not built yet.
    Pending,
    /// Cannot run on this kernel.
    NotApplicable,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    pub what: String,
    pub expected: Value,
    pub got: Value,
    /// `pass`, `fail`, `pending` (not reported yet), `pending-passes` (promote it: a failure),
    /// `not-visible` (the mode cannot see it).
    pub outcome: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub kernel: String,
    pub mode: String,
    pub status: Status,
    pub reason: Option<String>,
    pub checks: Vec<CheckResult>,
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

/// The tool's VMA row for the workload's range.
pub fn vma_row<'a>(report: &'a Value, truth: &Value) -> Option<&'a Value> {
    row_for(report, truth, &truth["vma_start"], &truth["vma_end"])
}

fn row_for<'a>(report: &'a Value, truth: &Value, start: &Value, end: &Value) -> Option<&'a Value> {
    report["vmas"]
        .as_array()?
        .iter()
        .find(|v| v["pid"] == truth["pid"] && v["start"] == *start && v["end"] == *end)
}

/// The tool's row for each VMA the workload used: its buffer objects (`bos`) in order, or
/// its one range.
pub fn vma_rows<'a>(report: &'a Value, truth: &Value) -> Vec<Option<&'a Value>> {
    match truth["bos"].as_array() {
        Some(bos) => bos
            .iter()
            .map(|b| row_for(report, truth, &b["vma_start"], &b["vma_end"]))
            .collect(),
        None => vec![vma_row(report, truth)],
    }
}

/// A tool key `boN:key` names buffer object N's row; a plain key the workload's range.
fn split_bo(key: &str) -> (Option<usize>, &str) {
    match key.split_once(':') {
        Some((bo, k)) => (bo.strip_prefix("bo").and_then(|n| n.parse().ok()), k),
        None => (None, key),
    }
}

/// The what-if cross-check: the module helper's prediction in `predictor`'s rows must equal
/// what the `twin` (its range-policy run) really did, VMA by VMA: faults and entries per
/// size. Without returns (tracepoint-only) there is no what-if: `not-visible`.
pub fn what_if_checks(
    twin: &str,
    sees_returns: bool,
    predictor: &[Option<&Value>],
    actual: &[Option<&Value>],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for (i, (p, a)) in predictor.iter().zip(actual).enumerate() {
        for (pk, ak) in [
            ("faults", "faults"),
            ("pud", "entries.pud"),
            ("pmd", "entries.pmd"),
            ("pte", "entries.pte"),
        ] {
            let got = p
                .and_then(|r| lookup(r, &format!("what_if.module_helper.{pk}")))
                .cloned()
                .unwrap_or(Value::Null);
            let expected = a
                .and_then(|r| lookup(r, ak))
                .cloned()
                .unwrap_or(Value::Null);
            let outcome = if !sees_returns {
                "not-visible"
            } else if got == expected && !got.is_null() {
                "pass"
            } else {
                "fail"
            };
            out.push(CheckResult {
                what: format!("what-if vma{i} {pk} = {twin} {ak}"),
                expected,
                got,
                outcome: outcome.into(),
            });
        }
    }
    if predictor.len() != actual.len() {
        out.push(CheckResult {
            what: format!("what-if VMAs = {twin} VMAs"),
            expected: Value::from(actual.len()),
            got: Value::from(predictor.len()),
            outcome: "fail".into(),
        });
    }
    out
}

/// Adds `checks` to a result, failing it when one failed.
pub fn add_checks(r: &mut ScenarioResult, checks: Vec<CheckResult>) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.outcome == "fail")
        .map(|c| format!("{}: expected {} got {}", c.what, c.expected, c.got))
        .collect();
    if !failed.is_empty() {
        r.status = Status::Fail;
        let mut reason = r.reason.take().map(|s| vec![s]).unwrap_or_default();
        reason.extend(failed);
        r.reason = Some(reason.join("; "));
    }
    r.checks.extend(checks);
}

/// The lab's passes over every scenario: the three attach modes, and the kprobe mode with
/// `--aggregate` (every fault counted in the kernel, no records), which must give the same
/// numbers.
pub const MODES: [&str; 4] = ["fentry", "kprobe", "tracepoint-only", "kprobe-aggregate"];

/// Whether a lab mode has the what-if: it needs returns and per-fault records.
pub fn sees_what_if(mode: &str) -> bool {
    mode != "tracepoint-only" && !mode.ends_with("-aggregate")
}

/// Compares one scenario's outcome with its expectations, exactly.
pub fn evaluate(
    s: &Scenario,
    kernel: &str,
    mode: &str,
    report: &Value,
    truth: &Value,
    vmstat_delta: &BTreeMap<String, i64>,
) -> ScenarioResult {
    let sees_returns = mode != "tracepoint-only";
    let rows = vma_rows(report, truth);
    let row = vma_row(report, truth);
    let mut checks = Vec::new();
    let mut failed = false;
    let version = kernel_version(kernel).unwrap_or((0, 0));
    let second = s.counted_by.map_or(&[][..], SecondCount::checks);
    for c in s.checks.iter().chain(second) {
        if c.kernels.met(version).is_err() {
            continue;
        }
        let (what, got) = source_value(c.source, &rows, row, truth, vmstat_delta);
        let expected = match c.expect {
            Expected::N(n) => Value::from(n),
            Expected::S(s) => Value::from(s),
            Expected::Same(other) => {
                let (w, v) = source_value(other, &rows, row, truth, vmstat_delta);
                Value::from(format!("{w} = {}", v.unwrap_or(Value::Null)))
            }
        };
        let matches = match c.expect {
            Expected::Same(other) => {
                let v = source_value(other, &rows, row, truth, vmstat_delta).1;
                v.is_some() && got == v
            }
            _ => got.as_ref() == Some(&expected),
        };
        let what_if = matches!(c.source, Source::Tool(k) if k.contains("what_if"));
        let outcome = if (c.needs_return && !sees_returns) || (what_if && !sees_what_if(mode)) {
            "not-visible"
        } else if c.pending.is_some() {
            if matches {
                failed = true;
                "pending-passes"
            } else {
                "pending"
            }
        } else if matches {
            "pass"
        } else {
            failed = true;
            "fail"
        };
        checks.push(CheckResult {
            what,
            expected,
            got: got.unwrap_or(Value::Null),
            outcome: outcome.into(),
        });
    }
    // Every retry call must be linked to its fault: none unlinked, none left waiting, in each
    // of the workload's VMAs (a scenario that expects otherwise says so with its own check).
    if sees_returns {
        for key in ["unlinked_retries", "pending_retries"] {
            if s.checks
                .iter()
                .any(|c| matches!(c.source, Source::Tool(k) if split_bo(k).1 == key))
            {
                continue;
            }
            // A missing row fails on its own checks.
            for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.is_some()) {
                let got = r.and_then(|r| r.get(key)).cloned();
                let ok = got == Some(Value::from(0));
                failed |= !ok;
                checks.push(CheckResult {
                    what: if rows.len() > 1 {
                        format!("tool bo{i}:{key}")
                    } else {
                        format!("tool {key}")
                    },
                    expected: Value::from(0),
                    got: got.unwrap_or(Value::Null),
                    outcome: if ok { "pass" } else { "fail" }.into(),
                });
            }
        }
    }
    // `--aggregate` writes no record: every number above came from the kernel's counts.
    if mode.ends_with("-aggregate") {
        let got = report["kernel_counters"]["records_submitted"].clone();
        let ok = got == 0;
        failed |= !ok;
        checks.push(CheckResult {
            what: "tool kernel_counters.records_submitted".into(),
            expected: Value::from(0),
            got,
            outcome: if ok { "pass" } else { "fail" }.into(),
        });
    }
    // Nothing may be lost in any scenario: the tool's loss counters are part of every check.
    for key in [
        "ringbuf_drops",
        "inflight_map_full",
        "vma_table_overflow_faults",
        "process_table_overflow_faults",
        "malformed_records",
    ] {
        let got = report["loss"].get(key).cloned();
        let ok = got == Some(Value::from(0));
        failed |= !ok;
        checks.push(CheckResult {
            what: format!("tool loss.{key}"),
            expected: Value::from(0),
            got: got.unwrap_or(Value::Null),
            outcome: if ok { "pass" } else { "fail" }.into(),
        });
    }
    // A workload without a mapping of its own (bad requests) has no VMA row to find.
    let needs_row = s.checks.iter().any(
        |c| matches!(c.source, Source::Tool(k) if split_bo(k).0.is_none() && !k.starts_with("sum:")),
    );
    let reason = if row.is_none() && needs_row {
        Some(format!(
            "no VMA row {}-{} for pid {} in the tool's report",
            truth["vma_start"], truth["vma_end"], truth["pid"]
        ))
    } else if failed {
        Some(
            checks
                .iter()
                .filter(|c| c.outcome == "fail" || c.outcome == "pending-passes")
                .map(|c| {
                    format!(
                        "{}: expected {} got {} ({})",
                        c.what, c.expected, c.got, c.outcome
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        None
    };
    ScenarioResult {
        scenario: s.name.into(),
        kernel: kernel.into(),
        mode: mode.into(),
        status: if failed || (row.is_none() && needs_row) {
            Status::Fail
        } else {
            Status::Pass
        },
        reason,
        checks,
    }
}

/// What a check reads, and its value: a key of the tool's row (`boN:KEY` for buffer object
/// N, `sum:KEY` for the sum over every VMA the workload used), of the workload's ground
/// truth, or a kernel counter's delta.
fn source_value(
    source: Source,
    rows: &[Option<&Value>],
    row: Option<&Value>,
    truth: &Value,
    vmstat_delta: &BTreeMap<String, i64>,
) -> (String, Option<Value>) {
    match source {
        Source::Tool(k) => {
            if let Some(key) = k.strip_prefix("sum:") {
                let sum = rows.iter().try_fold(0u64, |acc, r| {
                    Some(acc + r.and_then(|r| lookup(r, key))?.as_u64()?)
                });
                return (format!("tool {k}"), sum.map(Value::from));
            }
            let (bo, key) = split_bo(k);
            let r = match bo {
                Some(i) => rows.get(i).copied().flatten(),
                None => row,
            };
            (format!("tool {k}"), r.and_then(|r| lookup(r, key)).cloned())
        }
        Source::Truth(k) => (format!("workload {k}"), truth.get(k).cloned()),
        Source::Vmstat(k) => (
            match k.strip_prefix("event:") {
                Some(e) => format!("ftrace {e}"),
                None => format!("vmstat {k}"),
            },
            vmstat_delta.get(k).map(|&d| Value::from(d)),
        ),
    }
}

/// `16M`-style sizes, as the workloads take them.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The marker lines the guest prints on its serial console.
pub const RESULT_MARK: &str = "HF-LAB-RESULT ";
pub const KERNEL_MARK: &str = "HF-LAB-KERNEL ";
pub const DONE_MARK: &str = "HF-LAB-DONE";
pub const TIME_MARK: &str = "HF-LAB-TIME ";
/// `HF-LAB-FILE NAME HEX`: a piece of a file the guest hands to the host (appended in order).
pub const FILE_MARK: &str = "HF-LAB-FILE ";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scenario(name: &str) -> &'static Scenario {
        SCENARIOS.iter().find(|s| s.name == name).unwrap()
    }

    fn report(faults: u64, writes: u64) -> Value {
        json!({"loss": {"ringbuf_drops": 0, "inflight_map_full": 0, "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0,
                        "malformed_records": 0},
               "vmas": [
            {"pid": 9, "start": "0x200000", "end": "0xa00000", "faults": faults, "writes": writes,
             "major": 0, "kind": "anon", "entries": {"pte": 0, "pmd": 4, "pud": 0},
             "unlinked_retries": 0, "pending_retries": 0,
             "bytes_mapped": 8 << 20, "chains": [{"chain": "PMD:OK", "count": 4}]},
            {"pid": 9, "start": "0x1000", "end": "0x2000", "faults": 77}
        ]})
    }

    fn truth() -> Value {
        json!({"pid": 9, "vma_start": "0x200000", "vma_end": "0xa00000", "touches": 2048, "minflt": 4})
    }

    fn vm(alloc: i64) -> BTreeMap<String, i64> {
        [
            ("thp_fault_alloc".to_string(), alloc),
            ("thp_fault_fallback".to_string(), 0),
        ]
        .into()
    }

    /// The mthp-64k scenario's report as the tool gives it today: 16 faults, each counted
    /// as one PTE (the folio size is not probed yet).
    fn mthp(entries_pte: u64) -> (Value, Value) {
        let rep = json!({"loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                                  "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
            "vmas": [{"pid": 3, "start": "0x400000", "end": "0x500000", "faults": 16, "writes": 16,
                      "kind": "anon", "entries": {"pte": entries_pte, "pmd": 0, "pud": 0},
                      "unlinked_retries": 0, "pending_retries": 0,
                      "bytes_mapped": entries_pte * 4096, "chains": [{"chain": "PTE:OK", "count": 16}]}]});
        let truth = json!({"pid": 3, "vma_start": "0x400000", "vma_end": "0x500000", "touches": 256,
                           "minflt": 16, "counter_delta": 16});
        (rep, truth)
    }

    /// The aggregate pass checks the same numbers, must have written no record, and has no
    /// what-if to check.
    #[test]
    fn the_aggregate_pass_checks_the_same_numbers_and_no_records() {
        let mut rep = report(4, 4);
        rep["kernel_counters"] = json!({"records_submitted": 0});
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe-aggregate",
            &rep,
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
        assert!(
            r.checks
                .iter()
                .any(|c| c.what == "tool kernel_counters.records_submitted" && c.outcome == "pass")
        );
        rep["kernel_counters"] = json!({"records_submitted": 3});
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe-aggregate",
            &rep,
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Fail);
        // A hand-written what-if expectation is not visible without records.
        let s = scenario("drv-pte-only-aligned");
        let r = evaluate(s, "6.12.1", "kprobe-aggregate", &rep, &truth(), &vm(0));
        let w: Vec<_> = r
            .checks
            .iter()
            .filter(|c| c.what.contains("what_if"))
            .collect();
        assert!(!w.is_empty());
        assert!(w.iter().all(|c| c.outcome == "not-visible"), "{w:?}");
        assert!(sees_what_if("kprobe") && !sees_what_if("kprobe-aggregate"));
    }

    #[test]
    fn exact_numbers_pass_and_pending_stays_pending() {
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe",
            &report(4, 4),
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
        assert!(
            r.checks.iter().all(|c| c.outcome == "pass"),
            "{:?}",
            r.checks
        );
        let (rep, t) = mthp(256);
        let r = evaluate(scenario("mthp-64k"), "6.12", "kprobe", &rep, &t, &vm(0));
        assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
        // One PTE per fault instead of 16: the folio size was missed.
        let (rep, t) = mthp(16);
        let r = evaluate(scenario("mthp-64k"), "6.12", "kprobe", &rep, &t, &vm(0));
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.reason
                .unwrap()
                .contains("entries.pte: expected 256 got 16")
        );
        // A pending expectation that does not pass stays pending.
        let r = evaluate(&PENDING_MTHP, "6.12", "kprobe", &rep, &t, &vm(0));
        assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
        assert_eq!(
            r.checks.iter().filter(|c| c.outcome == "pending").count(),
            1
        );
    }

    /// A scenario with an expectation still pending, for the promotion rule.
    const PENDING_MTHP: Scenario = Scenario {
        name: "pending",
        checks: &[later("entries.pte", 256, "not probed yet")],
        ..*SCENARIOS.first().expect("scenarios")
    };

    #[test]
    fn one_fault_too_many_fails_with_the_numbers() {
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe",
            &report(5, 4),
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("tool faults: expected 4 got 5"));
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe",
            &report(4, 4),
            &truth(),
            &vm(3),
        );
        assert_eq!(r.status, Status::Fail);
        let mut rep = report(4, 4);
        rep["vmas"][0]["entries"]["pmd"] = json!(3);
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "fentry",
            &rep,
            &truth(),
            &vm(4),
        );
        assert!(
            r.reason
                .unwrap()
                .contains("tool entries.pmd: expected 4 got 3")
        );
    }

    #[test]
    fn a_pending_expectation_that_passes_fails_until_promoted() {
        let (rep, t) = mthp(256);
        let r = evaluate(&PENDING_MTHP, "6.12", "kprobe", &rep, &t, &vm(0));
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("pending-passes"));
        // Tracepoint-only mode cannot see entries at all: not visible, not pending.
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "tracepoint-only",
            &report(4, 4),
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Pass);
        assert!(r.checks.iter().any(|c| c.outcome == "not-visible"));
    }

    #[test]
    fn lost_records_fail_the_scenario() {
        let mut rep = report(4, 4);
        rep["loss"]["ringbuf_drops"] = json!(3);
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "kprobe",
            &rep,
            &truth(),
            &vm(4),
        );
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.reason
                .unwrap()
                .contains("loss.ringbuf_drops: expected 0 got 3")
        );
    }

    #[test]
    fn a_missing_vma_row_fails() {
        let mut t = truth();
        t["vma_start"] = json!("0x400000");
        let r = evaluate(
            scenario("thp-aligned"),
            "6.1",
            "fentry",
            &report(4, 4),
            &t,
            &vm(4),
        );
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().starts_with("no VMA row"));
    }

    #[test]
    fn kernel_versions_and_applicability() {
        assert_eq!(kernel_version("6.1.0-56-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("6.12.115+deb12-amd64"), Some((6, 12)));
        assert_eq!(kernel_version("7.2.13+deb14-amd64"), Some((7, 2)));
        let m = scenario("mthp-64k");
        assert!(applies(m, (6, 1)).unwrap_err().contains("older than 6.9"));
        assert!(applies(m, (6, 12)).is_ok());
    }

    #[test]
    fn per_kernel_checks_apply_only_on_their_kernels() {
        let s = scenario("drv-misaligned-2m-range");
        let row = serde_json::json!({
            "pid": 7, "start": "0x1000", "end": "0x2000", "faults": 1,
            "entries": {"pmd": 0, "pte": 2048}, "chains": [{"chain": "PTE:RANGE", "count": 1}],
            "fallback_steps": 0, "retried_faults": 0, "retry_calls": 0, "vma_lock_retries": 0,
            "unlinked_retries": 0, "pending_retries": 0,
        });
        let report = serde_json::json!({
            "vmas": [row],
            "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                     "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
        });
        let t = serde_json::json!({"pid": 7, "vma_start": "0x1000", "vma_end": "0x2000", "minflt": 1,
            "drv_fallbacks": 0, "drv_fault_calls": 0, "drv_fault_calls_vma_lock": 0,
            "drv_mkwrite_calls_vma_lock": 0, "drv_calls_needing_mmap_lock": 0});
        let old = evaluate(s, "6.1.0-56-amd64", "kprobe", &report, &t, &BTreeMap::new());
        assert_eq!(old.status, Status::Pass, "{:?}", old.reason);
        // On 6.12 the chain must be PUD:RANGE: the 6.1 expectation does not apply there.
        let new = evaluate(
            s,
            "6.12.117+deb12-amd64",
            "kprobe",
            &report,
            &t,
            &BTreeMap::new(),
        );
        assert_eq!(new.status, Status::Fail);
        assert!(new.reason.unwrap().contains("PUD:RANGE"));
    }

    /// The driver's own count of its answers must equal the tool's, summed over the
    /// workload's VMAs; an unlinked or pending retry in a VMA fails the scenario.
    #[test]
    fn second_counts_and_retry_anomalies_are_checked_per_vma() {
        let s = scenario("gpu-runtime-range");
        let row = |start: &str, fallback_steps: u64, unlinked: u64| {
            json!({"pid": 9, "start": start, "end": "0xe", "faults": 1,
                "fallback_steps": fallback_steps, "retried_faults": 0, "retry_calls": 0,
                "vma_lock_retries": 0, "unlinked_retries": unlinked, "pending_retries": 0})
        };
        let rep = |a: u64, b: u64, unlinked: u64| {
            json!({"vmas": [row("0xa", a, 0), row("0xb", b, unlinked)],
                "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                    "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0,
                    "malformed_records": 0}})
        };
        let truth = json!({"pid": 9, "bos": [{"vma_start": "0xa", "vma_end": "0xe"},
            {"vma_start": "0xb", "vma_end": "0xe"}], "drv_fallbacks": 3, "drv_fault_calls": 0,
            "drv_fault_calls_vma_lock": 0, "drv_mkwrite_calls_vma_lock": 0,
            "drv_calls_needing_mmap_lock": 0});
        let check = |r: &ScenarioResult, what: &str| {
            r.checks
                .iter()
                .find(|c| c.what == what)
                .map(|c| c.outcome.clone())
        };
        let r = evaluate(
            s,
            "6.12.1",
            "kprobe",
            &rep(1, 2, 0),
            &truth,
            &BTreeMap::new(),
        );
        assert_eq!(
            check(&r, "tool sum:fallback_steps").as_deref(),
            Some("pass"),
            "{:?}",
            r.checks
        );
        let r = evaluate(
            s,
            "6.12.1",
            "kprobe",
            &rep(1, 1, 0),
            &truth,
            &BTreeMap::new(),
        );
        assert_eq!(
            check(&r, "tool sum:fallback_steps").as_deref(),
            Some("fail")
        );
        assert!(
            r.reason
                .unwrap()
                .contains("expected \"workload drv_fallbacks = 3\" got 2")
        );
        let r = evaluate(
            s,
            "6.12.1",
            "kprobe",
            &rep(1, 2, 1),
            &truth,
            &BTreeMap::new(),
        );
        assert_eq!(
            check(&r, "tool bo1:unlinked_retries").as_deref(),
            Some("fail")
        );
        assert_eq!(r.status, Status::Fail);
        // Tracepoint-only mode cannot see either: not visible, not a failure.
        let r = evaluate(
            s,
            "6.12.1",
            "tracepoint-only",
            &rep(1, 1, 1),
            &truth,
            &BTreeMap::new(),
        );
        assert_eq!(
            check(&r, "tool sum:fallback_steps").as_deref(),
            Some("not-visible")
        );
        assert!(check(&r, "tool bo1:unlinked_retries").is_none());
        // A missing second count is never a pass.
        let mut t = truth.clone();
        t.as_object_mut().unwrap().remove("drv_fallbacks");
        let r = evaluate(s, "6.12.1", "kprobe", &rep(1, 2, 0), &t, &BTreeMap::new());
        assert_eq!(
            check(&r, "tool sum:fallback_steps").as_deref(),
            Some("fail")
        );
    }

    #[test]
    fn a_scenario_without_a_mapping_needs_no_vma_row() {
        let s = scenario("drv-bad-requests");
        let report = serde_json::json!({
            "vmas": [],
            "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                     "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0},
        });
        let mut t = serde_json::json!({"ok_map": 0, "unaligned_offset": 22, "length_past_bar": 22,
            "offset_past_bar": 22, "private": 22, "unknown_policy": 22, "unknown_ioctl": 25});
        let r = evaluate(s, "6.12.1", "kprobe", &report, &t, &BTreeMap::new());
        assert_eq!(r.status, Status::Pass, "{:?}", r.reason);
        t["private"] = serde_json::json!(0);
        let r = evaluate(s, "6.12.1", "kprobe", &report, &t, &BTreeMap::new());
        assert_eq!(r.status, Status::Fail);
    }

    #[test]
    fn buffer_object_rows_and_the_what_if_cross_check() {
        let row = |start: &str, faults: u64, pte: u64, w: Option<[u64; 4]>| {
            json!({"pid": 9, "start": start, "end": "0xe", "faults": faults,
                "entries": {"pte": pte, "pmd": 0, "pud": 0},
                "what_if": w.map(|[f, pud, pmd, pte]| json!({"module_helper":
                    {"faults": f, "pud": pud, "pmd": pmd, "pte": pte}}))})
        };
        let report = json!({"vmas": [row("0xa", 16, 16, Some([1, 0, 0, 16])), row("0xb", 1, 16, None)],
            "loss": {"ringbuf_drops": 0, "inflight_map_full": 0,
                "vma_table_overflow_faults": 0, "process_table_overflow_faults": 0, "malformed_records": 0}});
        let truth = |a: &str| json!({"pid": 9, "bos": [{"vma_start": a, "vma_end": "0xe"}]});
        let rows = vma_rows(&report, &truth("0xa"));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].unwrap()["faults"], 16);
        assert_eq!(split_bo("bo3:entries.pte"), (Some(3), "entries.pte"));
        assert_eq!(split_bo("faults"), (None, "faults"));
        // The prediction of 0xa against the real run at 0xb: equal.
        let pred = vma_rows(&report, &truth("0xa"));
        let real = vma_rows(&report, &truth("0xb"));
        let c = what_if_checks("twin", true, &pred, &real);
        assert!(c.iter().all(|c| c.outcome == "pass"), "{c:?}");
        // A wrong prediction fails and says which number.
        let mut report2 = report.clone();
        report2["vmas"][0]["what_if"]["module_helper"]["pte"] = json!(15);
        let pred = vma_rows(&report2, &truth("0xa"));
        let c = what_if_checks("twin", true, &pred, &real);
        let bad: Vec<_> = c.iter().filter(|c| c.outcome == "fail").collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].what, "what-if vma0 pte = twin entries.pte");
        let mut r = evaluate(
            scenario("gpu-runtime-range"),
            "6.1.0",
            "kprobe",
            &report,
            &json!({}),
            &BTreeMap::new(),
        );
        add_checks(&mut r, c);
        assert_eq!(r.status, Status::Fail);
        assert!(r.reason.unwrap().contains("what-if vma0 pte"));
        // No what-if without returns: not visible, not failed.
        let c = what_if_checks("twin", false, &pred, &real);
        assert!(c.iter().all(|c| c.outcome == "not-visible"));
        // A VMA the predictor lacks fails.
        let none = vma_rows(&report, &truth("0xc"));
        let c = what_if_checks("twin", true, &none, &real);
        assert!(c.iter().all(|c| c.outcome == "fail"));
    }

    #[test]
    fn scenario_table_is_consistent() {
        let mut names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len(), "duplicate scenario names");
        for s in SCENARIOS {
            assert_eq!(s.todo.is_none(), !s.workload.is_empty(), "{}", s.name);
            // Every scenario with a mapping checks the tool's fault count (of each buffer
            // object, for the GPU runtime).
            if s.todo.is_none() && s.workload.first() != Some(&"gpu-errors") {
                assert!(
                    s.checks.iter().any(|c| matches!(c.source,
                        Source::Tool(k) if split_bo(k).1 == "faults")),
                    "{}",
                    s.name
                );
            }
            // A what-if twin exists and runs the range policy.
            if let Some(t) = s.predicts {
                let twin = SCENARIOS.iter().find(|x| x.name == t).expect(t);
                assert!(twin.workload.contains(&"range"), "{t}");
            }
        }
        let keys = vmstat_keys(&SCENARIOS.iter().collect::<Vec<_>>());
        assert_eq!(
            keys,
            [
                "thp_fault_alloc",
                "thp_fault_fallback",
                "thp_file_alloc",
                "thp_file_mapped"
            ]
        );
        assert_eq!(
            event_keys(scenario("fsdax-misaligned")),
            ["event:fs_dax:dax_pte_fault"]
        );
        assert!(event_keys(scenario("thp-aligned")).is_empty());
        let vm = parse_vmstat("nr_free_pages 10\nthp_fault_alloc 3\n");
        assert_eq!(vm["thp_fault_alloc"], 3);
    }
}
