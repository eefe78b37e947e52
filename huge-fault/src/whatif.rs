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
//! Faults in other VMAs of the process allocate the PMD table they need, as they did.
//! Assumptions, stated in the report: the page table was empty for the VMA when tracing
//! started, and every page the workload needs is faulted.

use std::collections::HashMap;

use hf_range::{Level, Slot, Tables, model::ModelTables};
use huge_fault_common::{FaultRecord, NO_PFN, level, rflags};
use serde::Serialize;

use crate::analysis::VmaKey;

/// Faults kept for the replay, over all processes; beyond it the what-if is not computed.
pub const MAX_KEPT_FAULTS: usize = 1 << 20;

/// The assumptions every what-if result rests on, for the report.
pub const ASSUMPTIONS: &[&str] = &[
    "one buffer object per VMA: the range handed to the helper is the VMA's contiguous pfn run",
    "the VMA's page table was empty when tracing started",
    "faults are replayed in the observed order; a fault on a page the helper already mapped does not happen",
    "the helper is called at the first level the kernel asked this VMA for (PUD, PMD, else the PTE handler)",
];

#[derive(Clone, Debug, Default)]
struct VmaObs {
    /// Bit `level` set when some call in this VMA asked a handler at that level.
    asks: u8,
    /// `pfn - virtual page` of the inserts seen so far.
    delta: Option<i128>,
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
    /// without pfn inserts matter only for the PMD tables they allocate: only the first in
    /// each 1 GiB of a process is kept.
    order: HashMap<u32, Vec<(u64, u32)>>,
    touched: HashMap<u32, std::collections::HashSet<u64>>,
    kept: usize,
    /// Faults not kept because [`MAX_KEPT_FAULTS`] was reached.
    pub dropped: u64,
    /// Faults per VMA counted in the kernel, without addresses: those VMAs are skipped.
    aggregated: HashMap<VmaKey, u64>,
}

impl Observer {
    /// `n` faults of `key`'s VMA were counted in the kernel: the replay cannot have them.
    pub fn aggregated(&mut self, key: VmaKey, n: u64) {
        *self.aggregated.entry(key).or_default() += n;
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
                o.without_pfn += n;
                continue;
            }
            o.with_pfn += n;
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
            *t += u64::from(*n);
        }
        if o.with_pfn == 0
            && !self
                .touched
                .entry(key.tgid)
                .or_default()
                .insert(r.address >> 30)
        {
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
            o.with_pfn > 0
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
                        s.other_fault(*addr);
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

/// Faults and entries per size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub faults: u64,
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    pub bytes: u64,
}

impl Counts {
    fn new(faults: u64, e: [u64; 4]) -> Self {
        Counts {
            faults,
            pte: e[1],
            pmd: e[2],
            pud: e[3],
            bytes: e[1] * Level::Pte.size() + e[2] * Level::Pmd.size() + e[3] * Level::Pud.size(),
        }
    }

    /// `3 faults: PUD 1, PMD 2, PTE 14`.
    pub fn describe(&self) -> String {
        format!(
            "{} fault{}: PUD {}, PMD {}, PTE {}",
            self.faults,
            if self.faults == 1 { "" } else { "s" },
            self.pud,
            self.pmd,
            self.pte
        )
    }
}

/// The contiguous run handed to the helper.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Run {
    pub start: String,
    pub pages: u64,
    pub pfn: String,
}

/// One VMA's what-if.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmaWhatIf {
    /// Why it was not computed.
    pub skipped: Option<String>,
    pub run: Option<Run>,
    /// Levels the kernel asked this VMA's driver for, as observed.
    pub asks: Vec<&'static str>,
    /// What really happened: faults and entries.
    pub observed: Option<Counts>,
    /// A range insert by a module's helper (no page-table allocation), like the lab driver's.
    pub module_helper: Option<Counts>,
    /// A range insert by a core-mm helper that may allocate page-table levels.
    pub core_helper: Option<Counts>,
}

impl VmaWhatIf {
    fn skipped(reason: String) -> Self {
        VmaWhatIf {
            skipped: Some(reason),
            run: None,
            asks: Vec::new(),
            observed: None,
            module_helper: None,
            core_helper: None,
        }
    }
}

/// The replay of one process against one helper variant.
struct Sim {
    tables: ModelTables,
    per_vma: HashMap<VmaKey, (u64, [u64; 4])>,
}

impl Sim {
    fn new(alloc_tables: bool) -> Self {
        Sim {
            tables: ModelTables::new(alloc_tables),
            per_vma: HashMap::new(),
        }
    }

    /// A fault in a VMA without a what-if: it allocated the PMD table it needed.
    fn other_fault(&mut self, addr: u64) {
        if self.tables.slot(addr, Level::Pud) != Slot::Present {
            self.tables.pmd_table_exists(addr);
        }
    }

    fn fault(&mut self, addr: u64, key: &VmaKey, o: &VmaObs) {
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

    fn result(&self, key: &VmaKey) -> Option<Counts> {
        let (faults, e) = self.per_vma.get(key).copied().unwrap_or_default();
        Some(Counts::new(faults, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huge_fault_common::{FaultRecord, level, source};

    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;

    /// A completed fault at `addr` of VMA [start, end) that inserted one entry of `lvl`
    /// mapping pfn `delta + page`, after asking the levels in `chain`.
    fn fault(start: u64, end: u64, addr: u64, lvl: u8, delta: u64, chain: &[u8]) -> FaultRecord {
        let mut r = FaultRecord {
            source: source::KRETPROBE,
            tgid: 7,
            tid: 7,
            address: addr,
            vma_start: start,
            vma_end: end,
            flags: rflags::HAS_MAPPING | rflags::HAS_VMA | rflags::HAS_RET,
            ..Default::default()
        };
        let m = &mut r.mapping;
        for (i, l) in chain.iter().enumerate() {
            m.chain[i] = u32::from(*l) << 24;
            m.chain_len += 1;
        }
        let size = [0, 4096, MIB2, GIB][lvl as usize];
        let a = addr & !(size - 1);
        m.entries[lvl as usize] = 1;
        m.first_addr[lvl as usize] = a;
        m.last_addr[lvl as usize] = a;
        m.first_pfn[lvl as usize] = (a >> 12) + delta;
        m.last_pfn[lvl as usize] = (a >> 12) + delta;
        r
    }

    fn key(start: u64, end: u64) -> VmaKey {
        VmaKey {
            tgid: 7,
            start,
            end,
        }
    }

    fn observe(o: &mut Observer, r: &FaultRecord) {
        let e = r.mapping.entries;
        o.observe(key(r.vma_start, r.vma_end), r, false, &e);
    }

    /// pte-only on an aligned 1 GiB + 2 MiB + 8 KiB buffer, kernel asking PUD and PMD: the
    /// helper maps it all in one fault, as the lab driver's range policy does (PUD, the PMD
    /// in the second pass, 2 PTEs); a core-mm helper gets the same here.
    #[test]
    fn level_by_level_run_predicts_one_range_fault() {
        let (start, delta) = (16 * GIB, 0x100000);
        let end = start + GIB + MIB2 + 8192;
        let mut o = Observer::default();
        let mut a = start;
        while a < end {
            let chain: &[u8] = if a == start {
                &[level::PUD, level::PMD, level::PTE]
            } else {
                &[level::PTE]
            };
            observe(&mut o, &fault(start, end, a, level::PTE, delta, chain));
            a += 4096;
        }
        let w = &o.compute()[&key(start, end)];
        assert_eq!(w.skipped, None);
        let pages = (end - start) >> 12;
        assert_eq!(w.observed.as_ref().unwrap().faults, pages);
        assert_eq!(w.observed.as_ref().unwrap().pte, pages);
        let m = w.module_helper.as_ref().unwrap();
        assert_eq!(m.describe(), "1 fault: PUD 1, PMD 1, PTE 2");
        assert_eq!(m.bytes, end - start);
        assert_eq!(
            w.core_helper.as_ref().unwrap().describe(),
            "1 fault: PUD 1, PMD 1, PTE 2"
        );
        assert_eq!(w.asks, vec!["PUD", "PMD", "PTE"]);
        assert_eq!(
            w.run.as_ref().unwrap().pfn,
            format!("{:#x}", (start >> 12) + delta)
        );
    }

    /// Faults counted in the kernel have no addresses: their VMA's replay would be wrong.
    #[test]
    fn a_vma_with_faults_counted_in_the_kernel_is_skipped() {
        let start = 16 * GIB;
        let end = start + 4 * MIB2;
        let mut o = Observer::default();
        for a in (start..start + MIB2).step_by(4096) {
            observe(&mut o, &fault(start, end, a, level::PTE, 0, &[]));
        }
        assert_eq!(o.compute()[&key(start, end)].skipped, None);
        o.aggregated(key(start, end), 512);
        let w = &o.compute()[&key(start, end)];
        assert!(
            w.skipped
                .as_deref()
                .is_some_and(|r| r.starts_with("512 faults counted in the kernel")),
            "{:?}",
            w.skipped
        );
        assert!(w.module_helper.is_none());
    }

    /// A kernel that never asks huge_fault (6.1 and PFNMAP): the helper runs from the PTE
    /// handler with the first GiB's PMD table allocated, so no PUD goes there.
    #[test]
    fn a_kernel_that_only_calls_the_pte_handler() {
        let start = 16 * GIB;
        let end = start + GIB + MIB2 + 8192;
        let mut o = Observer::default();
        for a in (start..end).step_by(4096) {
            observe(&mut o, &fault(start, end, a, level::PTE, 0, &[]));
        }
        let w = &o.compute()[&key(start, end)];
        assert_eq!(w.asks, vec!["PTE"]);
        assert_eq!(
            w.module_helper.as_ref().unwrap().describe(),
            "1 fault: PUD 0, PMD 513, PTE 2"
        );
    }

    /// Misaligned modulo 2 MiB: nothing huge fits; one fault of PTEs either way. The
    /// module's helper called at PUD on an aligned 8 MiB buffer has no PMD table to put
    /// its first PMD in; a core-mm helper has.
    #[test]
    fn module_and_core_helpers_differ_where_tables_are_missing() {
        let start = 16 * GIB + 0x10000;
        let end = start + (8 << 20);
        // Physical at a 2 MiB boundary, virtual 64 KiB past one.
        let delta = (1 << 18) - 16;
        let mut o = Observer::default();
        for a in (start..end).step_by(4096) {
            let chain: &[u8] = if a == start { &[level::PUD] } else { &[] };
            observe(&mut o, &fault(start, end, a, level::PTE, delta, chain));
        }
        let w = &o.compute()[&key(start, end)];
        assert_eq!(
            w.module_helper.as_ref().unwrap().describe(),
            "1 fault: PUD 0, PMD 0, PTE 2048"
        );

        let start = 32 * GIB;
        let end = start + (8 << 20);
        let mut o = Observer::default();
        for a in (start..end).step_by(2 << 20) {
            let chain: &[u8] = if a == start {
                &[level::PUD, level::PMD]
            } else {
                &[level::PMD]
            };
            observe(&mut o, &fault(start, end, a, level::PMD, 0, chain));
        }
        let w = &o.compute()[&key(start, end)];
        assert_eq!(
            w.observed.as_ref().unwrap().describe(),
            "4 faults: PUD 0, PMD 4, PTE 0"
        );
        // The module's helper maps the first 2 MiB with PTEs, which allocates the PMD
        // table, and the other three as PMDs in its second pass.
        assert_eq!(
            w.module_helper.as_ref().unwrap().describe(),
            "1 fault: PUD 0, PMD 3, PTE 512"
        );
        assert_eq!(
            w.core_helper.as_ref().unwrap().describe(),
            "1 fault: PUD 0, PMD 4, PTE 0"
        );
    }

    #[test]
    fn inserts_off_one_run_or_without_pfn_are_not_planned() {
        let (start, end) = (GIB, GIB + (1 << 20));
        let mut o = Observer::default();
        observe(&mut o, &fault(start, end, start, level::PTE, 5, &[]));
        observe(&mut o, &fault(start, end, start + 4096, level::PTE, 9, &[]));
        let w = &o.compute()[&key(start, end)];
        assert_eq!(
            w.skipped.as_deref(),
            Some("the VMA's pfns are not one contiguous run")
        );

        let mut o = Observer::default();
        observe(&mut o, &fault(start, end, start, level::PTE, 5, &[]));
        let mut r = fault(start, end, start + 4096, level::PTE, 5, &[]);
        r.mapping.first_pfn[1] = NO_PFN;
        r.mapping.pfn_missing = 1 << level::PTE;
        observe(&mut o, &r);
        let w = &o.compute()[&key(start, end)];
        assert_eq!(w.skipped.as_deref(), Some("1 entries without a known pfn"));

        // Anonymous memory (no pfns at all): no what-if.
        let mut o = Observer::default();
        let mut r = fault(start, end, start, level::PTE, 5, &[]);
        r.mapping.entries = [0; 4];
        observe(&mut o, &r);
        assert!(o.compute().is_empty());
    }

    /// Faults that the replayed helper already covered do not count; a partly populated
    /// start is the observed order's business: a second VMA's faults in the same GiB make
    /// its PMD table, so the first VMA gets no PUD.
    #[test]
    fn neighbours_decide_the_tables() {
        let start = 16 * GIB;
        let end = start + GIB;
        let other = (start + GIB, start + GIB + (1 << 20));
        let mut o = Observer::default();
        let r = fault(other.0, other.1, other.0, level::PTE, 0, &[]);
        observe(&mut o, &r);
        // The big VMA starts at a GiB boundary but the neighbour's table is in the next GiB:
        // PUD still possible.
        for a in (start..end).step_by(2 << 20) {
            observe(
                &mut o,
                &fault(start, end, a, level::PMD, 0, &[level::PUD, level::PMD]),
            );
        }
        let w = o.compute();
        assert_eq!(
            w[&key(start, end)]
                .module_helper
                .as_ref()
                .unwrap()
                .describe(),
            "1 fault: PUD 1, PMD 0, PTE 0"
        );
        assert_eq!(
            w[&key(other.0, other.1)]
                .module_helper
                .as_ref()
                .unwrap()
                .describe(),
            "1 fault: PUD 0, PMD 0, PTE 256"
        );
    }
}
