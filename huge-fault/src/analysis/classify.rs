//! One record, interpreted: a fault or retry calls no call completed, with what it did.

use huge_fault_common::{FaultRecord, rflags, source};

use super::chain::{Mapped, mapped};
use crate::kernel;

/// Why a record holds retry calls and no fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfinished {
    /// The thread's next call was on another page (or the return had no entry).
    Unlinked,
    /// Still waiting for its completing call when tracing ended.
    Pending,
}

/// What one record says, once interpreted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    /// Not a fault: retry calls that no call completed (see `unfinished`).
    pub retry: bool,
    pub unfinished: Option<Unfinished>,
    pub error: bool,
    pub major: bool,
    pub write: bool,
    /// Of the whole fault: from the entry of its first call to the return of its last.
    pub latency_ns: Option<u64>,
    /// The fault's calls that returned VM_FAULT_RETRY (of a record that is no fault: its
    /// calls).
    pub retry_calls: u32,
    /// Of them, calls made under the per-VMA lock.
    pub vma_lock_retries: u32,
    /// Levels tried and entries mapped, where the mode and probes see them.
    pub mapped: Option<Mapped>,
}

/// Interprets a record.
pub fn classify(r: &FaultRecord, sizes_visible: bool) -> Classified {
    let from_return = matches!(r.source, source::FEXIT | source::KRETPROBE);
    // A record closed on a VM_FAULT_RETRY is no fault: the kernel side gave up waiting
    // for its completing call, or the return had no entry (or was nested).
    let retry = from_return && r.ret & kernel::VM_FAULT_RETRY != 0 || r.has(rflags::RETRY_PENDING);
    let unfinished = retry.then(|| {
        if r.has(rflags::RETRY_PENDING) {
            Unfinished::Pending
        } else {
            Unfinished::Unlinked
        }
    });
    let error = from_return && !retry && r.ret & kernel::FAULT_FAILED != 0;
    let major = r.source == source::PERF_MAJOR
        || from_return && !retry && r.ret & kernel::VM_FAULT_MAJOR != 0;
    let write = (r.has(rflags::HAS_FAULT_FLAGS) && r.fault_flags & kernel::FAULT_FLAG_WRITE != 0)
        || (!r.has(rflags::HAS_FAULT_FLAGS)
            && r.has(rflags::HAS_EXCEPTION)
            && r.error_code & kernel::X86_PF_WRITE != 0);
    let retry_calls = if retry {
        u32::from(r.retries).max(1)
    } else {
        u32::from(r.retries)
    };
    let mapped = (sizes_visible && !retry && r.has(rflags::HAS_MAPPING)).then(|| mapped(r));
    Classified {
        retry,
        unfinished,
        error,
        major,
        write,
        latency_ns: (!retry).then(|| r.latency_ns()).flatten(),
        retry_calls,
        vma_lock_retries: u32::from(r.vma_lock_retries),
        mapped,
    }
}
