//! Pass/fail thresholds for CI: `--fail-if 'fallback_rate > 5%'`, `--fail-if 'p99 > 2ms'`,
//! `--fail-if '/dev/dax*: pmd_share < 90%'` (only the VMAs whose path or kind matches).
//!
//! Metrics, computed on the report's totals or on the matching VMAs summed:
//! - `faults`, `major`, `errors`, `retry_calls`: counts;
//! - `fallback_rate`: share of faults whose chain holds a FALLBACK;
//! - `pte_share`, `pmd_share`, `pud_share`: share of bytes mapped by entries of that level;
//! - `p50`, `p90`, `p99`, `max`: fault latency (the largest over the matching VMAs);
//! - `drops`: faults lost: the ring buffer and the in-kernel class table were full (totals only);
//! - `fallback_reason:REASON`: faults a level gave no huge entry for REASON, PUD and PMD
//!   together (`fallback_reason:pfn-misaligned > 0`);
//! - `reinserts`: driver inserts over entries already present (they mapped nothing);
//! - `chain:CHAIN`: faults whose chain is exactly CHAIN, as the report writes it
//!   (`chain:PTE:OK×16`; `x` may stand for `×`).

use serde_json::Value;

mod junit;

pub use junit::junit;

/// Metric names and what they mean, for `--help` and errors.
pub const METRICS: &[(&str, &str)] = &[
    ("faults", "number of faults"),
    ("major", "faults that needed I/O"),
    (
        "errors",
        "faults that failed (OOM, SIGBUS, SIGSEGV, HWPOISON)",
    ),
    (
        "retry_calls",
        "handle_mm_fault calls that returned VM_FAULT_RETRY",
    ),
    (
        "fallback_rate",
        "share of faults whose chain holds a FALLBACK",
    ),
    ("pte_share", "share of bytes mapped by PTE entries"),
    ("pmd_share", "share of bytes mapped by PMD entries"),
    ("pud_share", "share of bytes mapped by PUD entries"),
    ("p50", "median fault latency"),
    ("p90", "90th percentile fault latency"),
    ("p99", "99th percentile fault latency"),
    ("max", "largest fault latency"),
    (
        "drops",
        "faults lost: ring buffer and in-kernel class table full",
    ),
    (
        "reinserts",
        "driver inserts over entries already present (nothing mapped)",
    ),
    (
        "chain:CHAIN",
        "faults whose chain is exactly CHAIN, e.g. chain:PTE:OK×16 (x for ×)",
    ),
    (
        "fallback_reason:REASON",
        "faults a level gave no huge entry for REASON (vma-range, pfn-misaligned, pgoff-misaligned, thp-disabled, alloc-failed, charge-failed, kernel-policy, populated, no-huge-fault, driver, unknown)",
    ),
];

/// The chain a `chain:CHAIN` metric names, as the report writes it: a repeat count may be
/// typed `x16` for `×16`.
fn chain_metric(metric: &str) -> Option<String> {
    let c = metric.strip_prefix("chain:")?.trim();
    if c.is_empty() {
        return None;
    }
    let b = c.as_bytes();
    let mut out = String::new();
    for (i, ch) in c.char_indices() {
        let repeat =
            ch == 'x' && i > 0 && b[i - 1] != b' ' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        out.push(if repeat { '×' } else { ch });
    }
    Some(out)
}

/// The reason a `fallback_reason:REASON` metric names, if it is one.
fn reason_metric(metric: &str) -> Option<crate::analysis::reason::Reason> {
    crate::analysis::reason::Reason::from_name(metric.strip_prefix("fallback_reason:")?)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

/// One `--fail-if` condition: the check fails when the condition holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub text: String,
    /// Only VMAs whose path or kind matches this glob (`*` and `?`); `None` = totals.
    scope: Option<String>,
    metric: String,
    op: Op,
    value: f64,
}

fn parse_value(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let units: &[(&str, f64)] = &[
        ("%", 0.01),
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("K", 1024.0),
        ("M", 1024.0 * 1024.0),
        ("G", 1024.0 * 1024.0 * 1024.0),
    ];
    for (suffix, mult) in units {
        if let Some(num) = s.strip_suffix(suffix)
            && let Ok(v) = num.trim().parse::<f64>()
        {
            return Ok(v * mult);
        }
    }
    s.parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number (units: %, ns, us, ms, s)"))
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (scope, cond) = match text.rsplit_once(": ") {
            Some((scope, cond)) => (Some(scope.trim().to_string()), cond),
            None => (None, text),
        };
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let (metric, op, value) = ops
            .iter()
            .find_map(|(sym, op)| cond.split_once(sym).map(|(m, v)| (m.trim(), *op, v)))
            .ok_or_else(|| {
                format!("`{text}`: expected METRIC OP VALUE, e.g. 'fallback_rate > 5%'")
            })?;
        if !METRICS.iter().any(|(m, _)| *m == metric)
            && reason_metric(metric).is_none()
            && chain_metric(metric).is_none()
        {
            let names: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
            return Err(format!(
                "`{text}`: unknown metric `{metric}` (one of {})",
                names.join(", ")
            ));
        }
        if scope.is_some() && metric == "drops" {
            return Err(format!(
                "`{text}`: drops are counted for the whole run, not per VMA"
            ));
        }
        Ok(Threshold {
            text: text.to_string(),
            scope,
            metric: metric.to_string(),
            op,
            value: parse_value(value)?,
        })
    }
}

use crate::symbols::glob;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// A metric over a set of statistics objects (the totals, or the matching VMA rows).
/// `None` when the mode cannot see it or nothing matched.
fn metric(rows: &[&Value], report: &Value, name: &str) -> Option<f64> {
    if rows.is_empty() {
        return None;
    }
    let sum = |key: &str| -> Option<f64> { rows.iter().map(|r| num(r, key)).sum() };
    let bytes = |level: &str| -> Option<f64> {
        rows.iter()
            .map(|r| r.get("entries")?.get(level)?.as_f64())
            .sum()
    };
    let total_bytes = sum("bytes_mapped");
    let share = |level: &str, size: f64| -> Option<f64> {
        let t = total_bytes?;
        (t > 0.0).then_some(bytes(level)? * size / t)
    };
    match name {
        "faults" | "major" | "errors" | "retry_calls" => sum(name),
        "fallback_rate" => {
            let f = sum("faults")?;
            (f > 0.0).then_some(sum("fallback_faults")? / f)
        }
        "pte_share" => share("pte", 4096.0),
        "pmd_share" => share("pmd", 2.0 * 1024.0 * 1024.0),
        "pud_share" => share("pud", 1024.0 * 1024.0 * 1024.0),
        "p50" | "p90" | "p99" | "max" => rows
            .iter()
            .filter_map(|r| r.get("latency_ns")?.get(name)?.as_f64())
            .reduce(f64::max),
        "drops" => num(&report["loss"], "ringbuf_drops"),
        "reinserts" => rows
            .iter()
            .map(|r| {
                let e = r.get("reinserts")?;
                ["pte", "pmd", "pud", "other"]
                    .iter()
                    .map(|l| e.get(*l)?.as_f64())
                    .sum::<Option<f64>>()
            })
            .sum(),
        _ if name.starts_with("chain:") => {
            let want = chain_metric(name)?;
            rows.iter()
                .map(|r| {
                    Some(
                        r.get("chains")?
                            .as_array()?
                            .iter()
                            .filter(|c| c["chain"].as_str() == Some(want.as_str()))
                            .filter_map(|c| c["count"].as_f64())
                            .sum::<f64>(),
                    )
                })
                .sum()
        }
        _ => {
            let r = reason_metric(name)?.name();
            rows.iter()
                .map(|row| {
                    let f = row.get("fallback_reasons")?.as_object()?;
                    Some(
                        ["pud", "pmd"]
                            .iter()
                            .filter_map(|l| f.get(*l)?.get(r)?.as_f64())
                            .sum::<f64>(),
                    )
                })
                .sum()
        }
    }
}

fn show(metric: &str, v: f64) -> String {
    if metric.ends_with("_rate") || metric.ends_with("_share") {
        format!("{:.2}%", v * 100.0)
    } else if matches!(metric, "p50" | "p90" | "p99" | "max") {
        crate::hist::fmt_ns(v as u64)
    } else {
        format!("{v}")
    }
}

/// The result of one threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub threshold: String,
    pub failed: bool,
    /// One line: what was measured, and why it failed or could not be checked.
    pub line: String,
}

/// Checks every threshold against a report (the JSON form, so that live runs and replays
/// are judged alike). A metric that cannot be measured (not visible in this mode, no
/// matching VMA) fails: a check that cannot run must not pass silently.
pub fn evaluate(thresholds: &[Threshold], report: &Value) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let rows: Vec<&Value> = match &t.scope {
                None => vec![&report["totals"]],
                Some(g) => report["vmas"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter(|r| {
                                r["path"].as_str().is_some_and(|p| glob(g, p))
                                    || r["kind"].as_str().is_some_and(|k| glob(g, k))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            match metric(&rows, report, &t.metric) {
                None => Verdict {
                    threshold: t.text.clone(),
                    failed: true,
                    line: format!(
                        "threshold `{}` cannot be checked: {} not measured{}",
                        t.text,
                        t.metric,
                        if rows.is_empty() {
                            " (no matching VMA)"
                        } else {
                            " in this mode"
                        }
                    ),
                },
                Some(v) => {
                    let hit = match t.op {
                        Op::Gt => v > t.value,
                        Op::Ge => v >= t.value,
                        Op::Lt => v < t.value,
                        Op::Le => v <= t.value,
                        Op::Eq => v == t.value,
                        Op::Ne => v != t.value,
                    };
                    Verdict {
                        threshold: t.text.clone(),
                        failed: hit,
                        line: format!(
                            "threshold `{}` {}: {} is {}",
                            t.text,
                            if hit { "FAILED" } else { "passed" },
                            t.metric,
                            show(&t.metric, v)
                        ),
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "loss": {"ringbuf_drops": 3},
            "totals": {"faults": 100, "major": 0, "errors": 0, "retry_calls": 2,
                       "fallback_faults": 10, "bytes_mapped": 6291456 + 4096 * 512,
                       "entries": {"pte": 512, "pmd": 3, "pud": 0},
                       "reinserts": {"pte": 7, "pmd": 0, "pud": 0, "other": 0},
                       "chains": [{"chain": "PTE:OK", "count": 87},
                                  {"chain": "PMD:FALLBACK PTE:OK", "count": 10},
                                  {"chain": "PMD:OK", "count": 3}],
                       "latency_ns": {"p50": 1000, "p90": 2000, "p99": 3_000_000, "max": 5_000_000},
                       "fallback_reasons": {"pud": {}, "pmd": {"driver": 10}}},
            "vmas": [
                {"path": "/dev/dax0.0", "kind": "file-shared", "faults": 3, "fallback_faults": 0,
                 "bytes_mapped": 6291456, "entries": {"pte": 0, "pmd": 3, "pud": 0},
                 "latency_ns": {"p99": 50_000}},
                {"path": null, "kind": "anon", "faults": 97, "fallback_faults": 10,
                 "bytes_mapped": 2097152, "entries": {"pte": 512, "pmd": 0, "pud": 0},
                 "latency_ns": {"p99": 3_000_000}}
            ]
        })
    }

    fn check(t: &str) -> Verdict {
        evaluate(&[t.parse().unwrap()], &report()).remove(0)
    }

    #[test]
    fn parses_metrics_operators_units_and_scopes() {
        let t: Threshold = "fallback_rate > 5%".parse().unwrap();
        assert_eq!(
            (t.metric.as_str(), t.op, t.value, t.scope),
            ("fallback_rate", Op::Gt, 0.05, None)
        );
        let t: Threshold = "/dev/dax*: pmd_share < 90%".parse().unwrap();
        assert_eq!(t.scope.as_deref(), Some("/dev/dax*"));
        assert_eq!("p99 >= 2ms".parse::<Threshold>().unwrap().value, 2e6);
        assert_eq!("p99 > 1.5us".parse::<Threshold>().unwrap().value, 1500.0);
        assert!(
            "speed > 3"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("unknown metric `speed`")
        );
        assert!(
            "faults 3"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("expected METRIC OP VALUE")
        );
        assert!(
            "faults > lots"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("not a number")
        );
        assert!("anon: drops > 0".parse::<Threshold>().is_err());
    }

    #[test]
    fn fallback_reasons_are_metrics_per_scope() {
        let report = serde_json::json!({
            "totals": {"fallback_reasons": {"pud": {"vma-range": 1}, "pmd": {"vma-range": 2, "pfn-misaligned": 1536}}},
            "vmas": [
                {"path": "/dev/hfgpu", "kind": "pfnmap", "fallback_reasons": {"pud": {}, "pmd": {"pfn-misaligned": 1536}}},
                {"path": null, "kind": "anon", "fallback_reasons": {"pud": {}, "pmd": {}}},
                {"path": null, "kind": "file", "fallback_reasons": null}
            ]
        });
        let judge = |t: &str| evaluate(&[t.parse().unwrap()], &report).remove(0);
        assert!(judge("fallback_reason:pfn-misaligned > 0").failed);
        assert!(judge("fallback_reason:vma-range >= 3").failed);
        assert!(!judge("fallback_reason:vma-range > 3").failed);
        assert!(judge("/dev/hfgpu: fallback_reason:pfn-misaligned > 1000").failed);
        assert!(!judge("anon: fallback_reason:pfn-misaligned > 0").failed);
        // A mode that cannot see levels: not measured, and so a failure.
        assert!(
            judge("file: fallback_reason:driver > 0")
                .line
                .contains("not measured")
        );
        assert!(
            "fallback_reason:bad-luck > 0"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("unknown metric")
        );
    }

    #[test]
    fn chains_and_re_inserts_are_metrics_per_scope() {
        // A TTM buffer touched in order, and one touched in reverse.
        let report = serde_json::json!({
            "totals": {},
            "vmas": [
                {"path": "/dev/dri/card0", "kind": "pfnmap",
                 "chains": [{"chain": "RETRY PTE:OK×16", "count": 48}],
                 "reinserts": {"pte": 0, "pmd": 0, "pud": 0, "other": 0}},
                {"path": "/dev/dri/card1", "kind": "pfnmap",
                 "chains": [{"chain": "PTE:OK PTE:PRESENT×15", "count": 753},
                            {"chain": "PTE:OK", "count": 1}],
                 "reinserts": {"pte": 11400, "pmd": 0, "pud": 0, "other": 0}},
                {"path": null, "kind": "anon", "chains": null, "reinserts": null}
            ]
        });
        let judge = |t: &str| evaluate(&[t.parse().unwrap()], &report).remove(0);
        assert!(judge("/dev/dri/*: reinserts > 0").failed);
        assert!(!judge("/dev/dri/card0: reinserts > 0").failed);
        assert!(judge("/dev/dri/card0: chain:RETRY PTE:OK×16 == 48").failed);
        // `x` for `×`, after a step; a chain that did not happen counts 0.
        assert!(judge("/dev/dri/*: chain:PTE:OK PTE:PRESENTx15 >= 753").failed);
        assert!(!judge("/dev/dri/*: chain:PMD:OK > 0").failed);
        // Not measured where the mode sees no chains.
        assert!(
            judge("anon: chain:PTE:OK >= 0")
                .line
                .contains("not measured")
        );
        assert!(judge("anon: reinserts >= 0").line.contains("not measured"));
        assert!(
            "chain: > 0"
                .parse::<Threshold>()
                .unwrap_err()
                .contains("unknown metric")
        );
    }

    #[test]
    fn totals_and_scoped_checks() {
        // 10 of 100 faults fell back.
        assert!(check("fallback_rate > 5%").failed);
        assert!(!check("fallback_rate > 20%").failed);
        // The devdax VMA maps everything by PMD; anonymous memory nothing.
        assert!(!check("/dev/dax*: pmd_share < 90%").failed);
        assert!(check("anon: pmd_share < 90%").failed);
        assert!(check("anon: pte_share == 100%").failed);
        // Latency: the largest p99 among matching VMAs.
        assert!(check("p99 > 2ms").failed);
        assert!(!check("/dev/dax*: p99 > 2ms").failed);
        assert!(check("drops > 0").failed);
        assert!(check("drops > 0").line.contains("drops is 3"));
        assert!(
            check("fallback_rate > 5%")
                .line
                .contains("fallback_rate is 10.00%")
        );
    }

    #[test]
    fn what_cannot_be_measured_fails_with_the_reason() {
        let v = check("/nothing/*: faults > 0");
        assert!(v.failed && v.line.contains("no matching VMA"), "{}", v.line);
        let mut r = report();
        r["totals"]["fallback_faults"] = Value::Null;
        let v = evaluate(&["fallback_rate > 5%".parse().unwrap()], &r).remove(0);
        assert!(
            v.failed && v.line.contains("not measured in this mode"),
            "{}",
            v.line
        );
    }

    #[test]
    fn every_metric_is_computable_on_a_full_report() {
        for (m, _) in METRICS {
            let m = m.replace("REASON", "driver").replace("CHAIN", "PTE:OK");
            let v = evaluate(&[format!("{m} > 0").parse().unwrap()], &report()).remove(0);
            assert!(!v.line.contains("cannot be checked"), "{m}: {}", v.line);
        }
    }
}
