//! The replay of one process's faults against a page-table model, with the range insert.

use std::collections::HashMap;

use hf_range::{Level, Slot, Tables, model::ModelTables};
use huge_fault_common::level;

use super::{Counts, VmaObs};
use crate::vma::VmaKey;

/// The replay of one process against one helper variant.
pub(super) struct Sim {
    tables: ModelTables,
    per_vma: HashMap<VmaKey, (u64, [u64; 4])>,
    /// The VMAs faulted so far that are still mapped: a VMA overlapping one of them
    /// means that one was unmapped (or reshaped) in between.
    live: Vec<VmaKey>,
}

impl Sim {
    pub(super) fn new(alloc_tables: bool) -> Self {
        Sim {
            tables: ModelTables::new(alloc_tables),
            per_vma: HashMap::new(),
            live: Vec::new(),
        }
    }

    /// The first fault seen in `key`'s VMA: earlier VMAs it overlaps are gone, and so are
    /// their entries and the page tables no remaining VMA shares (the kernel frees them
    /// on munmap). Without this, a table of a buffer unmapped before the aligned one was
    /// mapped in its place would hide the PUD slot the kernel really found empty.
    fn enter(&mut self, key: &VmaKey) {
        if self.live.contains(key) {
            return;
        }
        let overlaps = |k: &VmaKey| k.start < key.end && key.start < k.end;
        let (gone, kept): (Vec<VmaKey>, Vec<VmaKey>) =
            self.live.drain(..).partition(|k| overlaps(k));
        self.live = kept;
        for g in gone {
            let live = &self.live;
            self.tables.unmap(g.start, g.end, |first, end| {
                live.iter().any(|k| k.start < end && first < k.end)
            });
        }
        self.live.push(*key);
    }

    /// A fault in a VMA without a what-if: it allocated the PMD table it needed.
    pub(super) fn other_fault(&mut self, addr: u64, key: &VmaKey) {
        self.enter(key);
        if self.tables.slot(addr, Level::Pud) != Slot::Present {
            self.tables.pmd_table_exists(addr);
        }
    }

    pub(super) fn fault(&mut self, addr: u64, key: &VmaKey, o: &VmaObs) {
        self.enter(key);
        if self.tables.mapped(addr) {
            return;
        }
        let ask = |l: u8| o.asks & (1 << l) != 0;
        let pud_empty = self.tables.slot(addr, Level::Pud) == Slot::Empty;
        if !(ask(level::PUD) && pud_empty) {
            // The kernel allocates the PMD table before it asks for a PMD or calls the PTE
            // handler.
            self.tables.pmd_table_exists(addr);
        }
        let delta = o.delta.expect("plannable");
        let pfn = (i128::from(key.start >> 12) + delta).max(0) as u64;
        let sum = hf_range::insert_range(
            &mut self.tables,
            key.start,
            pfn,
            (key.end - key.start) >> 12,
        );
        let v = self.per_vma.entry(*key).or_default();
        v.0 += 1;
        for (t, n) in v.1.iter_mut().zip(sum.entries) {
            *t += n;
        }
    }

    pub(super) fn result(&self, key: &VmaKey) -> Option<Counts> {
        let (faults, e) = self.per_vma.get(key).copied().unwrap_or_default();
        Some(Counts::new(faults, e))
    }
}
