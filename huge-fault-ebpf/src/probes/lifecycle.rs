//! The fault lifecycle: `handle_mm_fault` entry and return, in the fentry and kprobe
//! flavours, and the retry that continues a fault on its thread.

use crate::{
    anon_thp::fill_thp,
    ctx::*,
    emit::*,
    maps::*,
    store::{forget, thread},
};
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_ktime_get_ns,
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use aya_log_ebpf::warn;
use core::mem::{offset_of, size_of};
use huge_fault_common::{
    InFlight, Mapping, NO_PFN, STEP_VMA_LOCK, counter,
    kabi::{FAULT_FLAG_VMA_LOCK, VM_FAULT_RETRY},
    level, rflags, source, step,
};

/// The bytes of [`InFlight`] a new fault does not zero: its mapping's four address and
/// pfn arrays, which end the [`Mapping`].
const KEEP_FROM: usize = offset_of!(InFlight, mapping) + offset_of!(Mapping, first_addr);
const KEEP_TO: usize = offset_of!(InFlight, mapping) + size_of::<Mapping>();
const _: () = assert!(KEEP_TO - KEEP_FROM == 4 * 4 * 8, "the arrays end the Mapping");

#[inline(always)]
fn hmf_entry<C: EbpfContext>(ctx: &C, src: u8, vma: u64, address: u64, fault_flags: u32) {
    let Some((tgid, tid)) = wanted() else { return };
    // The entry program's context lies on the thread's kernel stack (the trampoline's saved
    // arguments, the kprobe's registers): where this call entered.
    let sp = ctx.as_ptr() as u64;
    let Some(t) = thread(tid, true) else {
        bump(counter::INFLIGHT_FULL);
        return;
    };
    if t.active != 0 {
        let st = &mut t.fault;
        if st.waiting == 0 && sp >= st.entry_sp {
            // Not deeper than the call in flight, so not nested in it: that call returned
            // and its return program did not run (the kernel skips a program already
            // running on the CPU, as when a thread is preempted inside it). Close it as a
            // fault whose return was missed, and start this one afresh.
            close_missed(st, src, tid);
        } else if st.waiting == 0 {
            st.depth += 1;
            bump(counter::NESTED);
            warn!(
                ctx,
                "handle_mm_fault entered on tid {} while a fault is in flight (nested fault or a missed return), address {:x}",
                tid,
                address
            );
            return;
        } else if st.address >> 12 == address >> 12 {
            // The call after a VM_FAULT_RETRY on this page: the same fault goes on. Its
            // start, steps, entries and exception stay; the call's own arguments replace
            // the last call's.
            st.waiting = 0;
            st.entry_sp = sp;
            st.vma = vma;
            st.address = address;
            st.fault_flags = fault_flags;
            st.hf_level = 0;
            st.in_hf = 0;
            st.in_pte = 0;
            st.in_range = 0;
            st.huge_addr = 0;
            st.huge_pfn = NO_PFN;
            let _ = PENDING.remove(tid);
            // A new exception on this page (the fault was abandoned for a signal and
            // raised again) has the newer error code.
            t.take_exception();
            return;
        } else {
            // The thread faults on another page: the retried fault never completed here.
            close_unlinked(st, src);
            let _ = PENDING.remove(tid);
        }
    }
    let st = &mut t.fault;
    // Zeroed but for the entries' first and last addresses and pfns, which are set at a
    // level's first entry and read only where there is one (`Mapping::clear_unused`).
    let p = (st as *mut InFlight).cast::<u8>();
    // SAFETY: this thread's own slot; both ranges lie inside it, and all-zero bytes are
    // valid for every member.
    unsafe {
        core::ptr::write_bytes(p, 0, KEEP_FROM);
        core::ptr::write_bytes(p.add(KEEP_TO), 0, size_of::<InFlight>() - KEEP_TO);
    }
    // SAFETY: helper without preconditions.
    st.start_ns = unsafe { bpf_ktime_get_ns() };
    st.address = address;
    st.vma = vma;
    st.fault_flags = fault_flags;
    st.tgid = tgid;
    st.src = src;
    st.pte_pfn = NO_PFN;
    st.huge_pfn = NO_PFN;
    st.entry_sp = sp;
    // The exception that led here, when the tracepoints are attached and it is this page.
    t.take_exception();
    t.active = 1;
}

/// Submits a fault that returned VM_FAULT_RETRY and was not continued on its page (its
/// thread faulted elsewhere next): a record of its retried calls, not of a fault. Its VMA
/// is left to user space (the pointer may be stale by now).
#[inline(always)]
fn close_unlinked(st: &InFlight, src: u8) {
    let closing = Closing {
        tgid: st.tgid,
        tid: 0,
        src,
        flags: rflags::HAS_START
            | rflags::HAS_ADDRESS
            | rflags::HAS_FAULT_FLAGS
            | rflags::RETRY_UNLINKED
            | if st.has_exception != 0 {
                rflags::HAS_EXCEPTION
            } else {
                0
            },
        start_ns: st.start_ns,
        address: st.address,
        fault_flags: st.fault_flags,
        ret: VM_FAULT_RETRY,
        ip: st.ip,
        error_code: st.error_code,
        retries: st.retries,
        vma_lock_retries: st.vma_lock_retries,
    };
    submit(
        &closing,
        &VmaInfo::default(),
        Some(&st.mapping as *const Mapping),
    );
}

/// Submits the fault in flight whose return program never ran: what it did so far, with
/// no return value and no latency (its end is unknown). Its VMA is left to user space.
#[inline(always)]
fn close_missed(st: &InFlight, src: u8, tid: u32) {
    let closing = Closing {
        tgid: st.tgid,
        tid,
        src,
        flags: rflags::HAS_ADDRESS
            | rflags::HAS_FAULT_FLAGS
            | rflags::RETURN_MISSED
            | if st.has_exception != 0 {
                rflags::HAS_EXCEPTION
            } else {
                0
            },
        start_ns: st.start_ns,
        address: st.address,
        fault_flags: st.fault_flags,
        ret: 0,
        ip: st.ip,
        error_code: st.error_code,
        retries: st.retries,
        vma_lock_retries: st.vma_lock_retries,
    };
    submit(
        &closing,
        &VmaInfo::default(),
        Some(&st.mapping as *const Mapping),
    );
}

/// `args` is `Some((vma, address, flags))` where the return probe can read the arguments
/// (fexit: then `R` is [`Typed`], and the VMA is read through the argument itself, which
/// the verifier knows by its type).
#[inline(always)]
fn hmf_return<C: EbpfContext, R: Kmem>(ctx: &C, src: u8, args: Option<(u64, u64, u32)>, ret: u32) {
    let Some((tgid, tid)) = wanted() else { return };
    let mut flags = rflags::HAS_RET;
    let mut vma = VmaInfo::default();
    // What the return probe itself knows (fexit has the arguments, kretprobe does not).
    let (mut vma_ptr, mut address, mut fault_flags, arg_bits) = match args {
        Some((v, a, f)) => (v, a, f, rflags::HAS_ADDRESS | rflags::HAS_FAULT_FLAGS),
        None => (0, 0, 0, 0),
    };
    let mut start_ns = 0;
    let (mut ip, mut error_code) = (0, 0);
    let (mut retries, mut vma_lock_retries) = (0, 0);
    let mut mapping: Option<*const Mapping> = None;
    let mut done: Option<*mut u32> = None;
    match thread(tid, false) {
        Some(t) if t.active != 0 && t.fault.waiting == 0 => {
            let st = &mut t.fault;
            if st.depth > 0 {
                // The inner call of a nested pair returns first; keep the outer state.
                st.depth -= 1;
                flags |= rflags::NESTED | arg_bits;
            } else if ret & VM_FAULT_RETRY != 0 {
                // Not done: the fault goes on in the thread's next call on this page.
                st.retries = st.retries.saturating_add(1);
                let mut mark = ret;
                if st.fault_flags & FAULT_FLAG_VMA_LOCK != 0 {
                    st.vma_lock_retries = st.vma_lock_retries.saturating_add(1);
                    mark |= STEP_VMA_LOCK;
                }
                st.mapping.push_step(step(level::RETRY, mark));
                st.waiting = 1;
                // A copy for the tool to find after detach, should no call continue it.
                #[expect(
                    clippy::needless_borrows_for_generic_args,
                    reason = "by value the 328-byte state would be copied onto the stack"
                )]
                let copied = PENDING.insert(tid, &*st, 0);
                if copied.is_err() {
                    bump(counter::INFLIGHT_FULL);
                }
                return;
            } else {
                start_ns = st.start_ns;
                if args.is_none() {
                    vma_ptr = st.vma;
                }
                address = st.address;
                fault_flags = st.fault_flags;
                retries = st.retries;
                vma_lock_retries = st.vma_lock_retries;
                flags |= rflags::HAS_START | rflags::HAS_ADDRESS | rflags::HAS_FAULT_FLAGS;
                if st.has_exception != 0 {
                    ip = st.ip;
                    error_code = st.error_code;
                    flags |= rflags::HAS_EXCEPTION;
                }
                mapping = Some(&st.mapping as *const Mapping);
                done = Some(&mut t.active as *mut u32);
            }
        }
        _ => {
            bump(counter::NO_ENTRY);
            warn!(
                ctx,
                "handle_mm_fault returned on tid {} without a recorded entry", tid
            );
            flags |= rflags::NO_ENTRY | arg_bits;
        }
    }
    R::read_vma(vma_ptr, &mut vma);
    if let Some(m) = mapping
        && flags & rflags::NESTED == 0
    {
        fill_thp::<R>(m.cast_mut(), vma_ptr, &vma);
    }
    let closing = Closing {
        tgid,
        tid,
        src,
        flags,
        start_ns,
        address,
        fault_flags,
        ret,
        ip,
        error_code,
        retries,
        vma_lock_retries,
    };
    submit(&closing, &vma, mapping);
    if let Some(active) = done {
        // SAFETY: this thread's own slot, as above; the record is out.
        unsafe { *active = 0 };
    }
}

/// `sched:sched_process_exit`, which every exiting thread passes: closes the fault its
/// thread leaves behind, a retried fault that no call continued (its retry calls) or a
/// call whose return the kernel skipped, which no later entry on the thread will close.
#[tracepoint]
pub fn hf_tp_thread_exit(_ctx: TracePointContext) -> u32 {
    let Some((_tgid, tid)) = wanted() else {
        return 0;
    };
    if let Some(t) = thread(tid, false) {
        if t.active != 0 {
            let st = &t.fault;
            if st.waiting != 0 {
                close_unlinked(st, st.src);
                let _ = PENDING.remove(tid);
            } else if st.depth == 0 {
                close_missed(st, st.src, tid);
            }
            t.active = 0;
        }
        t.exc_valid = 0;
    }
    forget(tid);
    0
}

#[fentry(function = "handle_mm_fault")]
pub fn hf_fentry_handle_mm_fault(ctx: FEntryContext) -> u32 {
    let vma: u64 = ctx.arg(0);
    let address: u64 = ctx.arg(1);
    let flags: u32 = ctx.arg(2);
    hmf_entry(&ctx, source::FEXIT, vma, address, flags);
    0
}

#[fexit(function = "handle_mm_fault")]
pub fn hf_fexit_handle_mm_fault(ctx: FExitContext) -> u32 {
    let vma: u64 = ctx.arg(0);
    let address: u64 = ctx.arg(1);
    let flags: u32 = ctx.arg(2);
    // handle_mm_fault has four arguments; fexit's return value follows them.
    let ret: u32 = ctx.arg(4);
    hmf_return::<_, Typed>(&ctx, source::FEXIT, Some((vma, address, flags)), ret);
    0
}

#[kprobe]
pub fn hf_kprobe_handle_mm_fault(ctx: ProbeContext) -> u32 {
    let vma: u64 = ctx.arg(0).unwrap_or(0);
    let address: u64 = ctx.arg(1).unwrap_or(0);
    let flags: u32 = ctx.arg(2).unwrap_or(0);
    hmf_entry(&ctx, source::KRETPROBE, vma, address, flags);
    0
}

#[kretprobe]
pub fn hf_kretprobe_handle_mm_fault(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    hmf_return::<_, Probe>(&ctx, source::KRETPROBE, None, ret);
    0
}
