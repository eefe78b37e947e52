//! The per-thread state of a fault in flight, kept by the programs between its probes.

use crate::chain::Mapping;

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
    /// The `source` of the programs that opened it (for a record closed from elsewhere).
    pub src: u8,
    pub _pad: [u8; 3],
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
    /// Where the call in flight entered on the thread's kernel stack (the entry program's
    /// context, which lies on it). A nested call enters deeper (lower); a call entering at
    /// or above it means the last call returned unseen (the kernel skipped the return
    /// program).
    pub entry_sp: u64,
    /// Pages of the `remap_pfn_range` in flight inside the fault (its address and pfn in
    /// `pte_addr` and `pte_pfn`); 0: none.
    pub remap_pages: u64,
    /// What the page tables held before the insert in flight, read at its entry: bit
    /// `level` set when the entry of that level at its address was not empty (then a
    /// success maps nothing: a re-insert). 0 when unread.
    pub present: u32,
    pub _pad_present: u32,
}
