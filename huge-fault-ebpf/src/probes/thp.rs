//! The generic huge-page paths: anonymous THP, file and shmem THP, multi-size THP folios,
//! hugetlbfs.

use crate::{anon_thp::note_fallback_cause, ctx::*, state::*};
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use huge_fault_common::{NO_PFN, kabi::VM_FAULT_FALLBACK, level};

/// Anonymous THP: returns VM_FAULT_FALLBACK when no PMD could be mapped.
#[kretprobe]
pub fn hf_kret_do_huge_pmd_anonymous_page(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    note_fault_step(level::PMD, ret, 2 << 20, true, true);
    if ret & VM_FAULT_FALLBACK != 0
        && let Some(st) = fault_state(false)
        && st.depth == 0
    {
        note_fallback_cause(&mut st.mapping);
    }
    0
}

/// File and shmem THP mapped by a PMD (finish_fault and fault-around).
#[kretprobe]
pub fn hf_kret_do_set_pmd(ctx: RetProbeContext) -> u32 {
    let ret: u32 = ctx.ret();
    note_fault_step(level::PMD, ret, 2 << 20, true, true);
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
    note_run_step(st, level::PTE, 0, nr, (start, NO_PFN), true);
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
