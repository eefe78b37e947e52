//! What the tool hands the programs before load (member offsets, filters, settings), and
//! the counters the programs keep for it.

/// Indices into the per-CPU `COUNTERS` array.
pub mod counter {
    /// `bpf_ringbuf_reserve` failed: a record was lost because the ring buffer was full.
    pub const RINGBUF_DROPS: u32 = 0;
    /// An entry was seen while another fault was in flight on the same thread.
    pub const NESTED: u32 = 1;
    /// A return without a recorded entry.
    pub const NO_ENTRY: u32 = 2;
    /// The per-thread in-flight map was full at entry.
    pub const INFLIGHT_FULL: u32 = 3;
    /// User-mode fault exceptions seen by `exceptions:page_fault_user`.
    pub const EXC_USER: u32 = 4;
    /// Kernel-mode fault exceptions seen by `exceptions:page_fault_kernel`.
    pub const EXC_KERNEL: u32 = 5;
    /// `bpf_find_vma` found no VMA or could not take the lock.
    pub const VMA_LOOKUP_FAILED: u32 = 6;
    /// Records submitted.
    pub const RECORDS: u32 = 7;
    /// A nested probe returned with no fault in flight on its thread.
    pub const ORPHAN_STEPS: u32 = 8;
    /// Faults counted in the `AGGREGATE` map instead of a record (`--aggregate`, or the
    /// ring buffer was full).
    pub const AGGREGATED: u32 = 9;
    /// Reservations that found the ring buffer full (the fault was aggregated, or lost
    /// when the aggregate table was full too).
    pub const RING_FULL: u32 = 10;
    /// `bpf_find_vma` found the VMA tree locked and the fault took its thread's last VMA,
    /// which holds the address (tracepoint-only mode).
    pub const VMA_REUSED: u32 = 11;
    pub const COUNT: u32 = 12;

    /// Names as the tool prints them, by index.
    pub const NAMES: [&str; COUNT as usize] = [
        "ringbuf_drops",
        "nested_entries",
        "returns_without_entry",
        "inflight_map_full",
        "user_fault_exceptions",
        "kernel_fault_exceptions",
        "vma_lookup_failures",
        "records",
        "orphan_steps",
        "aggregated_faults",
        "ring_full",
        "vma_reused_while_locked",
    ];
}

/// Structure member offsets the programs need, resolved by the tool from the running kernel's
/// BTF and written into the program's `.rodata` before load (Rust eBPF has no CO-RE).
/// A zero `valid` means "do not read VMAs".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub valid: u32,
    pub vma_start: u32,
    pub vma_end: u32,
    pub vma_flags: u32,
    pub vma_pgoff: u32,
    pub vma_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// Non-zero when the three hugetlb offsets below are valid.
    pub hstate_valid: u32,
    pub sb_fs_info: u32,
    /// `struct hugetlbfs_sb_info.hstate`
    pub hugetlbfs_hstate: u32,
    /// `struct hstate.order`
    pub hstate_order: u32,
    /// How `vm_operations_struct.huge_fault` gives the size: 1 = page order (6.6+),
    /// 0 = `enum page_entry_size` (PTE 0, PMD 1, PUD 2; up to 6.5).
    pub huge_fault_order: u32,
    /// `struct vm_fault.address` (never 0: `vma` comes first); 0 when unknown, and then a
    /// huge insert is taken to map at the fault address.
    pub vmf_address: u32,
    /// `struct folio._flags_1`, whose low byte is a large folio's order (never 0); 0 when
    /// unknown, and then multi-size THP folios are not sized.
    pub folio_flags_1: u32,
    /// Bit number of `PG_head` in `struct folio.flags` (offset 0): set for a large folio.
    pub pg_head: u32,
    /// `task_struct.mm` and `mm_struct.mm_lock_seq` (6.4+: changes whenever a VMA is
    /// modified under the mmap write lock). Both non-zero: the tracepoint-only mode may reuse
    /// a VMA it looked up while the sequence stays the same.
    pub task_mm: u32,
    pub mm_lock_seq: u32,
    /// `vm_area_struct.vm_mm`.
    pub vma_mm: u32,
    /// Bytes from the start of a `vm_area_struct` that hold every member above and
    /// `vm_mm` ([`vma_span`]): a probe-read program reads them in one call. 0: read the
    /// members one by one.
    pub vma_span: u32,
}

/// Most bytes of a `vm_area_struct` read at once (see [`KernelOffsets::vma_span`]).
pub const VMA_SPAN_MAX: u32 = 256;

/// The span of a `vm_area_struct` that covers 8-byte members at `offsets` (8-aligned,
/// within [`VMA_SPAN_MAX`]), or 0 when one is not 8-aligned or lies beyond.
pub fn vma_span(offsets: &[u32]) -> u32 {
    let end = offsets.iter().map(|o| o + 8).max().unwrap_or(0);
    let aligned = offsets.iter().all(|o| o % 8 == 0);
    if aligned && end <= VMA_SPAN_MAX {
        end
    } else {
        0
    }
}

/// How the programs read the page-table entry an insert is about to write, to tell a new
/// entry from a re-insert over one already there (TTM's prefault re-inserts present PTEs
/// and still answers VM_FAULT_NOPAGE). x86-64 page tables, 4 or 5 levels (told by the
/// direct map's base: under 5 levels it lies below the 4-level kernel half).
/// `valid` 0: every insert that answers success counts as an entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageWalk {
    pub valid: u32,
    /// `vm_area_struct.vm_mm`, `mm_struct.pgd`.
    pub vma_mm: u32,
    pub mm_pgd: u32,
    pub _pad: u32,
    /// Address of `page_offset_base` (the direct map's base, chosen at boot with
    /// `CONFIG_RANDOMIZE_MEMORY`); 0: the base is [`PageWalk::page_offset`].
    pub page_offset_base_addr: u64,
    /// The direct map's fixed base, where the kernel has no `page_offset_base`.
    pub page_offset: u64,
}

/// Offsets of the fields the programs read from an `exceptions:page_fault_*` record; the
/// tool checks them against the running kernel's format file before attaching.
pub mod exception_fields {
    pub const ADDRESS: u32 = 8;
    pub const IP: u32 = 16;
    pub const ERROR_CODE: u32 = 24;
    /// By name, as the format file has them.
    pub const ALL: &[(&str, u32)] = &[("address", ADDRESS), ("ip", IP), ("error_code", ERROR_CODE)];
}

/// Settings of the programs, set by the tool before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Non-zero: count every fault in the `AGGREGATE` map, write no records (`--aggregate`).
    pub aggregate: u32,
    /// [`metrics`] bits: classes for the exporter (`--metrics`).
    pub metrics: u32,
}

/// What the programs need to read the THP settings a fault was decided under and why an
/// anonymous THP attempt failed: kallsyms addresses, BTF offsets, enum values and bit
/// numbers found by the tool before load. Read only for anonymous faults that mapped no
/// PMD or PUD; `valid` 0: the settings are not read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThpSettings {
    pub valid: u32,
    /// Bit numbers in `transparent_hugepage_flags` of `TRANSPARENT_HUGEPAGE_FLAG`
    /// ("always") and `TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG` ("madvise").
    pub flag_bit: u32,
    pub req_madv_bit: u32,
    /// `vm_area_struct.vm_mm` and `mm_struct.flags`; 0: the process's own switch
    /// (`PR_SET_THP_DISABLE`) is not read.
    pub vma_mm: u32,
    pub mm_flags: u32,
    /// `mm_struct.flags` bit numbers: THP off completely, off except advised (64: none).
    pub mmf_disable: u32,
    pub mmf_except_advised: u32,
    /// How to find the memory cgroup limits the faulting task is charged under:
    /// `task_struct.cgroups`, `css_set.subsys` and `memory_cgrp_id`, `mem_cgroup.memory`,
    /// and `page_counter.usage`, `.max`, `.parent`. `memcg_valid` 0: an anonymous THP
    /// attempt's FALLBACK is not told a charge from an allocation failure.
    pub memcg_valid: u32,
    pub task_cgroups: u32,
    pub css_set_subsys: u32,
    pub memory_cgrp_id: u32,
    pub memcg_memory: u32,
    pub counter_usage: u32,
    pub counter_max: u32,
    pub counter_parent: u32,
    /// Non-zero: the settings words are not read from the kernel's memory (its
    /// /proc/kallsyms does not list them: a kernel without `CONFIG_KALLSYMS_ALL`) but from
    /// the programs' `THP_WORDS` global ([`ThpNow`]), which the tool keeps as sysfs says.
    pub from_sysfs: u32,
    /// 1 when the three `orders_addr` words follow one another in memory (as they are
    /// declared: one read takes them all), else 0.
    pub orders_contiguous: u32,
    /// Address of `transparent_hugepage_flags`; 0: the settings are not read.
    pub flags_addr: u64,
    /// 6.8+: addresses of `huge_anon_orders_always`, `_madvise` and `_inherit` (the
    /// per-size settings, bit [`crate::kabi::PMD_ORDER`] for a PMD); all 0 before.
    pub orders_addr: [u64; 3],
}

/// The anonymous THP settings words as the kernel keeps them, made by the tool from sysfs
/// (`enabled`, `hugepages-<PMD size>kB/enabled`) at start and every 200 ms while tracing,
/// where the kernel's own words cannot be found ([`ThpSettings::from_sysfs`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThpNow {
    /// `transparent_hugepage_flags`: the [`ThpSettings::flag_bit`] and
    /// [`ThpSettings::req_madv_bit`] bits.
    pub flags: u64,
    /// `huge_anon_orders_always`, `_madvise`, `_inherit`: bit [`crate::kabi::PMD_ORDER`].
    pub orders: [u64; 3],
    /// 1: the kernel has per-size settings (6.8+: the `orders` words count), else 0.
    pub per_size: u64,
}

/// The byte [`crate::Mapping::thp`]: the anonymous THP settings for a PMD-size THP as
/// the closing program read them, for an anonymous fault that mapped no PMD or PUD.
pub mod thp {
    /// The byte was filled in; without it the settings are unknown.
    pub const VALID: u8 = 0x80;
    /// The system setting for a PMD-size THP (the per-size one, or the global one it
    /// inherits): one of [`NEVER`], [`ALWAYS`], [`MADVISE`].
    pub const MODE: u8 = 0x03;
    pub const NEVER: u8 = 0;
    pub const ALWAYS: u8 = 1;
    pub const MADVISE: u8 = 2;
    /// The process turned THP off (`PR_SET_THP_DISABLE`).
    pub const PROCESS_OFF: u8 = 0x04;
    /// The process turned THP off except where advised (`PR_THP_DISABLE_EXCEPT_ADVISED`,
    /// 6.18+).
    pub const PROCESS_OFF_EXCEPT_ADVISED: u8 = 0x08;
    /// The anonymous THP attempt fell back, and no memory cgroup of the task was within
    /// 2 MiB of its limit: the 2 MiB folio could not be allocated (the only other FALLBACK
    /// of `do_huge_pmd_anonymous_page`, besides an unsuitable range).
    pub const ALLOC_FAILED: u8 = 0x10;
    /// ... and a memory cgroup of the task (or an ancestor) had less than 2 MiB left below
    /// its `max`: the charge was refused.
    pub const CHARGE_FAILED: u8 = 0x20;
}

/// How the exporter's classes are keyed (`Settings::metrics`).
pub mod metrics {
    /// Classes carry no process, VMA range, address, file or device: only what the
    /// exporter's labels and counters read (the VMA's kind bits, whether it has a file),
    /// so that the class table stays small however many processes come and go.
    pub const CLASSES: u32 = 1;
    /// Keep the command name in the class (`--metrics-comm N`).
    pub const COMM: u32 = 2;
    /// The VMA flags a class keeps: those that decide its kind.
    pub const KIND_FLAGS: u64 = crate::kabi::VM_SHARED
        | crate::kabi::VM_PFNMAP
        | crate::kabi::VM_HUGETLB
        | crate::kabi::VM_MIXEDMAP;
}

/// Filters applied in the kernel before any other work.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this process (tgid); 0 traces every process.
    pub target_tgid: u32,
    /// Never this process (the tool itself); 0 excludes nothing.
    pub self_tgid: u32,
    /// Non-zero: trace only the thread groups in the `TRACED` map (a command and the
    /// processes it forks, followed by `sched:sched_process_fork`).
    pub follow: u32,
    /// Offset of `child_pid` in the `sched_process_fork` record (from its format file).
    pub fork_child_pid_offset: u32,
    /// Only tasks in this cgroup (v2 id, the inode number of its directory); 0: any.
    pub cgroup_id: u64,
    /// Only tasks with this exact comm (NUL-padded, at most 15 bytes); all zero: any.
    pub comm: [u8; 16],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_cover_every_index() {
        assert_eq!(counter::NAMES.len(), counter::COUNT as usize);
        assert_eq!(
            counter::NAMES[counter::RINGBUF_DROPS as usize],
            "ringbuf_drops"
        );
        assert_eq!(counter::NAMES[counter::RECORDS as usize], "records");
    }

    #[test]
    fn vma_span_covers_the_members_or_is_zero() {
        // 6.12's layout: vm_start 0, vm_end 8, vm_mm 16, vm_flags 32, vm_pgoff 120, vm_file 128.
        assert_eq!(vma_span(&[0, 8, 32, 120, 128, 16]), 136);
        assert_eq!(vma_span(&[0, 8, 248]), 256);
        assert_eq!(vma_span(&[0, 8, 256]), 0, "beyond the scratch");
        assert_eq!(vma_span(&[0, 12]), 0, "not 8-aligned");
    }
}
