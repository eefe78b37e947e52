//! The fault in flight on this thread, as the nested probes see it, and how they add a step
//! or an entry to it.

use crate::{ctx::*, maps::*};
use huge_fault_common::{InFlight, NO_PFN, counter, kabi::NOT_MAPPED, step};

/// The fault in flight on this thread, when its process is traced. With `orphan`, a
/// nested probe that finds no fault in flight is counted in `ORPHAN_STEPS`.
#[inline(always)]
pub(crate) fn fault_state(orphan: bool) -> Option<&'static mut InFlight> {
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

/// [`note_step`] for the probe of a function that maps at the fault address: its entry is
/// the `size`-aligned block around it.
#[inline(always)]
pub(crate) fn note_fault_step(level: u8, ret: u32, size: u64, chain: bool, entry: bool) {
    if let Some(st) = fault_state(true) {
        let addr = st.address & !(size - 1);
        note_step(st, level, ret, addr, NO_PFN, chain, entry);
    }
}
