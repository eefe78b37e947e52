//! The analysis core: fault records in, per-process and per-VMA statistics out.
//!
//! Plain Rust: fed by the live ring buffer or by a recorded file alike, and unit-tested
//! without a kernel. A *fault* is one `handle_mm_fault` call that did not return
//! VM_FAULT_RETRY; a call that did is a *retry call*. The kernel side links retry calls to
//! the call that completes them (same thread, next call on the same page), so that one
//! record carries a fault with its retries; a retry never completed comes as a record of
//! its own, flagged unlinked or (made at the end of a run) pending.

mod chain;
mod classify;
mod rates;
pub mod reason;
mod rows;
mod stats;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, HashMap};

use huge_fault_common::{AggKey, FaultRecord, rflags, source};

pub use chain::{Answer, Chain, LEVEL_BYTES, Mapped, Step, mapped};
pub use classify::{Classified, Unfinished, classify};
pub use rates::Rates;
pub use rows::VmaRow;
pub use stats::{ProcStats, Stats, VmaStats};

use crate::{
    kernel,
    vma::{VmaKey, VmaResolver},
    whatif::{Observer, VmaWhatIf},
};

/// Accumulates records into totals, processes and VMAs.
#[derive(Debug)]
pub struct Analyzer {
    pub totals: Stats,
    pub processes: BTreeMap<u32, ProcStats>,
    pub vmas: HashMap<VmaKey, VmaStats>,
    /// Most VMA rows kept; faults in further VMAs are counted per process as overflow.
    pub max_vmas: usize,
    /// Faults counted in no VMA row because the table was full.
    pub vma_overflow: u64,
    /// Faults of processes beyond the process table (as big as the VMA table).
    pub process_overflow: u64,
    /// Records that could not be parsed (short or unknown source).
    pub malformed: u64,
    /// Faults and retry calls counted in the kernel (`--aggregate`, or the ring buffer was
    /// full), ingested by class without per-fault detail.
    pub aggregated: u64,
    /// Records by `source`.
    pub records: u64,
    /// Returns without a recorded entry (the tool attached mid-fault).
    pub no_entry: u64,
    /// Returns of a nested call.
    pub nested: u64,
    /// Faults whose return no program saw ([`rflags::RETURN_MISSED`]).
    pub returns_missed: u64,
    /// The nested probes that report levels and entries are attached.
    pub sizes_visible: bool,
    /// What the what-if replay needs (addresses in order, pfn runs, levels asked).
    pub whatif: Observer,
    /// What the fallback reasons need beyond one record (the kernel, populated blocks).
    pub reasons: reason::Context,
}

impl Analyzer {
    pub fn new(max_vmas: usize) -> Self {
        Self {
            totals: Stats::default(),
            processes: BTreeMap::new(),
            vmas: HashMap::new(),
            max_vmas,
            vma_overflow: 0,
            process_overflow: 0,
            malformed: 0,
            aggregated: 0,
            records: 0,
            no_entry: 0,
            nested: 0,
            returns_missed: 0,
            sizes_visible: true,
            whatif: Observer::default(),
            reasons: reason::Context::default(),
        }
    }

    /// Adds one record. `resolver` names VMAs and fills in VMAs the kernel did not give.
    pub fn ingest(&mut self, r: &FaultRecord, resolver: &mut dyn VmaResolver) {
        self.ingest_n(r, 1, false, resolver);
    }

    /// Adds `n` faults of one class counted in the kernel: the same numbers as `n` records
    /// of the class, except that retries are not linked, latencies are known to their
    /// bucket, and the what-if skips their VMA (it needs every fault's address).
    pub fn ingest_aggregate(&mut self, k: &AggKey, n: u64, resolver: &mut dyn VmaResolver) {
        if n > 0 {
            self.ingest_n(&k.to_record(), n, true, resolver);
        }
    }

    fn ingest_n(
        &mut self,
        r: &FaultRecord,
        n: u64,
        aggregated: bool,
        resolver: &mut dyn VmaResolver,
    ) {
        if !matches!(
            r.source,
            source::FEXIT | source::KRETPROBE | source::PERF_MINOR | source::PERF_MAJOR
        ) {
            stats::add(&mut self.malformed, n);
            return;
        }
        if aggregated {
            stats::add(&mut self.aggregated, n);
        } else {
            self.records += 1;
        }
        stats::add(
            &mut self.no_entry,
            n.saturating_mul(u64::from(r.has(rflags::NO_ENTRY))),
        );
        stats::add(
            &mut self.nested,
            n.saturating_mul(u64::from(r.has(rflags::NESTED))),
        );
        stats::add(
            &mut self.returns_missed,
            n.saturating_mul(u64::from(r.has(rflags::RETURN_MISSED))),
        );
        let c = classify(r, self.sizes_visible);
        self.totals.add(&c, n);
        let comm = r.comm_bytes();
        // The process table is bounded like the VMA table: a long run sees many short
        // processes. Beyond it, faults count in the totals and as process-table overflow.
        let mut spare = ProcStats::default();
        let proc = if self.processes.len() < self.max_vmas || self.processes.contains_key(&r.tgid) {
            self.processes.entry(r.tgid).or_default()
        } else {
            stats::add(
                &mut self.process_overflow,
                n.saturating_mul(u64::from(!c.retry)),
            );
            &mut spare
        };
        // The main thread's name, or the first seen (converted only when it changes).
        if (proc.comm.is_empty() || r.tid == r.tgid) && proc.comm.as_bytes() != comm {
            proc.comm = String::from_utf8_lossy(comm).into_owned();
        }
        proc.stats.add(&c, n);

        let mut vma = None;
        if r.has(rflags::HAS_VMA) && r.vma_end > r.vma_start {
            let key = VmaKey {
                tgid: r.tgid,
                start: r.vma_start,
                end: r.vma_end,
            };
            vma = Some((key, r.vma_flags, r.vma_pgoff, r.inode, r.dev, None, false));
        } else if r.has(rflags::HAS_ADDRESS)
            && let Some(d) = resolver.lookup(r.tgid, r.address)
        {
            let key = VmaKey {
                tgid: r.tgid,
                start: d.start,
                end: d.end,
            };
            let flags = if d.shared { kernel::VM_SHARED } else { 0 };
            vma = Some((key, flags, d.pgoff, d.inode, 0, d.name, true));
        }
        let Some((key, flags, pgoff, inode, dev, name, from_proc)) = vma else {
            if !c.retry {
                stats::add(&mut proc.no_vma, n);
            }
            return;
        };
        // Why levels gave no huge entry: from the record's address and pfns, which a class
        // counted in the kernel does not have.
        let found = match &c.mapped {
            Some(m) if aggregated && m.fallback_steps > 0 => None,
            Some(m) if !aggregated => Some(self.reasons.explain(
                r,
                m,
                &reason::VmaView {
                    start: key.start,
                    end: key.end,
                    flags,
                    pgoff,
                    inode,
                },
            )),
            _ => Some(vec![]),
        };
        let explain = |s: &mut Stats| match &found {
            Some(f) => s.add_reasons(f, n),
            None => stats::add(&mut s.unattributed, n),
        };
        explain(&mut self.totals);
        explain(&mut proc.stats);
        if !self.vmas.contains_key(&key) {
            if self.vmas.len() >= self.max_vmas {
                if !c.retry {
                    stats::add(&mut self.vma_overflow, n);
                    stats::add(&mut proc.vma_overflow, n);
                }
                return;
            }
            let name = name.or_else(|| {
                if from_proc {
                    None
                } else {
                    resolver
                        .lookup_fresh(key.tgid, key.start)
                        .filter(|d| d.start == key.start)
                        .and_then(|d| d.name)
                }
            });
            self.vmas.insert(
                key,
                VmaStats {
                    comm: String::from_utf8_lossy(comm).into_owned(),
                    flags,
                    pgoff,
                    inode,
                    dev,
                    name,
                    from_proc,
                    name_tries: 1,
                    stats: Stats::default(),
                },
            );
        } else if let Some(v) = self.vmas.get_mut(&key)
            && v.name.is_none()
            && !v.from_proc
            && v.name_tries < 64
        {
            v.name_tries += 1;
            v.name = resolver
                .lookup_fresh(key.tgid, key.start)
                .filter(|d| d.start == key.start && d.end == key.end)
                .and_then(|d| d.name);
        }
        if let Some(v) = self.vmas.get_mut(&key) {
            v.stats.add(&c, n);
            explain(&mut v.stats);
            if aggregated {
                self.whatif.aggregated(key, n);
            } else if self.sizes_visible {
                let entries = c.mapped.as_ref().map_or([0; 4], |m| m.entries);
                self.whatif.observe(key, r, c.retry, &entries);
            }
        }
    }

    /// The what-if of every VMA whose inserts carried pfns (computed once, at the end).
    pub fn what_if(&self) -> HashMap<VmaKey, VmaWhatIf> {
        self.whatif.compute()
    }

    /// Retry calls still waiting for their completing call when tracing ended.
    pub fn pending_retries(&self) -> u64 {
        self.totals.pending_retries
    }

    /// Retry calls that no call completed on their thread and page.
    pub fn unlinked_retries(&self) -> u64 {
        self.totals.unlinked_retries
    }

    /// VMA rows, most faults first (ties by process and address).
    pub fn vmas_sorted(&self) -> Vec<(&VmaKey, &VmaStats)> {
        let mut v: Vec<_> = self.vmas.iter().collect();
        v.sort_by(|a, b| {
            (b.1.stats.faults.saturating_add(b.1.stats.retry_calls))
                .cmp(&a.1.stats.faults.saturating_add(a.1.stats.retry_calls))
                .then(a.0.cmp(b.0))
        });
        v
    }

    /// Processes, most faults first.
    pub fn processes_sorted(&self) -> Vec<(u32, &ProcStats)> {
        let mut v: Vec<_> = self.processes.iter().map(|(k, p)| (*k, p)).collect();
        v.sort_by(|a, b| {
            (b.1.stats.faults.saturating_add(b.1.stats.retry_calls))
                .cmp(&a.1.stats.faults.saturating_add(a.1.stats.retry_calls))
                .then(a.0.cmp(&b.0))
        });
        v
    }
}
