//! VMA rows as a person reads them: the kernel VMAs of one private anonymous region (the
//! heap, a stack, an anonymous mapping) that the kernel grew or split during the run are
//! one row, not several overlapping ones.

use std::borrow::Cow;

use super::{Analyzer, VmaStats};
use crate::vma::VmaKey;

/// One row: its range (the union of the kernel VMAs it covers) and their statistics.
#[derive(Debug)]
pub struct VmaRow<'a> {
    pub key: VmaKey,
    /// The kernel VMAs (as faults saw them) in this row; one unless merged.
    pub keys: Vec<VmaKey>,
    pub stats: Cow<'a, VmaStats>,
}

/// Whether two kernel VMAs are one region seen before and after the kernel changed it: the
/// same process, private anonymous both, the same name (`[heap]`, `[stack]` or none), and
/// overlapping ranges (a VMA that grew keeps its start or end, a split one lies inside).
fn same_region(a: (&VmaKey, &VmaStats), b: (&VmaKey, &VmaStats)) -> bool {
    a.0.tgid == b.0.tgid
        && a.1.kind() == "anon"
        && b.1.kind() == "anon"
        && a.1.name == b.1.name
        && a.0.start < b.0.end
        && b.0.start < a.0.end
}

impl Analyzer {
    /// The VMA rows, most faults first (ties by process and address).
    pub fn vma_rows(&self) -> Vec<VmaRow<'_>> {
        let mut all: Vec<(&VmaKey, &VmaStats)> = self.vmas.iter().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut rows: Vec<VmaRow<'_>> = Vec::new();
        // Sorted by process and start: a region's VMAs are neighbours once grouped by
        // overlap with the row being built.
        for (k, v) in all {
            if let Some(row) = rows.last_mut().filter(|r| {
                r.keys.iter().any(|rk| {
                    same_region((rk, self.vmas.get(rk).expect("a row's own key")), (k, v))
                })
            }) {
                row.key.start = row.key.start.min(k.start);
                row.key.end = row.key.end.max(k.end);
                row.keys.push(*k);
                row.stats.to_mut().stats.merge(&v.stats);
                continue;
            }
            rows.push(VmaRow {
                key: *k,
                keys: vec![*k],
                stats: Cow::Borrowed(v),
            });
        }
        rows.sort_by(|a, b| {
            let n = |r: &VmaRow<'_>| {
                r.stats
                    .stats
                    .faults
                    .saturating_add(r.stats.stats.retry_calls)
            };
            n(b).cmp(&n(a)).then(a.key.cmp(&b.key))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Stats;

    fn vma(name: Option<&str>, faults: u64, inode: u64) -> VmaStats {
        VmaStats {
            comm: "x".into(),
            name: name.map(str::to_string),
            inode,
            stats: Stats {
                faults,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_grown_heap_and_a_split_region_are_one_row_each() {
        let mut a = Analyzer::new(64);
        let k = |start, end| VmaKey {
            tgid: 7,
            start,
            end,
        };
        // [heap] grown by brk: the same start, a later end.
        a.vmas.insert(k(0x1000, 0x5000), vma(Some("[heap]"), 3, 0));
        a.vmas.insert(k(0x1000, 0x9000), vma(Some("[heap]"), 4, 0));
        // An anonymous mapping split by mprotect: its two halves, and the whole before.
        a.vmas.insert(k(0x10_0000, 0x30_0000), vma(None, 5, 0));
        a.vmas.insert(k(0x10_0000, 0x20_0000), vma(None, 1, 0));
        a.vmas.insert(k(0x20_0000, 0x30_0000), vma(None, 2, 0));
        // Neighbours that do not overlap stay apart; so do files and other processes.
        a.vmas.insert(k(0x30_0000, 0x40_0000), vma(None, 6, 0));
        a.vmas
            .insert(k(0x50_0000, 0x60_0000), vma(Some("/lib/x.so"), 1, 42));
        a.vmas
            .insert(k(0x50_0000, 0x58_0000), vma(Some("/lib/x.so"), 1, 42));
        let rows = a.vma_rows();
        let summary: Vec<(u64, u64, u64, usize)> = rows
            .iter()
            .map(|r| (r.key.start, r.key.end, r.stats.stats.faults, r.keys.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (0x10_0000, 0x30_0000, 8, 3),
                (0x1000, 0x9000, 7, 2),
                (0x30_0000, 0x40_0000, 6, 1),
                (0x50_0000, 0x58_0000, 1, 1),
                (0x50_0000, 0x60_0000, 1, 1),
            ]
        );
    }
}
