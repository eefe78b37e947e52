//! Kernel knowledge, as data: return codes, fault flags, the probes and the member offsets
//! the programs need. Everything version-dependent about the kernel lives here.

use std::path::Path;

use huge_fault_common::KernelOffsets;

use crate::btf::Btf;

/// The ABI values (`vm_fault_t`, fault flags, x86 error code, `vm_flags`) shared with the
/// programs.
pub use huge_fault_common::kabi::*;

/// A kind of fault whose first call (under the per-VMA lock, `FAULT_FLAG_VMA_LOCK`) returns
/// VM_FAULT_RETRY because that lock is not enough, so that x86 calls `handle_mm_fault` again
/// under the mmap lock, without `FAULT_FLAG_TRIED` (arch/x86/mm/fault.c adds it only after a
/// major first call). Read from Debian's 6.12.117 and 7.2.13 sources; Debian's 6.1 has no
/// per-VMA lock (the lab's three kernels; 6.4 to 6.11 differ and are not listed).
#[derive(Clone, Copy, Debug)]
pub struct VmaLockRetry {
    /// The first kernel (major, minor) of the lab's where it holds.
    pub since: (u32, u32),
    pub faults: &'static str,
    /// Where the kernel returns RETRY.
    pub source: &'static str,
}

pub const VMA_LOCK_RETRIES: &[VmaLockRetry] = &[
    VmaLockRetry {
        since: (6, 12),
        faults: "every fault that reaches the PTE path of a `fault` handler without \
                 `map_pages` (DAX files, device-dax below its alignment, vfio-pci, DRM TTM \
                 and GEM shmem, the lab's driver); `huge_fault` is asked first, under the \
                 VMA lock, and asked again for a PMD in the second call when no PTE table \
                 exists yet",
        source: "mm/memory.c vmf_can_call_fault (do_read_fault, do_cow_fault, \
                 do_shared_fault)",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "write-protect faults of such mappings with `pfn_mkwrite` or `page_mkwrite`",
        source: "mm/memory.c wp_pfn_shared, wp_page_shared",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "the first write to anonymous memory without an anon_vma yet (also THP, \
                 COW and private hugetlb), only when mmap_read_trylock fails",
        source: "mm/memory.c __vmf_anon_prepare",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "device-private memory (HMM) swap entries; on 7.2 device-private PMDs too",
        source: "mm/memory.c do_swap_page, mm/huge_memory.c do_huge_pmd_device_private",
    },
    VmaLockRetry {
        since: (6, 12),
        faults: "a VMA armed by userfaultfd",
        source: "handle_userfault (fs/userfaultfd.c; mm/userfaultfd.c on 7.2)",
    },
];

/// `A|B|C` names of the set bits of `value`; unknown bits as hex.
pub fn bit_names(value: u32, table: &[(u32, &str)]) -> String {
    let mut parts = Vec::new();
    let mut rest = value;
    for &(bit, name) in table {
        if value & bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// How the fault lifecycle is observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Fentry,
    Kprobe,
    TracepointOnly,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fentry => "fentry",
            Mode::Kprobe => "kprobe",
            Mode::TracepointOnly => "tracepoint-only",
        }
    }
}

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A kernel function, by BTF/kallsyms name.
    Function(&'static str),
    /// `category:name` under tracefs `events/`.
    Tracepoint(&'static str, &'static str),
    /// A perf software event, on every online CPU.
    SoftwareEvent(&'static str),
    /// Every function in /proc/kallsyms whose name ends with this suffix (modules
    /// included): the `huge_fault` handlers of DAX, file systems and drivers.
    Suffix(&'static str),
    /// The range-insert helper named by `--range-helper` (C name or Rust path).
    RangeHelper,
}

/// The range-insert helper probed by default: the lab driver's Rust helper.
pub const DEFAULT_RANGE_HELPER: &str = "hf_range::kernel::insert_range,hf_vmf_insert_range";

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Function(f) => f.to_string(),
            Target::Tracepoint(c, n) => format!("{c}:{n}"),
            Target::SoftwareEvent(e) => format!("perf:{e}"),
            Target::Suffix(s) => format!("*{s}"),
            Target::RangeHelper => "range-insert helper".into(),
        }
    }
}

/// The program type, which decides how it is loaded and attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgKind {
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
    TracePoint,
    PerfEvent,
}

/// One program of the object, and when it is used.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    /// Program name in the object.
    pub program: &'static str,
    pub kind: ProgKind,
    pub target: Target,
    /// The mode this program serves; a tracepoint serving several modes is listed once per mode.
    pub mode: Mode,
    /// Without it the mode cannot work (the fault lifecycle).
    pub required: bool,
    /// What the program contributes, for the attach summary.
    pub role: &'static str,
}

const HMF: &str = "handle_mm_fault";

/// The fault lifecycle per mode, required for the mode to work, plus the optional
/// tracepoint-only extras. Order matters: it is the attach order.
const LIFECYCLE: &[ProbeSpec] = &[
    ProbeSpec {
        program: "hf_fentry_handle_mm_fault",
        kind: ProgKind::FEntry,
        target: Target::Function(HMF),
        mode: Mode::Fentry,
        required: true,
        role: "fault entry",
    },
    ProbeSpec {
        program: "hf_fexit_handle_mm_fault",
        kind: ProgKind::FExit,
        target: Target::Function(HMF),
        mode: Mode::Fentry,
        required: true,
        role: "fault return",
    },
    ProbeSpec {
        program: "hf_kprobe_handle_mm_fault",
        kind: ProgKind::KProbe,
        target: Target::Function(HMF),
        mode: Mode::Kprobe,
        required: true,
        role: "fault entry",
    },
    ProbeSpec {
        program: "hf_kretprobe_handle_mm_fault",
        kind: ProgKind::KRetProbe,
        target: Target::Function(HMF),
        mode: Mode::Kprobe,
        required: true,
        role: "fault return",
    },
    ProbeSpec {
        program: "hf_tp_page_fault_user",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_user"),
        mode: Mode::TracepointOnly,
        required: true,
        role: "fault entry (user mode)",
    },
    ProbeSpec {
        program: "hf_perf_minor_fault",
        kind: ProgKind::PerfEvent,
        target: Target::SoftwareEvent("minor-faults"),
        mode: Mode::TracepointOnly,
        required: true,
        role: "completed minor faults",
    },
    ProbeSpec {
        program: "hf_perf_major_fault",
        kind: ProgKind::PerfEvent,
        target: Target::SoftwareEvent("major-faults"),
        mode: Mode::TracepointOnly,
        required: true,
        role: "completed major faults",
    },
    ProbeSpec {
        program: "hf_tp_page_fault_kernel",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_kernel"),
        mode: Mode::TracepointOnly,
        required: false,
        role: "fault entry (kernel mode, e.g. copy_to_user)",
    },
];

/// Optional probes of the modes that see every call (fentry and kprobe): the exception
/// tracepoints for the x86 error code, and the kretprobes that record levels and entries.
/// Their `mode` is set per mode by [`probes`].
const CALL_MODE_EXTRAS: &[ProbeSpec] = &[
    ProbeSpec {
        program: "hf_tp_page_fault_user",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_user"),
        mode: Mode::Fentry,
        required: false,
        role: "x86 error code of user faults",
    },
    ProbeSpec {
        program: "hf_tp_page_fault_kernel",
        kind: ProgKind::TracePoint,
        target: Target::Tracepoint("exceptions", "page_fault_kernel"),
        mode: Mode::Fentry,
        required: false,
        role: "x86 error code of kernel-mode faults on user memory",
    },
    ProbeSpec {
        program: "hf_kret_do_huge_pmd_anonymous_page",
        kind: ProgKind::KRetProbe,
        target: Target::Function("do_huge_pmd_anonymous_page"),
        mode: Mode::Fentry,
        required: false,
        role: "anonymous THP: PMD mapped or FALLBACK",
    },
    ProbeSpec {
        program: "hf_kret_do_set_pmd",
        kind: ProgKind::KRetProbe,
        target: Target::Function("do_set_pmd"),
        mode: Mode::Fentry,
        required: false,
        role: "file and shmem THP mapped by a PMD",
    },
    ProbeSpec {
        program: "hf_kret_insert_pmd",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn_pmd_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "driver/DAX PMD insert (5.15 ... 6.3)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pmd",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn_pmd"),
        mode: Mode::Fentry,
        required: false,
        role: "driver/DAX PMD insert (6.4+)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pmd",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_folio_pmd"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX PMD folio insert (6.15+)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pud",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn_pud_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "driver/DAX PUD insert (5.15 ... 6.3)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pud",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn_pud"),
        mode: Mode::Fentry,
        required: false,
        role: "driver/DAX PUD insert (6.4+)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pud",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_folio_pud"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX PUD folio insert (6.15+)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn_pmd_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "address and pfn of a PMD insert (5.15 ... 6.3)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn_pmd"),
        mode: Mode::Fentry,
        required: false,
        role: "address and pfn of a PMD insert (6.4+)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_folio_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_folio_pmd"),
        mode: Mode::Fentry,
        required: false,
        role: "address of a PMD folio insert (6.15+)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn_pud_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "address and pfn of a PUD insert (5.15 ... 6.3)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn_pud"),
        mode: Mode::Fentry,
        required: false,
        role: "address and pfn of a PUD insert (6.4+)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_folio_huge",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_folio_pud"),
        mode: Mode::Fentry,
        required: false,
        role: "address of a PUD folio insert (6.15+)",
    },
    ProbeSpec {
        program: "hf_kprobe_huge_fault",
        kind: ProgKind::KProbe,
        target: Target::Suffix("_huge_fault"),
        mode: Mode::Fentry,
        required: false,
        role: "huge_fault handlers: the level asked for",
    },
    ProbeSpec {
        program: "hf_kret_huge_fault",
        kind: ProgKind::KRetProbe,
        target: Target::Suffix("_huge_fault"),
        mode: Mode::Fentry,
        required: false,
        role: "huge_fault handlers: FALLBACK or mapped, per level",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn"),
        mode: Mode::Fentry,
        required: false,
        role: "driver PTE insert: its address",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn"),
        mode: Mode::Fentry,
        required: false,
        role: "driver PTE insert",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_pfn_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "driver PTE insert with a pgprot: its address",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_pfn_prot"),
        mode: Mode::Fentry,
        required: false,
        role: "driver PTE insert with a pgprot",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_mixed"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX/driver PTE insert (address, pfn)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_mixed"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX/driver PTE insert (result)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_mixed_mkwrite"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX write PTE insert, up to 6.14 (address, pfn)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_mixed_mkwrite"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX write PTE insert, up to 6.14 (result)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte_vmf",
        kind: ProgKind::KProbe,
        target: Target::Function("vmf_insert_page_mkwrite"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX PTE insert, 6.15+ (address; no pfn)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vmf_insert_page_mkwrite"),
        mode: Mode::Fentry,
        required: false,
        role: "DAX PTE insert, 6.15+ (result)",
    },
    ProbeSpec {
        program: "hf_kprobe_insert_pte_page",
        kind: ProgKind::KProbe,
        target: Target::Function("vm_insert_page"),
        mode: Mode::Fentry,
        required: false,
        role: "driver page insert (address; no pfn)",
    },
    ProbeSpec {
        program: "hf_kret_insert_pte",
        kind: ProgKind::KRetProbe,
        target: Target::Function("vm_insert_page"),
        mode: Mode::Fentry,
        required: false,
        role: "driver page insert (result)",
    },
    ProbeSpec {
        program: "hf_kprobe_anon_rmap",
        kind: ProgKind::KProbe,
        target: Target::Function("folio_add_new_anon_rmap"),
        mode: Mode::Fentry,
        required: false,
        role: "multi-size THP: PTEs per new anonymous folio (6.8+)",
    },
    ProbeSpec {
        program: "hf_kprobe_range",
        kind: ProgKind::KProbe,
        target: Target::RangeHelper,
        mode: Mode::Fentry,
        required: false,
        role: "range-insert helper: entry",
    },
    ProbeSpec {
        program: "hf_kret_range",
        kind: ProgKind::KRetProbe,
        target: Target::RangeHelper,
        mode: Mode::Fentry,
        required: false,
        role: "range-insert helper: result",
    },
    ProbeSpec {
        program: "hf_kret_hugetlb_fault",
        kind: ProgKind::KRetProbe,
        target: Target::Function("hugetlb_fault"),
        mode: Mode::Fentry,
        required: false,
        role: "hugetlbfs: PMD or PUD by the VMA's page size",
    },
];

/// The generic huge-page paths whose probes must all be attached for the report to claim
/// levels and sizes (the driver paths add to them where a kernel has them).
pub const GENERIC_SIZE_FUNCTIONS: [&str; 3] =
    ["do_huge_pmd_anonymous_page", "do_set_pmd", "hugetlb_fault"];

/// Every probe of one mode, in attach order.
pub fn probes(mode: Mode) -> Vec<ProbeSpec> {
    let mut v: Vec<ProbeSpec> = LIFECYCLE
        .iter()
        .filter(|p| p.mode == mode)
        .copied()
        .collect();
    if mode != Mode::TracepointOnly {
        v.extend(CALL_MODE_EXTRAS.iter().map(|p| ProbeSpec { mode, ..*p }));
    }
    v
}

/// The names of every program the tool loads in some mode or for `run`.
pub fn all_programs() -> std::collections::BTreeSet<&'static str> {
    LIFECYCLE
        .iter()
        .chain(CALL_MODE_EXTRAS)
        .chain([&FOLLOW_PROBE])
        .map(|p| p.program)
        .collect()
}

/// Follows the processes `huge-fault run` starts: used in every mode, only for `run`.
pub const FOLLOW_PROBE: ProbeSpec = ProbeSpec {
    program: "hf_tp_sched_process_fork",
    kind: ProgKind::TracePoint,
    target: Target::Tracepoint("sched", "sched_process_fork"),
    mode: Mode::TracepointOnly,
    required: true,
    role: "follows the traced command's children",
};

/// The offset of a field in a tracepoint `format` file.
pub fn tracepoint_field_offset(format: &str, name: &str) -> Option<u32> {
    let line = format.lines().find(|l| {
        l.trim_start().starts_with("field:")
            && l.split(';')
                .next()
                .is_some_and(|d| d.trim_end().rsplit([' ', '*']).next() == Some(name))
    })?;
    line.split(';')
        .find_map(|p| p.trim().strip_prefix("offset:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What a mode can and cannot see, stated once for the table, the JSON and the README.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Visibility {
    /// Every `handle_mm_fault` call, including calls that returned VM_FAULT_RETRY.
    pub every_call: bool,
    /// The `vm_fault_t` each call returned (errors, MAJOR, RETRY, FALLBACK).
    pub return_codes: bool,
    /// Faults that failed (SIGSEGV, SIGBUS, OOM) appear as faults.
    pub failed_faults: bool,
    /// Faults raised by the kernel on behalf of a process (get_user_pages, no pt_regs).
    pub gup_faults: bool,
    /// What the latency measures.
    pub latency: &'static str,
    /// What cannot be seen in this mode, in words.
    pub blind_spots: Vec<&'static str>,
}

impl Mode {
    pub fn visibility(self) -> Visibility {
        match self {
            Mode::Fentry | Mode::Kprobe => Visibility {
                every_call: true,
                return_codes: true,
                failed_faults: true,
                gup_faults: true,
                latency: "handle_mm_fault entry to return",
                blind_spots: vec![],
            },
            Mode::TracepointOnly => Visibility {
                every_call: false,
                return_codes: false,
                failed_faults: false,
                gup_faults: false,
                latency: "fault exception to completion (includes retries and exception entry)",
                blind_spots: vec![
                    "calls that returned VM_FAULT_RETRY (only the completing call is seen)",
                    "return codes: FALLBACK, NOPAGE, errors",
                    "failed faults (SIGSEGV, SIGBUS, OOM)",
                    "faults raised by get_user_pages (no user registers)",
                ],
            },
        }
    }
}

/// Resolves the member offsets the programs read, from the kernel's BTF.
pub fn resolve_offsets(btf: &Btf) -> Result<KernelOffsets, String> {
    let m = |s: &str, f: &str| btf.member_offset(s, f).map_err(|e| format!("{s}.{f}: {e}"));
    Ok(KernelOffsets {
        valid: 1,
        vma_start: m("vm_area_struct", "vm_start")?,
        vma_end: m("vm_area_struct", "vm_end")?,
        vma_flags: m("vm_area_struct", "vm_flags")?,
        vma_pgoff: m("vm_area_struct", "vm_pgoff")?,
        vma_file: m("vm_area_struct", "vm_file")?,
        file_inode: m("file", "f_inode")?,
        inode_ino: m("inode", "i_ino")?,
        inode_sb: m("inode", "i_sb")?,
        sb_dev: m("super_block", "s_dev")?,
        // `enum page_entry_size` is gone since 6.6, when huge_fault took an order.
        huge_fault_order: u32::from(
            btf.find(crate::btf::kind::ENUM, "page_entry_size")
                .is_none(),
        ),
        vmf_address: btf.member_offset("vm_fault", "address").unwrap_or(0),
        folio_flags_1: btf
            .enum_value("pageflags", "PG_head")
            .and(btf.member_offset("folio", "_flags_1").ok())
            .unwrap_or(0),
        pg_head: btf.enum_value("pageflags", "PG_head").unwrap_or(0),
        task_mm: btf
            .member_offset("mm_struct", "mm_lock_seq")
            .and(btf.member_offset("task_struct", "mm"))
            .unwrap_or(0),
        mm_lock_seq: btf
            .member_offset("task_struct", "mm")
            .and(btf.member_offset("mm_struct", "mm_lock_seq"))
            .unwrap_or(0),
        ..hugetlb_offsets(btf)
    })
}

/// The functions of /proc/kallsyms a suffix target names, sorted, without duplicates.
pub fn functions_with_suffix<'a>(
    functions: &'a std::collections::HashSet<String>,
    suffix: &str,
) -> Vec<&'a str> {
    let mut v: Vec<&str> = functions
        .iter()
        .map(String::as_str)
        // `__pfx_*` padding symbols are already left out by the kallsyms parser.
        .filter(|f| f.ends_with(suffix) && f.len() > suffix.len() && !f.contains('.'))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Offsets to a hugetlb VMA's page size (`file → inode → super_block → hugetlbfs_sb_info →
/// hstate → order`); all zero, with `hstate_valid` 0, when the kernel lacks one of them.
fn hugetlb_offsets(btf: &Btf) -> KernelOffsets {
    let m = |s: &str, f: &str| btf.member_offset(s, f).ok();
    match (
        m("super_block", "s_fs_info"),
        m("hugetlbfs_sb_info", "hstate"),
        m("hstate", "order"),
    ) {
        (Some(sb_fs_info), Some(hugetlbfs_hstate), Some(hstate_order)) => KernelOffsets {
            hstate_valid: 1,
            sb_fs_info,
            hugetlbfs_hstate,
            hstate_order,
            ..Default::default()
        },
        _ => KernelOffsets::default(),
    }
}

/// Field offsets of `exceptions:page_fault_user` the programs assume.
pub const EXCEPTION_FIELDS: &[(&str, u32)] = huge_fault_common::config::exception_fields::ALL;

/// Checks a tracepoint `format` file against the offsets the programs assume.
pub fn check_tracepoint_format(format: &str, fields: &[(&str, u32)]) -> Result<(), String> {
    for &(name, want) in fields {
        let offset = tracepoint_field_offset(format, name)
            .ok_or_else(|| format!("field `{name}` missing"))?;
        if offset != want {
            return Err(format!(
                "field `{name}` at offset {offset}, programs expect {want}"
            ));
        }
    }
    Ok(())
}

/// The kernel's build configuration, where the kernel exposes it.
pub fn kernel_config_value(key: &str) -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let path = format!("/boot/config-{}", release.trim());
    let text = std::fs::read_to_string(path).ok()?;
    config_lookup(&text, key)
}

/// `y`, `m`, a value, or `n` for "is not set"; `None` when the key is absent.
pub fn config_lookup(config: &str, key: &str) -> Option<String> {
    for line in config.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
        if line.strip_prefix("# ").and_then(|r| r.strip_prefix(key)) == Some(" is not set") {
            return Some("n".into());
        }
    }
    None
}

/// Why kprobes cannot be used on this kernel, or `None` when they look available.
pub fn kprobes_unavailable(sysfs: &Path, tracefs: Option<&Path>) -> Option<String> {
    if sysfs.join("bus/event_source/devices/kprobe").exists() {
        return None;
    }
    if tracefs.is_some_and(|t| t.join("kprobe_events").exists()) {
        return None;
    }
    let why = match kernel_config_value("CONFIG_KPROBES").as_deref() {
        Some("n") => "kernel built without CONFIG_KPROBES",
        Some(_) => "kernel has CONFIG_KPROBES but exposes neither the kprobe PMU nor kprobe_events",
        None => "kernel built without CONFIG_KPROBES (no kprobe PMU, no kprobe_events)",
    };
    Some(format!("kprobes unavailable: {why}"))
}

/// The functions of a /proc/kallsyms listing (text symbols, modules included) that a probe
/// may target: to tell a probe on a function this kernel does not have from one that
/// failed, and to expand suffix targets. Only those are kept (a kernel has 100,000 text
/// symbols; the tool's memory peaks at start-up).
pub fn kallsyms_functions(text: &str) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut suffixes = Vec::new();
    for p in LIFECYCLE.iter().chain(CALL_MODE_EXTRAS) {
        match p.target {
            Target::Function(f) => {
                names.insert(f);
            }
            Target::Suffix(s) => suffixes.push(s),
            _ => {}
        }
    }
    crate::symbols::text_symbols(text)
        .map(|(name, _)| name)
        .filter(|n| names.contains(n) || suffixes.iter().any(|s| n.ends_with(s)))
        .map(str::to_string)
        .collect()
}

/// Explains a failure to load an fentry/fexit program, from the errno.
pub fn fentry_refusal(errno: Option<i32>) -> String {
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "fentry refused: the kernel denied loading a tracing program (EPERM): no BPF \
             trampoline support (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) or ftrace disabled"
                .into()
        }
        Some(libc::ENOTSUPP_KERNEL) | Some(libc::EOPNOTSUPP) => {
            "fentry unsupported by this kernel (no BPF trampoline)".into()
        }
        Some(libc::ENOENT) | Some(libc::ESRCH) => {
            "fentry target has no BTF in this kernel (handle_mm_fault missing from vmlinux BTF)"
                .into()
        }
        Some(e) => format!(
            "fentry unavailable: {}",
            std::io::Error::from_raw_os_error(e)
        ),
        None => "fentry unavailable".into(),
    }
}

/// Linux's internal ENOTSUPP (524), which the BPF syscall returns for missing trampolines.
mod libc {
    pub use ::libc::*;
    pub const ENOTSUPP_KERNEL: i32 = 524;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vma_lock_retry_names_where_the_kernel_returns_it() {
        for r in VMA_LOCK_RETRIES {
            assert!(r.since >= (6, 4), "no per-VMA lock before 6.4: {r:?}");
            assert!(r.source.contains('/') && !r.faults.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn bit_names_lists_known_and_unknown_bits() {
        assert_eq!(bit_names(0x0104, VM_FAULT_BITS), "MAJOR|NOPAGE");
        assert_eq!(bit_names(0x0400 | 0x8000, VM_FAULT_BITS), "RETRY|0x8000");
        assert_eq!(bit_names(0, VM_FAULT_BITS), "0");
        assert_eq!(
            bit_names(FAULT_FLAG_WRITE | FAULT_FLAG_TRIED, FAULT_FLAG_BITS),
            "WRITE|TRIED"
        );
    }

    #[test]
    fn every_mode_has_its_required_lifecycle_probes() {
        for mode in [Mode::Fentry, Mode::Kprobe, Mode::TracepointOnly] {
            let required = probes(mode)
                .iter()
                .filter(|p| p.mode == mode && p.required)
                .count();
            assert!(required >= 2, "{mode:?} has {required} required probes");
        }
    }

    #[test]
    fn tracepoint_format_is_checked_against_the_programs() {
        // The format file of the host kernel (6.18), as tracefs prints it.
        let format = "name: page_fault_user\nID: 123\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
            \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long ip;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long error_code;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(check_tracepoint_format(format, EXCEPTION_FIELDS), Ok(()));
        let moved = format.replace("offset:24", "offset:32");
        assert_eq!(
            check_tracepoint_format(&moved, EXCEPTION_FIELDS),
            Err("field `error_code` at offset 32, programs expect 24".into())
        );
        let missing = format.replace("error_code", "err");
        assert!(check_tracepoint_format(&missing, EXCEPTION_FIELDS).is_err());
    }

    #[test]
    fn the_generic_size_paths_are_probed_in_both_call_modes() {
        for mode in [Mode::Fentry, Mode::Kprobe] {
            for f in GENERIC_SIZE_FUNCTIONS {
                assert!(
                    probes(mode).iter().any(|p| p.target == Target::Function(f)),
                    "{mode:?} lacks {f}"
                );
            }
        }
    }

    #[test]
    fn kallsyms_lists_text_symbols_only() {
        let text = "0000000000000000 T vmf_insert_pfn_pmd_prot\n\
                    0000000000000000 t do_set_pmd\n\
                    0000000000000000 D some_data\n\
                    0000000000000000 t dev_dax_huge_fault\t[device_dax]\n";
        let f = kallsyms_functions(&format!("{text}0000000000000000 T printk\n"));
        assert!(f.contains("vmf_insert_pfn_pmd_prot") && f.contains("do_set_pmd"));
        assert!(f.contains("dev_dax_huge_fault"));
        assert!(!f.contains("some_data"));
        // Functions no probe targets are not kept.
        assert!(!f.contains("printk"));
    }

    #[test]
    fn suffix_targets_expand_from_kallsyms() {
        let f = kallsyms_functions(
            "0 t dev_dax_huge_fault\t[device_dax]\n0 t ext4_dax_huge_fault\t[ext4]\n\
             0 T handle_mm_fault\n0 t foo_huge_fault.cold\n0 t _huge_fault\n\
             0 t __pfx_dev_dax_huge_fault\n",
        );
        assert_eq!(
            functions_with_suffix(&f, "_huge_fault"),
            ["dev_dax_huge_fault", "ext4_dax_huge_fault"]
        );
    }

    #[test]
    fn fork_child_pid_offset_from_old_and_new_layouts() {
        // 6.18: comms as __data_loc.
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
                   \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
                   \tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\
                   \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(tracepoint_field_offset(new, "child_pid"), Some(20));
        // 6.1: fixed 16-byte comms.
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                   \tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
                   \tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
                   \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(tracepoint_field_offset(old, "child_pid"), Some(44));
        assert_eq!(tracepoint_field_offset(old, "nope"), None);
    }

    #[test]
    fn config_lookup_reads_set_and_unset_keys() {
        let cfg = "CONFIG_KPROBES=y\n# CONFIG_FTRACE is not set\nCONFIG_HZ=250\n";
        assert_eq!(config_lookup(cfg, "CONFIG_KPROBES").as_deref(), Some("y"));
        assert_eq!(config_lookup(cfg, "CONFIG_FTRACE").as_deref(), Some("n"));
        assert_eq!(config_lookup(cfg, "CONFIG_HZ").as_deref(), Some("250"));
        assert_eq!(config_lookup(cfg, "CONFIG_KPROBE"), None);
    }

    #[test]
    fn kprobe_detection_looks_for_the_pmu_or_kprobe_events() {
        let dir = std::env::temp_dir().join(format!("hf-kp-{}", std::process::id()));
        let sys = dir.join("sys");
        let tr = dir.join("tracing");
        std::fs::create_dir_all(sys.join("bus/event_source/devices")).unwrap();
        std::fs::create_dir_all(&tr).unwrap();
        let why = kprobes_unavailable(&sys, Some(&tr)).expect("nothing there");
        assert!(why.starts_with("kprobes unavailable: "), "{why}");
        std::fs::write(tr.join("kprobe_events"), "").unwrap();
        assert_eq!(kprobes_unavailable(&sys, Some(&tr)), None);
        std::fs::remove_file(tr.join("kprobe_events")).unwrap();
        std::fs::create_dir_all(sys.join("bus/event_source/devices/kprobe")).unwrap();
        assert_eq!(kprobes_unavailable(&sys, None), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offsets_resolve_through_the_btf_of_this_machine() {
        // Every kernel huge-fault supports has these members; the host's BTF must resolve.
        let Ok(raw) = Btf::from_sys_fs() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        let btf = Btf::parse(&raw).expect("vmlinux BTF parses");
        let o = resolve_offsets(&btf).expect("offsets resolve");
        assert_eq!((o.vma_start, o.vma_end), (0, 8));
        assert!(o.vma_pgoff > o.vma_end && o.vma_file > o.vma_end);
        assert_eq!(o.hstate_valid, 1, "hugetlb offsets resolve on this kernel");
        // The host runs 6.18: huge_fault takes an order.
        assert_eq!(o.huge_fault_order, 1);
    }
}
