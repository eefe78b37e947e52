//! What a run is, beside its faults: the kernel, the mode, what attached and what did not
//! (and why), how it ended, the programs' counters. The live run, a recording's trailer and
//! the report all share it.

use serde::{Deserialize, Serialize};

use crate::kernel::{GENERIC_SIZE_FUNCTIONS, Mode};

/// The state of one probe after attaching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    Attached,
    /// Not used in the chosen mode, or optional and unavailable.
    Skipped,
    /// Tried and failed.
    Failed,
}

/// Why a probe is not attached. Serialized as the sentence it prints as, so that reports
/// and recordings read as before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The function is another kernel version's name for the same job.
    NotInKernel,
    /// A required probe of the mode failed, so the mode was given up.
    ModeAbandoned(Mode),
    /// A better mode attached first.
    ModeInUse(Mode),
    /// Why it could not load or attach, in words.
    Unavailable(String),
}

const NOT_IN_KERNEL: &str = "not in this kernel";

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NotInKernel => f.write_str(NOT_IN_KERNEL),
            Reason::ModeAbandoned(m) => write!(f, "{} mode abandoned", m.name()),
            Reason::ModeInUse(m) => write!(f, "{} mode in use", m.name()),
            Reason::Unavailable(why) => f.write_str(why),
        }
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Self {
        let mode = |suffix: &str| {
            s.strip_suffix(suffix)
                .and_then(|m| Mode::ALL.into_iter().find(|x| x.name() == m))
        };
        if s == NOT_IN_KERNEL {
            Reason::NotInKernel
        } else if let Some(m) = mode(" mode abandoned") {
            Reason::ModeAbandoned(m)
        } else if let Some(m) = mode(" mode in use") {
            Reason::ModeInUse(m)
        } else {
            Reason::Unavailable(s.to_string())
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Reason::from(String::deserialize(d)?.as_str()))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeReport {
    pub program: String,
    pub target: String,
    /// The mode it was tried in.
    pub mode: Mode,
    pub role: String,
    pub status: ProbeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedBy {
    Duration,
    Signal,
    CommandExit,
    /// `q` or Ctrl-C in the full-screen view.
    Quit,
    /// Stdout was closed (a pipe into `head`): the run ended without printing.
    OutputClosed,
    /// Not ended: an interval report.
    Running,
    /// A recording cut off before its trailer.
    Truncated,
}

/// Run-level facts the analyzer does not know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub kernel_release: String,
    pub mode: Mode,
    pub filter_pid: Option<u32>,
    pub duration_s: f64,
    pub ended_by: EndedBy,
    pub probes: Vec<ProbeReport>,
    /// Per-CPU counters summed, indexed by `huge_fault_common::counter`.
    pub counters: Vec<u64>,
    /// `--aggregate` was given.
    #[serde(default)]
    pub aggregate: bool,
    /// Runs the kernel skipped, by program (its `recursion_misses`; only non-zero ones).
    #[serde(default)]
    pub program_misses: std::collections::BTreeMap<String, u64>,
    /// The kernel's run-time accounting of each program that ran, when it was on
    /// (`--bpf-stats` or `kernel.bpf_stats_enabled`); `None`: not accounted.
    #[serde(default)]
    pub program_costs: Option<std::collections::BTreeMap<String, ProgramCost>>,
    /// The `huge_fault` handlers attached to, as `symbol [module]`: entry `i` is the
    /// handler of index `i + 1` in the records (empty: none attached, or a recording made
    /// before handlers were told).
    #[serde(default)]
    pub handlers: Vec<String>,
}

/// One program's runs and the time the kernel spent in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramCost {
    pub runs: u64,
    pub run_time_ns: u64,
}

impl RunInfo {
    /// A recording's run when its trailer is missing: nothing is known of it.
    pub fn truncated() -> Self {
        RunInfo {
            kernel_release: String::new(),
            mode: Mode::TracepointOnly,
            filter_pid: None,
            duration_s: 0.0,
            ended_by: EndedBy::Truncated,
            probes: vec![],
            counters: vec![0; huge_fault_common::counter::COUNT as usize],
            aggregate: false,
            program_misses: Default::default(),
            program_costs: None,
            handlers: Vec::new(),
        }
    }

    /// Levels and entries are seen when the mode sees returns and the nested probes attached.
    pub fn sizes_visible(&self) -> bool {
        self.mode != Mode::TracepointOnly
            && GENERIC_SIZE_FUNCTIONS.iter().all(|f| {
                self.probes.iter().any(|p| {
                    p.target == *f && p.status == ProbeStatus::Attached && p.mode == self.mode
                })
            })
    }

    /// A counter of the programs, 0 when the run has none.
    pub fn counter(&self, i: u32) -> u64 {
        self.counters.get(i as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_back_from_the_sentences_they_print() {
        for r in [
            Reason::NotInKernel,
            Reason::ModeAbandoned(Mode::Fentry),
            Reason::ModeInUse(Mode::TracepointOnly),
            Reason::Unavailable("kprobes unavailable: kernel built without CONFIG_KPROBES".into()),
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Reason::ModeAbandoned(Mode::Kprobe)).unwrap(),
            "\"kprobe mode abandoned\""
        );
        // A sentence that only looks like one stays text.
        assert_eq!(
            Reason::from("uprobe mode in use"),
            Reason::Unavailable("uprobe mode in use".into())
        );
    }

    #[test]
    fn how_a_run_ended_keeps_its_json_names() {
        assert_eq!(
            serde_json::to_value(EndedBy::CommandExit).unwrap(),
            "command-exit"
        );
        assert_eq!(serde_json::to_value(EndedBy::Running).unwrap(), "running");
    }
}
