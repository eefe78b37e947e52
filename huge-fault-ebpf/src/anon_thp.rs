//! The anonymous THP settings a fault was decided under, read when it closes: whether the
//! system and the process allowed a PMD-size THP for its VMA. User space then tells a
//! fault the kernel never asked for a PMD because THP was off (`thp-disabled`) from one
//! it was not asked for other reasons.

use crate::{ctx::*, maps::*};
use aya_ebpf::helpers::bpf_get_smp_processor_id;
use huge_fault_common::{Mapping, kabi, level, thp};

/// This CPU's `THP_FAULT_FALLBACK` and `THP_FAULT_FALLBACK_CHARGE` event counts, when
/// their addresses are known.
#[inline(always)]
fn fallback_counts() -> Option<(u64, u64)> {
    // SAFETY: a read of our own .rodata global, volatile as for `offsets`.
    let t = unsafe { core::ptr::read_volatile(&THP) };
    if t.per_cpu_offset == 0 || t.vm_events == 0 {
        return None;
    }
    // SAFETY: helper without preconditions.
    let cpu = u64::from(unsafe { bpf_get_smp_processor_id() });
    let base = t
        .vm_events
        .wrapping_add(read_u64(t.per_cpu_offset + 8 * (cpu & 0xffff), 0));
    Some((
        read_u64(base, 8 * (t.ev_fallback & 0xffff)),
        read_u64(base, 8 * (t.ev_charge & 0xffff)),
    ))
}

/// An anonymous THP attempt begins on thread `tid`: keep this CPU's counters.
#[inline(always)]
pub(crate) fn snapshot_fallbacks(tid: u32) {
    let Some((fallback, charge)) = fallback_counts() else {
        return;
    };
    if let Some(s) = THP_SNAPSHOT.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; a program runs to completion on one CPU.
        unsafe {
            *s = ThpSnapshot {
                tid,
                _pad: 0,
                fallback,
                charge,
            }
        };
    }
}

/// The attempt of thread `tid` fell back: [`thp::CHARGE_FAILED`] when this CPU counted a
/// charge failure since it began, [`thp::ALLOC_FAILED`] when it counted a fallback only,
/// else 0 (a fallback the kernel does not count: the VMA's range; or not told).
#[inline(always)]
pub(crate) fn fallback_cause(tid: u32) -> u8 {
    let Some((fallback, charge)) = fallback_counts() else {
        return 0;
    };
    // SAFETY: this CPU's slot, copied out.
    let Some(s) = THP_SNAPSHOT.get(0).copied() else {
        return 0;
    };
    if s.tid != tid {
        return 0;
    }
    if charge != s.charge {
        thp::CHARGE_FAILED
    } else if fallback != s.fallback {
        thp::ALLOC_FAILED
    } else {
        0
    }
}

/// Fills in `m.thp` for a closing fault: left 0 when the fault is not anonymous, its VMA
/// cannot hold a PMD, or it mapped a PMD or PUD (the settings did not stop it).
///
/// A function of its own (a BPF subprogram), writing its result to the map value rather
/// than returning it, and computing the mode without branches: inlined, its branches on
/// every probe read multiplied the states the verifier explores in the closing program
/// past the 1M-instruction limit (6.1's verifier, fexit).
#[inline(never)]
pub(crate) fn fill_thp(m: *mut Mapping, vma_ptr: u64, vma: *const VmaInfo) {
    if m.is_null() || vma.is_null() {
        return;
    }
    // SAFETY: a read of our own .rodata global, volatile as for `offsets`.
    let t = unsafe { core::ptr::read_volatile(&THP) };
    // SAFETY: `m` is this thread's live map value and `vma` the caller's stack copy.
    let (m, vma) = unsafe { (&mut *m, &*vma) };
    if t.valid == 0
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
    let global = read_u64(t.flags_addr, 0);
    let g_always = bit(global, t.flag_bit);
    let g_madvise = bit(global, t.req_madv_bit) & (g_always ^ 1);
    // 0 never, 1 always, 2 madvise (`thp::NEVER`, `ALWAYS`, `MADVISE`).
    let global_mode = g_always | (g_madvise << 1);
    // 6.8+: the PMD order's own setting, always, madvise, inherit (the global one) or none
    // of them (never); before, the global one alone (`per_size` 0).
    let per_size = u64::from(t.orders_addr[0] != 0);
    let a = bit(read_u64(t.orders_addr[0], 0), kabi::PMD_ORDER) & per_size;
    let md = bit(read_u64(t.orders_addr[1], 0), kabi::PMD_ORDER) & per_size & (a ^ 1);
    let inherit =
        (bit(read_u64(t.orders_addr[2], 0), kabi::PMD_ORDER) & per_size & (a ^ 1) & (md ^ 1))
            | (per_size ^ 1);
    let mode = a | (md << 1) | (global_mode * inherit);
    let mm = read_u64(vma_ptr, t.vma_mm);
    let mm_flags = read_u64(mm, t.mm_flags) * u64::from(t.vma_mm != 0);
    let off = bit(mm_flags, t.mmf_disable) * u64::from(t.mmf_disable < 64);
    let off_except = bit(mm_flags, t.mmf_except_advised) * u64::from(t.mmf_except_advised < 64);
    m.thp = thp::VALID | (mode as u8 & thp::MODE) | ((off as u8) << 2) | ((off_except as u8) << 3);
}
