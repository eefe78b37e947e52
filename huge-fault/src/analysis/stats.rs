//! Counts of one scope (all, a process, a VMA), and the per-VMA and per-process rows.

use std::collections::BTreeMap;

use huge_fault_common::Level;

use super::{
    chain::Chain,
    classify::{Classified, Unfinished},
    reason::{Found, Reason},
};
use crate::hist::Histogram;

/// Adds to a counter without overflowing: counts come from the kernel or from a
/// recording, which may be damaged or hostile.
pub(crate) fn add(counter: &mut u64, v: u64) {
    *counter = counter.saturating_add(v);
}

/// Counts of one scope (all, a process, a VMA).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Faults: calls that did not return VM_FAULT_RETRY (tracepoint mode: completions).
    pub faults: u64,
    /// Calls that returned VM_FAULT_RETRY.
    pub retry_calls: u64,
    /// Faults whose completing call was preceded by at least one linked retry call.
    pub retried_faults: u64,
    /// Retry calls made under the per-VMA lock (`FAULT_FLAG_VMA_LOCK`).
    pub vma_lock_retries: u64,
    /// Retry calls whose fault was not continued on its thread and page (counted in
    /// `retry_calls` too).
    pub unlinked_retries: u64,
    /// Retry calls still waiting for their completing call when tracing ended.
    pub pending_retries: u64,
    /// Faults that failed (OOM, SIGBUS, SIGSEGV, HWPOISON).
    pub errors: u64,
    /// Faults that needed I/O (VM_FAULT_MAJOR, or the major-faults event).
    pub major: u64,
    /// Write faults (FAULT_FLAG_WRITE, or the x86 error code's write bit).
    pub writes: u64,
    /// Latency of each fault's completing call (or exception to completion).
    pub latency: Histogram,
    /// Entries inserted by faults, indexed by `huge_fault_common::level` (0 unused).
    pub entries: [u64; 4],
    /// Inserts that found their entry already present and mapped nothing (TTM's prefault
    /// over PTEs an earlier fault made), by level like `entries`.
    pub reinserts: [u64; 4],
    /// Bytes mapped by those entries.
    pub bytes_mapped: u64,
    /// Faults per chain of levels tried (`PMD:FALLBACK PTE:OK`).
    pub chains: BTreeMap<Chain, u64>,
    /// Faults whose chain holds a FALLBACK.
    pub fallback_faults: u64,
    /// FALLBACK steps in those chains (a fault falling back at PMD in two calls counts two).
    pub fallback_steps: u64,
    /// Faults per level and reason where the level gave no huge entry (a fault counts
    /// once per level; see `analysis::reason`).
    pub reasons: BTreeMap<(Level, Reason), u64>,
    /// Of them, faults the kernel never asked at PMD (on VMAs made for huge entries).
    pub not_asked: u64,
    /// Faults with a FALLBACK counted in the kernel by class: no address, no reason.
    pub unattributed: u64,
    /// The first `pfn-misaligned` seen: its level and how far the virtual address is past
    /// the pfn's alignment.
    pub pfn_offset: Option<(Level, u64)>,
    /// Faults per `huge_fault` handler asked (index + 1 in the run's handler table).
    pub handlers: BTreeMap<u8, u64>,
}

impl Stats {
    /// The chains as text (`PMD:FALLBACK PTE:OK`) with their faults.
    pub fn chains_text(&self) -> BTreeMap<String, u64> {
        self.chains
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect()
    }

    /// Adds the counts of `o` (two kernel VMAs shown as one row).
    pub fn merge(&mut self, o: &Stats) {
        for (a, b) in [
            (&mut self.faults, o.faults),
            (&mut self.retry_calls, o.retry_calls),
            (&mut self.retried_faults, o.retried_faults),
            (&mut self.vma_lock_retries, o.vma_lock_retries),
            (&mut self.unlinked_retries, o.unlinked_retries),
            (&mut self.pending_retries, o.pending_retries),
            (&mut self.errors, o.errors),
            (&mut self.major, o.major),
            (&mut self.writes, o.writes),
            (&mut self.bytes_mapped, o.bytes_mapped),
            (&mut self.fallback_faults, o.fallback_faults),
            (&mut self.fallback_steps, o.fallback_steps),
        ] {
            add(a, b);
        }
        for (a, b) in self.entries.iter_mut().zip(o.entries) {
            add(a, b);
        }
        for (a, b) in self.reinserts.iter_mut().zip(o.reinserts) {
            add(a, b);
        }
        for (c, n) in &o.chains {
            add(self.chains.entry(c.clone()).or_default(), *n);
        }
        self.latency.merge(&o.latency);
        for (k, n) in &o.reasons {
            add(self.reasons.entry(*k).or_default(), *n);
        }
        add(&mut self.not_asked, o.not_asked);
        add(&mut self.unattributed, o.unattributed);
        self.pfn_offset = self.pfn_offset.or(o.pfn_offset);
        for (h, n) in &o.handlers {
            add(self.handlers.entry(*h).or_default(), *n);
        }
    }

    /// Adds the reasons of `n` faults that each found these.
    pub(crate) fn add_reasons(&mut self, found: &[Found], n: u64) {
        for f in found {
            add(self.reasons.entry((f.level, f.reason)).or_default(), n);
            if !f.asked {
                add(&mut self.not_asked, n);
            }
            if let (Some(off), None) = (f.offset, self.pfn_offset) {
                self.pfn_offset = Some((f.level, off));
            }
        }
    }

    /// The most frequent reason at a level (ties: the smaller level, then the first in
    /// rule order) with its faults, and all faults with a reason at that level.
    pub fn top_reason(&self) -> Option<(Level, Reason, u64, u64)> {
        let ((l, r), n) = self
            .reasons
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
        let all = self
            .reasons
            .iter()
            .filter(|((lv, _), _)| lv == l)
            .fold(0u64, |a, (_, n)| a.saturating_add(*n));
        Some((*l, *r, *n, all))
    }

    /// Adds `n` faults (or retry calls) classified as `f`.
    pub(crate) fn add(&mut self, f: &Classified, n: u64) {
        add(
            &mut self.retry_calls,
            n.saturating_mul(u64::from(f.retry_calls)),
        );
        add(
            &mut self.vma_lock_retries,
            n.saturating_mul(u64::from(f.vma_lock_retries)),
        );
        match f.unfinished {
            Some(Unfinished::Unlinked) => {
                add(
                    &mut self.unlinked_retries,
                    n.saturating_mul(u64::from(f.retry_calls)),
                );
                return;
            }
            Some(Unfinished::Pending) => {
                add(
                    &mut self.pending_retries,
                    n.saturating_mul(u64::from(f.retry_calls)),
                );
                return;
            }
            None => {}
        }
        add(&mut self.faults, n);
        add(
            &mut self.retried_faults,
            n.saturating_mul(u64::from(f.retry_calls > 0)),
        );
        add(&mut self.errors, n.saturating_mul(u64::from(f.error)));
        add(&mut self.major, n.saturating_mul(u64::from(f.major)));
        add(&mut self.writes, n.saturating_mul(u64::from(f.write)));
        if let Some(ns) = f.latency_ns {
            self.latency.record_n(ns, n);
        }
        if let Some(m) = &f.mapped {
            for (i, e) in m.entries.iter().enumerate() {
                add(&mut self.entries[i], n.saturating_mul(u64::from(*e)));
            }
            for (i, e) in m.reinserts.iter().enumerate() {
                add(&mut self.reinserts[i], n.saturating_mul(u64::from(*e)));
            }
            add(&mut self.bytes_mapped, n.saturating_mul(m.bytes));
            add(self.chains.entry(m.chain.clone()).or_default(), n);
            add(
                &mut self.fallback_faults,
                n.saturating_mul(u64::from(m.fallback_steps > 0)),
            );
            add(
                &mut self.fallback_steps,
                n.saturating_mul(u64::from(m.fallback_steps)),
            );
            if m.handler != 0 {
                add(self.handlers.entry(m.handler).or_default(), n);
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct VmaStats {
    pub comm: String,
    pub flags: u64,
    pub pgoff: u64,
    pub inode: u64,
    pub dev: u32,
    /// Backing file or `[heap]`-style name, when known.
    pub name: Option<String>,
    /// The VMA came from /proc/PID/maps, not from the kernel at fault time.
    pub from_proc: bool,
    /// Lookups of the name so far (a VMA split or mapped just before its first fault may
    /// not be in /proc/PID/maps yet as the kernel saw it, and the maps are re-read at most
    /// every 50 ms: the next 63 faults try again).
    pub name_tries: u8,
    pub stats: Stats,
}

impl VmaStats {
    /// A short class of the mapping, from its flags and backing.
    pub fn kind(&self) -> &'static str {
        crate::vma::kind(self.flags, self.inode)
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProcStats {
    pub comm: String,
    pub stats: Stats,
    /// Faults counted in no VMA row because the VMA table was full.
    pub vma_overflow: u64,
    /// Faults without a VMA (the lookup failed in the kernel and in /proc).
    pub no_vma: u64,
}
