//! The anonymous THP settings a fault was decided under, read when it closes: whether the
//! system and the process allowed a PMD-size THP for its VMA. User space then tells a
//! fault the kernel never asked for a PMD because THP was off (`thp-disabled`) from one
//! it was not asked for other reasons. And why an anonymous THP attempt fell back: its
//! memory cgroup's limit, or the allocator.

use crate::{ctx::*, maps::*};
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use huge_fault_common::{Mapping, kabi, level, thp};

/// Most memory cgroup levels walked up from the task's (the root has no limit).
const MAX_MEMCG_DEPTH: u32 = 8;

/// An anonymous THP attempt of the fault in flight fell back: sets [`thp::CHARGE_FAILED`]
/// in `m.thp` when a memory cgroup of the current task, or an ancestor, has less than a
/// PMD's 512 pages left below its `max` (the charge cannot have fit: `page_counter`
/// refuses when usage would pass max), else [`thp::ALLOC_FAILED`]. Read at the attempt's
/// return, when the refused charge has been undone. A subprogram, as [`fill_thp`].
#[inline(never)]
pub(crate) fn note_fallback_cause(m: *mut Mapping) {
    if m.is_null() {
        return;
    }
    // SAFETY: a read of our own .rodata global, volatile as for `offsets`.
    let t = unsafe { core::ptr::read_volatile(&THP) };
    if t.memcg_valid == 0 {
        return;
    }
    // SAFETY: helper without preconditions.
    let task = unsafe { bpf_get_current_task() };
    let cset = read_u64(task, t.task_cgroups);
    let css = read_u64(cset, t.css_set_subsys + 8 * (t.memory_cgrp_id & 0xff));
    let mut limited = false;
    // `struct mem_cgroup` begins with its css.
    let mut counter = if css != 0 {
        css + u64::from(t.memcg_memory)
    } else {
        0
    };
    for _ in 0..MAX_MEMCG_DEPTH {
        if counter == 0 {
            break;
        }
        let usage = read_u64(counter, t.counter_usage);
        let max = read_u64(counter, t.counter_max);
        if usage.saturating_add(512) > max {
            limited = true;
            break;
        }
        counter = read_u64(counter, t.counter_parent);
    }
    // SAFETY: this thread's live map value.
    let m = unsafe { &mut *m };
    m.thp |= if limited {
        thp::CHARGE_FAILED
    } else {
        thp::ALLOC_FAILED
    };
}

/// Fills in `m.thp` for a closing fault: left 0 when the fault is not anonymous, its VMA
/// cannot hold a PMD, or it mapped a PMD or PUD (the settings did not stop it).
///
/// A function of its own (a BPF subprogram), writing its result to the map value rather
/// than returning it: inlined, its branches multiplied the states the verifier explores
/// in the closing program past the 1M-instruction limit (6.1's verifier, fexit).
#[inline(never)]
pub(crate) fn fill_thp<R: Kmem>(m: *mut Mapping, vma_ptr: u64, vma: *const VmaInfo) {
    if m.is_null() || vma.is_null() {
        return;
    }
    // Each setting is loaded where it is used (`off!`): a copy of the whole struct cost a
    // load and a store per member, per fault.
    // SAFETY: `m` is this thread's live map value and `vma` the caller's stack copy.
    let (m, vma) = unsafe { (&mut *m, &*vma) };
    if off!(THP.valid) == 0
        || vma.found == 0
        || vma.inode != 0
        || vma.flags & (kabi::VM_SPECIAL_MAP | kabi::VM_HUGETLB | kabi::VM_SHARED) != 0
        || vma.end.saturating_sub(vma.start) < 2 << 20
        || m.entries[level::PMD as usize] != 0
        || m.entries[level::PUD as usize] != 0
    {
        return;
    }
    let bit = |word: u64, n: u32| (word >> (n & 63)) & 1;
    // The kernel's own words, or the tool's copy of what sysfs says, picked without a
    // branch (`from_sysfs` is 0 or 1): the closing program is near 6.1's verifier limit.
    let copy = 0u64.wrapping_sub(u64::from(off!(THP.from_sysfs) & 1));
    let pick = |from_copy: u64, from_kernel: u64| (from_copy & copy) | (from_kernel & !copy);
    // A kernel word where its address is known, each address loaded from `.rodata` where
    // it is used: the verifier knows it, follows one way of the branch, and no helper call
    // is made for an address that is not there (the orders words before 6.8, every word
    // when sysfs is the source).
    let word = |addr: u64| if addr != 0 { read_u64(addr, 0) } else { 0 };
    let global = pick(off!(THP_WORDS.flags), word(off!(THP.flags_addr)));
    let orders_at = off!(THP.orders_addr[0]);
    let kernel_orders = if off!(THP.orders_contiguous) != 0 {
        // The three words in one helper call.
        let first = orders_at as *const [u64; 3];
        // SAFETY: bpf_probe_read_kernel tolerates any address.
        unsafe { bpf_probe_read_kernel(first) }
        .unwrap_or([0; 3])
    } else {
        [
            word(orders_at),
            word(off!(THP.orders_addr[1])),
            word(off!(THP.orders_addr[2])),
        ]
    };
    let orders = [
        pick(off!(THP_WORDS.orders[0]), kernel_orders[0]),
        pick(off!(THP_WORDS.orders[1]), kernel_orders[1]),
        pick(off!(THP_WORDS.orders[2]), kernel_orders[2]),
    ];
    let per_size = pick(off!(THP_WORDS.per_size) & 1, u64::from(orders_at != 0));
    let g_always = bit(global, off!(THP.flag_bit));
    let g_madvise = bit(global, off!(THP.req_madv_bit)) & (g_always ^ 1);
    // 0 never, 1 always, 2 madvise (`thp::NEVER`, `ALWAYS`, `MADVISE`).
    let global_mode = g_always | (g_madvise << 1);
    // 6.8+: the PMD order's own setting, always, madvise, inherit (the global one) or none
    // of them (never); before, the global one alone (`per_size` 0). Without branches.
    let a = bit(orders[0], kabi::PMD_ORDER) & per_size;
    let md = bit(orders[1], kabi::PMD_ORDER) & per_size & (a ^ 1);
    let inherit =
        (bit(orders[2], kabi::PMD_ORDER) & per_size & (a ^ 1) & (md ^ 1)) | (per_size ^ 1);
    let mode = (a | (md << 1) | (global_mode * inherit)) as u8;
    // A branch on a `.rodata` constant, which the verifier follows one way only.
    let mm_flags = if off!(THP.vma_mm) != 0 {
        R::u64_at(R::vma_mm(vma_ptr, vma), off!(THP.mm_flags))
    } else {
        0
    };
    // A bit number of 64 or more: the kernel has no such flag.
    let flag = |n: u32| bit(mm_flags, n) * u64::from(n < 64);
    let off = flag(off!(THP.mmf_disable));
    let off_except = flag(off!(THP.mmf_except_advised));
    m.thp = (m.thp & (thp::ALLOC_FAILED | thp::CHARGE_FAILED))
        | thp::VALID
        | (mode & thp::MODE)
        | ((off as u8) << 2)
        | ((off_except as u8) << 3);
}
