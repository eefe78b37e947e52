//! The page-table entries an insert is about to write, read at its entry: a success over an
//! entry that was already there maps nothing (TTM's prefault re-inserts present PTEs and
//! still answers VM_FAULT_NOPAGE). x86-64, 4- or 5-level paging.

use crate::{ctx::read_u64, maps::WALK};
use huge_fault_common::level;

const PRESENT: u64 = 1;
/// A PUD or PMD that maps a huge page itself.
const PSE: u64 = 1 << 7;
/// The physical address bits of an entry (bits 12..51).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Accessed and dirty: `pte_none()` and `pmd_none()` ignore them.
const NONE_IGNORED: u64 = 0x60;
/// The 4-level kernel half: a direct map below it is a 5-level kernel's.
const L4_KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// The entry of the table at `table` (a direct-map address) that holds `addr` at `shift`.
#[inline(always)]
fn slot(table: u64, addr: u64, shift: u32) -> u64 {
    read_u64(table + ((addr >> shift) & 511) * 8, 0)
}

/// Bits `1 << level` ([`level::PTE`], `PMD`, `PUD`) of the entries that are not empty
/// where `vma`'s page tables map `addr` (every level under a huge entry counts as not
/// empty: nothing can be inserted there); 0 when the walk cannot be done (no offsets).
#[inline(always)]
pub(crate) fn present_levels(vma: u64, addr: u64) -> u32 {
    // SAFETY: a read of our own .rodata global (see ctx::offsets).
    let w = unsafe { core::ptr::read_volatile(&WALK) };
    if w.valid == 0 || vma == 0 {
        return 0;
    }
    let base = if w.page_offset_base_addr != 0 {
        read_u64(w.page_offset_base_addr, 0)
    } else {
        w.page_offset
    };
    let mm = read_u64(vma, w.vma_mm);
    let mut table = if mm == 0 { 0 } else { read_u64(mm, w.mm_pgd) };
    if base == 0 || table == 0 {
        return 0;
    }
    let below = |l: u8| (1u32 << (l + 1)) - 2;
    if base < L4_KERNEL_HALF {
        let e = slot(table, addr, 48);
        if e & PRESENT == 0 {
            return 0;
        }
        table = (e & ADDR_MASK) + base;
    }
    let e = slot(table, addr, 39);
    if e & PRESENT == 0 {
        return 0;
    }
    let pud = slot((e & ADDR_MASK) + base, addr, 30);
    if pud == 0 {
        return 0;
    }
    if pud & PRESENT == 0 {
        return 1 << level::PUD;
    }
    if pud & PSE != 0 {
        return below(level::PUD);
    }
    let pmd = slot((pud & ADDR_MASK) + base, addr, 21);
    let mut bits = 1 << level::PUD;
    if pmd & !NONE_IGNORED == 0 {
        return bits;
    }
    bits |= 1 << level::PMD;
    if pmd & PRESENT == 0 || pmd & PSE != 0 {
        return bits | 1 << level::PTE;
    }
    let pte = slot((pmd & ADDR_MASK) + base, addr, 12);
    if pte & !NONE_IGNORED != 0 {
        bits |= 1 << level::PTE;
    }
    bits
}
