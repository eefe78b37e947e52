//! Per-thread state in an LRU hash map keyed by tid: for kernels without task storage in
//! tracing programs (before 5.12). One lookup per program; the entry is made on a thread's
//! first fault and removed when the thread exits.

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray},
};

use crate::state::ThreadState;

/// One [`ThreadState`] per thread that faulted while traced. LRU, so that the entries of
/// threads whose exit went unseen are recycled.
#[map]
static THREAD_STATE: LruHashMap<u32, ThreadState> = LruHashMap::with_max_entries(16384, 0);

/// Where a new thread's state is zeroed before it goes into the map (too big for the stack).
#[map]
static THREAD_SCRATCH: PerCpuArray<ThreadState> = PerCpuArray::with_max_entries(1, 0);

/// This thread's state; with `create`, made (zeroed) when the thread has none yet.
#[inline(always)]
pub(crate) fn thread(tid: u32, create: bool) -> Option<&'static mut ThreadState> {
    if let Some(p) = THREAD_STATE.get_ptr_mut(tid) {
        // SAFETY: this thread's own map value; only this thread touches its key.
        return Some(unsafe { &mut *p });
    }
    if !create {
        return None;
    }
    let z = THREAD_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot; all-zero is a valid ThreadState.
    unsafe { core::ptr::write_bytes(z, 0, 1) };
    // SAFETY: as above; the map copies the value.
    THREAD_STATE.insert(tid, unsafe { &*z }, 0).ok()?;
    // SAFETY: as for the first lookup.
    THREAD_STATE.get_ptr_mut(tid).map(|p| unsafe { &mut *p })
}

/// Drops an exiting thread's entry.
#[inline(always)]
pub(crate) fn forget(tid: u32) {
    let _ = THREAD_STATE.remove(tid);
}
