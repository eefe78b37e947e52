//! Faults per second between two looks at the analysis: per process and per VMA row, for
//! the live view's FAULTS/S and its default sort.

use std::{collections::HashMap, time::Duration};

use super::Analyzer;
use crate::vma::VmaKey;

/// The counts at the last look, and the rates since the one before.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    last_pid: HashMap<u32, u64>,
    last_vma: HashMap<VmaKey, u64>,
    pub per_pid: HashMap<u32, f64>,
    pub per_vma: HashMap<VmaKey, f64>,
    pub total: f64,
    last_total: u64,
}

impl Rates {
    /// Takes a look `elapsed` after the previous one.
    pub fn tick(&mut self, a: &Analyzer, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let rate = |now: u64, before: Option<&u64>| {
            (now - before.copied().unwrap_or(0).min(now)) as f64 / secs
        };
        self.per_pid = a
            .processes
            .iter()
            .map(|(pid, p)| (*pid, rate(p.stats.faults, self.last_pid.get(pid))))
            .collect();
        self.per_vma = a
            .vmas
            .iter()
            .map(|(k, v)| (*k, rate(v.stats.faults, self.last_vma.get(k))))
            .collect();
        self.total = rate(a.totals.faults, Some(&self.last_total));
        self.last_pid = a
            .processes
            .iter()
            .map(|(k, p)| (*k, p.stats.faults))
            .collect();
        self.last_vma = a.vmas.iter().map(|(k, v)| (*k, v.stats.faults)).collect();
        self.last_total = a.totals.faults;
    }

    pub fn pid(&self, pid: u32) -> Option<f64> {
        self.per_pid.get(&pid).copied()
    }

    /// The rate of a row that may cover several kernel VMAs (see `Analyzer::vma_rows`).
    pub fn vma(&self, keys: &[VmaKey]) -> Option<f64> {
        let mut any = false;
        let mut sum = 0.0;
        for k in keys {
            if let Some(r) = self.per_vma.get(k) {
                any = true;
                sum += r;
            }
        }
        any.then_some(sum)
    }
}
