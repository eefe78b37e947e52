//! The report: what was attached, what was lost, and the fault statistics, as JSON
//! (schema `huge-fault.report`, version 3) and as terminal tables. It renders what the
//! analysis computed; it computes nothing of its own.

mod format;
mod stats;
pub mod table;
pub mod tables;
#[cfg(test)]
mod tests;
mod text;

use std::collections::HashMap;

use serde::Serialize;

pub use format::fmt_size;
pub use stats::{ChainCount, Entries, HandlerCount, ProcessReport, StatsReport, VmaReport};
pub use text::wrap_words;

use crate::{
    analysis::Analyzer,
    kernel::{Mode, Visibility},
    run_info::{EndedBy, ProbeReport, RunInfo},
    vma::VmaKey,
    whatif::VmaWhatIf,
};

pub const SCHEMA: &str = "huge-fault.report";
pub const SCHEMA_VERSION: u32 = 3;

/// One program's runs and the kernel time they took.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCostReport {
    pub runs: u64,
    pub run_time_ns: u64,
    pub ns_per_run: f64,
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
    /// Runs of the tool's programs the kernel skipped because the program was already
    /// running on that CPU (its per-program `recursion_misses`, e.g. a thread preempted
    /// inside an fexit program while another thread on the CPU faults). A skipped entry or
    /// return shows up as a return without entry or a missed return; a skipped nested probe
    /// as a step or entry missing from a chain.
    pub program_misses: u64,
    /// The same, by program (only those that missed a run).
    pub program_misses_by_program: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Anomalies {
    /// `handle_mm_fault` entered while another call was in flight on the thread.
    pub nested_entries: u64,
    /// Returns without a recorded entry (calls in flight at attach time).
    pub returns_without_entry: u64,
    /// Faults whose return no program saw (counted as faults, with what they did so far,
    /// no latency and no return value).
    pub returns_missed: u64,
    /// VMA lookups that failed in the kernel.
    pub vma_lookup_failures: u64,
    /// Tracepoint-only faults whose VMA lookup found the VMA tree locked for writing and
    /// that took their thread's last VMA, which held the address; `null` in the modes that
    /// read the VMA from the fault's own arguments.
    pub vma_reused_while_locked: Option<u64>,
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
    pub ended_by: EndedBy,
    pub probes: Vec<ProbeReport>,
    /// The kernel's accounting of each program that ran (`--bpf-stats`); `null` when run
    /// time was not accounted.
    pub program_costs: Option<std::collections::BTreeMap<String, ProgramCostReport>>,
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

/// What the final report adds to an interval report: the analysis's what-if results and,
/// with `--histogram`, the log2 latency histograms.
#[derive(Debug, Default)]
pub struct Extras {
    pub what_if: HashMap<VmaKey, VmaWhatIf>,
    pub histograms: bool,
}

impl Extras {
    /// The final report's extras: the what-if where the run saw levels and entries.
    pub fn finished(a: &Analyzer, run: &RunInfo, histograms: bool) -> Self {
        Extras {
            what_if: if sizes_visible(a, run) {
                a.what_if()
            } else {
                HashMap::new()
            },
            histograms,
        }
    }
}

/// Whether the report claims levels, entries and chains: the mode sees returns, and the
/// nested probes attached.
fn sizes_visible(a: &Analyzer, run: &RunInfo) -> bool {
    run.sizes_visible() && a.sizes_visible
}

impl Report {
    /// An interval report: the statistics so far, without what-if or histograms.
    pub fn build(a: &Analyzer, run: &RunInfo) -> Self {
        Self::build_with(a, run, Extras::default())
    }

    pub fn build_with(a: &Analyzer, run: &RunInfo, extras: Extras) -> Self {
        use huge_fault_common::counter as c;
        let vis = run.mode.visibility();
        let sizes = sizes_visible(a, run);
        let ctr = |i: u32| run.counter(i);
        let Extras {
            mut what_if,
            histograms,
        } = extras;
        let processes = a
            .processes_sorted()
            .into_iter()
            .map(|(pid, p)| ProcessReport {
                pid,
                comm: p.comm.clone(),
                stats: StatsReport::new(&p.stats, &vis, sizes, histograms, &run.handlers),
                faults_without_vma: p.no_vma,
                faults_in_overflowed_vmas: p.vma_overflow,
            })
            .collect();
        let vmas = a
            .vma_rows()
            .into_iter()
            .map(|row| VmaReport {
                what_if: what_if.remove(&row.key),
                merged_vmas: row.keys.len(),
                keys: row.keys.clone(),
                ..stats::vma_report(&row.key, &row.stats, &vis, sizes, histograms, &run.handlers)
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
            ended_by: run.ended_by,
            probes: run.probes.clone(),
            program_costs: run.program_costs.as_ref().map(|costs| {
                costs
                    .iter()
                    .map(|(name, c)| {
                        let per_run = c.run_time_ns as f64 / c.runs.max(1) as f64;
                        (
                            name.clone(),
                            ProgramCostReport {
                                runs: c.runs,
                                run_time_ns: c.run_time_ns,
                                ns_per_run: (per_run * 10.0).round() / 10.0,
                            },
                        )
                    })
                    .collect()
            }),
            loss: Loss {
                ringbuf_drops: ctr(c::RINGBUF_DROPS),
                inflight_map_full: ctr(c::INFLIGHT_FULL),
                vma_table_overflow_faults: a.vma_overflow,
                process_table_overflow_faults: a.process_overflow,
                malformed_records: a.malformed,
                program_misses: run.program_misses.values().sum(),
                program_misses_by_program: run.program_misses.clone(),
            },
            anomalies: Anomalies {
                nested_entries: ctr(c::NESTED),
                returns_without_entry: ctr(c::NO_ENTRY),
                returns_missed: a.returns_missed,
                vma_lookup_failures: ctr(c::VMA_LOOKUP_FAILED),
                vma_reused_while_locked: (run.mode == Mode::TracepointOnly)
                    .then(|| ctr(c::VMA_REUSED)),
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
            totals: StatsReport::new(&a.totals, &vis, sizes, histograms, &run.handlers),
            processes,
            vmas,
            what_if_assumptions: crate::whatif::ASSUMPTIONS,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}
