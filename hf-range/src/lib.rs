//! Range insert: map a physically contiguous pfn range into a virtual range with the largest
//! page-table entries that alignment allows (PUD, then PMD, then PTE), in one call.
//!
//! This is the helper proposed for GPU and DAX drivers in place of the level-by-level
//! `huge_fault` + `VM_FAULT_FALLBACK` protocol. One implementation serves twice:
//!
//! - in the kernel, linked into the lab driver (`hfgpu`), where [`Tables`] is the real page
//!   table of the faulting process (see the `kernel` feature);
//! - in `huge-fault`, as the what-if planner, where [`Tables`] is a model of the page table
//!   rebuilt from the faults a recording observed ([`model::ModelTables`] is one such model).
//!
//! # What a kernel module can and cannot do
//!
//! `vmf_insert_pfn_pud`/`vmf_insert_pfn_pmd` write one entry into a table that must already
//! exist, and a module cannot allocate a page-table level (`__pmd_alloc` is not exported).
//! The PTE inserts (`vmf_insert_pfn`) allocate every missing level themselves. So a huge
//! entry can only go where its level exists and its slot is empty ([`Slot::Empty`]); where
//! the level is missing ([`Slot::Missing`]) the range is mapped with PTEs instead. To lose
//! as little as possible to this, the insert runs in two passes: the first maps everything
//! it can and defers PMD-sized pieces whose PMD table is missing; the PTE inserts of the
//! first pass often allocate that table (the edges of a misaligned range share its 1 GiB),
//! and the second pass then places the deferred PMDs, or PTEs where the table is still
//! missing. An in-kernel helper that may allocate tables never sees `Missing`.
//!
//! Entries already present are left alone and counted in [`Summary::present`]: an entry
//! counts as inserted only if it was absent before.

#![cfg_attr(not(test), no_std)]

#[cfg(feature = "model")]
extern crate alloc;

#[cfg(feature = "kernel")]
pub mod kernel;
#[cfg(feature = "model")]
pub mod model;

/// Base page shift (x86-64, 4 KiB pages).
pub use huge_fault_common::level::PAGE_SHIFT;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// A page-table level: huge-fault's one encoding, shared with its records and programs.
pub use huge_fault_common::Level;

/// One page-table entry to insert: virtual address, first pfn, level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub addr: u64,
    pub pfn: u64,
    pub level: Level,
}

/// What the page table holds where an entry of some level would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Slot {
    /// The level's table exists and the slot is empty: an entry can be inserted.
    Empty = 0,
    /// A leaf entry (of this level or a larger one) already maps this address.
    Present = 1,
    /// The slot points to a table of the next smaller level: insert smaller entries.
    Table = 2,
    /// The table of this level does not exist, and the caller cannot allocate it.
    Missing = 3,
}

impl Slot {
    pub const fn from_u32(v: u32) -> Slot {
        match v {
            0 => Slot::Empty,
            1 => Slot::Present,
            2 => Slot::Table,
            _ => Slot::Missing,
        }
    }
}

/// The page table a range insert works on.
pub trait Tables {
    /// What holds the slot of `level` for `addr` (aligned to the level's size).
    fn slot(&mut self, addr: u64, level: Level) -> Slot;
    /// Inserts one entry; `Err(code)` stops the insert (a `vm_fault_t` error in the kernel).
    fn insert(&mut self, entry: Entry) -> Result<(), u32>;
}

/// What a range insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Summary {
    /// Entries inserted, indexed by [`Level`] value (index 0 unused).
    pub entries: [u64; 4],
    /// Base pages that were already mapped and left alone.
    pub present: u64,
    /// The error code that stopped the insert, 0 if none.
    pub error: u32,
    /// Entries placed by the second pass (PMDs whose table the first pass allocated, or
    /// PTEs where it stayed missing).
    pub second_pass: u32,
}

impl Summary {
    pub fn count(&self, level: Level) -> u64 {
        self.entries[level as usize]
    }
    /// Bytes newly mapped.
    pub fn bytes(&self) -> u64 {
        [Level::Pte, Level::Pmd, Level::Pud]
            .iter()
            .map(|l| self.count(*l) * l.size())
            .sum()
    }
}

/// Whether an entry of `level` fits at `addr`/`pfn` inside a range ending at `end`: both
/// addresses aligned to the level's size, and the whole entry inside the range.
#[inline]
pub const fn fits(addr: u64, pfn: u64, end: u64, level: Level) -> bool {
    let size = level.size();
    let mask = size - 1;
    addr & mask == 0 && (pfn << PAGE_SHIFT) & mask == 0 && addr + size <= end
}

/// The largest level that fits at `addr`/`pfn` in a range ending at `end`.
#[inline]
pub const fn largest_fit(addr: u64, pfn: u64, end: u64) -> Level {
    if fits(addr, pfn, end, Level::Pud) {
        Level::Pud
    } else if fits(addr, pfn, end, Level::Pmd) {
        Level::Pmd
    } else {
        Level::Pte
    }
}

/// The entries a range insert creates on a page table where every level can be allocated
/// and nothing is mapped yet, in address order: the pure alignment plan. `f` gets each one.
pub fn plan(addr: u64, pfn: u64, nr_pages: u64, mut f: impl FnMut(Entry)) {
    let end = addr + (nr_pages << PAGE_SHIFT);
    let (mut a, mut p) = (addr, pfn);
    while a < end {
        let level = largest_fit(a, p, end);
        f(Entry {
            addr: a,
            pfn: p,
            level,
        });
        a += level.size();
        p += level.pages();
    }
}

struct Run<'t, T: Tables + ?Sized> {
    t: &'t mut T,
    sum: Summary,
    second: bool,
}

impl<T: Tables + ?Sized> Run<'_, T> {
    fn put(&mut self, addr: u64, pfn: u64, level: Level) -> Result<(), u32> {
        self.t.insert(Entry { addr, pfn, level })?;
        self.sum.entries[level as usize] += 1;
        if self.second {
            self.sum.second_pass += 1;
        }
        Ok(())
    }

    /// PTEs for `[a, a + n pages)`, skipping pages already mapped.
    fn ptes(&mut self, a: u64, p: u64, n: u64) -> Result<(), u32> {
        for i in 0..n {
            let (va, pf) = (a + (i << PAGE_SHIFT), p + i);
            match self.t.slot(va, Level::Pte) {
                Slot::Present => self.sum.present += 1,
                _ => self.put(va, pf, Level::Pte)?,
            }
        }
        Ok(())
    }

    /// One 2 MiB-aligned piece that a PMD fits. Returns whether it was deferred.
    fn pmd_piece(&mut self, a: u64, p: u64) -> Result<bool, u32> {
        let pages = Level::Pmd.pages();
        match (self.t.slot(a, Level::Pmd), self.second) {
            (Slot::Empty, _) => self.put(a, p, Level::Pmd)?,
            (Slot::Present, false) => self.sum.present += pages,
            (Slot::Table, false) => self.ptes(a, p, pages)?,
            (Slot::Missing, false) => return Ok(true),
            // Second pass: only what the first deferred is still to do.
            (Slot::Missing, true) => self.ptes(a, p, pages)?,
            (Slot::Present | Slot::Table, true) => {}
        }
        Ok(false)
    }

    /// One pass over the range. Returns how many PMD pieces were deferred.
    fn pass(&mut self, addr: u64, pfn: u64, end: u64) -> Result<u64, u32> {
        let mut deferred = 0;
        let (mut a, mut p) = (addr, pfn);
        while a < end {
            match largest_fit(a, p, end) {
                Level::Pud => {
                    let slot = self.t.slot(a, Level::Pud);
                    match slot {
                        Slot::Empty if !self.second => self.put(a, p, Level::Pud)?,
                        Slot::Present if !self.second => self.sum.present += Level::Pud.pages(),
                        Slot::Empty | Slot::Present => {}
                        Slot::Table | Slot::Missing => {
                            // Descend: every 2 MiB piece of this 1 GiB fits a PMD.
                            for i in 0..512 {
                                let off = i * Level::Pmd.size();
                                if self.pmd_piece(a + off, p + (off >> PAGE_SHIFT))? {
                                    deferred += 1;
                                }
                            }
                        }
                    }
                    a += Level::Pud.size();
                    p += Level::Pud.pages();
                }
                Level::Pmd => {
                    if self.pmd_piece(a, p)? {
                        deferred += 1;
                    }
                    a += Level::Pmd.size();
                    p += Level::Pmd.pages();
                }
                Level::Pte => {
                    if !self.second {
                        self.ptes(a, p, 1)?;
                    }
                    a += PAGE_SIZE;
                    p += 1;
                }
            }
        }
        Ok(deferred)
    }
}

/// Maps `nr_pages` base pages from `pfn` at `addr` with the largest entries alignment and
/// the page table allow. Stops at the first insert error (in [`Summary::error`]); what was
/// inserted before it stays counted.
pub fn insert_range<T: Tables + ?Sized>(t: &mut T, addr: u64, pfn: u64, nr_pages: u64) -> Summary {
    let end = addr + (nr_pages << PAGE_SHIFT);
    let mut run = Run {
        t,
        sum: Summary::default(),
        second: false,
    };
    let res = match run.pass(addr, pfn, end) {
        Ok(0) => Ok(0),
        Ok(_) => {
            run.second = true;
            run.pass(addr, pfn, end)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        run.sum.error = e;
    }
    run.sum
}

#[cfg(test)]
mod tests;
