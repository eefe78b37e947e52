//! Every map and global of the programs: the ring buffer and the aggregate table, the
//! per-thread state, the counters, and what the tool writes before load.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use huge_fault_common::{
    AggKey, Filter, InFlight, KernelOffsets, PageWalk, Settings, ThpNow, ThpSettings,
    config::VMA_SPAN_MAX, counter,
};

/// One record per fault. The size is set by the tool at load time (`--ring-buffer-kib`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Faults counted in the kernel, per class ([`AggKey`]): every fault with `--aggregate`,
/// else each fault that found the ring buffer full. Entries are allocated on first use.
/// One count per CPU (the tool sums them): threads faulting at once on several CPUs in one
/// class would otherwise take turns on one cache line.
#[map]
pub(crate) static AGGREGATE: PerCpuHashMap<AggKey, u64> =
    PerCpuHashMap::with_max_entries(huge_fault_common::aggregate::CLASSES, BPF_F_NO_PREALLOC);

/// Where a fault's [`AggKey`] is built (152 bytes do not fit on the stack beside the rest).
#[map]
pub(crate) static AGG_SCRATCH: PerCpuArray<AggKey> = PerCpuArray::with_max_entries(1, 0);

/// Faults that returned VM_FAULT_RETRY and wait for the call that continues them, by tid:
/// a copy of their state, kept only on that rare path, for the tool to read after detach
/// (the per-thread state itself is not readable from user space). Entries are made on
/// first use and removed when the fault goes on, is closed, or its thread exits.
#[map]
pub(crate) static PENDING: HashMap<u32, InFlight> =
    HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);

/// The VMA a thread faulted in last (tracepoint-only mode, in its per-thread slot), with
/// the `mm_lock_seq` it was looked up under: valid while that sequence is unchanged.
/// `bpf_find_vma` from the fault completion event costs about 20 µs on some kernels (its
/// mmap unlock is deferred to an irq_work); the cache skips it for the next faults in the
/// same VMA.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct VmaCache {
    pub(crate) seq: u64,
    pub(crate) vma: VmaInfo,
}

/// A fault exception not yet completed: 32 bytes, copied on every fault (the whole
/// [`InFlight`] cost a 280-byte copy in and out for these four fields).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Exception {
    pub(crate) start_ns: u64,
    pub(crate) address: u64,
    pub(crate) ip: u64,
    pub(crate) error_code: u32,
    pub(crate) _pad: u32,
}

/// Anomaly and loss counters, indexed by `huge_fault_common::counter`.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Member offsets from the running kernel's BTF, set by the tool before load.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = KernelOffsets {
    valid: 0,
    vma_start: 0,
    vma_end: 0,
    vma_flags: 0,
    vma_pgoff: 0,
    vma_file: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    hstate_valid: 0,
    sb_fs_info: 0,
    hugetlbfs_hstate: 0,
    hstate_order: 0,
    huge_fault_order: 0,
    vmf_address: 0,
    folio_flags_1: 0,
    pg_head: 0,
    task_mm: 0,
    mm_lock_seq: 0,
    vma_mm: 0,
    vma_span: 0,
};

/// Where a probe-read program reads a VMA's first `OFFSETS.vma_span` bytes in one call.
#[map]
pub(crate) static VMA_RAW: PerCpuArray<[u64; (VMA_SPAN_MAX / 8) as usize]> =
    PerCpuArray::with_max_entries(1, 0);

/// How the insert probes read the page tables, set by the tool before load.
#[unsafe(no_mangle)]
pub(crate) static WALK: PageWalk = PageWalk {
    valid: 0,
    vma_mm: 0,
    mm_pgd: 0,
    _pad: 0,
    page_offset_base_addr: 0,
    page_offset: 0,
};

/// Program settings, set by the tool before load.
#[unsafe(no_mangle)]
pub(crate) static SETTINGS: Settings = Settings {
    aggregate: 0,
    metrics: 0,
};

/// Where the anonymous THP settings are read, set by the tool before load.
#[unsafe(no_mangle)]
pub(crate) static THP: ThpSettings = ThpSettings {
    valid: 0,
    flag_bit: 0,
    req_madv_bit: 0,
    vma_mm: 0,
    mm_flags: 0,
    mmf_disable: 64,
    mmf_except_advised: 64,
    memcg_valid: 0,
    task_cgroups: 0,
    css_set_subsys: 0,
    memory_cgrp_id: 0,
    memcg_memory: 0,
    counter_usage: 0,
    counter_max: 0,
    counter_parent: 0,
    from_sysfs: 0,
    orders_contiguous: 0,
    flags_addr: 0,
    orders_addr: [0; 3],
};

/// The anonymous THP settings words as sysfs says them, kept by the tool where the kernel's
/// own cannot be found (`THP.from_sysfs`). A mutable global, the object's only one: the
/// tool writes it through the `.bss` map; the programs read it with plain loads (a map
/// lookup's null check was one branch too many for 6.1's verifier in the closing program).
#[unsafe(no_mangle)]
pub(crate) static mut THP_WORDS: ThpNow = ThpNow {
    flags: 0,
    orders: [0; 3],
    per_size: 0,
};

/// The `huge_fault` handlers the tool attached to, by address (the function's, and 4
/// bytes past it, where a kprobe sits after `endbr64`): index + 1 in the tool's table.
#[map]
pub(crate) static HANDLERS: HashMap<u64, u8> = HashMap::with_max_entries(512, 0);

/// Process filter, set by the tool before load.
#[unsafe(no_mangle)]
pub(crate) static FILTER: Filter = Filter {
    target_tgid: 0,
    self_tgid: 0,
    follow: 0,
    fork_child_pid_offset: 0,
    cgroup_id: 0,
    comm: [0; 16],
};

/// The thread groups traced when `FILTER.follow` is set: the command `huge-fault run`
/// started, and every process it forks.
#[map]
pub(crate) static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// What the programs keep of a VMA.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VmaInfo {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) flags: u64,
    pub(crate) pgoff: u64,
    pub(crate) inode: u64,
    pub(crate) dev: u32,
    pub(crate) found: u32,
    /// `vm_mm`, where the read had it at no cost (the one-call read), else 0.
    pub(crate) mm: u64,
}
