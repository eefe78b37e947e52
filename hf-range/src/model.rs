//! A model of one process's page table for a range of addresses: which levels exist and
//! which entries are mapped. The what-if planner rebuilds it from observed faults and runs
//! [`crate::insert_range`] on it.

use alloc::collections::BTreeSet;

use crate::{Entry, Level, Slot, Tables};

/// Page-table state by aligned index. The top levels (PGD, P4D and the PUD table) always
/// exist, as they do for any address a process has faulted near.
#[derive(Clone, Debug, Default)]
pub struct ModelTables {
    /// Whether missing tables may be allocated (an in-kernel helper), or not (a module:
    /// huge entries only where their table exists, see the crate documentation).
    pub alloc_tables: bool,
    pud_leaf: BTreeSet<u64>,
    /// 1 GiB indices whose PMD table exists.
    pmd_table: BTreeSet<u64>,
    pmd_leaf: BTreeSet<u64>,
    /// 2 MiB indices whose PTE table exists.
    pte_table: BTreeSet<u64>,
    pte: BTreeSet<u64>,
    /// Every entry inserted through [`Tables::insert`], in order.
    pub inserted: alloc::vec::Vec<Entry>,
}

const fn idx(addr: u64, level: Level) -> u64 {
    addr >> level.shift()
}

impl ModelTables {
    pub fn new(alloc_tables: bool) -> Self {
        ModelTables {
            alloc_tables,
            ..Default::default()
        }
    }

    /// Records an entry that is mapped already (and the tables its insert allocated).
    pub fn map(&mut self, e: Entry) {
        match e.level {
            Level::Pud => {
                self.pud_leaf.insert(idx(e.addr, Level::Pud));
            }
            Level::Pmd => {
                self.pmd_table.insert(idx(e.addr, Level::Pud));
                self.pmd_leaf.insert(idx(e.addr, Level::Pmd));
            }
            Level::Pte => {
                self.pmd_table.insert(idx(e.addr, Level::Pud));
                self.pte_table.insert(idx(e.addr, Level::Pmd));
                self.pte.insert(idx(e.addr, Level::Pte));
            }
        }
    }

    /// Records that the PMD table covering `addr` exists (the fault path allocates it
    /// before it asks a driver for a PMD or a PTE).
    pub fn pmd_table_exists(&mut self, addr: u64) {
        self.pmd_table.insert(idx(addr, Level::Pud));
    }

    /// Forgets what a range that was unmapped held: its entries, and the page tables of
    /// the blocks it touched for which `shared(first, end)` says no other mapping lies in
    /// the block `[first, end)` (the kernel frees those tables with the range, see
    /// `free_pgtables`).
    pub fn unmap(&mut self, start: u64, end: u64, shared: impl Fn(u64, u64) -> bool) {
        if start >= end {
            return;
        }
        for (set, level) in [
            (&mut self.pud_leaf, Level::Pud),
            (&mut self.pmd_leaf, Level::Pmd),
            (&mut self.pte, Level::Pte),
        ] {
            let (lo, hi) = (idx(start, level), idx(end - 1, level));
            let gone: alloc::vec::Vec<u64> = set.range(lo..=hi).copied().collect();
            for i in gone {
                set.remove(&i);
            }
        }
        for (set, level) in [
            (&mut self.pte_table, Level::Pmd),
            (&mut self.pmd_table, Level::Pud),
        ] {
            let (lo, hi) = (idx(start, level), idx(end - 1, level));
            let gone: alloc::vec::Vec<u64> = set
                .range(lo..=hi)
                .copied()
                .filter(|i| {
                    let first = i << level.shift();
                    !shared(first, first + level.size())
                })
                .collect();
            for i in gone {
                set.remove(&i);
            }
        }
    }

    /// Whether `addr` is mapped by any entry.
    pub fn mapped(&self, addr: u64) -> bool {
        self.pud_leaf.contains(&idx(addr, Level::Pud))
            || self.pmd_leaf.contains(&idx(addr, Level::Pmd))
            || self.pte.contains(&idx(addr, Level::Pte))
    }
}

impl Tables for ModelTables {
    fn slot(&mut self, addr: u64, level: Level) -> Slot {
        let (g, m) = (idx(addr, Level::Pud), idx(addr, Level::Pmd));
        if self.pud_leaf.contains(&g) {
            return Slot::Present;
        }
        let pmd_table = self.pmd_table.contains(&g);
        match level {
            Level::Pud if pmd_table => Slot::Table,
            Level::Pud => Slot::Empty,
            _ if !pmd_table && !self.alloc_tables => Slot::Missing,
            _ if self.pmd_leaf.contains(&m) => Slot::Present,
            Level::Pmd if self.pte_table.contains(&m) => Slot::Table,
            Level::Pmd => Slot::Empty,
            Level::Pte if self.pte.contains(&idx(addr, Level::Pte)) => Slot::Present,
            Level::Pte => Slot::Empty,
        }
    }

    fn insert(&mut self, e: Entry) -> Result<(), u32> {
        // A double insert is a bug of the caller: report it as an error.
        let free = match e.level {
            Level::Pud => self.slot(e.addr, Level::Pud) == Slot::Empty,
            Level::Pmd => self.slot(e.addr, Level::Pmd) == Slot::Empty,
            Level::Pte => !self.mapped(e.addr),
        };
        if !free {
            return Err(0x2);
        }
        self.map(e);
        self.inserted.push(e);
        Ok(())
    }
}
