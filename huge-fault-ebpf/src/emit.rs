//! How a fault leaves the kernel: a record in the ring buffer, or a count of its class in
//! the aggregate table.

use crate::{ctx::*, maps::*};
use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_ktime_get_ns},
};
use core::{
    intrinsics::AtomicOrdering,
    mem::{offset_of, size_of},
};
use huge_fault_common::{FaultRecord, Mapping, counter, latency, metrics, rflags};

/// What the closing program knows about a fault, besides its VMA.
pub(crate) struct Closing {
    pub(crate) tgid: u32,
    pub(crate) tid: u32,
    pub(crate) src: u8,
    pub(crate) flags: u16,
    pub(crate) start_ns: u64,
    pub(crate) address: u64,
    pub(crate) fault_flags: u32,
    pub(crate) ret: u32,
    pub(crate) ip: u64,
    pub(crate) error_code: u32,
    pub(crate) retries: u16,
    pub(crate) vma_lock_retries: u16,
}

/// Counts the fault in its class in `AGGREGATE`, in this CPU's count. A fault that finds
/// the table full is lost, and counted so.
#[inline(always)]
pub(crate) fn aggregate(c: &Closing, vma: &VmaInfo, mapping: Option<*const Mapping>, flags: u16) {
    let Some(k) = AGG_SCRATCH.get_ptr_mut(0) else {
        bump(counter::RINGBUF_DROPS);
        return;
    };
    // SAFETY: this CPU's scratch slot; a program runs to completion on one CPU. `mapping`
    // points at a live map value of this thread.
    unsafe {
        core::ptr::write_bytes(k, 0, 1);
        (*k).vma_start = vma.start;
        (*k).vma_end = vma.end;
        (*k).vma_flags = vma.flags;
        (*k).vma_pgoff = vma.pgoff;
        (*k).inode = vma.inode;
        if vma.found == 0 {
            (*k).address = c.address & !0xfff;
        }
        (*k).dev = vma.dev;
        (*k).tgid = c.tgid;
        (*k).fault_flags = c.fault_flags;
        (*k).ret = c.ret;
        (*k).error_code = c.error_code;
        (*k).latency_bucket = if flags & rflags::HAS_START != 0 {
            latency::bucket(bpf_ktime_get_ns().saturating_sub(c.start_ns))
        } else {
            latency::NONE
        };
        (*k).source = c.src;
        (*k).retries = c.retries;
        (*k).vma_lock_retries = c.vma_lock_retries;
        (*k).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let mut flags = flags;
        if let Some(m) = mapping {
            (*k).entries = (*m).entries;
            (*k).chain = (*m).chain;
            (*k).repeat = (*m).repeat;
            (*k).chain_len = (*m).chain_len;
            (*k).overflow = (*m).overflow;
            (*k).pfn_missing = (*m).pfn_missing;
            (*k).handler = (*m).handler;
            flags |= rflags::HAS_MAPPING;
        }
        (*k).flags = flags;
        // SAFETY: a read of our own .rodata global, volatile as for `offsets`.
        let m = core::ptr::read_volatile(&SETTINGS.metrics);
        if m & metrics::CLASSES != 0 {
            // The exporter's classes: nothing that grows with processes, files or pages.
            (*k).vma_start = 0;
            (*k).vma_end = 0;
            (*k).vma_pgoff = 0;
            (*k).vma_flags &= metrics::KIND_FLAGS;
            (*k).inode = u64::from((*k).inode != 0);
            (*k).dev = 0;
            (*k).address = 0;
            (*k).tgid = 0;
            if m & metrics::COMM == 0 {
                (*k).comm = [0; 16];
            }
        }
    }
    // SAFETY: as above; the key is read by the map helpers only.
    let key = unsafe { &*k };
    let count = match AGGREGATE.get_ptr_mut(key) {
        Some(n) => Some(n),
        None => {
            // Two CPUs may create the class at once: the loser adds to its own count in the
            // winner's entry (a new entry's other CPUs' counts are zero).
            let _ = AGGREGATE.insert(key, 0, BPF_NOEXIST as u64);
            AGGREGATE.get_ptr_mut(key)
        }
    };
    match count {
        Some(n) => {
            // SAFETY: a live, 8-byte aligned map value. This CPU's count, but a program may
            // be preempted by another task's on this CPU: an atomic add, uncontended, whose
            // result is unused (BPF_XADD: core's atomic types have no read-modify-write on
            // this target).
            unsafe { core::intrinsics::atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, 1) };
            bump(counter::AGGREGATED);
        }
        None => bump(counter::RINGBUF_DROPS),
    }
}

/// Fills the record in place in the ring buffer (a 312-byte record does not fit on the BPF
/// stack beside everything else) and submits it. `mapping` points at the fault's
/// accumulated levels and entries, when there is one. With `--aggregate`, or when the ring
/// is full, the fault is counted in `AGGREGATE` instead.
#[inline(always)]
pub(crate) fn submit(c: &Closing, vma: &VmaInfo, mapping: Option<*const Mapping>) {
    let mut flags = c.flags;
    if vma.found != 0 {
        flags |= rflags::HAS_VMA;
    }
    // SAFETY: a read of our own .rodata global, volatile as for `offsets`.
    if unsafe { core::ptr::read_volatile(&SETTINGS.aggregate) } != 0 {
        aggregate(c, vma, mapping, flags);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<FaultRecord>(0) else {
        bump(counter::RING_FULL);
        aggregate(c, vma, mapping, flags);
        return;
    };
    let r = entry.as_mut_ptr();
    // SAFETY: `r` is the reserved, exclusively ours, correctly sized ring-buffer slot;
    // `mapping` points at a live map value of this thread.
    unsafe {
        // Every member is written (the record has no padding the compiler adds): zeroing
        // the whole slot first, mapping included, was 312 bytes of stores per fault.
        (*r).start_ns = c.start_ns;
        (*r).end_ns = bpf_ktime_get_ns();
        (*r).address = c.address;
        (*r).ip = c.ip;
        (*r).vma_start = vma.start;
        (*r).vma_end = vma.end;
        (*r).vma_flags = vma.flags;
        (*r).vma_pgoff = vma.pgoff;
        (*r).inode = vma.inode;
        (*r).cgroup_id = bpf_get_current_cgroup_id();
        (*r).dev = vma.dev;
        (*r).tgid = c.tgid;
        (*r).tid = c.tid;
        (*r).fault_flags = c.fault_flags;
        (*r).ret = c.ret;
        (*r).error_code = c.error_code;
        (*r).source = c.src;
        (*r)._pad0 = 0;
        (*r).retries = c.retries;
        (*r).vma_lock_retries = c.vma_lock_retries;
        (*r).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        match mapping {
            Some(m) => {
                // The entries' addresses and pfns only where it mapped one: user space
                // clears them for levels without entries (`Mapping::clear_unused`).
                let head = offset_of!(Mapping, first_addr);
                let (src, dst) = (m.cast::<u8>(), (&raw mut (*r).mapping).cast::<u8>());
                core::ptr::copy_nonoverlapping(src, dst, head);
                let e = (*m).entries;
                if e[0] | e[1] | e[2] | e[3] != 0 {
                    core::ptr::copy_nonoverlapping(
                        src.add(head),
                        dst.add(head),
                        size_of::<Mapping>() - head,
                    );
                }
                flags |= rflags::HAS_MAPPING;
            }
            None => core::ptr::write_bytes(&mut (*r).mapping, 0, 1),
        }
        (*r).flags = flags;
    }
    // Batched wake-ups: user space drains the ring on a short timer, so a record wakes it
    // only when a backlog has built up, asked at every 16th record of this CPU. A wake-up
    // per record (an IPI to the sleeping reader) costs more than everything else a fault
    // record does, and the query is a helper call.
    let ask = bump_get(counter::RECORDS).is_multiple_of(QUERY_EVERY);
    let wake = if ask && EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wake as u64);
}

/// How often (in this CPU's records) a record asks how much of the ring is unread.
const QUERY_EVERY: u64 = 16;

/// Unread bytes in the ring above which a record wakes user space at once (a sixteenth of
/// the ring; the reader's timer drains it long before it fills).
pub(crate) const WAKEUP_BYTES: u64 = 256 * 1024;
