//! `huge_fault` handlers (the level asked for, and the answer) and range-insert helpers.

use crate::{ctx::*, maps::HANDLERS, state::*};
use aya_ebpf::{
    EbpfContext as _,
    helpers::generated::bpf_get_func_ip,
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use huge_fault_common::{Level, NO_PFN, STEP_VIA_RANGE, kabi::VM_FAULT_NOPAGE, level};

/// Entry of a `huge_fault` handler (`dev_dax_huge_fault`, `ext4_dax_huge_fault`, a
/// driver's): remembers the level asked for, from `enum page_entry_size` or the order.
#[kprobe]
pub fn hf_kprobe_huge_fault(ctx: ProbeContext) -> u32 {
    let arg: u32 = ctx.arg(1).unwrap_or(0);
    let Some(st) = fault_state(true) else {
        return 0;
    };
    let lvl = Level::from_huge_fault_arg(arg, offsets().huge_fault_order != 0);
    st.hf_level = lvl.map_or(0, |l| l as u32);
    st.in_hf += 1;
    // Which handler: the probed function's address (5.15+), in the tool's table.
    // SAFETY: a kprobe program's context, as the helper wants it.
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    // SAFETY: a value of our own map, copied at once.
    if let Some(h) = unsafe { HANDLERS.get(ip) } {
        st.mapping.handler = *h;
    }
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
