//! The per-fault record the programs write into the ring buffer, and how it is read back.

use crate::chain::Mapping;

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
    /// A fault whose return no program saw (the kernel skipped the return program, which
    /// was already running on that CPU for a preempted thread): its steps and entries so far,
    /// no return value and no latency. Closed when its thread's next call entered, or by
    /// user space after detach when the thread had exited.
    pub const RETURN_MISSED: u16 = 1 << 12;
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

// No padding: the closing program writes every member and zeroes nothing else.
const _: () = assert!(FaultRecord::SIZE == 128 + core::mem::size_of::<Mapping>());

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
        let mut r = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) };
        r.mapping.clear_unused();
        Some(r)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InFlight;

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
        assert_eq!(core::mem::size_of::<InFlight>(), 344);
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
}
