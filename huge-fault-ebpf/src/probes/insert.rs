//! Driver and DAX inserts: PTE inserts one by one, and PMD/PUD pfn and folio inserts.

use crate::{ctx::*, pagetable::present_levels, state::*};
use aya_ebpf::{
    macros::{kprobe, kretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use huge_fault_common::{
    InFlight, NO_PFN, PFN_MASK, STEP_PRESENT,
    kabi::{VM_FAULT_NOPAGE, VM_FAULT_SIGBUS},
    level,
};

/// Entry of a PTE insert (`vmf_insert_pfn`, `vmf_insert_pfn_prot`): remembers the address
/// and pfn of the outermost one (the first may call the second), and which entries the page
/// tables already hold there (a success over a present PTE maps nothing).
#[kprobe]
pub fn hf_kprobe_insert_pte(ctx: ProbeContext) -> u32 {
    let vma: u64 = ctx.arg(0).unwrap_or(0);
    let addr: u64 = ctx.arg(1).unwrap_or(0);
    let pfn: u64 = ctx.arg(2).unwrap_or(NO_PFN);
    if let Some(st) = fault_state(false) {
        if st.in_pte == 0 {
            st.pte_addr = addr;
            st.pte_pfn = pfn & PFN_MASK;
            st.present = present_levels(vma, addr);
        }
        st.in_pte += 1;
    }
    0
}

/// Entry of a PTE insert that takes a `struct page *` (`vm_insert_page`): the address; no
/// pfn (the page pointer is not translated).
#[kprobe]
pub fn hf_kprobe_insert_pte_page(ctx: ProbeContext) -> u32 {
    let vma: u64 = ctx.arg(0).unwrap_or(0);
    let addr: u64 = ctx.arg(1).unwrap_or(0);
    if let Some(st) = fault_state(false) {
        if st.in_pte == 0 {
            st.pte_addr = addr;
            st.pte_pfn = NO_PFN;
            st.present = present_levels(vma, addr);
        }
        st.in_pte += 1;
    }
    0
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
            // `vmf->vma` is the structure's first member.
            st.present = present_levels(read_u64(vmf, 0), st.pte_addr);
        }
        st.in_pte += 1;
    }
    0
}

/// Return of a PTE insert: one PTE entry (at its own address) when the outermost insert
/// returns, unless its PTE was present before (then a `PTE:PRESENT` step, no entry); a chain
/// step when no `huge_fault` handler or range helper is in flight.
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
    let (ret, new) = reinsert(st, level::PTE, ret);
    note_step(st, level::PTE, ret, addr, pfn, step, new);
    0
}

/// An insert's answer as its step keeps it, and whether a success made a new entry: one
/// over an entry that was already there (its entry probe read the page tables) is marked
/// [`STEP_PRESENT`] and counts none. Clears what the entry probe read.
#[inline(always)]
fn reinsert(st: &mut InFlight, lvl: u8, ret: u32) -> (u32, bool) {
    let present = st.present & (1 << lvl) != 0;
    st.present = 0;
    if present {
        (ret | STEP_PRESENT, false)
    } else {
        (ret, true)
    }
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
    let (ret, new) = reinsert(st, level::PMD, ret);
    note_step(st, level::PMD, ret, addr, pfn, step, new);
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
    let (ret, new) = reinsert(st, level::PUD, ret);
    note_step(st, level::PUD, ret, addr, pfn, step, new);
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
        st.present = present_levels(read_u64(vmf, 0), st.huge_addr);
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
        st.present = present_levels(read_u64(vmf, 0), st.huge_addr);
    }
    0
}

/// Entry of `remap_pfn_range` (`io_remap_pfn_range` on x86) inside a fault: a driver that
/// maps a whole range from its fault handler (vfio-pci before 6.12 maps the whole BAR at
/// its first fault). Remembers the range; calls outside a fault (at mmap time) are no
/// fault's and are not seen.
#[kprobe]
pub fn hf_kprobe_remap(ctx: ProbeContext) -> u32 {
    let addr: u64 = ctx.arg(1).unwrap_or(0);
    let pfn: u64 = ctx.arg(2).unwrap_or(NO_PFN);
    let size: u64 = ctx.arg(3).unwrap_or(0);
    if let Some(st) = fault_state(false)
        && st.remap_pages == 0
    {
        st.pte_addr = addr & !0xfff;
        st.pte_pfn = pfn & PFN_MASK;
        st.remap_pages = size >> 12;
    }
    0
}

/// Return of `remap_pfn_range` inside a fault: 0 made every PTE of the range (the kernel
/// refuses a range with any PTE present), counted at their real number with the first and
/// last address and pfn; a chain step when no `huge_fault` handler or range helper is in
/// flight (an error is a failed PTE step).
#[kretprobe]
pub fn hf_kret_remap(ctx: RetProbeContext) -> u32 {
    let ret: i32 = ctx.ret();
    let Some(st) = fault_state(true) else {
        return 0;
    };
    let pages = st.remap_pages;
    if pages == 0 {
        return 0;
    }
    st.remap_pages = 0;
    let answer = if ret == 0 {
        VM_FAULT_NOPAGE
    } else {
        VM_FAULT_SIGBUS
    };
    let step = st.in_hf == 0 && st.in_range == 0;
    let first = (st.pte_addr, st.pte_pfn);
    note_run_step(st, level::PTE, answer, pages, first, step);
    0
}
