//! Tracepoint-only mode: the exception tracepoints stamp a fault's entry (and give every
//! mode the x86 error code), the perf minor/major-faults events close it.

use crate::{ctx::*, emit::*, maps::*, store::thread};
use aya_ebpf::{
    EbpfContext,
    bindings::bpf_perf_event_data,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_find_vma, bpf_get_current_task_btf},
    },
    macros::{perf_event, tracepoint},
    programs::{PerfEventContext, TracePointContext},
};
use core::ffi::c_void;

/// `bpf_find_vma` answers `-EBUSY` when it cannot take the mmap lock.
const EBUSY: i64 = 16;
use huge_fault_common::{config::exception_fields, counter, rflags, source};

/// `exceptions:page_fault_{user,kernel}`: `address` at 8, `ip` at 16, `error_code` at 24
/// (the tool checks the format file before attaching).
#[inline(always)]
fn exception_entry(ctx: &TracePointContext, which: u32) {
    let Some((_tgid, tid)) = wanted() else { return };
    bump(which);
    // Plain loads from the context (the tracepoint's record; the verifier allows aligned
    // reads inside it), where `read_at` would make a helper call for each.
    let rec = ctx.as_ptr().cast::<u8>();
    // SAFETY: offsets inside the tracepoint record, checked by the tool against the format.
    let field = |off: u32| unsafe { core::ptr::read_volatile(rec.add(off as usize).cast::<u64>()) };
    let address = field(exception_fields::ADDRESS);
    let ip = field(exception_fields::IP);
    let error_code = field(exception_fields::ERROR_CODE);
    let state = Exception {
        // SAFETY: helper without preconditions.
        start_ns: unsafe { bpf_ktime_get_ns() },
        address,
        ip,
        error_code: error_code as u32,
        _pad: 0,
    };
    // Overwrites a stale exception that never completed (SIGSEGV, a spurious fault, a
    // fault fixed up by the kernel): those show as exceptions without completion.
    match thread(tid, true) {
        Some(t) => {
            t.exc = state;
            t.exc_valid = 1;
        }
        None => bump(counter::INFLIGHT_FULL),
    }
}

#[tracepoint]
pub fn hf_tp_page_fault_user(ctx: TracePointContext) -> u32 {
    exception_entry(&ctx, counter::EXC_USER);
    0
}

#[tracepoint]
pub fn hf_tp_page_fault_kernel(ctx: TracePointContext) -> u32 {
    exception_entry(&ctx, counter::EXC_KERNEL);
    0
}

/// `bpf_find_vma` callback: copies the VMA into the caller's stack buffer.
extern "C" fn find_vma_cb(_task: *mut c_void, vma: *mut c_void, out: *mut c_void) -> i64 {
    // SAFETY: `out` is the caller's VmaInfo on its stack, as passed to bpf_find_vma.
    let out = unsafe { &mut *out.cast::<VmaInfo>() };
    // The callback's VMA is typed by BTF.
    Typed::read_vma(vma as u64, out);
    0
}

#[inline(always)]
fn perf_completion(ctx: &PerfEventContext, src: u8) {
    let Some((tgid, tid)) = wanted() else { return };
    // SAFETY: the context of a perf_event program is a bpf_perf_event_data.
    let address = unsafe { (*ctx.ctx.cast::<bpf_perf_event_data>()).addr };
    let mut flags = rflags::HAS_ADDRESS;
    let (mut start_ns, mut ip, mut error_code) = (0, 0, 0);
    // Without its thread's slot (no memory for it) the completion is counted as lost.
    let Some(t) = thread(tid, true) else {
        bump(counter::INFLIGHT_FULL);
        return;
    };
    if t.exc_valid != 0 {
        let st = &t.exc;
        // The exception belongs to this completion when it faulted on the same page.
        if st.address >> 12 == address >> 12 {
            start_ns = st.start_ns;
            ip = st.ip;
            error_code = st.error_code;
            flags |= rflags::HAS_START | rflags::HAS_EXCEPTION;
        }
        t.exc_valid = 0;
    }
    let mut vma = VmaInfo::default();
    if off!(OFFSETS.valid) != 0 {
        // SAFETY: the current task is valid for the program's duration.
        let task = unsafe { bpf_get_current_task_btf() } as u64;
        // The VMA tree's sequence now (u64::MAX: not known, no caching).
        let seq = if off!(OFFSETS.task_mm) != 0 && off!(OFFSETS.mm_lock_seq) != 0 {
            let mm = Typed::u64_at(task, off!(OFFSETS.task_mm));
            if mm != 0 {
                Typed::u32_at(mm, off!(OFFSETS.mm_lock_seq)) as u64
            } else {
                u64::MAX
            }
        } else {
            u64::MAX
        };
        let c = t.vma_cache;
        if seq != u64::MAX
            && c.seq == seq
            && c.vma.found != 0
            && address >= c.vma.start
            && address < c.vma.end
        {
            vma = c.vma;
        } else {
            // SAFETY: the callback is a static subprogram and `vma` is on our stack.
            let rc = unsafe {
                bpf_find_vma(
                    task as *mut _,
                    address,
                    find_vma_cb as *mut c_void,
                    (&mut vma as *mut VmaInfo).cast(),
                    0,
                )
            };
            if rc == -EBUSY && c.vma.found != 0 && address >= c.vma.start && address < c.vma.end
            {
                // The VMA tree is locked for writing (another thread maps or unmaps: a
                // thread's exit unmaps its signal stack) or the unlock work is still
                // queued. This fault holds its own VMA, so the thread's last VMA, which
                // holds the address, is the one it faulted in unless that VMA changed in
                // between: counted, so the report can say how many were taken so.
                bump(counter::VMA_REUSED);
                vma = c.vma;
            } else if rc != 0 || vma.found == 0 {
                bump(counter::VMA_LOOKUP_FAILED);
                flags |= rflags::VMA_LOOKUP_FAILED;
                vma.found = 0;
            } else {
                // Kept even where the tree's sequence is not known (before 6.4): the fast
                // path above then never matches (u64::MAX), but a lookup that finds the
                // tree locked for writing can still take it.
                t.vma_cache = VmaCache { seq, vma };
            }
        }
    }
    let closing = Closing {
        tgid,
        tid,
        src,
        flags,
        start_ns,
        address,
        fault_flags: 0,
        ret: 0,
        ip,
        error_code,
        retries: 0,
        vma_lock_retries: 0,
    };
    submit(&closing, &vma, None);
}

#[perf_event]
pub fn hf_perf_minor_fault(ctx: PerfEventContext) -> u32 {
    perf_completion(&ctx, source::PERF_MINOR);
    0
}

#[perf_event]
pub fn hf_perf_major_fault(ctx: PerfEventContext) -> u32 {
    perf_completion(&ctx, source::PERF_MAJOR);
    0
}
