//! Kernel ABI values the programs and the tool both read: `vm_fault_t` bits, fault flags,
//! the x86 page-fault error code and the `vm_flags` bits that classify a mapping. They are
//! the same on every kernel huge-fault supports, except where a bit says otherwise.

/// `enum vm_fault_reason` (include/linux/mm_types.h).
pub const VM_FAULT_OOM: u32 = 0x0001;
pub const VM_FAULT_SIGBUS: u32 = 0x0002;
pub const VM_FAULT_MAJOR: u32 = 0x0004;
/// Removed in 6.2; never set on later kernels.
pub const VM_FAULT_WRITE: u32 = 0x0008;
pub const VM_FAULT_HWPOISON: u32 = 0x0010;
pub const VM_FAULT_HWPOISON_LARGE: u32 = 0x0020;
pub const VM_FAULT_SIGSEGV: u32 = 0x0040;
pub const VM_FAULT_NOPAGE: u32 = 0x0100;
pub const VM_FAULT_LOCKED: u32 = 0x0200;
pub const VM_FAULT_RETRY: u32 = 0x0400;
pub const VM_FAULT_FALLBACK: u32 = 0x0800;
pub const VM_FAULT_DONE_COW: u32 = 0x1000;
pub const VM_FAULT_NEEDDSYNC: u32 = 0x2000;
/// 5.19+.
pub const VM_FAULT_COMPLETED: u32 = 0x4000;

/// The fault failed (the kernel's `VM_FAULT_ERROR`, which includes FALLBACK: a level's
/// answer with one of these bits mapped nothing).
pub const VM_FAULT_ERROR: u32 = VM_FAULT_OOM
    | VM_FAULT_SIGBUS
    | VM_FAULT_SIGSEGV
    | VM_FAULT_HWPOISON
    | VM_FAULT_HWPOISON_LARGE
    | VM_FAULT_FALLBACK;

/// A step's result with none of these bits mapped its entry.
pub const NOT_MAPPED: u32 = VM_FAULT_ERROR | VM_FAULT_RETRY;

/// Faults that failed: the fault is counted as an error.
pub const FAULT_FAILED: u32 =
    VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE;

/// `vm_fault_t` bits with their names, for display.
pub const VM_FAULT_BITS: &[(u32, &str)] = &[
    (VM_FAULT_OOM, "OOM"),
    (VM_FAULT_SIGBUS, "SIGBUS"),
    (VM_FAULT_MAJOR, "MAJOR"),
    (VM_FAULT_WRITE, "WRITE"),
    (VM_FAULT_HWPOISON, "HWPOISON"),
    (VM_FAULT_HWPOISON_LARGE, "HWPOISON_LARGE"),
    (VM_FAULT_SIGSEGV, "SIGSEGV"),
    (VM_FAULT_NOPAGE, "NOPAGE"),
    (VM_FAULT_LOCKED, "LOCKED"),
    (VM_FAULT_RETRY, "RETRY"),
    (VM_FAULT_FALLBACK, "FALLBACK"),
    (VM_FAULT_DONE_COW, "DONE_COW"),
    (VM_FAULT_NEEDDSYNC, "NEEDDSYNC"),
    (VM_FAULT_COMPLETED, "COMPLETED"),
];

/// `enum fault_flag` (include/linux/mm_types.h).
pub const FAULT_FLAG_WRITE: u32 = 1 << 0;
pub const FAULT_FLAG_MKWRITE: u32 = 1 << 1;
pub const FAULT_FLAG_ALLOW_RETRY: u32 = 1 << 2;
pub const FAULT_FLAG_RETRY_NOWAIT: u32 = 1 << 3;
pub const FAULT_FLAG_KILLABLE: u32 = 1 << 4;
/// Set on a call after a VM_FAULT_RETRY under the mmap lock, and after a per-VMA-lock retry
/// only when that call was major (arch/x86/mm/fault.c).
pub const FAULT_FLAG_TRIED: u32 = 1 << 5;
pub const FAULT_FLAG_USER: u32 = 1 << 6;
pub const FAULT_FLAG_REMOTE: u32 = 1 << 7;
pub const FAULT_FLAG_INSTRUCTION: u32 = 1 << 8;
pub const FAULT_FLAG_INTERRUPTIBLE: u32 = 1 << 9;
pub const FAULT_FLAG_UNSHARE: u32 = 1 << 10;
pub const FAULT_FLAG_ORIG_PTE_VALID: u32 = 1 << 11;
/// 6.4+: the call runs under the per-VMA lock, not the mmap lock.
pub const FAULT_FLAG_VMA_LOCK: u32 = 1 << 12;

pub const FAULT_FLAG_BITS: &[(u32, &str)] = &[
    (FAULT_FLAG_WRITE, "WRITE"),
    (FAULT_FLAG_MKWRITE, "MKWRITE"),
    (FAULT_FLAG_ALLOW_RETRY, "ALLOW_RETRY"),
    (FAULT_FLAG_RETRY_NOWAIT, "RETRY_NOWAIT"),
    (FAULT_FLAG_KILLABLE, "KILLABLE"),
    (FAULT_FLAG_TRIED, "TRIED"),
    (FAULT_FLAG_USER, "USER"),
    (FAULT_FLAG_REMOTE, "REMOTE"),
    (FAULT_FLAG_INSTRUCTION, "INSTRUCTION"),
    (FAULT_FLAG_INTERRUPTIBLE, "INTERRUPTIBLE"),
    (FAULT_FLAG_UNSHARE, "UNSHARE"),
    (FAULT_FLAG_ORIG_PTE_VALID, "ORIG_PTE_VALID"),
    (FAULT_FLAG_VMA_LOCK, "VMA_LOCK"),
];

/// x86 page-fault error code (arch/x86/include/asm/trap_pf.h).
pub const X86_PF_PROT: u32 = 1 << 0;
pub const X86_PF_WRITE: u32 = 1 << 1;
pub const X86_PF_USER: u32 = 1 << 2;
pub const X86_PF_INSTR: u32 = 1 << 4;

/// `vm_flags` bits that classify a mapping (include/linux/mm.h).
pub const VM_SHARED: u64 = 0x0000_0008;
pub const VM_PFNMAP: u64 = 0x0000_0400;
pub const VM_IO: u64 = 0x0000_4000;
pub const VM_HUGETLB: u64 = 0x0040_0000;
pub const VM_MIXEDMAP: u64 = 0x1000_0000;
pub const VM_HUGEPAGE: u64 = 0x2000_0000;
pub const VM_NOHUGEPAGE: u64 = 0x4000_0000;
/// Device mappings whose entries the driver inserts by pfn.
pub const VM_SPECIAL_MAP: u64 = VM_PFNMAP | VM_MIXEDMAP;

/// The first release whose core asks PFNMAP and MIXEDMAP VMAs for huge entries: before it,
/// `hugepage_vma_check` refuses `VM_SPECIAL` VMAs, so a device driver's `huge_fault` is
/// never called (Debian 6.1 does so; 6.12 asks, for vfio-pci's huge pfnmaps).
pub const HUGE_PFNMAP_SINCE: (u32, u32) = (6, 12);

/// `mm_struct.flags` bits that turn THP off for a process (`PR_SET_THP_DISABLE`,
/// include/linux/mm_types.h or sched/coredump.h): "for every VMA" on every kernel (named
/// `MMF_DISABLE_THP` before 6.18, `MMF_DISABLE_THP_COMPLETELY` after).
pub const MMF_DISABLE_THP: u32 = 24;
/// 6.18+: `MMF_DISABLE_THP_EXCEPT_ADVISED` (`PR_THP_DISABLE_EXCEPT_ADVISED`): off except
/// for VMAs with `VM_HUGEPAGE`. The bit was `MMF_HUGE_ZERO_PAGE` before.
pub const MMF_DISABLE_THP_EXCEPT_ADVISED: u32 = 23;
pub const MMF_DISABLE_THP_EXCEPT_ADVISED_SINCE: (u32, u32) = (6, 18);
/// 6.8+: the per-size anonymous THP settings (`hugepages-*kB/enabled`) are bitmaps of
/// orders (`huge_anon_orders_{always,madvise,inherit}`); before, the global
/// `transparent_hugepage_flags` alone decided a PMD-size THP.
pub const HUGE_ANON_ORDERS_SINCE: (u32, u32) = (6, 8);
/// The order of a PMD-size THP on x86-64.
pub const PMD_ORDER: u32 = 9;
