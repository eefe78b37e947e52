//! What-if: what a range insert would have done for the faults actually observed.
//!
//! For each VMA whose faults inserted entries with known pfns (drivers and DAX), the
//! observed inserts give the offset between virtual page and pfn. When that offset is one
//! and the same for every insert, the VMA maps one physically contiguous run, and the
//! range handed to a range-insert helper is that run clipped to the VMA (one buffer object
//! per VMA; neighbouring VMAs are never merged). The faults are then replayed in their
//! observed order against a model of the process's page table, with the helper's own code
//! ([`hf_range::insert_range`], the one the lab driver runs in the kernel):
//!
//! - a fault at an address the model already maps would not have happened;
//! - any other fault calls the helper at the first level the kernel asks the driver: PUD
//!   where the VMA's observed calls show the kernel asking for PUDs and the model's PUD slot
//!   is empty, else PMD likewise (the kernel allocates the PMD table first), else the PTE
//!   `fault` handler (PMD table allocated, PTE table not);
//! - the helper maps the whole run. As a module it cannot allocate page-table levels (huge
//!   entries only where their table exists: the lab driver's helper); as a core-mm helper,
//!   which the 2021 proposal is, it may.
//!
//! Faults in other VMAs of the process allocate the PMD table they need, as they did. A
//! VMA that overlaps one faulted earlier replaced it: the earlier one's entries, and the
//! tables no other VMA faulted so far shares, are dropped, as munmap frees them.
//! Assumptions, stated in the report: the page table was empty for the VMA when tracing
//! started, and every page the workload needs is faulted.

mod result;
mod sim;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use huge_fault_common::{FaultRecord, NO_PFN, level, rflags};

pub use result::{Counts, Run, VmaWhatIf};
use sim::Sim;

use crate::vma::VmaKey;

/// Faults kept for the replay, over all processes; beyond it the what-if is not computed.
pub const MAX_KEPT_FAULTS: usize = 1 << 20;

/// The assumptions every what-if result rests on, for the report.
pub const ASSUMPTIONS: &[&str] = &[
    "one buffer object per VMA: the range handed to the helper is the VMA's contiguous pfn run",
    "the VMA's page table was empty when tracing started",
    "faults are replayed in the observed order; a fault on a page the helper already mapped does not happen",
    "the helper is called at the first level the kernel asked this VMA for (PUD, PMD, else the PTE handler)",
    "a VMA overlapping an earlier one replaced it: page tables no other faulted VMA shares were freed with it",
];

#[derive(Clone, Debug, Default)]
pub(super) struct VmaObs {
    /// Bit `level` set when some call in this VMA asked a handler at that level.
    pub(super) asks: u8,
    /// `pfn - virtual page` of the inserts seen so far.
    pub(super) delta: Option<i128>,
    /// Inserts whose offset differed from the first one.
    other_deltas: u64,
    /// Entries with a known pfn, and without one.
    with_pfn: u64,
    without_pfn: u64,
    /// Observed completed faults and entries, for the comparison.
    faults: u64,
    entries: [u64; 4],
}

/// Collects what the replay needs while records are ingested.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    vmas: HashMap<VmaKey, VmaObs>,
    /// VMA identities by index (`order` stores the index).
    keys: Vec<VmaKey>,
    ids: HashMap<VmaKey, u32>,
    /// Completed faults per process in order: address and VMA index. Faults in VMAs
    /// without pfn inserts matter only for the PMD tables they allocate and for the VMA's
    /// range: only the first of each VMA in each 1 GiB is kept.
    order: HashMap<u32, Vec<(u64, u32)>>,
    touched: std::collections::HashSet<(VmaKey, u64)>,
    kept: usize,
    /// Faults not kept because [`MAX_KEPT_FAULTS`] was reached.
    pub dropped: u64,
    /// Faults per VMA counted in the kernel, without addresses: those VMAs are skipped.
    aggregated: HashMap<VmaKey, u64>,
}

impl Observer {
    /// `n` faults of `key`'s VMA were counted in the kernel: the replay cannot have them.
    pub fn aggregated(&mut self, key: VmaKey, n: u64) {
        let a = self.aggregated.entry(key).or_default();
        *a = a.saturating_add(n);
    }

    /// One record of `key`'s VMA; `retry` calls add their levels asked, not a fault.
    pub fn observe(&mut self, key: VmaKey, r: &FaultRecord, retry: bool, entries: &[u32; 4]) {
        if !r.has(rflags::HAS_MAPPING) {
            return;
        }
        let o = self.vmas.entry(key).or_default();
        let m = &r.mapping;
        for i in 0..huge_fault_common::MAX_CHAIN {
            let Some((lvl, _)) = m.step(i) else { break };
            if lvl == level::PMD || lvl == level::PUD {
                o.asks |= 1 << lvl;
            }
        }
        for l in [level::PTE, level::PMD, level::PUD] {
            let i = l as usize;
            let n = u64::from(m.entries[i]);
            if n == 0 {
                continue;
            }
            if m.pfn_missing & (1 << l) != 0 || m.first_pfn[i] == NO_PFN || m.last_pfn[i] == NO_PFN
            {
                o.without_pfn = o.without_pfn.saturating_add(n);
                continue;
            }
            o.with_pfn = o.with_pfn.saturating_add(n);
            for (addr, pfn) in [
                (m.first_addr[i], m.first_pfn[i]),
                (m.last_addr[i], m.last_pfn[i]),
            ] {
                let d = i128::from(pfn) - i128::from(addr >> 12);
                match o.delta {
                    None => o.delta = Some(d),
                    Some(x) if x != d => o.other_deltas += 1,
                    Some(_) => {}
                }
            }
        }
        if retry {
            return;
        }
        o.faults += 1;
        for (t, n) in o.entries.iter_mut().zip(entries) {
            *t = t.saturating_add(u64::from(*n));
        }
        if o.with_pfn == 0 && !self.touched.insert((key, r.address >> 30)) {
            return;
        }
        if self.kept >= MAX_KEPT_FAULTS {
            self.dropped += 1;
            return;
        }
        self.kept += 1;
        let id = *self.ids.entry(key).or_insert_with(|| {
            self.keys.push(key);
            (self.keys.len() - 1) as u32
        });
        self.order
            .entry(key.tgid)
            .or_default()
            .push((r.address, id));
    }

    /// The what-if of every VMA with pfn inserts, computed per process.
    pub fn compute(&self) -> HashMap<VmaKey, VmaWhatIf> {
        let mut out = HashMap::new();
        let plannable = |key: &VmaKey, o: &VmaObs| {
            unplannable(key, o).is_none()
                && o.with_pfn > 0
                && o.without_pfn == 0
                && o.other_deltas == 0
                && o.delta.is_some()
                && !self.aggregated.contains_key(key)
        };
        for (key, o) in &self.vmas {
            if o.with_pfn == 0 {
                continue;
            }
            let skip = if self.dropped > 0 {
                Some(format!(
                    "more than {MAX_KEPT_FAULTS} faults observed: {} not kept for the replay",
                    self.dropped
                ))
            } else if let Some(n) = self.aggregated.get(key) {
                Some(format!(
                    "{n} faults counted in the kernel without their addresses (ring buffer full, or --aggregate)"
                ))
            } else if let Some(why) = unplannable(key, o) {
                Some(why)
            } else if o.without_pfn > 0 {
                Some(format!("{} entries without a known pfn", o.without_pfn))
            } else if o.other_deltas > 0 {
                Some("the VMA's pfns are not one contiguous run".into())
            } else {
                None
            };
            if let Some(reason) = skip {
                out.insert(*key, VmaWhatIf::skipped(reason));
            }
        }
        if self.dropped > 0 {
            return out;
        }
        for (tgid, faults) in &self.order {
            let mut sims = [Sim::new(false), Sim::new(true)];
            for (addr, id) in faults {
                let key = &self.keys[*id as usize];
                let o = &self.vmas[key];
                if !plannable(key, o) {
                    for s in &mut sims {
                        s.other_fault(*addr, key);
                    }
                    continue;
                }
                for s in &mut sims {
                    s.fault(*addr, key, o);
                }
            }
            let [module, core] = sims;
            for (key, o) in self.vmas.iter().filter(|(k, _)| k.tgid == *tgid) {
                if !plannable(key, o) {
                    continue;
                }
                let delta = o.delta.expect("plannable");
                let pfn = i128::from(key.start >> 12) + delta;
                out.insert(
                    *key,
                    VmaWhatIf {
                        skipped: None,
                        run: Some(Run {
                            start: format!("{:#x}", key.start),
                            pages: (key.end - key.start) >> 12,
                            pfn: format!("{:#x}", pfn.max(0)),
                        }),
                        asks: asks_names(o.asks),
                        observed: Some(Counts::new(o.faults, o.entries)),
                        module_helper: module.result(key),
                        core_helper: core.result(key),
                    },
                );
            }
        }
        out
    }
}

/// The largest VMA the replay models (its page-table model holds every page it maps).
const MAX_REPLAY_BYTES: u64 = 16 << 30;

/// Why a VMA's range or pfns cannot be replayed at all (a damaged recording, or a VMA too
/// large to model).
fn unplannable(key: &VmaKey, o: &VmaObs) -> Option<String> {
    /// Above the largest user address (5-level paging) or the largest physical frame.
    const USER_END: u64 = 1 << 56;
    const PFN_END: i128 = 1 << 52;
    if key.start >= key.end || key.end > USER_END || (key.start | key.end) & 0xfff != 0 {
        return Some(format!(
            "{:#x}-{:#x} is not a user VMA range",
            key.start, key.end
        ));
    }
    if key.end - key.start > MAX_REPLAY_BYTES {
        return Some(format!(
            "the VMA is larger than {} GiB, the most the replay models",
            MAX_REPLAY_BYTES >> 30
        ));
    }
    let first = o.delta.map(|d| i128::from(key.start >> 12) + d);
    if first.is_some_and(|p| p < 0 || p + i128::from((key.end - key.start) >> 12) > PFN_END) {
        return Some("its pfns are outside the physical address space".into());
    }
    None
}

fn asks_names(asks: u8) -> Vec<&'static str> {
    let mut v = Vec::new();
    if asks & (1 << level::PUD) != 0 {
        v.push("PUD");
    }
    if asks & (1 << level::PMD) != 0 {
        v.push("PMD");
    }
    v.push("PTE");
    v
}
