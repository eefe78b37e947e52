//! The report: what was attached, what was lost, and the fault statistics, as JSON
//! (schema `huge-fault.report`, version 1) and as terminal tables.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{Analyzer, Stats, VmaKey, VmaStats},
    hist::{LatencySummary, fmt_ns},
    kernel::{Mode, Visibility},
};

pub const SCHEMA: &str = "huge-fault.report";
pub const SCHEMA_VERSION: u32 = 3;

/// The state of one probe after attaching.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    Attached,
    /// Not used in the chosen mode, or optional and unavailable.
    Skipped,
    /// Tried and failed.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeReport {
    pub program: String,
    pub target: String,
    /// The mode it was tried in (`fentry`, `kprobe`, `tracepoint-only`).
    pub mode: String,
    pub role: String,
    pub status: ProbeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts of everything that was lost or odd; every number that could hide data.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Loss {
    /// Faults lost: the ring buffer was full (or `--aggregate` was given) and the in-kernel
    /// class table was full too.
    pub ringbuf_drops: u64,
    /// Entries the in-flight maps could not store.
    pub inflight_map_full: u64,
    /// Faults in no VMA row because the VMA table was full (`--max-vmas`).
    pub vma_table_overflow_faults: u64,
    /// Faults in no process row because the process table (as big as the VMA table) was full.
    pub process_table_overflow_faults: u64,
    /// Records user space could not parse.
    pub malformed_records: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Anomalies {
    /// `handle_mm_fault` entered while another call was in flight on the thread.
    pub nested_entries: u64,
    /// Returns without a recorded entry (calls in flight at attach time).
    pub returns_without_entry: u64,
    /// VMA lookups that failed in the kernel.
    pub vma_lookup_failures: u64,
    /// Retry calls not followed by a completing call on the same thread and page.
    pub unlinked_retries: u64,
    /// Retry calls still waiting for completion when the trace ended.
    pub pending_retries: u64,
}

/// Counters kept by the programs (all CPUs summed).
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelCounters {
    pub user_fault_exceptions: u64,
    pub kernel_fault_exceptions: u64,
    pub records_submitted: u64,
}

/// Faults counted in the kernel by class instead of recorded one by one.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Aggregation {
    /// `--aggregate`: every fault is counted in the kernel, no record is written.
    pub all: bool,
    /// Calls (faults and retry calls) counted in the kernel and included in every table.
    pub calls: u64,
    /// Of them, calls that found the ring buffer full (the rest: `--aggregate`).
    pub ring_full: u64,
    /// What these calls lack beside a record.
    pub without: &'static [&'static str],
}

const AGGREGATION_WITHOUT: &[&str] = &[
    "exact latency (known to its bucket, within 12.5%)",
    "the what-if replay of their VMA (it needs every fault's address)",
];

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
    pub bytes_mapped: Option<u64>,
    /// Faults per chain of levels tried, most frequent first.
    pub chains: Option<Vec<ChainCount>>,
    /// Faults whose chain holds a FALLBACK, and their share of all faults.
    pub fallback_faults: Option<u64>,
    pub fallback_rate: Option<f64>,
    /// FALLBACK answers in those chains: a fault whose two calls both fell back at PMD
    /// counts two (what a handler counting its own answers sees).
    pub fallback_steps: Option<u64>,
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
    fn new(s: &Stats, vis: &Visibility, sizes: bool) -> Self {
        let mut chains: Vec<ChainCount> = s
            .chains
            .iter()
            .map(|(c, n)| ChainCount {
                chain: c.clone(),
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
            latency_log2: None,
            entries: sizes.then(|| Entries {
                pte: s.entries[1],
                pmd: s.entries[2],
                pud: s.entries[3],
                other: s.entries[0],
            }),
            bytes_mapped: sizes.then_some(s.bytes_mapped),
            chains: sizes.then_some(chains),
            fallback_faults: sizes.then_some(s.fallback_faults),
            fallback_rate: (sizes && s.faults > 0)
                .then(|| (s.fallback_faults as f64 / s.faults as f64 * 1e4).round() / 1e4),
            fallback_steps: sizes.then_some(s.fallback_steps),
        }
    }

    /// `4×PMD 2×PTE`-style size mix.
    fn size_mix(&self) -> String {
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
}

/// Everything one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub version: u32,
    pub tool_version: &'static str,
    pub kernel_release: String,
    pub mode: Mode,
    pub visibility: Visibility,
    pub filter_pid: Option<u32>,
    pub duration_s: f64,
    /// `duration`, `signal`, `command-exit` or `running` (interval reports).
    pub ended_by: String,
    pub probes: Vec<ProbeReport>,
    pub loss: Loss,
    pub anomalies: Anomalies,
    pub kernel_counters: KernelCounters,
    pub aggregation: Aggregation,
    pub totals: StatsReport,
    pub processes: Vec<ProcessReport>,
    pub vmas: Vec<VmaReport>,
    /// What every `what_if` section assumes.
    pub what_if_assumptions: &'static [&'static str],
}

/// Run-level facts the analyzer does not know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub kernel_release: String,
    pub mode: Mode,
    pub filter_pid: Option<u32>,
    pub duration_s: f64,
    pub ended_by: String,
    pub probes: Vec<ProbeReport>,
    /// Per-CPU counters summed, indexed by `huge_fault_common::counter`.
    pub counters: Vec<u64>,
    /// `--aggregate` was given.
    #[serde(default)]
    pub aggregate: bool,
}

impl RunInfo {
    /// Levels and entries are seen when the mode sees returns and the nested probes attached.
    pub fn sizes_visible(&self) -> bool {
        self.mode != Mode::TracepointOnly
            && crate::kernel::GENERIC_SIZE_FUNCTIONS.iter().all(|f| {
                self.probes.iter().any(|p| {
                    p.target == *f
                        && p.status == ProbeStatus::Attached
                        && p.mode == self.mode.name()
                })
            })
    }
}

fn dev_string(dev: u32) -> String {
    // Kernel-internal dev_t: major in the top 12 bits, minor in the low 20.
    format!("{}:{}", dev >> 20, dev & 0xf_ffff)
}

impl Report {
    pub fn build(a: &Analyzer, run: &RunInfo) -> Self {
        use huge_fault_common::counter as c;
        let vis = run.mode.visibility();
        let sizes = run.sizes_visible() && a.sizes_visible;
        let ctr = |i: u32| run.counters.get(i as usize).copied().unwrap_or(0);
        let processes = a
            .processes_sorted()
            .into_iter()
            .map(|(pid, p)| ProcessReport {
                pid,
                comm: p.comm.clone(),
                stats: StatsReport::new(&p.stats, &vis, sizes),
                faults_without_vma: p.no_vma,
                faults_in_overflowed_vmas: p.vma_overflow,
            })
            .collect();
        // The replay runs once, at the end (not for every interval report).
        let mut what_if = if sizes && run.ended_by != "running" {
            a.whatif.compute()
        } else {
            Default::default()
        };
        let vmas = a
            .vmas_sorted()
            .into_iter()
            .map(|(k, v)| VmaReport {
                what_if: what_if.remove(k),
                ..vma_report(k, v, &vis, sizes)
            })
            .collect();
        Report {
            schema: SCHEMA,
            version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION"),
            kernel_release: run.kernel_release.clone(),
            mode: run.mode,
            visibility: vis.clone(),
            filter_pid: run.filter_pid,
            duration_s: (run.duration_s * 1000.0).round() / 1000.0,
            ended_by: run.ended_by.clone(),
            probes: run.probes.clone(),
            loss: Loss {
                ringbuf_drops: ctr(c::RINGBUF_DROPS),
                inflight_map_full: ctr(c::INFLIGHT_FULL),
                vma_table_overflow_faults: a.vma_overflow,
                process_table_overflow_faults: a.process_overflow,
                malformed_records: a.malformed,
            },
            anomalies: Anomalies {
                nested_entries: ctr(c::NESTED),
                returns_without_entry: ctr(c::NO_ENTRY),
                vma_lookup_failures: ctr(c::VMA_LOOKUP_FAILED),
                unlinked_retries: a.unlinked_retries(),
                pending_retries: a.pending_retries(),
            },
            kernel_counters: KernelCounters {
                user_fault_exceptions: ctr(c::EXC_USER),
                kernel_fault_exceptions: ctr(c::EXC_KERNEL),
                records_submitted: ctr(c::RECORDS),
            },
            aggregation: Aggregation {
                all: run.aggregate,
                calls: a.aggregated,
                ring_full: ctr(c::RING_FULL).saturating_sub(ctr(c::RINGBUF_DROPS)),
                without: AGGREGATION_WITHOUT,
            },
            totals: StatsReport::new(&a.totals, &vis, sizes),
            processes,
            vmas,
            what_if_assumptions: crate::whatif::ASSUMPTIONS,
        }
    }

    /// Adds the log2 latency histograms of the totals, every process and every VMA.
    pub fn with_histograms(mut self, a: &Analyzer) -> Self {
        self.totals.latency_log2 = Some(a.totals.latency.log2());
        for p in &mut self.processes {
            p.stats.latency_log2 = a.processes.get(&p.pid).map(|s| s.stats.latency.log2());
        }
        for v in &mut self.vmas {
            let key = VmaKey {
                tgid: v.pid,
                start: u64::from_str_radix(v.start.trim_start_matches("0x"), 16).unwrap_or(0),
                end: u64::from_str_radix(v.end.trim_start_matches("0x"), 16).unwrap_or(0),
            };
            v.stats.latency_log2 = a.vmas.get(&key).map(|s| s.stats.latency.log2());
        }
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

fn vma_report(k: &VmaKey, v: &VmaStats, vis: &Visibility, sizes: bool) -> VmaReport {
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
        stats: StatsReport::new(&v.stats, vis, sizes),
        what_if: None,
    }
}

/// `64.0M`-style sizes.
pub fn fmt_size(bytes: u64) -> String {
    const U: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}")
    } else {
        format!("{v:.1}{}", U[i])
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn lat(s: &Option<LatencySummary>, f: fn(&LatencySummary) -> u64) -> String {
    s.as_ref().map_or_else(|| "-".into(), |s| fmt_ns(f(s)))
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().map(Cell::new));
    for i in 0..header.len() {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

impl Report {
    /// The attach summary: one line per mode (what attached, or why not), then what the
    /// chosen mode cannot see.
    pub fn attach_summary(probes: &[ProbeReport], mode: Mode) -> String {
        let mut out = format!("huge-fault: tracing in {} mode\n", mode.name());
        let mut modes: Vec<&str> = Vec::new();
        for p in probes {
            if !modes.contains(&p.mode.as_str()) {
                modes.push(&p.mode);
            }
        }
        for m in modes {
            let these: Vec<&ProbeReport> = probes.iter().filter(|p| p.mode == m).collect();
            let attached: Vec<&str> = these
                .iter()
                .filter(|p| p.status == ProbeStatus::Attached)
                .map(|p| p.target.as_str())
                .collect();
            // Entry and return probes of one function are named once, in attach order.
            let mut attached_unique: Vec<&str> = Vec::new();
            for t in &attached {
                if !attached_unique.contains(t) {
                    attached_unique.push(t);
                }
            }
            let line = if m == mode.name() {
                let mut l = format!("attached {}", attached_unique.join(", "));
                for p in these.iter().filter(|p| {
                    p.status != ProbeStatus::Attached
                        && p.reason.as_deref() != Some(crate::live::NOT_IN_KERNEL)
                }) {
                    l.push_str(&format!(
                        "; without {} ({})",
                        p.target,
                        p.reason.as_deref().unwrap_or("unavailable")
                    ));
                }
                l
            } else {
                let first = these
                    .iter()
                    .find(|p| p.status == ProbeStatus::Failed)
                    .or_else(|| these.iter().find(|p| p.status == ProbeStatus::Skipped));
                match first {
                    Some(p) if p.status == ProbeStatus::Failed => {
                        format!(
                            "failed: {}: {}",
                            p.target,
                            p.reason.as_deref().unwrap_or("unknown")
                        )
                    }
                    Some(p) => format!("skipped: {}", p.reason.as_deref().unwrap_or("not needed")),
                    None => "skipped".into(),
                }
            };
            out.push_str(&format!("  {m:<16} {line}\n"));
        }
        let vis = mode.visibility();
        if !vis.blind_spots.is_empty() {
            out.push_str(&format!("  cannot see: {}\n", vis.blind_spots.join("; ")));
        }
        out
    }

    /// The terminal tables: totals and loss line, processes, VMAs (`top` rows each).
    pub fn render(&self, top: usize, rates: Option<&dyn Fn(u32) -> Option<f64>>) -> String {
        let mut out = String::new();
        let t = &self.totals;
        out.push_str(&format!(
            "{} faults in {:.1}s ({} mode): major {}, writes {}, retry calls {}, errors {}; latency p50 {} p99 {}\n",
            t.faults,
            self.duration_s,
            self.mode.name(),
            t.major,
            t.writes,
            opt(t.retry_calls),
            opt(t.errors),
            lat(&t.latency_ns, |s| s.p50),
            lat(&t.latency_ns, |s| s.p99),
        ));
        if let (Some(rate), Some(_)) = (t.fallback_rate, &t.entries) {
            out.push_str(&format!(
                "sizes: {} ({} mapped), fallback {:.1}% of faults\n",
                t.size_mix(),
                fmt_size(t.bytes_mapped.unwrap_or(0)),
                rate * 100.0
            ));
        }
        let l = &self.loss;
        out.push_str(&format!(
            "lost: {} ring-buffer drops, {} in-flight map full, {} faults beyond the VMA table, {} beyond the process table, {} malformed records\n",
            l.ringbuf_drops,
            l.inflight_map_full,
            l.vma_table_overflow_faults,
            l.process_table_overflow_faults,
            l.malformed_records
        ));
        let g = &self.aggregation;
        if g.all {
            out.push_str(&format!(
                "aggregated in the kernel (--aggregate): {} calls, counted by class: no per-fault records, latency to its bucket, no retry links or what-if\n",
                g.calls
            ));
        } else if g.calls > 0 {
            out.push_str(&format!(
                "ring buffer full {} times: those calls were counted in the kernel by class and are in every number above (latency to its bucket, no retry links; their VMAs get no what-if)\n",
                g.ring_full
            ));
        }

        let mut header = vec!["PID", "COMM", "FAULTS"];
        if rates.is_some() {
            header.push("FAULTS/S");
        }
        header.extend(["MAJOR", "RETRY", "ERRORS", "P50", "P99", "MAX"]);
        let mut pt = new_table(&header);
        for p in self.processes.iter().take(top) {
            let mut row = vec![
                p.pid.to_string(),
                p.comm.clone(),
                p.stats.faults.to_string(),
            ];
            if let Some(rate) = rates {
                row.push(rate(p.pid).map_or_else(|| "-".into(), |r| format!("{r:.0}")));
            }
            row.extend([
                p.stats.major.to_string(),
                opt(p.stats.retry_calls),
                opt(p.stats.errors),
                lat(&p.stats.latency_ns, |s| s.p50),
                lat(&p.stats.latency_ns, |s| s.p99),
                lat(&p.stats.latency_ns, |s| s.max),
            ]);
            pt.add_row(row);
        }
        if let Some(col) = pt.column_mut(1) {
            col.set_cell_alignment(CellAlignment::Left);
        }
        out.push_str(&pt.to_string());
        out.push('\n');
        if self.processes.len() > top {
            out.push_str(&format!(
                "({} more processes in --json)\n",
                self.processes.len() - top
            ));
        }

        let mut vt = new_table(&[
            "PID", "COMM", "VMA", "SIZE", "KIND", "MAPPING", "FAULTS", "ENTRIES", "FALLBACK",
            "MAJOR", "RETRY", "P50", "P99",
        ]);
        for v in self.vmas.iter().take(top) {
            vt.add_row(vec![
                v.pid.to_string(),
                v.comm.clone(),
                format!(
                    "{}-{}",
                    v.start.trim_start_matches("0x"),
                    v.end.trim_start_matches("0x")
                ),
                fmt_size(v.size_bytes),
                v.kind.clone(),
                v.path.clone().unwrap_or_default(),
                v.stats.faults.to_string(),
                v.stats.size_mix(),
                v.stats
                    .fallback_rate
                    .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0)),
                v.stats.major.to_string(),
                opt(v.stats.retry_calls),
                lat(&v.stats.latency_ns, |s| s.p50),
                lat(&v.stats.latency_ns, |s| s.p99),
            ]);
        }
        for i in [1, 2, 4, 5, 7] {
            if let Some(col) = vt.column_mut(i) {
                col.set_cell_alignment(CellAlignment::Left);
            }
        }
        out.push_str(&vt.to_string());
        out.push('\n');
        if self.vmas.len() > top {
            out.push_str(&format!(
                "({} more VMAs in --json)\n",
                self.vmas.len() - top
            ));
        }
        out.push_str(&self.render_what_if(top));
        out.push_str(&self.render_histograms(top));
        out
    }

    /// With `--histogram`: log2 latency histograms of all faults and the top VMAs.
    fn render_histograms(&self, top: usize) -> String {
        let mut out = String::new();
        if let Some(b) = &self.totals.latency_log2 {
            out.push_str("latency, all faults:\n");
            out.push_str(&crate::hist::render_log2(b));
        }
        for v in self.vmas.iter().take(top) {
            if let Some(b) = v.stats.latency_log2.as_ref().filter(|b| !b.is_empty()) {
                out.push_str(&format!(
                    "latency, pid {} VMA {}-{}:\n",
                    v.pid,
                    v.start.trim_start_matches("0x"),
                    v.end.trim_start_matches("0x")
                ));
                out.push_str(&crate::hist::render_log2(b));
            }
        }
        out
    }

    /// The what-if section: per VMA with pfn inserts, what happened and what a range insert
    /// would have done, by a module's helper and by a core-mm helper.
    fn render_what_if(&self, top: usize) -> String {
        let rows: Vec<_> = self
            .vmas
            .iter()
            .filter_map(|v| v.what_if.as_ref().map(|w| (v, w)))
            .take(top)
            .collect();
        if rows.is_empty() {
            return String::new();
        }
        let mut t = new_table(&[
            "PID",
            "VMA",
            "OBSERVED",
            "RANGE INSERT (MODULE)",
            "RANGE INSERT (CORE MM)",
        ]);
        for (v, w) in rows {
            let vma = format!(
                "{}-{}",
                v.start.trim_start_matches("0x"),
                v.end.trim_start_matches("0x")
            );
            let c = |x: &Option<crate::whatif::Counts>| {
                x.as_ref().map_or_else(|| "-".into(), |c| c.describe())
            };
            if let Some(reason) = &w.skipped {
                t.add_row(vec![
                    v.pid.to_string(),
                    vma,
                    format!("not computed: {reason}"),
                    String::new(),
                    String::new(),
                ]);
            } else {
                t.add_row(vec![
                    v.pid.to_string(),
                    vma,
                    c(&w.observed),
                    c(&w.module_helper),
                    c(&w.core_helper),
                ]);
            }
        }
        format!(
            "what-if: a range insert of each VMA's contiguous pfn run (assumptions in --json)\n{t}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{
        NoResolver,
        tests::{rec, with_vma},
    };
    use huge_fault_common::{counter, source};

    fn run(mode: Mode) -> RunInfo {
        let mut counters = vec![0; counter::COUNT as usize];
        counters[counter::RINGBUF_DROPS as usize] = 4;
        counters[counter::EXC_USER as usize] = 12;
        RunInfo {
            kernel_release: "6.1.0-test".into(),
            mode,
            filter_pid: Some(7),
            duration_s: 2.5,
            ended_by: "duration".into(),
            probes: vec![ProbeReport {
                program: "hf_kprobe_handle_mm_fault".into(),
                target: "handle_mm_fault".into(),
                mode: "kprobe".into(),
                role: "fault entry".into(),
                status: ProbeStatus::Skipped,
                reason: Some("kprobes unavailable: kernel built without CONFIG_KPROBES".into()),
            }],
            counters,
            aggregate: false,
        }
    }

    fn analyzer() -> Analyzer {
        let mut a = Analyzer::new(16);
        for i in 0..10u64 {
            let mut r = with_vma(
                rec(source::PERF_MINOR, 7, 7, 0x7f00_0000_0000 + i * 4096),
                0x7f00_0000_0000,
                0x7f00_0400_0000,
            );
            r.start_ns = 1000;
            r.end_ns = 1000 + 500 * (i + 1);
            r.flags |= huge_fault_common::rflags::HAS_START;
            a.ingest(&r, &mut NoResolver);
        }
        a
    }

    #[test]
    fn json_schema_v3_has_versions_visibility_and_ranges() {
        let rep = Report::build(&analyzer(), &run(Mode::TracepointOnly));
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert_eq!(v["schema"], "huge-fault.report");
        assert_eq!(v["version"], 3);
        assert_eq!(v["mode"], "tracepoint-only");
        assert_eq!(v["visibility"]["return_codes"], false);
        assert_eq!(v["loss"]["ringbuf_drops"], 4);
        assert_eq!(v["kernel_counters"]["user_fault_exceptions"], 12);
        assert_eq!(v["totals"]["faults"], 10);
        // What the mode cannot see is null, not zero.
        assert!(v["totals"]["retry_calls"].is_null());
        assert!(v["totals"]["vma_lock_retries"].is_null());
        assert!(v["totals"]["unlinked_retries"].is_null());
        assert!(v["totals"]["errors"].is_null());
        assert_eq!(v["processes"][0]["pid"], 7);
        assert_eq!(v["processes"][0]["faults"], 10);
        let vma = &v["vmas"][0];
        assert_eq!(vma["start"], "0x7f0000000000");
        assert_eq!(vma["end"], "0x7f0004000000");
        assert_eq!(vma["size_bytes"], 64 << 20);
        assert_eq!(vma["faults"], 10);
        assert_eq!(vma["latency_ns"]["min"], 500);
        assert_eq!(vma["latency_ns"]["max"], 5000);
        assert_eq!(v["probes"][0]["status"], "skipped");
    }

    #[test]
    fn kprobe_mode_reports_retries_and_errors_as_numbers() {
        let rep = Report::build(&analyzer(), &run(Mode::Kprobe));
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert_eq!(v["totals"]["retry_calls"], 0);
        assert_eq!(v["totals"]["errors"], 0);
        // Sizes are claimed only with the generic size probes attached.
        assert!(!rep.render(20, None).contains("sizes:"));
        let mut r = run(Mode::Kprobe);
        r.probes = crate::kernel::GENERIC_SIZE_FUNCTIONS
            .iter()
            .map(|f| ProbeReport {
                program: "p".into(),
                target: (*f).into(),
                mode: "kprobe".into(),
                role: "size".into(),
                status: ProbeStatus::Attached,
                reason: None,
            })
            .collect();
        let text = Report::build(&analyzer(), &r).render(20, None);
        // The ten faults of analyzer() are completions without nested-probe data.
        assert!(
            text.contains("sizes: 0 (0 mapped), fallback 0.0% of faults"),
            "{text}"
        );
    }

    #[test]
    fn tables_show_rows_loss_and_the_skip_reason() {
        let r = run(Mode::TracepointOnly);
        let rep = Report::build(&analyzer(), &r);
        let text = rep.render(20, None);
        assert!(
            text.starts_with("10 faults in 2.5s (tracepoint-only mode)"),
            "{text}"
        );
        assert!(text.contains("lost: 4 ring-buffer drops"), "{text}");
        assert!(text.contains("7f0000000000-7f0004000000"), "{text}");
        assert!(text.contains("64.0M"), "{text}");
        let summary = Report::attach_summary(&r.probes, Mode::TracepointOnly);
        assert!(summary.contains("kprobes unavailable: kernel built without CONFIG_KPROBES"));
        assert!(summary.contains("cannot see:"));
        // No histograms unless asked for, in the text or the JSON.
        assert!(!text.contains("latency, all faults"));
        assert!(!rep.to_json().contains("latency_log2"));
        // Asked for: latencies 500 ns .. 5 µs fall into [256ns, 512ns) .. [4.1µs, 8.2µs).
        let a = analyzer();
        let rep = Report::build(&a, &r).with_histograms(&a);
        let text = rep.render(20, None);
        assert!(text.contains("latency, all faults:"), "{text}");
        assert!(
            text.contains("latency, pid 7 VMA 7f0000000000-7f0004000000:"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        let b = v["vmas"][0]["latency_log2"].as_array().unwrap();
        let total: u64 = b.iter().map(|x| x["count"].as_u64().unwrap()).sum();
        assert_eq!(total, 10);
        assert_eq!(b[0]["from_ns"], 256);
        assert_eq!(v["totals"]["latency_log2"], v["vmas"][0]["latency_log2"]);
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(fmt_size(4096), "4.0K");
        assert_eq!(fmt_size(2 << 20), "2.0M");
        assert_eq!(fmt_size(1 << 30), "1.0G");
        assert_eq!(fmt_size(100), "100");
    }
}
