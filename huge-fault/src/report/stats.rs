//! The statistics of one scope as the report gives them (the JSON's `totals`, `processes[]`
//! and `vmas[]`): what the mode cannot see is `None` (`null`), never 0.

use std::collections::BTreeMap;

use huge_fault_common::Level;
use serde::Serialize;

use crate::{
    analysis::{Stats, VmaStats},
    hist::LatencySummary,
    kernel::Visibility,
    vma::VmaKey,
};

#[derive(Clone, Debug, Serialize)]
pub struct StatsReport {
    pub faults: u64,
    /// `null` where the mode cannot see retried calls.
    pub retry_calls: Option<u64>,
    pub retried_faults: Option<u64>,
    /// Retry calls made under the per-VMA lock (`FAULT_FLAG_VMA_LOCK`).
    pub vma_lock_retries: Option<u64>,
    /// Retry calls whose fault was not continued on the thread's next call (in
    /// `retry_calls` too), and those still waiting when tracing ended.
    pub unlinked_retries: Option<u64>,
    pub pending_retries: Option<u64>,
    pub errors: Option<u64>,
    pub major: u64,
    pub writes: u64,
    pub latency_ns: Option<LatencySummary>,
    /// Log2 latency buckets, with `--histogram` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_log2: Option<Vec<crate::hist::Log2Bucket>>,
    /// Entries inserted per page-table level; `null` where the probes cannot see them.
    pub entries: Option<Entries>,
    /// Inserts that found their entry already present and mapped nothing (a driver's
    /// prefault over entries an earlier fault made: chain steps `PTE:PRESENT`), per level;
    /// not in `entries`. `null` where the probes cannot see them.
    pub reinserts: Option<Entries>,
    pub bytes_mapped: Option<u64>,
    /// Faults per chain of levels tried, most frequent first.
    pub chains: Option<Vec<ChainCount>>,
    /// Faults whose chain holds a FALLBACK, and their share of all faults.
    pub fallback_faults: Option<u64>,
    pub fallback_rate: Option<f64>,
    /// FALLBACK answers in those chains: a fault whose two calls both fell back at PMD
    /// counts two (what a handler counting its own answers sees).
    pub fallback_steps: Option<u64>,
    /// Why levels gave no huge entry; `null` where the probes cannot see levels.
    pub fallback_reasons: Option<ReasonsReport>,
    /// The `huge_fault` handlers asked (the driver or file system that served the VMA),
    /// with their faults, most first; `null` where the probes cannot see levels or no
    /// handler was attached (and in recordings made before handlers were told).
    pub handlers: Option<Vec<HandlerCount>>,
}

/// One `huge_fault` handler, as `symbol [module]`, and the faults that asked it last.
#[derive(Clone, Debug, Serialize)]
pub struct HandlerCount {
    pub handler: String,
    pub faults: u64,
}

/// The handlers of `s`, named from the run's table (`table[i]` is index `i + 1`).
fn handler_counts(s: &Stats, table: &[String]) -> Vec<HandlerCount> {
    let mut out: Vec<HandlerCount> = s
        .handlers
        .iter()
        .map(|(i, n)| HandlerCount {
            handler: table
                .get(usize::from(*i).wrapping_sub(1))
                .cloned()
                .unwrap_or_else(|| format!("handler #{i}")),
            faults: *n,
        })
        .collect();
    out.sort_by(|a, b| {
        b.faults
            .cmp(&a.faults)
            .then_with(|| a.handler.cmp(&b.handler))
    });
    out
}

/// Faults per reason and level (a fault counts once per level where it fell back or, on a
/// VMA made for huge entries, was never asked), most first.
#[derive(Clone, Debug, Serialize)]
pub struct ReasonsReport {
    pub pud: BTreeMap<&'static str, u64>,
    pub pmd: BTreeMap<&'static str, u64>,
    /// Of them, faults the kernel never asked at PMD.
    pub not_asked: u64,
    /// Faults with a FALLBACK counted in the kernel by class, which keeps no address or
    /// pfn: no reason can be given to them.
    pub unattributed: u64,
    /// The most frequent reason, its share of the faults with a reason, and what to do.
    pub top: Option<TopReason>,
    /// For `pfn-misaligned`: how far the virtual address was past the pfn's alignment
    /// (the first such fault).
    pub pfn_offset: Option<PfnOffset>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopReason {
    pub level: &'static str,
    pub reason: &'static str,
    pub faults: u64,
    pub share: f64,
    pub hint: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct PfnOffset {
    pub level: &'static str,
    /// The level's entry size.
    pub level_bytes: u64,
    pub bytes: u64,
}

impl ReasonsReport {
    fn new(s: &Stats) -> Self {
        let mut pud = BTreeMap::new();
        let mut pmd = BTreeMap::new();
        for ((l, r), n) in &s.reasons {
            match l {
                Level::Pud => pud.insert(r.name(), *n),
                _ => pmd.insert(r.name(), *n),
            };
        }
        ReasonsReport {
            pud,
            pmd,
            not_asked: s.not_asked,
            unattributed: s.unattributed,
            top: s.top_reason().map(|(l, r, n, all)| TopReason {
                level: l.name(),
                reason: r.name(),
                faults: n,
                share: (n as f64 / all.max(1) as f64 * 1e4).round() / 1e4,
                hint: r.hint(),
            }),
            pfn_offset: s.pfn_offset.map(|(l, b)| PfnOffset {
                level: l.name(),
                level_bytes: l.size(),
                bytes: b,
            }),
        }
    }

    /// `populated 98%`: the top reason and its share, for a table cell.
    pub fn cell(&self) -> String {
        match &self.top {
            Some(t) => format!("{} {:.0}%", t.reason, t.share * 100.0),
            None => "-".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Entries {
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    /// hugetlb entries of a size that is neither PMD nor PUD.
    pub other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainCount {
    pub chain: String,
    pub count: u64,
}

impl StatsReport {
    pub(super) fn new(
        s: &Stats,
        vis: &Visibility,
        sizes: bool,
        histogram: bool,
        handlers: &[String],
    ) -> Self {
        let mut chains: Vec<ChainCount> = s
            .chains
            .iter()
            .map(|(c, n)| ChainCount {
                chain: c.to_string(),
                count: *n,
            })
            .collect();
        chains.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.chain.cmp(&b.chain)));
        Self {
            faults: s.faults,
            retry_calls: vis.every_call.then_some(s.retry_calls),
            retried_faults: vis.every_call.then_some(s.retried_faults),
            vma_lock_retries: vis.every_call.then_some(s.vma_lock_retries),
            unlinked_retries: vis.every_call.then_some(s.unlinked_retries),
            pending_retries: vis.every_call.then_some(s.pending_retries),
            errors: vis.failed_faults.then_some(s.errors),
            major: s.major,
            writes: s.writes,
            latency_ns: s.latency.summary(),
            latency_log2: histogram.then(|| s.latency.log2()),
            entries: sizes.then(|| Entries {
                pte: s.entries[1],
                pmd: s.entries[2],
                pud: s.entries[3],
                other: s.entries[0],
            }),
            reinserts: sizes.then(|| Entries {
                pte: s.reinserts[1],
                pmd: s.reinserts[2],
                pud: s.reinserts[3],
                other: s.reinserts[0],
            }),
            bytes_mapped: sizes.then_some(s.bytes_mapped),
            chains: sizes.then_some(chains),
            fallback_faults: sizes.then_some(s.fallback_faults),
            fallback_rate: (sizes && s.faults > 0)
                .then(|| (s.fallback_faults as f64 / s.faults as f64 * 1e4).round() / 1e4),
            fallback_steps: sizes.then_some(s.fallback_steps),
            fallback_reasons: sizes.then(|| ReasonsReport::new(s)),
            handlers: (sizes && !handlers.is_empty()).then(|| handler_counts(s, handlers)),
        }
    }

    /// `4×PMD 2×PTE`-style size mix.
    pub fn size_mix(&self) -> String {
        let Some(e) = &self.entries else {
            return "-".into();
        };
        let mut parts = Vec::new();
        for (n, name) in [
            (e.pud, "PUD"),
            (e.pmd, "PMD"),
            (e.pte, "PTE"),
            (e.other, "HUGE?"),
        ] {
            if n > 0 {
                parts.push(format!("{n}×{name}"));
            }
        }
        if parts.is_empty() {
            "0".into()
        } else {
            parts.join(" ")
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub stats: StatsReport,
    pub faults_without_vma: u64,
    pub faults_in_overflowed_vmas: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmaReport {
    pub pid: u32,
    pub comm: String,
    /// Hex, like /proc/PID/maps.
    pub start: String,
    pub end: String,
    pub size_bytes: u64,
    pub kind: String,
    pub path: Option<String>,
    pub inode: u64,
    pub dev: String,
    pub pgoff: u64,
    pub vm_flags: String,
    /// `kernel` (read at fault time) or `proc` (looked up in /proc/PID/maps afterwards).
    pub vma_source: String,
    #[serde(flatten)]
    pub stats: StatsReport,
    /// What a range insert would have done here (VMAs whose inserts carried pfns).
    pub what_if: Option<crate::whatif::VmaWhatIf>,
    /// Kernel VMAs this row covers, when more than one: a private anonymous region the
    /// kernel grew or split during the run (the `[heap]` after brk), shown as one row.
    #[serde(skip_serializing_if = "is_one")]
    pub merged_vmas: usize,
    /// Those VMAs, as the faults named them.
    #[serde(skip)]
    pub keys: Vec<VmaKey>,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

pub(super) fn vma_report(
    k: &VmaKey,
    v: &VmaStats,
    vis: &Visibility,
    sizes: bool,
    histogram: bool,
    handlers: &[String],
) -> VmaReport {
    VmaReport {
        pid: k.tgid,
        comm: v.comm.clone(),
        start: format!("{:#x}", k.start),
        end: format!("{:#x}", k.end),
        size_bytes: k.end - k.start,
        kind: v.kind().into(),
        path: v.name.clone(),
        inode: v.inode,
        dev: dev_string(v.dev),
        pgoff: v.pgoff,
        vm_flags: format!("{:#x}", v.flags),
        vma_source: if v.from_proc { "proc" } else { "kernel" }.into(),
        stats: StatsReport::new(&v.stats, vis, sizes, histogram, handlers),
        what_if: None,
        merged_vmas: 1,
        keys: vec![*k],
    }
}

fn dev_string(dev: u32) -> String {
    // Kernel-internal dev_t: major in the top 12 bits, minor in the low 20.
    format!("{}:{}", dev >> 20, dev & 0xf_ffff)
}
