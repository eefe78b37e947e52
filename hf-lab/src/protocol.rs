//! What the lab guest tells the host on its serial console, as types both sides share:
//! `hf-lab-init` prints [`Line`]s, `cargo xtask lab` parses them from the console log.
//! Every other console line (the kernel's, the init's `init: ...` progress) is not a
//! protocol line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// Not built yet.
    Pending,
    /// Cannot run on this kernel.
    NotApplicable,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Pending => "pending",
            Status::NotApplicable => "not-applicable",
        }
    }
}

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// An expectation on something the tool does not report yet, still not met.
    Pending,
    /// A pending expectation that is met: a failure until it is promoted.
    PendingPasses,
    /// The mode cannot see it.
    NotVisible,
}

impl Outcome {
    /// Whether this outcome fails its scenario.
    pub fn fails(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::PendingPasses)
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Pending => "pending",
            Outcome::PendingPasses => "pending-passes",
            Outcome::NotVisible => "not-visible",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckResult {
    pub what: String,
    pub expected: Value,
    pub got: Value,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub kernel: String,
    /// The pass (`fentry`, `kprobe`, `tracepoint-only`, `kprobe-aggregate`), or `-` for a
    /// result of the boot (`n/a`, the kernel log, the bench).
    pub mode: String,
    pub status: Status,
    pub reason: Option<String>,
    pub checks: Vec<CheckResult>,
}

impl ScenarioResult {
    /// A result without checks: `n/a`, pending, or a failure before any check could run.
    pub fn bare(scenario: &str, kernel: &str, mode: &str, status: Status, reason: String) -> Self {
        ScenarioResult {
            scenario: scenario.into(),
            kernel: kernel.into(),
            mode: mode.into(),
            status,
            reason: Some(reason),
            checks: vec![],
        }
    }

    /// A check of its own (no per-key checks): passed without a reason, failed with one.
    pub fn verdict(scenario: &str, kernel: &str, mode: &str, reason: Option<String>) -> Self {
        ScenarioResult {
            scenario: scenario.into(),
            kernel: kernel.into(),
            mode: mode.into(),
            status: if reason.is_none() {
                Status::Pass
            } else {
                Status::Fail
            },
            reason,
            checks: vec![],
        }
    }
}

/// One protocol line of the guest's console.
#[derive(Clone, Debug)]
pub enum Line {
    /// The guest is up and runs this kernel release.
    Kernel(String),
    Result(ScenarioResult),
    /// A pass over every scenario took this long.
    Time {
        pass: String,
        secs: f64,
    },
    /// A piece of a file the guest hands to the host, appended in order.
    File {
        name: String,
        bytes: Vec<u8>,
    },
    /// A line of the bench's summary table.
    BenchTable(String),
    /// One bench measurement, as JSON.
    BenchSample(String),
    /// The init failed (a panic, a missing mount) and powers off.
    Failure(String),
    /// Every result was printed.
    Done,
}

const KERNEL: &str = "HF-LAB-KERNEL ";
const RESULT: &str = "HF-LAB-RESULT ";
const TIME: &str = "HF-LAB-TIME ";
const FILE: &str = "HF-LAB-FILE ";
const BENCH_TABLE: &str = "HF-BENCH-TABLE ";
const BENCH_SAMPLE: &str = "HF-BENCH-SAMPLE ";
const FAILURE: &str = "init: failure: ";
const DONE: &str = "HF-LAB-DONE";

impl Line {
    /// A console line as the protocol line it is; `None` for any other line, `Some(Err)`
    /// for a protocol line that cannot be read.
    pub fn parse(line: &str) -> Option<Result<Line, String>> {
        let line = line.trim_end_matches('\r');
        if let Some(r) = line.strip_prefix(KERNEL) {
            return Some(Ok(Line::Kernel(r.trim().into())));
        }
        if let Some(r) = line.strip_prefix(RESULT) {
            return Some(
                serde_json::from_str(r)
                    .map(Line::Result)
                    .map_err(|e| format!("unreadable result line ({e}): {r}")),
            );
        }
        if let Some(t) = line.strip_prefix(TIME) {
            let mut it = t.split_whitespace();
            return Some(match (it.next(), it.next().and_then(|s| s.parse().ok())) {
                (Some(p), Some(secs)) => Ok(Line::Time {
                    pass: p.into(),
                    secs,
                }),
                _ => Err(format!("unreadable time line: {t}")),
            });
        }
        if let Some(t) = line.strip_prefix(FILE) {
            let parsed = t.split_once(' ').and_then(|(name, hex)| {
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect();
                Some((name, bytes?))
            });
            return Some(match parsed {
                Some((name, bytes)) if !name.contains('/') && !name.starts_with('.') => {
                    Ok(Line::File {
                        name: name.into(),
                        bytes,
                    })
                }
                _ => Err(format!("unreadable file line: {}", &t[..t.len().min(80)])),
            });
        }
        if let Some(t) = line.strip_prefix(BENCH_TABLE) {
            return Some(Ok(Line::BenchTable(t.into())));
        }
        if let Some(t) = line.strip_prefix(BENCH_SAMPLE) {
            return Some(Ok(Line::BenchSample(t.into())));
        }
        if let Some(t) = line.strip_prefix(FAILURE) {
            return Some(Ok(Line::Failure(t.into())));
        }
        if line == DONE {
            return Some(Ok(Line::Done));
        }
        None
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Line::Kernel(k) => write!(f, "{KERNEL}{k}"),
            Line::Result(r) => write!(
                f,
                "{RESULT}{}",
                serde_json::to_string(r).map_err(|_| std::fmt::Error)?
            ),
            Line::Time { pass, secs } => write!(f, "{TIME}{pass} {secs:.2}"),
            Line::File { name, bytes } => {
                write!(f, "{FILE}{name} ")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Line::BenchTable(t) => write!(f, "{BENCH_TABLE}{t}"),
            Line::BenchSample(t) => write!(f, "{BENCH_SAMPLE}{t}"),
            Line::Failure(t) => write!(f, "{FAILURE}{t}"),
            Line::Done => f.write_str(DONE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_back_as_written() {
        let r = ScenarioResult::bare("x", "6.12", "kprobe", Status::Fail, "why".into());
        let lines = [
            Line::Kernel("6.12.117+deb12-amd64".into()),
            Line::Result(r),
            Line::Time {
                pass: "fentry".into(),
                secs: 4.5,
            },
            Line::File {
                name: "lab-kprobe.hfrec".into(),
                bytes: vec![0, 1, 0xfe, 0xff],
            },
            Line::BenchTable("| a | b |".into()),
            Line::BenchSample("{\"storm\":\"pte\"}".into()),
            Line::Failure("panic: boom".into()),
            Line::Done,
        ];
        for l in lines {
            let text = l.to_string();
            let back = Line::parse(&text)
                .expect("a protocol line")
                .expect("readable");
            assert_eq!(back.to_string(), text);
        }
        assert!(Line::parse("init: [kprobe] thp-aligned ran in 0.2s").is_none());
        assert!(Line::parse("[    1.2] Run /init as init process").is_none());
        assert!(Line::parse("HF-LAB-RESULT {not json").unwrap().is_err());
        assert!(Line::parse("HF-LAB-FILE ../x 00").unwrap().is_err());
        assert!(Line::parse("HF-LAB-FILE x 0g").unwrap().is_err());
    }

    #[test]
    fn statuses_keep_their_json_names() {
        for s in [
            Status::Pass,
            Status::Fail,
            Status::Pending,
            Status::NotApplicable,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), Value::from(s.name()));
        }
    }

    #[test]
    fn outcomes_keep_their_json_names() {
        for o in [
            Outcome::Pass,
            Outcome::Fail,
            Outcome::Pending,
            Outcome::PendingPasses,
            Outcome::NotVisible,
        ] {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                Value::from(o.name()),
                "{o:?}"
            );
        }
    }
}
