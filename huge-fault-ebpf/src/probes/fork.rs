//! `huge-fault run`: the traced command's children join the traced set.

use crate::maps::*;
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};

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
