//! A scenario's outcome against its expectations, exactly: the tool's JSON report, the
//! workload's ground-truth line and the kernel's counts in, one [`ScenarioResult`] out.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    check::{Expected, SecondCount, Source, split_bo},
    parse::kernel_version,
    protocol::{CheckResult, Outcome, ScenarioResult, Status},
    scenarios::Scenario,
};

mod handlers;
#[cfg(test)]
mod tests;

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        })
}

/// A key of a tool row, the sum of two (`a+b`), or a count derived from the row's own
/// chains: `pmd_fallback_steps`
/// (`pud_…`), the FALLBACK answers at that level (a chain `PMD:FALLBACK×2` counts two).
/// A DAX PUD FALLBACK is asked only when the 1 GiB slot is empty, which depends on where
/// mmap placed the VMA, and `thp_fault_fallback` counts the PMD ones alone.
fn tool_value(r: &Value, key: &str) -> Option<Value> {
    // `a+b`: the sum of two counts (a driver's inserts: new entries and re-inserts).
    if let Some((a, b)) = key.split_once('+') {
        let n = tool_value(r, a)?.as_u64()? + tool_value(r, b)?.as_u64()?;
        return Some(Value::from(n));
    }
    let Some(level) = key
        .strip_suffix("_fallback_steps")
        .filter(|l| *l == "pmd" || *l == "pud")
    else {
        return lookup(r, key).cloned();
    };
    let name = level.to_ascii_uppercase();
    let mut n = 0u64;
    for c in r["chains"].as_array()? {
        let count = c["count"].as_u64()?;
        for step in c["chain"].as_str()?.split(' ') {
            let (step, times) = match step.split_once('×') {
                Some((s, t)) => (s, t.parse::<u64>().ok()?),
                None => (step, 1),
            };
            if let Some((l, answer)) = step.split_once(':')
                && l == name
                && answer.split('|').any(|a| a == "FALLBACK")
            {
                n += count * times;
            }
        }
    }
    Some(Value::from(n))
}

/// The tool's VMA row for the workload's range.
pub fn vma_row<'a>(report: &'a Value, truth: &Value) -> Option<&'a Value> {
    row_for(report, truth, &truth["vma_start"], &truth["vma_end"])
}

fn row_for<'a>(report: &'a Value, truth: &Value, start: &Value, end: &Value) -> Option<&'a Value> {
    report["vmas"]
        .as_array()?
        .iter()
        .find(|v| v["pid"] == truth["pid"] && v["start"] == *start && v["end"] == *end)
}

/// The tool's row for each VMA the workload used: its buffer objects (`bos`) in order, or
/// its one range.
pub fn vma_rows<'a>(report: &'a Value, truth: &Value) -> Vec<Option<&'a Value>> {
    match truth["bos"].as_array() {
        Some(bos) => bos
            .iter()
            .map(|b| row_for(report, truth, &b["vma_start"], &b["vma_end"]))
            .collect(),
        None => vec![vma_row(report, truth)],
    }
}

/// The what-if cross-check: the module helper's prediction in `predictor`'s rows must equal
/// what the `twin` (its range-policy run) really did, VMA by VMA: faults and entries per
/// size. Without returns (tracepoint-only) there is no what-if: `not-visible`.
pub fn what_if_checks(
    twin: &str,
    sees_returns: bool,
    predictor: &[Option<&Value>],
    actual: &[Option<&Value>],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for (i, (p, a)) in predictor.iter().zip(actual).enumerate() {
        for (pk, ak) in [
            ("faults", "faults"),
            ("pud", "entries.pud"),
            ("pmd", "entries.pmd"),
            ("pte", "entries.pte"),
        ] {
            let got = p
                .and_then(|r| lookup(r, &format!("what_if.module_helper.{pk}")))
                .cloned()
                .unwrap_or(Value::Null);
            let expected = a
                .and_then(|r| lookup(r, ak))
                .cloned()
                .unwrap_or(Value::Null);
            let outcome = if !sees_returns {
                Outcome::NotVisible
            } else if got == expected && !got.is_null() {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            out.push(CheckResult {
                what: format!("what-if vma{i} {pk} = {twin} {ak}"),
                expected,
                got,
                outcome,
            });
        }
    }
    if predictor.len() != actual.len() {
        out.push(CheckResult {
            what: format!("what-if VMAs = {twin} VMAs"),
            expected: Value::from(actual.len()),
            got: Value::from(predictor.len()),
            outcome: Outcome::Fail,
        });
    }
    out
}

/// Adds `checks` to a result, failing it when one failed.
pub fn add_checks(r: &mut ScenarioResult, checks: Vec<CheckResult>) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| format!("{}: expected {} got {}", c.what, c.expected, c.got))
        .collect();
    if !failed.is_empty() {
        r.status = Status::Fail;
        let mut reason = r.reason.take().map(|s| vec![s]).unwrap_or_default();
        reason.extend(failed);
        r.reason = Some(reason.join("; "));
    }
    r.checks.extend(checks);
}

/// The lab's passes over every scenario: the three attach modes, and the kprobe mode with
/// `--aggregate` (every fault counted in the kernel, no records), which must give the same
/// numbers.
pub const MODES: [&str; 4] = ["fentry", "kprobe", "tracepoint-only", "kprobe-aggregate"];

/// Whether a lab mode has the what-if: it needs returns and per-fault records.
pub fn sees_what_if(mode: &str) -> bool {
    mode != "tracepoint-only" && !mode.ends_with("-aggregate")
}

/// Compares one scenario's outcome with its expectations, exactly.
/// Adds a check that passes when `ok`, and notes a failure.
fn verdict(
    checks: &mut Vec<CheckResult>,
    failed: &mut bool,
    what: String,
    (expected, got): (Value, Value),
    ok: bool,
) {
    *failed |= !ok;
    checks.push(CheckResult {
        what,
        expected,
        got,
        outcome: if ok { Outcome::Pass } else { Outcome::Fail },
    });
}

/// A check's name for the tool's `key` in row `i` (`bo{i}:` when the workload used several).
fn row_key(rows: &[Option<&Value>], i: usize, key: &str) -> String {
    if rows.len() > 1 {
        format!("tool bo{i}:{key}")
    } else {
        format!("tool {key}")
    }
}

pub fn evaluate(
    s: &Scenario,
    kernel: &str,
    mode: &str,
    report: &Value,
    truth: &Value,
    vmstat_delta: &BTreeMap<String, i64>,
) -> ScenarioResult {
    let sees_returns = mode != "tracepoint-only";
    let rows = vma_rows(report, truth);
    let row = vma_row(report, truth);
    let mut checks = Vec::new();
    let mut failed = false;
    let version = kernel_version(kernel).unwrap_or((0, 0));
    let second = s.counted_by.map_or(&[][..], SecondCount::checks);
    for c in s.checks.iter().chain(second) {
        if c.kernels.met(version).is_err() {
            continue;
        }
        let (what, got) = source_value(c.source, &rows, row, truth, vmstat_delta);
        let expected = match c.expect {
            Expected::N(n) => Value::from(n),
            Expected::S(s) => Value::from(s),
            Expected::Same(other) => {
                let (w, v) = source_value(other, &rows, row, truth, vmstat_delta);
                Value::from(format!("{w} = {}", v.unwrap_or(Value::Null)))
            }
        };
        let matches = match c.expect {
            Expected::Same(other) => {
                let v = source_value(other, &rows, row, truth, vmstat_delta).1;
                v.is_some() && got == v
            }
            _ => got.as_ref() == Some(&expected),
        };
        // The what-if and the fallback reasons need each fault's record.
        let what_if = matches!(c.source, Source::Tool(k) if k.contains("what_if") || k.contains("fallback_reasons"));
        let outcome = if (c.needs_return && !sees_returns) || (what_if && !sees_what_if(mode)) {
            Outcome::NotVisible
        } else if c.pending.is_some() {
            if matches {
                failed = true;
                Outcome::PendingPasses
            } else {
                Outcome::Pending
            }
        } else if matches {
            Outcome::Pass
        } else {
            failed = true;
            Outcome::Fail
        };
        checks.push(CheckResult {
            what,
            expected,
            got: got.unwrap_or(Value::Null),
            outcome,
        });
    }
    // Every retry call must be linked to its fault: none unlinked, none left waiting, in each
    // of the workload's VMAs (a scenario that expects otherwise says so with its own check).
    if sees_returns {
        for key in ["unlinked_retries", "pending_retries"] {
            if s.checks
                .iter()
                .any(|c| matches!(c.source, Source::Tool(k) if split_bo(k).1 == key))
            {
                continue;
            }
            // A missing row fails on its own checks.
            for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.is_some()) {
                let got = r.and_then(|r| r.get(key)).cloned();
                let ok = got == Some(Value::from(0));
                let v = (Value::from(0), got.unwrap_or(Value::Null));
                verdict(&mut checks, &mut failed, row_key(&rows, i, key), v, ok);
            }
        }
    }
    // No fault of a scenario's VMAs goes without a known reason: `unknown` is absent at
    // both levels (a scenario that expects one says so with its own check).
    if sees_returns && sees_what_if(mode) {
        for (i, r) in rows.iter().enumerate() {
            let Some(r) = r else { continue };
            for level in ["pud", "pmd"] {
                let key = format!("fallback_reasons.{level}.unknown");
                if s.checks
                    .iter()
                    .any(|c| matches!(c.source, Source::Tool(k) if split_bo(k).1 == key))
                {
                    continue;
                }
                let got = r["fallback_reasons"][level]["unknown"].clone();
                let ok = got.is_null();
                let what = row_key(&rows, i, &key);
                verdict(&mut checks, &mut failed, what, (Value::Null, got), ok);
            }
        }
    }
    // Every VMA names the `huge_fault` handler its kind is served by, exactly (none where
    // no fault asks one).
    if sees_returns && let Some(want) = handlers::expected(s.kind, version) {
        for (i, r) in rows.iter().enumerate() {
            let Some(r) = r else { continue };
            let (ok, got) = handlers::meets(r, want);
            let what = row_key(&rows, i, "handlers");
            verdict(
                &mut checks,
                &mut failed,
                what,
                (handlers::describe(want), got),
                ok,
            );
        }
    }
    // `--aggregate` keeps no address or pfn per fault: every fault with a FALLBACK is
    // unattributed, none given a reason.
    if mode.ends_with("-aggregate") && sees_returns {
        for (i, r) in rows.iter().enumerate() {
            let Some(r) = r else { continue };
            let got = r["fallback_reasons"]["unattributed"].clone();
            let want = r["fallback_faults"].clone();
            let ok = got == want && r["fallback_reasons"]["top"].is_null();
            let v = (Value::from(format!("fallback_faults = {want}")), got);
            let what = row_key(&rows, i, "fallback_reasons.unattributed");
            verdict(&mut checks, &mut failed, what, v, ok);
        }
    }
    // `--aggregate` writes no record: every number above came from the kernel's counts.
    if mode.ends_with("-aggregate") {
        let got = report["kernel_counters"]["records_submitted"].clone();
        let ok = got == 0;
        let what = "tool kernel_counters.records_submitted".into();
        verdict(&mut checks, &mut failed, what, (Value::from(0), got), ok);
    }
    // The per-thread state each pass asks for (every lab kernel has task storage in
    // tracing programs; the aggregate pass runs the hash-map object on purpose).
    {
        let want = if mode.ends_with("-aggregate") {
            "per-thread state in a hash map by tid (--thread-state hash)"
        } else {
            "per-thread state in task local storage"
        };
        let got = report["probes"].as_array().and_then(|ps| {
            ps.iter()
                .filter_map(|p| p["target"].as_str())
                .find(|t| t.starts_with("per-thread state"))
        });
        let ok = got == Some(want);
        let v = (Value::from(want), got.map_or(Value::Null, Value::from));
        verdict(
            &mut checks,
            &mut failed,
            "tool probes: per-thread state".into(),
            v,
            ok,
        );
    }
    // Nothing may be lost in any scenario: the tool's loss counters are part of every check.
    for key in [
        "ringbuf_drops",
        "inflight_map_full",
        "vma_table_overflow_faults",
        "process_table_overflow_faults",
        "malformed_records",
    ] {
        let got = report["loss"].get(key).cloned();
        let ok = got == Some(Value::from(0));
        let v = (Value::from(0), got.unwrap_or(Value::Null));
        verdict(&mut checks, &mut failed, format!("tool loss.{key}"), v, ok);
    }
    // A workload without a mapping of its own (bad requests) has no VMA row to find.
    let needs_row = s.checks.iter().any(
        |c| matches!(c.source, Source::Tool(k) if split_bo(k).0.is_none() && !k.starts_with("sum:")),
    );
    let reason = if row.is_none() && needs_row {
        Some(format!(
            "no VMA row {}-{} for pid {} in the tool's report",
            truth["vma_start"], truth["vma_end"], truth["pid"]
        ))
    } else if failed {
        Some(
            checks
                .iter()
                .filter(|c| c.outcome.fails())
                .map(|c| {
                    format!(
                        "{}: expected {} got {} ({})",
                        c.what,
                        c.expected,
                        c.got,
                        c.outcome.name()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        None
    };
    ScenarioResult {
        scenario: s.name.into(),
        kernel: kernel.into(),
        mode: mode.into(),
        status: if failed || (row.is_none() && needs_row) {
            Status::Fail
        } else {
            Status::Pass
        },
        reason,
        checks,
    }
}

/// What a check reads, and its value: a key of the tool's row (`boN:KEY` for buffer object
/// N, `sum:KEY` for the sum over every VMA the workload used), of the workload's ground
/// truth, or a kernel counter's delta.
fn source_value(
    source: Source,
    rows: &[Option<&Value>],
    row: Option<&Value>,
    truth: &Value,
    vmstat_delta: &BTreeMap<String, i64>,
) -> (String, Option<Value>) {
    match source {
        Source::Tool(k) => {
            if let Some(key) = k.strip_prefix("sum:") {
                let sum = rows.iter().try_fold(0u64, |acc, r| {
                    Some(acc + r.and_then(|r| tool_value(r, key))?.as_u64()?)
                });
                return (format!("tool {k}"), sum.map(Value::from));
            }
            let (bo, key) = split_bo(k);
            let r = match bo {
                Some(i) => rows.get(i).copied().flatten(),
                None => row,
            };
            (format!("tool {k}"), r.and_then(|r| tool_value(r, key)))
        }
        Source::Truth(k) => (format!("workload {k}"), truth.get(k).cloned()),
        Source::Vmstat(k) => (
            match k.strip_prefix("event:") {
                Some(e) => format!("ftrace {e}"),
                None => format!("vmstat {k}"),
            },
            vmstat_delta.get(k).map(|&d| Value::from(d)),
        ),
    }
}
