//! Counts of one scope (all, a process, a VMA), and the per-VMA and per-process rows.

use std::collections::BTreeMap;

use super::{
    chain::Chain,
    classify::{Classified, Unfinished},
};
use crate::hist::Histogram;

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
    /// Bytes mapped by those entries.
    pub bytes_mapped: u64,
    /// Faults per chain of levels tried (`PMD:FALLBACK PTE:OK`).
    pub chains: BTreeMap<Chain, u64>,
    /// Faults whose chain holds a FALLBACK.
    pub fallback_faults: u64,
    /// FALLBACK steps in those chains (a fault falling back at PMD in two calls counts two).
    pub fallback_steps: u64,
}

impl Stats {
    /// The chains as text (`PMD:FALLBACK PTE:OK`) with their faults.
    pub fn chains_text(&self) -> BTreeMap<String, u64> {
        self.chains
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect()
    }

    /// Adds `n` faults (or retry calls) classified as `f`.
    pub(crate) fn add(&mut self, f: &Classified, n: u64) {
        self.retry_calls += n * u64::from(f.retry_calls);
        self.vma_lock_retries += n * u64::from(f.vma_lock_retries);
        match f.unfinished {
            Some(Unfinished::Unlinked) => {
                self.unlinked_retries += n * u64::from(f.retry_calls);
                return;
            }
            Some(Unfinished::Pending) => {
                self.pending_retries += n * u64::from(f.retry_calls);
                return;
            }
            None => {}
        }
        self.faults += n;
        self.retried_faults += n * u64::from(f.retry_calls > 0);
        self.errors += n * u64::from(f.error);
        self.major += n * u64::from(f.major);
        self.writes += n * u64::from(f.write);
        if let Some(ns) = f.latency_ns {
            self.latency.record_n(ns, n);
        }
        if let Some(m) = &f.mapped {
            for (i, e) in m.entries.iter().enumerate() {
                self.entries[i] += n * u64::from(*e);
            }
            self.bytes_mapped += n * m.bytes;
            *self.chains.entry(m.chain.clone()).or_default() += n;
            self.fallback_faults += n * u64::from(m.fallback_steps > 0);
            self.fallback_steps += n * u64::from(m.fallback_steps);
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
