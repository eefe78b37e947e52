//! Benchmarks: what watching faults costs. Fault storms (`hf-workload storm`) run untraced
//! and under each tracer, interleaved, several times, in one boot or on one host; the
//! figures are ratios taken side by side, never absolute times checked by a test.
//!
//! Used by the lab guest (`hf.bench=` on its command line) and by `hf-bench` on the host.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

mod cost;
mod exact;
mod measure;
mod ratio;
mod summary;
mod watch;

pub use cost::{ReplayCost, Soak, replay_cost, soak};
pub use exact::inexact;
pub use measure::{measure, run};
pub use ratio::render_ratios;
pub use summary::{Summary, render, render_programs, summarize};
pub use watch::{Limits, stuck_tasks, wait_limited};

/// One fault storm: `hf-workload storm ARGS`.
#[derive(Clone, Debug)]
pub struct Storm {
    pub name: &'static str,
    pub what: &'static str,
    pub args: Vec<String>,
    /// Runs only where /dev/hfgpu exists (the lab guest).
    pub needs_device: bool,
}

/// The storms, each over `size` bytes (`1G` for the figures, smaller for a smoke run).
pub fn storms(size: &str) -> Vec<Storm> {
    let a = |v: &[&str]| -> Vec<String> {
        ["storm", "--size", size]
            .iter()
            .chain(v)
            .map(|s| s.to_string())
            .collect()
    };
    vec![
        Storm {
            name: "pte",
            what: "anonymous, THP off: one fault per 4 KiB",
            args: a(&["--thp", "never"]),
            needs_device: false,
        },
        Storm {
            name: "pmd",
            what: "anonymous, MADV_HUGEPAGE: one fault per 2 MiB where THP allocates",
            args: a(&["--thp", "always"]),
            needs_device: false,
        },
        Storm {
            name: "bar-pmd-only",
            what: "lab driver BAR, pmd-only: a PUD FALLBACK, then PMDs",
            args: a(&["--gpu", "pmd-only"]),
            needs_device: true,
        },
        Storm {
            name: "bar-pud",
            what: "lab driver BAR, pud: PUDs",
            args: a(&["--gpu", "pud"]),
            needs_device: true,
        },
        Storm {
            name: "pte-2-threads",
            what: "anonymous, THP off, two threads on two halves at once",
            args: a(&["--thp", "never", "--threads", "2"]),
            needs_device: false,
        },
    ]
}

/// What watches the storm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Config {
    Untraced,
    Fentry,
    Kprobe,
    TracepointOnly,
    /// The same three modes with `--aggregate`: faults counted in the kernel, no records.
    FentryAggregate,
    KprobeAggregate,
    TracepointAggregate,
    /// bpftrace with a kprobe/kretprobe latency histogram of `handle_mm_fault`.
    Bpftrace,
    /// Another revision's huge-fault (`cargo xtask bench --baseline REV`), in three modes.
    BaselineFentry,
    BaselineKprobe,
    #[serde(rename = "baseline-tracepoint-only")]
    BaselineTracepoint,
}

impl Config {
    /// The configuration's name on command lines (`--configs`), as it serializes.
    pub fn key(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Fentry => "fentry",
            Config::Kprobe => "kprobe",
            Config::TracepointOnly => "tracepoint-only",
            Config::FentryAggregate => "fentry-aggregate",
            Config::KprobeAggregate => "kprobe-aggregate",
            Config::TracepointAggregate => "tracepoint-aggregate",
            Config::Bpftrace => "bpftrace",
            Config::BaselineFentry => "baseline-fentry",
            Config::BaselineKprobe => "baseline-kprobe",
            Config::BaselineTracepoint => "baseline-tracepoint-only",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Fentry => "huge-fault fentry",
            Config::Kprobe => "huge-fault kprobe",
            Config::TracepointOnly => "huge-fault tracepoint-only",
            Config::FentryAggregate => "huge-fault fentry --aggregate",
            Config::KprobeAggregate => "huge-fault kprobe --aggregate",
            Config::TracepointAggregate => "huge-fault tracepoint-only --aggregate",
            Config::Bpftrace => "bpftrace histogram",
            Config::BaselineFentry => "baseline fentry",
            Config::BaselineKprobe => "baseline kprobe",
            Config::BaselineTracepoint => "baseline tracepoint-only",
        }
    }

    /// Whether it runs the baseline's huge-fault rather than this one.
    pub fn is_baseline(self) -> bool {
        Self::BASELINE.contains(&self)
    }

    /// huge-fault's arguments for this configuration.
    fn huge_fault_args(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Config::Fentry | Config::BaselineFentry => &["--mode", "fentry"],
            Config::Kprobe | Config::BaselineKprobe => &["--mode", "kprobe"],
            Config::TracepointOnly | Config::BaselineTracepoint => &["--mode", "tracepoint"],
            Config::FentryAggregate => &["--mode", "fentry", "--aggregate"],
            Config::KprobeAggregate => &["--mode", "kprobe", "--aggregate"],
            Config::TracepointAggregate => &["--mode", "tracepoint", "--aggregate"],
            Config::Untraced | Config::Bpftrace => return None,
        })
    }

    /// Every huge-fault configuration, in the order the tables show them.
    pub const HUGE_FAULT: [Config; 6] = [
        Config::Fentry,
        Config::Kprobe,
        Config::TracepointOnly,
        Config::FentryAggregate,
        Config::KprobeAggregate,
        Config::TracepointAggregate,
    ];

    /// The baseline's configurations (where the guest has a baseline).
    pub const BASELINE: [Config; 3] = [
        Config::BaselineFentry,
        Config::BaselineKprobe,
        Config::BaselineTracepoint,
    ];
}

/// The script bpftrace runs: what a user would reach for instead of huge-fault.
pub const BPFTRACE_SCRIPT: &str = "kprobe:handle_mm_fault { @s[tid] = nsecs; } \
     kretprobe:handle_mm_fault /@s[tid]/ { @ns = hist(nsecs - @s[tid]); delete(@s[tid]); }";

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Env {
    pub huge_fault: PathBuf,
    /// Another revision's huge-fault, for the `baseline-*` configurations.
    pub baseline: Option<PathBuf>,
    pub workload: PathBuf,
    pub bpftrace: Option<PathBuf>,
    /// Pause after a tracer detaches before the next measurement (the kernel keeps
    /// working for a while: kprobe unoptimisation, RCU).
    pub settle: Duration,
    /// The kernel accounts BPF run time for the bench (see [`Env::account_bpf`]).
    pub bpf_stats: bool,
    /// How long a tracer's start, a storm and a tracer's stop may each take.
    pub limits: Limits,
}

impl Env {
    /// Turns on the kernel's BPF run-time accounting for as long as the returned fd lives,
    /// and notes whether it could.
    pub fn account_bpf(&mut self) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::bpf_objects::enable_run_time_stats().ok();
        self.bpf_stats = fd.is_some();
        fd
    }
}

/// One storm under one configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub storm: String,
    pub config: Config,
    pub rep: u32,
    pub faults: u64,
    pub ns: u64,
    /// huge-fault only: calls it accounted (records submitted plus calls counted in the
    /// kernel), ring-buffer drops.
    pub records: Option<u64>,
    pub drops: Option<u64>,
    /// huge-fault only: runs of its programs the kernel skipped (`loss.program_misses`).
    #[serde(default)]
    pub misses: Option<u64>,
    /// The tracer's user+system CPU time during the storm (clock ticks, so 10 ms steps).
    pub tracer_cpu_ns: Option<u64>,
    /// The tracer's peak resident set (VmHWM), ring-buffer pages included.
    pub tracer_peak_rss_kib: Option<u64>,
    /// Nanoseconds the kernel spent in all BPF programs during the storm (their
    /// `run_time_ns`, accounted while the bench runs); `None` where it cannot account.
    #[serde(default)]
    pub bpf_ns: Option<u64>,
    /// huge-fault only: its own programs' runs and run time over the tracer's life
    /// (`program_costs` of its report), by program.
    #[serde(default)]
    pub programs: std::collections::BTreeMap<String, (u64, u64)>,
    /// The faults the storm's threads took in its mapping (their own getrusage around
    /// their touch loops), and those huge-fault counted in the VMA row that holds it.
    #[serde(default)]
    pub region_faults: Option<u64>,
    #[serde(default)]
    pub vma_faults: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn a_configs_key_is_its_serialized_name() {
        let all = [Config::Untraced, Config::Bpftrace]
            .into_iter()
            .chain(Config::HUGE_FAULT)
            .chain(Config::BASELINE);
        for c in all {
            assert_eq!(serde_json::to_value(c).unwrap(), c.key(), "{c:?}");
        }
    }
}
