//! What a scenario checks, as data: where a number comes from, what it must be, on which
//! kernels and in which modes; and the second counts that check the tool against a count
//! made without it.

/// Where a checked number comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A key of the tool's VMA row for the workload's range (dotted path into the JSON).
    Tool(&'static str),
    /// A key of the workload's ground-truth line.
    Truth(&'static str),
    /// A kernel count around the workload: the delta of a /proc/vmstat key or of a sysfs
    /// file holding one number (its absolute path), or `event:SYS:NAME[ if FILTER]`
    /// (`event:kprobe:FUNC` for a function, `event:kretprobe:FUNC` for its returns, the
    /// return value as `ret`) for the hits of a tracepoint or kprobe event by the
    /// workload's pid, counted by an ftrace hist trigger: the kernel's own tracing,
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
pub const fn since(mut c: Check, major: u32, minor: u32) -> Check {
    c.kernels = Needs::Kernel(major, minor, "");
    c
}

/// A check that holds on kernels from `from` and older than `to` only.
pub const fn between(mut c: Check, from: (u32, u32), to: (u32, u32)) -> Check {
    c.kernels = Needs::Between(from, to);
    c
}

/// A check that holds on kernels older than (major, minor) only.
pub const fn before(mut c: Check, major: u32, minor: u32) -> Check {
    c.kernels = Needs::Below(major, minor, "");
    c
}

pub const fn tool(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
pub const fn tool_s(key: &'static str, s: &'static str) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::S(s),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
pub const fn truth(key: &'static str, n: u64) -> Check {
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
pub const fn same(key: &'static str, other: Source) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::Same(other),
        pending: None,
        needs_return: true,
        kernels: Needs::Always,
    }
}
pub const fn vmstat(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Vmstat(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: false,
        kernels: Needs::Always,
    }
}
/// An expectation on entries per size, chains or bytes: seen in the fentry and kprobe modes.
pub const fn sized(key: &'static str, n: u64) -> Check {
    Check {
        source: Source::Tool(key),
        expect: Expected::N(n),
        pending: None,
        needs_return: true,
        kernels: Needs::Always,
    }
}
pub const fn sized_s(key: &'static str, s: &'static str) -> Check {
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
    /// Kernel at least the first (major, minor) and older than the second.
    Between((u32, u32), (u32, u32)),
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
    /// (`dax_iomap_pmd_fault`): the PMD FALLBACK steps (a PUD FALLBACK, asked when the
    /// VMA's 1 GiB slot is empty, is not counted there). Its `fs_dax:dax_pte_fault` tracepoint
    /// fires in the PTE fault handler, which the core calls on 6.12+ only after the per-VMA
    /// lock's RETRY (ext4's DAX operations have no `map_pages`): the retried faults.
    Dax,
    /// The kernel's own tracing of vfio-pci (6.12+), by ftrace probe events on the
    /// workload's pid: `vfio_pci_mmap_huge_fault`'s VM_FAULT_FALLBACK returns are the
    /// FALLBACK steps; its PTE `fault` handler `vfio_pci_mmap_page_fault` runs only after
    /// the per-VMA lock's RETRY (no `map_pages`): the retried faults; and the calls of
    /// `vmf_insert_pfn`, `vmf_insert_pfn_pmd` and `vmf_insert_pfn_pud` are the entries
    /// (every fault maps one, none is refused on a fresh mapping).
    Vfio,
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
    same("pmd_fallback_steps", Source::Vmstat("thp_fault_fallback")),
    since(
        same("retried_faults", Source::Vmstat(DAX_PTE_FAULTS)),
        6,
        12,
    ),
    before(sized("retried_faults", 0), 6, 12),
];

/// [`SecondCount::Vfio`]'s checks.
const VFIO_COUNTS: &[Check] = &[
    same("fallback_steps", Source::Vmstat(VFIO_FALLBACKS)),
    same("retried_faults", Source::Vmstat(VFIO_PTE_HANDLER)),
    same("retry_calls", Source::Vmstat(VFIO_PTE_HANDLER)),
    same("vma_lock_retries", Source::Vmstat(VFIO_PTE_HANDLER)),
    same("entries.pte", Source::Vmstat("event:kprobe:vmf_insert_pfn")),
    same(
        "entries.pmd",
        Source::Vmstat("event:kprobe:vmf_insert_pfn_pmd"),
    ),
    same(
        "entries.pud",
        Source::Vmstat("event:kprobe:vmf_insert_pfn_pud"),
    ),
];

/// vfio-pci's huge_fault answers of VM_FAULT_FALLBACK (0x800).
const VFIO_FALLBACKS: &str = "event:kretprobe:vfio_pci_mmap_huge_fault if ret == 2048";
/// vfio-pci's PTE fault handler (6.12+).
const VFIO_PTE_HANDLER: &str = "event:kprobe:vfio_pci_mmap_page_fault";

/// The PTE faults DAX handled, by the workload (see [`SecondCount::Dax`]).
const DAX_PTE_FAULTS: &str = "event:fs_dax:dax_pte_fault";

impl SecondCount {
    /// The checks it stands for.
    pub fn checks(self) -> &'static [Check] {
        match self {
            SecondCount::Driver => DRIVER_COUNTS,
            SecondCount::Dax => DAX_COUNTS,
            SecondCount::Vfio => VFIO_COUNTS,
        }
    }
}

impl Needs {
    /// Whether a kernel of this (major, minor) qualifies: `Err(reason)` if not.
    pub fn met(self, version: (u32, u32)) -> Result<(), &'static str> {
        match self {
            Needs::Kernel(maj, min, why) if version < (maj, min) => Err(why),
            Needs::Below(maj, min, why) if version >= (maj, min) => Err(why),
            Needs::Between(from, to) if version < from || version >= to => {
                Err("not a kernel of this check")
            }
            _ => Ok(()),
        }
    }
}

/// A tool key `boN:key` names buffer object N's row; a plain key the workload's range.
pub fn split_bo(key: &str) -> (Option<usize>, &str) {
    match key.split_once(':') {
        Some((bo, k)) => (bo.strip_prefix("bo").and_then(|n| n.parse().ok()), k),
        None => (None, key),
    }
}
