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
}

impl Sim {
    pub(super) fn new(alloc_tables: bool) -> Self {
        Sim {
            tables: ModelTables::new(alloc_tables),
            per_vma: HashMap::new(),
        }
    }

    /// A fault in a VMA without a what-if: it allocated the PMD table it needed.
    pub(super) fn other_fault(&mut self, addr: u64) {
        if self.tables.slot(addr, Level::Pud) != Slot::Present {
            self.tables.pmd_table_exists(addr);
        }
    }

    pub(super) fn fault(&mut self, addr: u64, key: &VmaKey, o: &VmaObs) {
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
