//! The fault in flight on this thread, as the nested probes see it, and how they add a step
//! or an entry to it.

use crate::{
    ctx::*,
    maps::{Exception, VmaCache},
    store::thread,
};
use huge_fault_common::{InFlight, NO_PFN, counter, kabi::NOT_MAPPED, step};

/// Everything one thread keeps between its programs, in one slot per thread (task local
/// storage, or a hash map on older kernels: see `store`).
#[repr(C)]
pub(crate) struct ThreadState {
    /// The last fault exception of the thread (exception tracepoints).
    pub(crate) exc: Exception,
    /// 1 while `exc` waits for the fault it raised.
    pub(crate) exc_valid: u32,
    /// 1 while `fault` holds a call in flight, or a fault waiting for the call after its
    /// VM_FAULT_RETRY.
    pub(crate) active: u32,
    pub(crate) fault: InFlight,
    /// The VMA of the thread's last completed fault (tracepoint-only mode).
    pub(crate) vma_cache: VmaCache,
}

impl ThreadState {
    /// Gives the fault the thread's pending exception when it raised it (same page), and
    /// consumes the exception either way.
    #[inline(always)]
    pub(crate) fn take_exception(&mut self) {
        if self.exc_valid != 0 {
            if self.exc.address >> 12 == self.fault.address >> 12 {
                self.fault.ip = self.exc.ip;
                self.fault.error_code = self.exc.error_code;
                self.fault.has_exception = 1;
            }
            self.exc_valid = 0;
        }
    }
}

/// The fault in flight on this thread, when its process is traced. With `orphan`, a
/// nested probe that finds no fault in flight is counted in `ORPHAN_STEPS`.
#[inline(always)]
pub(crate) fn fault_state(orphan: bool) -> Option<&'static mut InFlight> {
    let (_tgid, tid) = wanted()?;
    match thread(tid, false) {
        // Between the calls of a retried fault nothing belongs to it.
        Some(t) if t.active != 0 && t.fault.waiting == 0 => Some(&mut t.fault),
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
pub(crate) fn note_step(
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
    if entry && ret & NOT_MAPPED == 0 {
        m.note_entry(level, addr, pfn);
    }
}

/// [`note_step`] for a call that mapped `n` entries of `level` at once (a multi-size THP
/// folio, a `remap_pfn_range`): the step, and when it mapped, the entries as one run from
/// `addr` and `pfn` ([`NO_PFN`] when unknown).
#[inline(always)]
pub(crate) fn note_run_step(
    st: &mut InFlight,
    level: u8,
    ret: u32,
    n: u64,
    (addr, pfn): (u64, u64),
    chain: bool,
) {
    note_step(st, level, ret, addr, pfn, chain, false);
    if st.depth == 0 && ret & NOT_MAPPED == 0 {
        let n = n.min(u64::from(u32::MAX)) as u32;
        st.mapping.note_run(level, n, addr, pfn);
    }
}

/// [`note_step`] for the probe of a function that maps at the fault address: its entry is
/// the `size`-aligned block around it.
#[inline(always)]
pub(crate) fn note_fault_step(level: u8, ret: u32, size: u64, chain: bool, entry: bool) {
    if let Some(st) = fault_state(true) {
        let addr = st.address & !(size - 1);
        note_step(st, level, ret, addr, NO_PFN, chain, entry);
    }
}
