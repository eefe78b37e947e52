//! Types shared by the huge-fault eBPF programs and the userspace tool.
//!
//! Everything here is `#[repr(C)]`, fixed-size and free of pointers, so that the kernel side
//! can write it into a ring buffer and the user side can copy it out with `read_unaligned`.
//! The crate is `no_std` for the BPF target and unit-tested on the host.
#![cfg_attr(not(test), no_std)]

pub mod kabi;

/// Where a [`FaultRecord`] came from: which program closed it.
pub mod source {
    /// `fexit` on `handle_mm_fault` (entry state from `fentry`).
    pub const FEXIT: u8 = 1;
    /// `kretprobe` on `handle_mm_fault` (entry state from `kprobe`).
    pub const KRETPROBE: u8 = 2;
    /// perf software event `minor-faults`: a completed, non-retried, successful minor fault.
    pub const PERF_MINOR: u8 = 3;
    /// perf software event `major-faults`: a completed, non-retried, successful major fault.
    pub const PERF_MAJOR: u8 = 4;
}

/// Bits of [`FaultRecord::flags`].
pub mod rflags {
    /// `vma_*`, `inode` and `dev` are valid.
    pub const HAS_VMA: u16 = 1 << 0;
    /// `ret` holds the `vm_fault_t` that `handle_mm_fault` returned.
    pub const HAS_RET: u16 = 1 << 1;
    /// `start_ns` is valid, so `end_ns - start_ns` is the fault's latency.
    pub const HAS_START: u16 = 1 << 2;
    /// `fault_flags` holds the `FAULT_FLAG_*` argument of `handle_mm_fault`.
    pub const HAS_FAULT_FLAGS: u16 = 1 << 3;
    /// `error_code` and `ip` come from the exception tracepoint at fault entry.
    pub const HAS_EXCEPTION: u16 = 1 << 4;
    /// The call returned while another `handle_mm_fault` was in flight on the same thread.
    pub const NESTED: u16 = 1 << 5;
    /// A return without a recorded entry (the tool attached mid-fault, or the entry was lost).
    pub const NO_ENTRY: u16 = 1 << 6;
    /// `address` is valid.
    pub const HAS_ADDRESS: u16 = 1 << 7;
    /// The VMA lookup in the kernel failed (`bpf_find_vma` busy or no VMA).
    pub const VMA_LOOKUP_FAILED: u16 = 1 << 8;
    /// `mapping` is valid: the nested probes were attached for this record.
    pub const HAS_MAPPING: u16 = 1 << 9;
    /// Not a fault: the `retries` calls of a fault that returned VM_FAULT_RETRY and whose
    /// completing call never came (the thread faulted on another page next).
    pub const RETRY_UNLINKED: u16 = 1 << 10;
    /// Not a fault: the `retries` calls of a fault still waiting for its completing call
    /// when tracing ended (made by user space from the in-flight state after detach).
    pub const RETRY_PENDING: u16 = 1 << 11;
}

/// Page-table levels, as indices into [`Mapping::entries`] and in chain steps.
pub mod level {
    pub const PTE: u8 = 1;
    pub const PMD: u8 = 2;
    pub const PUD: u8 = 3;
    /// Not a level: the chain step of a call that returned VM_FAULT_RETRY, between the
    /// steps of that call and those of the next call of the same fault.
    pub const RETRY: u8 = 4;
}

/// Most chain steps kept per fault; further steps are counted in [`Mapping::overflow`].
/// The longest the kernel makes is six (`PUD:FALLBACK PMD:FALLBACK RETRY PUD:FALLBACK
/// PMD:FALLBACK PTE:OK`, a 1 GiB-aligned fault retried after the per-VMA lock); repeats
/// of one step count in [`Mapping::repeat`], not here. A power of two: the programs mask
/// the index of the last step with `MAX_CHAIN - 1`, the bound older verifiers need.
pub const MAX_CHAIN: usize = 8;

/// Set in a chain step's result when the level's answer came from a range-insert helper
/// (above every `vm_fault_t` bit, inside the 24 bits a step keeps).
pub const STEP_VIA_RANGE: u32 = 1 << 23;

/// Set in a [`level::RETRY`] step's result when the retried call ran under the per-VMA lock
/// (`FAULT_FLAG_VMA_LOCK`).
pub const STEP_VMA_LOCK: u32 = 1 << 22;

/// A chain step: `level << 24 | result` (24 bits of `vm_fault_t` and the `STEP_*` marks).
#[inline(always)]
pub const fn step(level: u8, ret: u32) -> u32 {
    ((level as u32) << 24) | (ret & 0x00ff_ffff)
}

/// A pfn the probes could not read (a folio insert, or a path that maps without a pfn
/// argument: anonymous THP, `do_set_pmd`, hugetlb).
pub const NO_PFN: u64 = u64::MAX;

/// Mask of the page frame number in a `pfn_t` (up to 6.16 its top 12 bits are `PFN_*` flags);
/// a plain `unsigned long` pfn passes it unchanged.
pub const PFN_MASK: u64 = (1 << 52) - 1;

/// What one fault mapped, as the nested probes saw it: the levels tried with their results,
/// and the entries inserted per level with the first and last address and pfn of each level.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Entries inserted, indexed by [`level`] (index 0 unused).
    pub entries: [u32; 4],
    /// Steps ([`step`]), in the order they returned; a step equal to the one before it is
    /// not added again but counted in `repeat`.
    pub chain: [u32; MAX_CHAIN],
    /// How many more times each step came right after itself (a driver's batch of PTE
    /// inserts in one call is one step), saturating.
    pub repeat: [u16; MAX_CHAIN],
    pub chain_len: u16,
    pub _pad_chain: u16,
    /// Steps or entries that did not fit.
    pub overflow: u32,
    /// Bit `level` set when an entry of that level had no readable pfn.
    pub pfn_missing: u32,
    pub _pad: u32,
    /// First and last mapped virtual address per level (aligned to the entry's size).
    pub first_addr: [u64; 4],
    pub last_addr: [u64; 4],
    /// Pfn of the first and last entry per level, [`NO_PFN`] where unknown.
    pub first_pfn: [u64; 4],
    pub last_pfn: [u64; 4],
}

impl Mapping {
    /// `(level, vm_fault_t)` of step `i`.
    pub fn step(&self, i: usize) -> Option<(u8, u32)> {
        (i < (self.chain_len as usize).min(MAX_CHAIN))
            .then(|| ((self.chain[i] >> 24) as u8, self.chain[i] & 0x00ff_ffff))
    }

    /// How many times step `i` happened in a row (1 for a step that did not repeat).
    pub fn times(&self, i: usize) -> u32 {
        self.repeat.get(i).map_or(1, |r| u32::from(*r) + 1)
    }

    /// Adds a step at the end of the chain, or counts it as a repeat of the last one.
    #[inline(always)]
    pub fn push_step(&mut self, step: u32) {
        // `chain_len` never exceeds MAX_CHAIN: the masks are no-ops that show the BPF
        // verifier a bound for the index arithmetic (older ones lose it across `n - 1`).
        let n = usize::from(self.chain_len & 0xf);
        if n > 0 {
            let i = (n - 1) & (MAX_CHAIN - 1);
            if self.chain[i] == step {
                self.repeat[i] = self.repeat[i].saturating_add(1);
                return;
            }
        }
        if n < MAX_CHAIN {
            self.chain[n] = step;
            self.chain_len = n as u16 + 1;
        } else {
            self.overflow += 1;
        }
    }
}

/// One record per fault: in the kprobe and fentry modes its `handle_mm_fault` calls from
/// the first to the one that did not return VM_FAULT_RETRY, linked in the kernel by thread
/// and page; in tracepoint-only mode one completed fault. 336 bytes, 8-byte aligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRecord {
    /// `bpf_ktime_get_ns()` at fault entry (valid with [`rflags::HAS_START`]).
    pub start_ns: u64,
    /// `bpf_ktime_get_ns()` when the record was closed.
    pub end_ns: u64,
    /// Faulting user address.
    pub address: u64,
    /// User instruction pointer of the fault (tracepoint mode only).
    pub ip: u64,
    pub vma_start: u64,
    pub vma_end: u64,
    pub vma_flags: u64,
    pub vma_pgoff: u64,
    /// Inode number of the VMA's file, 0 for anonymous memory.
    pub inode: u64,
    /// `cgroup` id of the faulting task (v2).
    pub cgroup_id: u64,
    /// Kernel `dev_t` of the file's super block, 0 for anonymous memory.
    pub dev: u32,
    pub tgid: u32,
    pub tid: u32,
    /// `FAULT_FLAG_*` passed to `handle_mm_fault`.
    pub fault_flags: u32,
    /// `vm_fault_t` returned by `handle_mm_fault`.
    pub ret: u32,
    /// x86 page-fault error code from `exceptions:page_fault_*`.
    pub error_code: u32,
    /// One of [`source`].
    pub source: u8,
    pub _pad0: u8,
    /// [`rflags`] bits.
    pub flags: u16,
    /// Calls of this fault that returned VM_FAULT_RETRY before the one that closed it (or,
    /// with [`rflags::RETRY_UNLINKED`] / [`rflags::RETRY_PENDING`], that never completed).
    pub retries: u16,
    /// Of them, calls made under the per-VMA lock (`FAULT_FLAG_VMA_LOCK`).
    pub vma_lock_retries: u16,
    pub comm: [u8; 16],
    /// Levels tried and entries inserted (fentry and kprobe modes, with the nested probes).
    pub mapping: Mapping,
}

impl FaultRecord {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Copies a record out of a ring-buffer slice (which need not be aligned).
    /// Returns `None` when the slice is shorter than a record.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: the slice holds at least SIZE bytes, every bit pattern is a valid
        // FaultRecord (plain integers and byte arrays), and read_unaligned has no
        // alignment requirement.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// The record as raw bytes, the inverse of [`FaultRecord::from_bytes`].
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: FaultRecord is repr(C) with explicit padding fields, so every byte is
        // initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), Self::SIZE) }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// `comm` up to its first NUL.
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        &self.comm[..end]
    }

    /// Latency in nanoseconds, when the entry time is known.
    pub fn latency_ns(&self) -> Option<u64> {
        self.has(rflags::HAS_START)
            .then(|| self.end_ns.saturating_sub(self.start_ns))
    }
}

/// Per-thread state from `handle_mm_fault` entry to its return (kprobe and fentry modes), or
/// from the exception tracepoint to the perf completion event (tracepoint-only mode).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InFlight {
    /// Entry of the fault's first call.
    pub start_ns: u64,
    pub address: u64,
    /// `struct vm_area_struct *` of the call in flight.
    pub vma: u64,
    /// User instruction pointer, from the exception tracepoint.
    pub ip: u64,
    /// `FAULT_FLAG_*` of the call in flight (of the last call, once it returned).
    pub fault_flags: u32,
    /// How many more entries than returns were seen on this thread.
    pub depth: u32,
    pub tgid: u32,
    /// Non-zero: no call is in flight; the last one returned VM_FAULT_RETRY, and the next
    /// entry on this thread and page continues the fault.
    pub waiting: u32,
    /// Calls of this fault that returned VM_FAULT_RETRY, and those under the per-VMA lock.
    pub retries: u16,
    pub vma_lock_retries: u16,
    pub _pad: u32,
    pub error_code: u32,
    /// 1 when `ip` and `error_code` are valid.
    pub has_exception: u32,
    pub mapping: Mapping,
    /// The level a `huge_fault` handler in flight was asked for (a [`level`]).
    pub hf_level: u32,
    /// `huge_fault` handlers in flight on this thread (entered, not yet returned).
    pub in_hf: u32,
    /// PTE inserts in flight (`vmf_insert_pfn` may call `vmf_insert_pfn_prot`).
    pub in_pte: u32,
    /// Range-insert helpers in flight.
    pub in_range: u32,
    /// Address argument of the outermost PTE insert in flight.
    pub pte_addr: u64,
    /// Pfn argument of the outermost PTE insert in flight (masked), or [`NO_PFN`].
    pub pte_pfn: u64,
    /// `vmf->address` of the PMD/PUD insert in flight (0: use the fault address).
    pub huge_addr: u64,
    /// Pfn of the PMD/PUD insert in flight, or [`NO_PFN`].
    pub huge_pfn: u64,
}

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
    pub const COUNT: u32 = 11;

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
}

/// Log-linear latency buckets, shared by the kernel side (aggregated faults carry a bucket,
/// not a latency) and the tool's histograms: values below 16 ns are exact, then 8 buckets
/// per power of two, so a bucket's upper bound is within 12.5 % of any value in it.
pub mod latency {
    pub const SUB_BITS: u32 = 3;
    pub const SUB: u64 = 1 << SUB_BITS;
    /// No latency (the fault's start was not seen).
    pub const NONE: u32 = u32::MAX;

    /// Index of the highest set bit of `v` (`v` > 0). Branches only: BPF has no such
    /// instruction and the verifier wants no loops.
    #[inline(always)]
    pub fn msb(mut v: u64) -> u32 {
        let mut r = 0;
        if v >> 32 != 0 {
            v >>= 32;
            r += 32;
        }
        if v >> 16 != 0 {
            v >>= 16;
            r += 16;
        }
        if v >> 8 != 0 {
            v >>= 8;
            r += 8;
        }
        if v >> 4 != 0 {
            v >>= 4;
            r += 4;
        }
        if v >> 2 != 0 {
            v >>= 2;
            r += 2;
        }
        if v >> 1 != 0 {
            r += 1;
        }
        r
    }

    /// The bucket of `v` nanoseconds.
    #[inline(always)]
    pub fn bucket(v: u64) -> u32 {
        if v < 2 * SUB {
            return v as u32;
        }
        let exp = msb(v); // >= SUB_BITS + 1
        let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
        (2 * SUB + (u64::from(exp) - u64::from(SUB_BITS) - 1) * SUB + sub) as u32
    }

    /// The largest value in bucket `i`.
    pub fn upper(i: u32) -> u64 {
        let i = u64::from(i);
        if i < 2 * SUB {
            return i;
        }
        let exp = (i - 2 * SUB) / SUB + u64::from(SUB_BITS) + 1;
        let sub = (i - 2 * SUB) % SUB;
        let low = (1u64 << exp) | (sub << (exp - u64::from(SUB_BITS)));
        low + ((1u64 << (exp - u64::from(SUB_BITS))) - 1)
    }
}

/// A class of faults counted in the kernel instead of recorded one by one: every field of
/// a [`FaultRecord`] the analysis reads, less what is unique to one fault (thread, address,
/// times, first and last entry, pfns), with the latency as a [`latency`] bucket. The
/// `AGGREGATE` map counts faults per class. 176 bytes, 8-byte aligned, zero padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AggKey {
    pub vma_start: u64,
    pub vma_end: u64,
    pub vma_flags: u64,
    pub vma_pgoff: u64,
    pub inode: u64,
    /// The faulting page when the kernel did not give the VMA (user space looks it up);
    /// 0 when it did.
    pub address: u64,
    pub dev: u32,
    pub tgid: u32,
    pub fault_flags: u32,
    pub ret: u32,
    pub error_code: u32,
    /// [`latency::bucket`] of the fault's latency, [`latency::NONE`] when unknown.
    pub latency_bucket: u32,
    pub source: u8,
    pub _pad0: u8,
    /// [`rflags`] bits.
    pub flags: u16,
    /// As in [`FaultRecord`]: the class's retried calls per fault.
    pub retries: u16,
    pub vma_lock_retries: u16,
    pub comm: [u8; 16],
    pub entries: [u32; 4],
    pub chain: [u32; MAX_CHAIN],
    pub repeat: [u16; MAX_CHAIN],
    pub chain_len: u16,
    pub _pad_chain: u16,
    pub overflow: u32,
    pub pfn_missing: u32,
    pub _pad2: u32,
}

impl AggKey {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// A record that the analysis reads as this class's faults: the latency is the bucket's
    /// upper bound, first and last entries and pfns are unknown.
    pub fn to_record(&self) -> FaultRecord {
        let mut flags = self.flags & !rflags::HAS_START;
        let end_ns = if self.latency_bucket == latency::NONE {
            0
        } else {
            flags |= rflags::HAS_START;
            latency::upper(self.latency_bucket)
        };
        if self.address != 0 {
            flags |= rflags::HAS_ADDRESS;
        }
        FaultRecord {
            start_ns: 0,
            end_ns,
            address: self.address,
            vma_start: self.vma_start,
            vma_end: self.vma_end,
            vma_flags: self.vma_flags,
            vma_pgoff: self.vma_pgoff,
            inode: self.inode,
            dev: self.dev,
            tgid: self.tgid,
            fault_flags: self.fault_flags,
            ret: self.ret,
            error_code: self.error_code,
            source: self.source,
            flags,
            retries: self.retries,
            vma_lock_retries: self.vma_lock_retries,
            comm: self.comm,
            mapping: Mapping {
                entries: self.entries,
                chain: self.chain,
                repeat: self.repeat,
                chain_len: self.chain_len,
                overflow: self.overflow,
                first_pfn: [NO_PFN; 4],
                last_pfn: [NO_PFN; 4],
                pfn_missing: self.pfn_missing,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Copies a key out of bytes (which need not be aligned); `None` when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: at least SIZE bytes; every bit pattern is a valid AggKey.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C) with explicit padding fields: every byte is initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), Self::SIZE) }
    }
}

/// Settings of the programs, set by the tool before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Non-zero: count every fault in the `AGGREGATE` map, write no records (`--aggregate`).
    pub aggregate: u32,
    pub _pad: u32,
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

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) structs of integers with explicit padding.
    unsafe impl aya::Pod for super::FaultRecord {}
    unsafe impl aya::Pod for super::InFlight {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Filter {}
    unsafe impl aya::Pod for super::Mapping {}
    unsafe impl aya::Pod for super::AggKey {}
    unsafe impl aya::Pod for super::Settings {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_is_fixed() {
        assert_eq!(FaultRecord::SIZE, 336);
        assert_eq!(core::mem::size_of::<Mapping>(), 208);
        assert_eq!(core::mem::align_of::<FaultRecord>(), 8);
        assert_eq!(core::mem::offset_of!(FaultRecord, address), 16);
        assert_eq!(core::mem::offset_of!(FaultRecord, dev), 80);
        assert_eq!(core::mem::offset_of!(FaultRecord, source), 104);
        assert_eq!(core::mem::offset_of!(FaultRecord, flags), 106);
        assert_eq!(core::mem::offset_of!(FaultRecord, comm), 112);
        assert_eq!(core::mem::offset_of!(FaultRecord, retries), 108);
        assert_eq!(core::mem::size_of::<InFlight>(), 320);
    }

    #[test]
    fn round_trip_through_unaligned_bytes() {
        let mut rec = FaultRecord {
            start_ns: 100,
            end_ns: 350,
            address: 0x7f00_0020_1000,
            tgid: 42,
            tid: 43,
            ret: 0x100,
            source: source::KRETPROBE,
            flags: rflags::HAS_START | rflags::HAS_RET,
            ..Default::default()
        };
        rec.comm[..4].copy_from_slice(b"test");
        // Place the record at an odd offset to prove no alignment is assumed.
        let mut buf = [0u8; FaultRecord::SIZE + 1];
        buf[1..].copy_from_slice(rec.as_bytes());
        let back = FaultRecord::from_bytes(&buf[1..]).expect("full record");
        assert_eq!(back, rec);
        assert_eq!(back.comm_bytes(), b"test");
        assert_eq!(back.latency_ns(), Some(250));
    }

    #[test]
    fn aggregate_key_layout_is_fixed() {
        assert_eq!(AggKey::SIZE, 176);
        assert_eq!(core::mem::align_of::<AggKey>(), 8);
        assert_eq!(core::mem::offset_of!(AggKey, comm), 80);
        assert_eq!(core::mem::offset_of!(AggKey, _pad2), 172);
    }

    #[test]
    fn latency_buckets_bound_their_values() {
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 3, u64::MAX]) {
            let b = latency::bucket(v);
            let up = latency::upper(b);
            assert!(up >= v, "{v} above its bucket's bound {up}");
            assert!(up - v <= v / 8, "{v}: bound {up} more than 12.5% away");
            assert_eq!(
                latency::bucket(up),
                b,
                "{v}: the bound is in another bucket"
            );
            if v > 0 {
                assert_eq!(latency::msb(v), 63 - v.leading_zeros());
            }
        }
    }

    #[test]
    fn an_aggregate_key_reads_as_a_record_of_its_class() {
        let k = AggKey {
            vma_start: 0x1000,
            vma_end: 0x9000,
            tgid: 7,
            ret: 0x4,
            latency_bucket: latency::bucket(3000),
            source: source::KRETPROBE,
            flags: rflags::HAS_VMA | rflags::HAS_RET | rflags::HAS_MAPPING,
            entries: [0, 2, 0, 0],
            chain: [step(level::PMD, 0x800), 0, 0, 0, 0, 0, 0, 0],
            chain_len: 1,
            ..Default::default()
        };
        let r = k.to_record();
        assert!(r.has(rflags::HAS_START) && !r.has(rflags::HAS_ADDRESS));
        assert_eq!(r.latency_ns(), Some(latency::upper(latency::bucket(3000))));
        assert_eq!(r.mapping.step(0), Some((level::PMD, 0x800)));
        assert_eq!(r.mapping.first_pfn, [NO_PFN; 4]);
        assert_eq!(AggKey::from_bytes(k.as_bytes()), Some(k));
        let none = AggKey {
            latency_bucket: latency::NONE,
            address: 0x5000,
            ..k
        };
        let r = none.to_record();
        assert_eq!(r.latency_ns(), None);
        assert_eq!(r.address, 0x5000);
        assert!(r.has(rflags::HAS_ADDRESS));
    }

    #[test]
    fn a_step_after_itself_counts_as_a_repeat() {
        let mut m = Mapping::default();
        for s in [step(level::PMD, 0x800), step(level::PTE, 0x100)] {
            m.push_step(s);
        }
        for _ in 0..15 {
            m.push_step(step(level::PTE, 0x100));
        }
        m.push_step(step(level::RETRY, 0x400));
        assert_eq!(m.chain_len, 3);
        assert_eq!((m.times(0), m.times(1), m.times(2)), (1, 16, 1));
        assert_eq!(m.step(1), Some((level::PTE, 0x100)));
        for i in 0..20u32 {
            m.push_step(step(level::PTE, i));
        }
        assert_eq!(m.chain_len as usize, MAX_CHAIN);
        assert_eq!(m.overflow, 20 - (MAX_CHAIN as u32 - 3));
        let mut r = Mapping::default();
        r.repeat[0] = u16::MAX;
        r.chain_len = 1;
        r.chain[0] = step(level::PTE, 0);
        r.push_step(step(level::PTE, 0));
        assert_eq!(r.times(0), 65536, "a repeat count saturates");
    }

    #[test]
    fn short_slice_is_refused() {
        assert!(FaultRecord::from_bytes(&[0u8; FaultRecord::SIZE - 1]).is_none());
    }

    #[test]
    fn latency_needs_a_start() {
        let rec = FaultRecord {
            end_ns: 10,
            ..Default::default()
        };
        assert_eq!(rec.latency_ns(), None);
    }

    #[test]
    fn counter_names_cover_every_index() {
        assert_eq!(counter::NAMES.len(), counter::COUNT as usize);
        assert_eq!(
            counter::NAMES[counter::RINGBUF_DROPS as usize],
            "ringbuf_drops"
        );
        assert_eq!(counter::NAMES[counter::RECORDS as usize], "records");
    }
}
