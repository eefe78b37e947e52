//! huge-fault's eBPF programs: the fault lifecycle.
//!
//! Three ways to see a fault, chosen by the tool per kernel:
//! - fentry/fexit on `handle_mm_fault` (BTF-typed arguments, cheapest);
//! - kprobe/kretprobe on `handle_mm_fault` (any kernel with CONFIG_KPROBES);
//! - tracepoint-only: `exceptions:page_fault_{user,kernel}` stamp the entry, and the perf
//!   software events `minor-faults` / `major-faults` (raised by `mm_account_fault` when a
//!   fault completes without VM_FAULT_RETRY or an error) close it. This mode sees neither
//!   return codes nor retried calls, and says so.
//!
//! Every mode writes one fixed-size [`FaultRecord`] per fault into `EVENTS`.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::{ffi::c_void, intrinsics::AtomicOrdering};

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        bpf_perf_event_data,
    },
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_find_vma, bpf_get_current_task_btf},
    },
    macros::{fentry, fexit, kprobe, kretprobe, map, perf_event, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{
        FEntryContext, FExitContext, PerfEventContext, ProbeContext, RetProbeContext,
        TracePointContext,
    },
};
use aya_log_ebpf::warn;
use huge_fault_common::{
    AggKey, FaultRecord, Filter, InFlight, KernelOffsets, Mapping, NO_PFN, PFN_MASK,
    STEP_VIA_RANGE, STEP_VMA_LOCK, Settings, counter,
    kabi::{FAULT_FLAG_VMA_LOCK, NOT_MAPPED, VM_FAULT_NOPAGE, VM_FAULT_RETRY},
    latency, level, rflags, source, step,
};

/// One record per fault. The size is set by the tool at load time (`--ring-buffer-kib`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Faults counted in the kernel, per class ([`AggKey`]): every fault with `--aggregate`,
/// else each fault that found the ring buffer full. Entries are allocated on first use.
#[map]
static AGGREGATE: HashMap<AggKey, u64> = HashMap::with_max_entries(65536, BPF_F_NO_PREALLOC);

/// Where a fault's [`AggKey`] is built (152 bytes do not fit on the stack beside the rest).
#[map]
static AGG_SCRATCH: PerCpuArray<AggKey> = PerCpuArray::with_max_entries(1, 0);

/// Per-thread `handle_mm_fault` call in flight, keyed by tid. LRU, so that the entries of
/// threads that died mid-fault are recycled instead of filling the map.
#[map]
static INFLIGHT: LruHashMap<u32, InFlight> = LruHashMap::with_max_entries(16384, 0);

/// Where a new fault's [`InFlight`] is built before it goes into `INFLIGHT`.
#[map]
static INFLIGHT_SCRATCH: PerCpuArray<InFlight> = PerCpuArray::with_max_entries(1, 0);

/// The VMA a process faulted in last (tracepoint-only mode), with the `mm_lock_seq` it was
/// looked up under: valid while that sequence is unchanged. `bpf_find_vma` from the fault
/// completion event costs about 20 µs on some kernels (its mmap unlock is deferred to an
/// irq_work); the cache skips it for the next faults in the same VMA.
#[map]
static VMA_CACHE: LruHashMap<u32, VmaCache> = LruHashMap::with_max_entries(4096, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct VmaCache {
    seq: u64,
    vma: VmaInfo,
}

/// Per-thread fault exception not yet completed, keyed by tid (exceptions tracepoints).
#[map]
static EXCEPTIONS: LruHashMap<u32, Exception> = LruHashMap::with_max_entries(16384, 0);

/// A fault exception not yet completed: 32 bytes, copied on every fault (the whole
/// [`InFlight`] cost a 280-byte copy in and out for these four fields).
#[repr(C)]
#[derive(Clone, Copy)]
struct Exception {
    start_ns: u64,
    address: u64,
    ip: u64,
    error_code: u32,
    _pad: u32,
}

/// Anomaly and loss counters, indexed by `huge_fault_common::counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Member offsets from the running kernel's BTF, set by the tool before load.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
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
};

/// Program settings, set by the tool before load.
#[unsafe(no_mangle)]
static SETTINGS: Settings = Settings {
    aggregate: 0,
    _pad: 0,
};

/// Process filter, set by the tool before load.
#[unsafe(no_mangle)]
static FILTER: Filter = Filter {
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
static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

#[inline(always)]
fn offsets() -> KernelOffsets {
    // SAFETY: a read of our own .rodata global; volatile so the value the loader wrote is
    // not constant-folded away at compile time.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot; programs do not migrate CPUs while running.
        unsafe { *slot += 1 };
    }
}

/// Whether this thread group is traced. Returns the (tgid, tid) pair.
#[inline(always)]
fn wanted() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    // SAFETY: see offsets().
    let filter = unsafe { core::ptr::read_volatile(&FILTER) };
    if filter.self_tgid != 0 && tgid == filter.self_tgid {
        return None;
    }
    if filter.target_tgid != 0 && tgid != filter.target_tgid {
        return None;
    }
    // SAFETY: a lookup in our own map; the value is not kept.
    if filter.follow != 0 && unsafe { TRACED.get(tgid) }.is_none() {
        return None;
    }
    // SAFETY: helper without preconditions.
    if filter.cgroup_id != 0 && unsafe { bpf_get_current_cgroup_id() } != filter.cgroup_id {
        return None;
    }
    if filter.comm[0] != 0 {
        // Compared as two words: the BPF target has no memcmp.
        let c = bpf_get_current_comm().unwrap_or([0; 16]);
        let word = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        if word(&c, 0) != word(&filter.comm, 0) || word(&c, 8) != word(&filter.comm, 8) {
            return None;
        }
    }
    Some((tgid, tid))
}

#[inline(always)]
fn read_u64(base: u64, off: u32) -> u64 {
    // SAFETY: bpf_probe_read_kernel tolerates any address; a bad one yields an error.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const u64) }.unwrap_or(0)
}

#[inline(always)]
fn read_u32(base: u64, off: u32) -> u32 {
    // SAFETY: as read_u64.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const u32) }.unwrap_or(0)
}

/// What the programs keep of a VMA.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct VmaInfo {
    start: u64,
    end: u64,
    flags: u64,
    pgoff: u64,
    inode: u64,
    dev: u32,
    found: u32,
}

#[inline(always)]
fn read_vma(vma: u64, out: &mut VmaInfo) {
    let o = offsets();
    if o.valid == 0 || vma == 0 {
        return;
    }
    out.start = read_u64(vma, o.vma_start);
    out.end = read_u64(vma, o.vma_end);
    out.flags = read_u64(vma, o.vma_flags);
    out.pgoff = read_u64(vma, o.vma_pgoff);
    let file = read_u64(vma, o.vma_file);
    if file != 0 {
        let inode = read_u64(file, o.file_inode);
        if inode != 0 {
            out.inode = read_u64(inode, o.inode_ino);
            let sb = read_u64(inode, o.inode_sb);
            if sb != 0 {
                out.dev = read_u32(sb, o.sb_dev);
            }
        }
    }
    out.found = 1;
}

/// What the closing program knows about a fault, besides its VMA.
struct Closing {
    tgid: u32,
    tid: u32,
    src: u8,
    flags: u16,
    start_ns: u64,
    address: u64,
    fault_flags: u32,
    ret: u32,
    ip: u64,
    error_code: u32,
    retries: u16,
    vma_lock_retries: u16,
}

/// Counts the fault in its class in `AGGREGATE` (atomically: faults of one class may close
/// on several CPUs at once). A fault that finds the table full is lost, and counted so.
#[inline(always)]
fn aggregate(c: &Closing, vma: &VmaInfo, mapping: Option<*const Mapping>, flags: u16) {
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
            flags |= rflags::HAS_MAPPING;
        }
        (*k).flags = flags;
    }
    // SAFETY: as above; the key is read by the map helpers only.
    let key = unsafe { &*k };
    let count = match AGGREGATE.get_ptr_mut(key) {
        Some(n) => Some(n),
        None => {
            // Two CPUs may create the class at once: the loser adds to the winner's entry.
            let _ = AGGREGATE.insert(key, 0, BPF_NOEXIST as u64);
            AGGREGATE.get_ptr_mut(key)
        }
    };
    match count {
        Some(n) => {
            // SAFETY: a live, 8-byte aligned map value. An atomic add whose result is unused
            // (BPF_XADD: core's atomic types have no read-modify-write on this target).
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
fn submit(c: &Closing, vma: &VmaInfo, mapping: Option<*const Mapping>) {
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
        core::ptr::write_bytes(r, 0, 1);
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
        (*r).retries = c.retries;
        (*r).vma_lock_retries = c.vma_lock_retries;
        (*r).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if let Some(m) = mapping {
            core::ptr::copy_nonoverlapping(m, &mut (*r).mapping, 1);
            flags |= rflags::HAS_MAPPING;
        }
        (*r).flags = flags;
    }
    // Batched wake-ups: user space drains the ring on a short timer, so a record wakes it
    // only when a backlog has built up. A wake-up per record (an IPI to the sleeping reader)
    // costs more than everything else a fault record does.
    let wake = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(wake as u64);
    bump(counter::RECORDS);
}

/// Unread bytes in the ring above which a record wakes user space at once (a sixteenth of
/// the ring; the reader's timer drains it long before it fills).
const WAKEUP_BYTES: u64 = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// handle_mm_fault entry and return: shared by the fentry and kprobe flavours.
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn hmf_entry<C: EbpfContext>(ctx: &C, src: u8, vma: u64, address: u64, fault_flags: u32) {
    let Some((tgid, tid)) = wanted() else { return };
    if let Some(state) = INFLIGHT.get_ptr_mut(tid) {
        // SAFETY: a map value of this thread; only this thread touches its key.
        let st = unsafe { &mut *state };
        if st.waiting == 0 {
            st.depth += 1;
            bump(counter::NESTED);
            warn!(
                ctx,
                "handle_mm_fault entered on tid {} while a fault is in flight (nested fault or a missed return), address {:x}",
                tid,
                address
            );
            return;
        }
        if st.address >> 12 == address >> 12 {
            // The call after a VM_FAULT_RETRY on this page: the same fault goes on. Its
            // start, steps, entries and exception stay; the call's own arguments replace
            // the last call's.
            st.waiting = 0;
            st.vma = vma;
            st.address = address;
            st.fault_flags = fault_flags;
            st.hf_level = 0;
            st.in_hf = 0;
            st.in_pte = 0;
            st.in_range = 0;
            st.huge_addr = 0;
            st.huge_pfn = NO_PFN;
            // A new exception on this page (the fault was abandoned for a signal and
            // raised again) has the newer error code.
            // SAFETY: this thread's own map value, copied out.
            if let Some(exc) = unsafe { EXCEPTIONS.get(tid) }.copied() {
                if exc.address >> 12 == address >> 12 {
                    st.ip = exc.ip;
                    st.error_code = exc.error_code;
                    st.has_exception = 1;
                }
                let _ = EXCEPTIONS.remove(tid);
            }
            return;
        }
        // The thread faults on another page: the retried fault never completed here.
        close_unlinked(st, src);
    }
    // Built in this CPU's scratch slot, not on the stack: 328 bytes there do not fit beside
    // the callees' frames on older kernels (512 bytes in all).
    let Some(state) = INFLIGHT_SCRATCH.get_ptr_mut(0) else {
        bump(counter::INFLIGHT_FULL);
        return;
    };
    // SAFETY: this CPU's scratch slot; a program runs to completion on one CPU.
    let st = unsafe { &mut *state };
    // SAFETY: as above; all-zero is a valid InFlight.
    unsafe { core::ptr::write_bytes(state, 0, 1) };
    // SAFETY: helper without preconditions.
    st.start_ns = unsafe { bpf_ktime_get_ns() };
    st.address = address;
    st.vma = vma;
    st.fault_flags = fault_flags;
    st.tgid = tgid;
    st.pte_pfn = NO_PFN;
    st.huge_pfn = NO_PFN;
    // The exception that led here, when the tracepoints are attached and it is this page.
    // SAFETY: this thread's own map value, copied out.
    if let Some(exc) = unsafe { EXCEPTIONS.get(tid) }.copied() {
        if exc.address >> 12 == address >> 12 {
            st.ip = exc.ip;
            st.error_code = exc.error_code;
            st.has_exception = 1;
        }
        let _ = EXCEPTIONS.remove(tid);
    }
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by value it would be copied onto the stack, which is what the scratch slot avoids"
    )]
    let inserted = INFLIGHT.insert(tid, &*st, 0);
    if inserted.is_err() {
        bump(counter::INFLIGHT_FULL);
    }
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

/// `args` is `Some((vma, address, flags))` where the return probe can read the arguments (fexit).
#[inline(always)]
fn hmf_return<C: EbpfContext>(ctx: &C, src: u8, args: Option<(u64, u64, u32)>, ret: u32) {
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
    let mut remove = false;
    match INFLIGHT.get_ptr_mut(tid) {
        // SAFETY: this thread's own map value.
        Some(state) if unsafe { (*state).waiting } == 0 => {
            // SAFETY: as above.
            let st = unsafe { &mut *state };
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
                return;
            } else {
                start_ns = st.start_ns;
                vma_ptr = st.vma;
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
                remove = true;
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
    read_vma(vma_ptr, &mut vma);
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
    if remove {
        let _ = INFLIGHT.remove(tid);
    }
}

// ---------------------------------------------------------------------------------------------
// Nested probes: what the fault in flight on this thread tried and mapped.
// ---------------------------------------------------------------------------------------------

/// The fault in flight on this thread, when its process is traced. With `orphan`, a
/// nested probe that finds no fault in flight is counted in `ORPHAN_STEPS`.
#[inline(always)]
fn fault_state(orphan: bool) -> Option<&'static mut InFlight> {
    let (_tgid, tid) = wanted()?;
    // SAFETY: this thread's own map value; a thread runs one probe at a time.
    match INFLIGHT.get_ptr_mut(tid).map(|s| unsafe { &mut *s }) {
        // Between the calls of a retried fault nothing belongs to it.
        Some(st) if st.waiting == 0 => Some(st),
        _ => {
            if orphan {
                bump(counter::ORPHAN_STEPS);
            }
            None
        }
    }
}

/// Records one step of the fault in flight on this thread: `level` tried, `ret` returned.
/// `chain` adds it to the chain of levels tried; `entry` counts one entry of that level at
/// `addr` (mapping `pfn`, [`NO_PFN`] when unknown) when `ret` says it mapped.
#[inline(always)]
fn note_step(
    st: &mut InFlight,
    level: u8,
    ret: u32,
    addr: u64,
    pfn: u64,
    chain: bool,
    entry: bool,
) {
    if st.depth > 0 {
        // Inside a nested handle_mm_fault: it belongs to neither call for certain.
        st.mapping.overflow += 1;
        return;
    }
    let m = &mut st.mapping;
    if chain {
        m.push_step(step(level, ret));
    }
    if entry && ret & NOT_MAPPED == 0 && (level as usize) < m.entries.len() {
        let l = level as usize;
        m.entries[l] += 1;
        if m.first_addr[l] == 0 {
            m.first_addr[l] = addr;
            m.first_pfn[l] = pfn;
        }
        m.last_addr[l] = addr;
        m.last_pfn[l] = pfn;
        if pfn == NO_PFN {
            m.pfn_missing |= 1 << l;
        }
    }
}

/// [`note_step`] for the probe of a function that maps at the fault address: its entry is
/// the `size`-aligned block around it.
#[inline(always)]
fn note_fault_step(level: u8, ret: u32, size: u64, chain: bool, entry: bool) {
    if let Some(st) = fault_state(true) {
        let addr = st.address & !(size - 1);
        note_step(st, level, ret, addr, NO_PFN, chain, entry);
    }
}

/// Entry of a `huge_fault` handler (`dev_dax_huge_fault`, `ext4_dax_huge_fault`, a
/// driver's): remembers the level asked for, from `enum page_entry_size` or the order.
#[kprobe]
pub fn hf_kprobe_huge_fault(ctx: ProbeContext) -> u32 {
    let arg: u32 = ctx.arg(1).unwrap_or(0);
    let Some(st) = fault_state(true) else {
        return 0;
    };
    let lvl = if offsets().huge_fault_order != 0 {
        match arg {
            0 => level::PTE,
            9 => level::PMD,
            18 => level::PUD,
            _ => 0,
        }
    } else {
        match arg {
            0 => level::PTE,
            1 => level::PMD,
            2 => level::PUD,
            _ => 0,
        }
    };
    st.hf_level = lvl as u32;
    st.in_hf += 1;
    0
}

/// Return of a `huge_fault` handler: one chain step at the level it was asked for, marked
/// [`STEP_VIA_RANGE`] when a range-insert helper answered inside it.
#[kretprobe]
pub fn hf_kret_huge_fault(ctx: RetProbeContext) -> u32 {
    let mut ret: u32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    st.in_hf = st.in_hf.saturating_sub(1);
    if st.hf_level & HF_RANGED != 0 {
        ret |= STEP_VIA_RANGE;
    }
    let lvl = (st.hf_level & 0xff) as u8;
    st.hf_level = 0;
    note_step(st, lvl, ret, 0, NO_PFN, true, false);
    0
}

/// In `InFlight::hf_level`: a range-insert helper ran inside the `huge_fault` in flight.
const HF_RANGED: u32 = 1 << 8;

/// Entry of a range-insert helper (the lab driver's Rust `hf_range::kernel::insert_range`,
/// or a C helper the user names): the inserts inside it only count entries.
#[kprobe]
pub fn hf_kprobe_range(_ctx: ProbeContext) -> u32 {
    if let Some(st) = fault_state(true) {
        st.in_range += 1;
    }
    0
}

/// Return of a range-insert helper: returns 0 or `VM_FAULT_NOPAGE` on success, else the
/// error bits. Inside a `huge_fault` handler it marks that handler's step; from the PTE
/// `fault` handler it is a PTE step of its own.
#[kretprobe]
pub fn hf_kret_range(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    let ret = if ret == 0 { VM_FAULT_NOPAGE } else { ret };
    let Some(st) = fault_state(true) else {
        return 0;
    };
    st.in_range = st.in_range.saturating_sub(1);
    if st.in_range > 0 {
        // A helper called by another helper: the outermost one makes the step.
        return 0;
    }
    if st.in_hf > 0 {
        st.hf_level |= HF_RANGED;
    } else {
        note_step(st, level::PTE, ret | STEP_VIA_RANGE, 0, NO_PFN, true, false);
    }
    0
}

/// Entry of a PTE insert (`vmf_insert_pfn`, `vmf_insert_pfn_prot`): remembers the address
/// of the outermost one (the first may call the second). Its return counts a missing fault.
#[kprobe]
pub fn hf_kprobe_insert_pte(ctx: ProbeContext) -> u32 {
    let addr: u64 = ctx.arg(1).unwrap_or(0);
    let pfn: u64 = ctx.arg(2).unwrap_or(NO_PFN);
    if let Some(st) = fault_state(false) {
        if st.in_pte == 0 {
            st.pte_addr = addr;
            st.pte_pfn = pfn & PFN_MASK;
        }
        st.in_pte += 1;
    }
    0
}

/// Entry of a PTE insert that takes a `struct page *` (`vm_insert_page`): the address; no
/// pfn (the page pointer is not translated).
#[kprobe]
pub fn hf_kprobe_insert_pte_page(ctx: ProbeContext) -> u32 {
    let addr: u64 = ctx.arg(1).unwrap_or(0);
    if let Some(st) = fault_state(false) {
        if st.in_pte == 0 {
            st.pte_addr = addr;
            st.pte_pfn = NO_PFN;
        }
        st.in_pte += 1;
    }
    0
}

/// `vmf->address` of a `struct vm_fault *`, when its offset is known.
#[inline(always)]
fn vmf_address(vmf: u64) -> Option<u64> {
    let off = offsets().vmf_address;
    (off != 0 && vmf != 0).then(|| read_u64(vmf, off))
}

/// Entry of a PTE insert that takes the fault (`vmf_insert_page_mkwrite`, DAX on 6.15+): the
/// address from `vmf->address`; no pfn.
#[kprobe]
pub fn hf_kprobe_insert_pte_vmf(ctx: ProbeContext) -> u32 {
    let vmf: u64 = ctx.arg(0).unwrap_or(0);
    if let Some(st) = fault_state(false) {
        if st.in_pte == 0 {
            st.pte_addr = vmf_address(vmf).unwrap_or(st.address);
            st.pte_pfn = NO_PFN;
        }
        st.in_pte += 1;
    }
    0
}

/// A new anonymous folio mapped by a fault (`folio_add_new_anon_rmap`): a multi-size THP
/// folio (order 1 to 8, 6.8+) maps `1 << order` PTEs at once. Order 0 is left to the PTE
/// path's inference and PMD-size folios to `do_huge_pmd_anonymous_page`.
#[kprobe]
pub fn hf_kprobe_anon_rmap(ctx: ProbeContext) -> u32 {
    let folio: u64 = ctx.arg(0).unwrap_or(0);
    let addr: u64 = ctx.arg(2).unwrap_or(0);
    let o = offsets();
    if o.folio_flags_1 == 0 || folio == 0 {
        return 0;
    }
    let Some(st) = fault_state(false) else {
        return 0;
    };
    if read_u64(folio, 0) & (1u64 << (o.pg_head & 63)) == 0 {
        return 0;
    }
    let order = read_u64(folio, o.folio_flags_1) & 0xff;
    if order == 0 || order >= 9 {
        return 0;
    }
    let nr = 1u64 << order;
    let start = addr & !((nr << 12) - 1);
    note_step(st, level::PTE, 0, start, NO_PFN, true, true);
    if st.depth == 0 {
        let m = &mut st.mapping;
        m.entries[level::PTE as usize] += (nr - 1) as u32;
        m.last_addr[level::PTE as usize] = start + ((nr - 1) << 12);
    }
    0
}

/// Return of a PTE insert: one PTE entry (at its own address) when the outermost insert
/// returns; a chain step when no `huge_fault` handler or range helper is in flight.
#[kretprobe]
pub fn hf_kret_insert_pte(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    if st.in_pte == 0 {
        return 0;
    }
    st.in_pte -= 1;
    if st.in_pte > 0 {
        return 0;
    }
    let step = st.in_hf == 0 && st.in_range == 0;
    let addr = st.pte_addr & !0xfff;
    let pfn = st.pte_pfn;
    note_step(st, level::PTE, ret, addr, pfn, step, true);
    0
}

/// Anonymous THP: returns VM_FAULT_FALLBACK when no PMD could be mapped.
#[kretprobe]
pub fn hf_kret_do_huge_pmd_anonymous_page(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    note_fault_step(level::PMD, ret, 2 << 20, true, true);
    0
}

/// File and shmem THP mapped by a PMD (finish_fault and fault-around).
#[kretprobe]
pub fn hf_kret_do_set_pmd(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    note_fault_step(level::PMD, ret, 2 << 20, true, true);
    0
}

/// A PMD inserted by a driver or DAX: `vmf_insert_pfn_pmd[_prot]`, `vmf_insert_folio_pmd`
/// (the names differ per kernel; the tool attaches whichever exist). VM_FAULT_NOPAGE is
/// success.
#[kretprobe]
pub fn hf_kret_insert_pmd(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    // Inside a huge_fault handler or a range helper, their return makes the step.
    let step = st.in_hf == 0 && st.in_range == 0;
    let (addr, pfn) = huge_insert_target(st, 2 << 20);
    note_step(st, level::PMD, ret, addr, pfn, step, true);
    0
}

/// A PUD inserted by a driver or DAX: `vmf_insert_pfn_pud[_prot]`, `vmf_insert_folio_pud`.
#[kretprobe]
pub fn hf_kret_insert_pud(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    // Inside a huge_fault handler or a range helper, their return makes the step.
    let step = st.in_hf == 0 && st.in_range == 0;
    let (addr, pfn) = huge_insert_target(st, 1 << 30);
    note_step(st, level::PUD, ret, addr, pfn, step, true);
    0
}

/// The entry a PMD/PUD insert made: `vmf->address` and the pfn its entry probe read (a range
/// helper hands each insert a copy of the fault pointing at the entry's slot), else the
/// fault address and no pfn. Clears both for the next insert.
#[inline(always)]
fn huge_insert_target(st: &mut InFlight, size: u64) -> (u64, u64) {
    let addr = if st.huge_addr != 0 {
        st.huge_addr
    } else {
        st.address
    };
    let pfn = st.huge_pfn;
    st.huge_addr = 0;
    st.huge_pfn = NO_PFN;
    (addr & !(size - 1), pfn)
}

/// Entry of a PMD/PUD pfn insert (`vmf_insert_pfn_{pmd,pud}[_prot]`): `vmf->address` and the
/// pfn, a `pfn_t` (flag bits masked off) up to 6.16, an `unsigned long` since.
#[kprobe]
pub fn hf_kprobe_insert_huge(ctx: ProbeContext) -> u32 {
    let vmf: u64 = ctx.arg(0).unwrap_or(0);
    let pfn: u64 = ctx.arg(1).unwrap_or(NO_PFN);
    if let Some(st) = fault_state(false) {
        st.huge_addr = vmf_address(vmf).unwrap_or(0);
        st.huge_pfn = pfn & PFN_MASK;
    }
    0
}

/// Entry of a PMD/PUD folio insert (`vmf_insert_folio_{pmd,pud}`, 6.15+): `vmf->address`;
/// the pfn stays unknown (deriving it from the `struct folio *` needs `vmemmap_base`,
/// which the programs do not read).
#[kprobe]
pub fn hf_kprobe_insert_folio_huge(ctx: ProbeContext) -> u32 {
    let vmf: u64 = ctx.arg(0).unwrap_or(0);
    if let Some(st) = fault_state(false) {
        st.huge_addr = vmf_address(vmf).unwrap_or(0);
        st.huge_pfn = NO_PFN;
    }
    0
}

/// hugetlbfs: the entry's size is the VMA's huge page size (its hstate's order).
#[kretprobe]
pub fn hf_kret_hugetlb_fault(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    let vma = st.vma;
    let o = offsets();
    let mut order = 0;
    if o.hstate_valid != 0 && vma != 0 {
        let file = read_u64(vma, o.vma_file);
        let inode = if file != 0 {
            read_u64(file, o.file_inode)
        } else {
            0
        };
        let sb = if inode != 0 {
            read_u64(inode, o.inode_sb)
        } else {
            0
        };
        let info = if sb != 0 {
            read_u64(sb, o.sb_fs_info)
        } else {
            0
        };
        let hstate = if info != 0 {
            read_u64(info, o.hugetlbfs_hstate)
        } else {
            0
        };
        if hstate != 0 {
            order = read_u32(hstate, o.hstate_order);
        }
    }
    let (lvl, size) = match order {
        18 => (level::PUD, 1u64 << 30),
        9 => (level::PMD, 2 << 20),
        // Another size (or unknown): a step with level 0 keeps the chain honest.
        _ => (0, 4096),
    };
    let addr = st.address & !(size - 1);
    note_step(st, lvl, ret, addr, NO_PFN, true, true);
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
    hmf_return(&ctx, source::FEXIT, Some((vma, address, flags)), ret);
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
    hmf_return(&ctx, source::KRETPROBE, None, ret);
    0
}

// ---------------------------------------------------------------------------------------------
// Tracepoint-only mode.
// ---------------------------------------------------------------------------------------------

/// `exceptions:page_fault_{user,kernel}`: `address` at 8, `ip` at 16, `error_code` at 24
/// (the tool checks the format file before attaching).
#[inline(always)]
fn exception_entry(ctx: &TracePointContext, which: u32) {
    let Some((_tgid, tid)) = wanted() else { return };
    bump(which);
    // SAFETY: offsets inside the tracepoint record, checked by the tool against the format.
    let address: u64 = unsafe { ctx.read_at(8) }.unwrap_or(0);
    // SAFETY: as above.
    let ip: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    // SAFETY: as above.
    let error_code: u64 = unsafe { ctx.read_at(24) }.unwrap_or(0);
    let state = Exception {
        // SAFETY: helper without preconditions.
        start_ns: unsafe { bpf_ktime_get_ns() },
        address,
        ip,
        error_code: error_code as u32,
        _pad: 0,
    };
    // Overwrites a stale entry of an exception that never completed (SIGSEGV, a spurious
    // fault, a fault fixed up by the kernel): those show as exceptions without completion.
    if EXCEPTIONS.insert(tid, state, 0).is_err() {
        bump(counter::INFLIGHT_FULL);
    }
}

/// `sched:sched_process_fork`, in the parent: a traced process's child is traced too.
#[tracepoint]
pub fn hf_tp_sched_process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: see offsets().
    let filter = unsafe { core::ptr::read_volatile(&FILTER) };
    if filter.follow == 0 {
        return 0;
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: a lookup in our own map; the value is not kept.
    if unsafe { TRACED.get(parent) }.is_none() {
        return 0;
    }
    // SAFETY: the offset comes from this kernel's format file for this tracepoint.
    let child: i32 = unsafe { ctx.read_at(filter.fork_child_pid_offset as usize) }.unwrap_or(0);
    if child > 0 {
        // A new thread of a traced process has the same tgid; a new process gets its own.
        let _ = TRACED.insert(child as u32, 1, 0);
    }
    0
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
    read_vma(vma as u64, out);
    0
}

#[inline(always)]
fn perf_completion(ctx: &PerfEventContext, src: u8) {
    let Some((tgid, tid)) = wanted() else { return };
    // SAFETY: the context of a perf_event program is a bpf_perf_event_data.
    let address = unsafe { (*ctx.ctx.cast::<bpf_perf_event_data>()).addr };
    let mut flags = rflags::HAS_ADDRESS;
    let (mut start_ns, mut ip, mut error_code) = (0, 0, 0);
    // SAFETY: this thread's own map value, copied out.
    if let Some(st) = unsafe { EXCEPTIONS.get(tid) }.copied() {
        // The exception belongs to this completion when it faulted on the same page.
        if st.address >> 12 == address >> 12 {
            start_ns = st.start_ns;
            ip = st.ip;
            error_code = st.error_code;
            flags |= rflags::HAS_START | rflags::HAS_EXCEPTION;
        }
        let _ = EXCEPTIONS.remove(tid);
    }
    let mut vma = VmaInfo::default();
    let o = offsets();
    if o.valid != 0 {
        // SAFETY: the current task is valid for the program's duration.
        let task = unsafe { bpf_get_current_task_btf() } as u64;
        // The VMA tree's sequence now (u64::MAX: not known, no caching).
        let seq = if o.task_mm != 0 && o.mm_lock_seq != 0 {
            let mm = read_u64(task, o.task_mm);
            if mm != 0 {
                read_u32(mm, o.mm_lock_seq) as u64
            } else {
                u64::MAX
            }
        } else {
            u64::MAX
        };
        // SAFETY: a copy of this process's cache entry.
        let cached = unsafe { VMA_CACHE.get(tgid) }.copied();
        match cached {
            Some(c)
                if seq != u64::MAX
                    && c.seq == seq
                    && c.vma.found != 0
                    && address >= c.vma.start
                    && address < c.vma.end =>
            {
                vma = c.vma;
            }
            _ => {
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
                if rc != 0 || vma.found == 0 {
                    bump(counter::VMA_LOOKUP_FAILED);
                    flags |= rflags::VMA_LOOKUP_FAILED;
                    vma.found = 0;
                } else if seq != u64::MAX {
                    let _ = VMA_CACHE.insert(tgid, VmaCache { seq, vma }, 0);
                }
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
