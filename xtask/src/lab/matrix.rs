//! The scenario × kernel matrix: printed, and written as JSON.

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::Result;
use hf_lab::protocol::{Outcome, ScenarioResult, Status};

/// One result and the matrix column (kernel) it belongs to.
pub struct Row {
    pub column: String,
    pub result: ScenarioResult,
}

/// The matrix cell of one scenario on one kernel, from its per-mode results.
fn cell(results: &[&ScenarioResult]) -> (String, bool) {
    if results.is_empty() {
        return ("MISSING".into(), false);
    }
    if let [one] = results
        && one.mode == "-"
    {
        let reason = one.reason.as_deref().unwrap_or("");
        return (
            format!("{}: {reason}", one.status.name()),
            one.status != Status::Fail,
        );
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| format!("{}({})", r.mode, r.status.name()))
        .collect();
    let pending: usize = results
        .iter()
        .map(|r| {
            r.checks
                .iter()
                .filter(|c| c.outcome == Outcome::Pending)
                .count()
        })
        .max()
        .unwrap_or(0);
    if failed.is_empty() {
        let modes: Vec<&str> = results.iter().map(|r| r.mode.as_str()).collect();
        let mut s = format!("pass [{}]", modes.join(","));
        if pending > 0 {
            s.push_str(&format!(" +{pending} pending"));
        }
        (s, true)
    } else {
        (format!("FAIL {}", failed.join(" ")), false)
    }
}

/// Prints the matrix and every failure, writes `matrix.json` into `out_dir`; `Ok(true)`
/// when every cell passed (or is n/a) and every boot finished.
pub fn report(
    columns: &[(String, Option<String>)],
    all: &[Row],
    boot_failures: &[String],
    stage_times: &[(String, Duration)],
    out_dir: &Path,
) -> Result<bool> {
    let mut scenario_names: Vec<&str> = Vec::new();
    for r in all {
        if !scenario_names.contains(&r.result.scenario.as_str()) {
            scenario_names.push(&r.result.scenario);
        }
    }
    let mut ok = boot_failures.is_empty();
    let mut matrix: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut table = vec![{
        let mut h = vec!["scenario".to_string()];
        h.extend(columns.iter().map(|(c, _)| c.clone()));
        h
    }];
    for s in &scenario_names {
        let mut row = vec![s.to_string()];
        for (col, pending) in columns {
            let text = match pending {
                Some(why) => format!("pending: {why}"),
                None => {
                    let rs: Vec<&ScenarioResult> = all
                        .iter()
                        .filter(|r| r.result.scenario == *s && r.column == *col)
                        .map(|r| &r.result)
                        .collect();
                    let (text, good) = cell(&rs);
                    ok &= good;
                    text
                }
            };
            matrix
                .entry(s.to_string())
                .or_default()
                .insert(col.clone(), text.clone());
            row.push(text);
        }
        table.push(row);
    }
    print_table(&table);
    for r in all.iter().filter(|r| r.result.status == Status::Fail) {
        println!(
            "FAIL {} on {} [{}]: {}",
            r.result.scenario,
            r.column,
            r.result.mode,
            r.result.reason.as_deref().unwrap_or("")
        );
    }
    for f in boot_failures {
        println!("BOOT FAILED {f}");
    }
    let results: Vec<serde_json::Value> = all
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.result).expect("a result serializes");
            v["kernel_column"] = serde_json::Value::from(r.column.clone());
            v
        })
        .collect();
    let json = serde_json::json!({
        "schema": "huge-fault.lab-matrix",
        "version": 1,
        "kernels": columns.iter().map(|(c, p)| serde_json::json!({"kernel": c, "pending": p})).collect::<Vec<_>>(),
        "matrix": matrix,
        "results": results,
        "boot_failures": boot_failures,
        "stage_times_s": stage_times.iter().map(|(n, d)| (n.clone(), d.as_secs_f64())).collect::<BTreeMap<_, _>>(),
    });
    let json_path = out_dir.join("matrix.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    println!("\nmatrix written to {}", json_path.display());
    Ok(ok)
}

/// A text table, columns cut to 60 characters.
fn print_table(table: &[Vec<String>]) {
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count().min(60))
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!();
    for (n, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(60).collect();
                format!("{c:<w$}")
            })
            .collect();
        println!("{}", cells.join(" | "));
        if n == 0 {
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("-+-")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_passes_only_when_every_pass_did() {
        let r = |mode: &str, status| ScenarioResult::bare("s", "6.12", mode, status, "x".into());
        let (a, b) = (r("fentry", Status::Pass), r("kprobe", Status::Pass));
        assert_eq!(cell(&[&a, &b]), ("pass [fentry,kprobe]".into(), true));
        let c = r("kprobe-aggregate", Status::Fail);
        assert_eq!(
            cell(&[&a, &c]),
            ("FAIL kprobe-aggregate(fail)".into(), false)
        );
        let na = r("-", Status::NotApplicable);
        assert_eq!(cell(&[&na]), ("not-applicable: x".into(), true));
        assert_eq!(cell(&[]), ("MISSING".into(), false));
    }
}
