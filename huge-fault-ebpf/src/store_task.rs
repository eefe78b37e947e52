//! Per-thread state in BPF task local storage: the slot hangs off the current task, found
//! without hashing or locking, created on a thread's first fault and freed with the task.
//! Needs task storage in tracing programs (5.12+); `store_hash.rs` is the fallback.

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get},
    macros::btf_map,
};
use core::ffi::c_void;

use crate::state::ThreadState;

/// A BTF-defined task storage map (aya-ebpf has none): the layout the loader reads from the
/// `.maps` section, its fields only carrying types.
#[repr(C)]
pub(crate) struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are type carriers for the BTF, never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub(crate) const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }
}

/// One [`ThreadState`] per thread that faulted while traced.
#[btf_map]
static THREAD_STATE: TaskStorage<ThreadState> = TaskStorage::new();

/// This thread's state; with `create`, made (zeroed) when the thread has none yet.
#[inline(always)]
pub(crate) fn thread(_tid: u32, create: bool) -> Option<&'static mut ThreadState> {
    let flags = if create {
        BPF_LOCAL_STORAGE_GET_F_CREATE as u64
    } else {
        0
    };
    // SAFETY: the current task is a valid, trusted task pointer for the program's run; the
    // map is our own task storage map.
    let p = unsafe {
        bpf_task_storage_get(
            (&raw const THREAD_STATE).cast_mut().cast::<c_void>(),
            bpf_get_current_task_btf(),
            core::ptr::null_mut(),
            flags,
        )
    }
    .cast::<ThreadState>();
    // SAFETY: a value of this thread's own storage; a thread runs one program at a time.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Nothing to do: the storage goes with the task.
#[inline(always)]
pub(crate) fn forget(_tid: u32) {}
