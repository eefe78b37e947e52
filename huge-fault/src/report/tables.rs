//! The report's tables as columns with priorities (see [`super::table`]): processes, VMAs,
//! chains and the what-if. The final report, the interval blocks and the live view all
//! draw these; none of them computes a number.

use super::{
    Report,
    format::{fmt_size, opt},
    stats::{ProcessReport, StatsReport, VmaReport},
    table::{Column, Shrink, Table},
};
use crate::{analysis::Rates, hist::fmt_ns};

fn p99(s: &StatsReport) -> String {
    s.latency_ns
        .as_ref()
        .map_or_else(|| "-".into(), |l| fmt_ns(l.p99))
}

fn p50(s: &StatsReport) -> String {
    s.latency_ns
        .as_ref()
        .map_or_else(|| "-".into(), |l| fmt_ns(l.p50))
}

fn max(s: &StatsReport) -> String {
    s.latency_ns
        .as_ref()
        .map_or_else(|| "-".into(), |l| fmt_ns(l.max))
}

pub fn fallback(s: &StatsReport) -> String {
    s.fallback_rate
        .map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.0}"))
}

/// The kind as the tables print it (the JSON keeps the full name).
pub fn short_kind(kind: &str) -> &str {
    match kind {
        "anon-shared" => "anon-sh",
        "file-shared" => "file-sh",
        "mixedmap" => "mixed",
        k => k,
    }
}

/// A mapping as a person recognises it: the file's name (the full path is in the JSON),
/// `[heap]`-style names as they are, nothing for anonymous memory.
pub fn mapping_name(path: Option<&str>) -> String {
    match path {
        Some(p) if p.starts_with('/') => p.rsplit('/').next().unwrap_or(p).to_string(),
        Some(p) => p.to_string(),
        None => String::new(),
    }
}

/// Processes: `rates` adds FAULTS/S (interval reports and the live view).
pub fn processes<'a>(
    rows: impl IntoIterator<Item = &'a ProcessReport>,
    rates: Option<&Rates>,
) -> Table {
    let mut cols = vec![
        Column::num("PID", 0),
        Column::text("COMM", 0).shrinks(Shrink::End, 6),
    ];
    if rates.is_some() {
        cols.push(Column::num("FAULTS/S", 0));
    }
    cols.extend([
        Column::num("FAULTS", 0),
        Column::text("ENTRIES", 1),
        Column::num("FALLBACK", 0),
        Column::num("P99", 0),
        Column::num("MAJOR", 2),
        Column::num("RETRY", 2),
        Column::num("ERRORS", 3),
        Column::num("P50", 3),
        Column::num("MAX", 4),
    ]);
    let mut t = Table::new(cols);
    for p in rows {
        let s = &p.stats;
        let mut row = vec![p.pid.to_string(), p.comm.clone()];
        if let Some(r) = rates {
            row.push(rate(r.pid(p.pid)));
        }
        row.extend([
            s.faults.to_string(),
            s.size_mix(),
            fallback(s),
            p99(s),
            s.major.to_string(),
            opt(s.retry_calls),
            opt(s.errors),
            p50(s),
            max(s),
        ]);
        t.push(row);
    }
    t
}

/// VMAs: the mapping's name and kind first, then where it is and what its faults did.
pub fn vmas<'a>(rows: impl IntoIterator<Item = &'a VmaReport>, rates: Option<&Rates>) -> Table {
    let mut cols = vec![
        Column::num("PID", 0),
        Column::text("COMM", 0).shrinks(Shrink::End, 6),
        Column::text("MAPPING", 1).shrinks(Shrink::Middle, 10),
        Column::text("KIND", 0),
        Column::text("START", 0),
        Column::num("SIZE", 0),
    ];
    if rates.is_some() {
        cols.push(Column::num("FAULTS/S", 0));
    }
    cols.extend([
        Column::num("FAULTS", 0),
        Column::text("ENTRIES", 0),
        Column::num("FALLBACK", 0),
        Column::num("P99", 0),
        Column::text("REASON", 2).shrinks(Shrink::End, 8),
        Column::num("MAJOR", 3),
        Column::num("RETRY", 2),
        Column::num("P50", 4),
        Column::text("END", 5),
    ]);
    let mut t = Table::new(cols);
    for v in rows {
        let s = &v.stats;
        let mut row = vec![
            v.pid.to_string(),
            v.comm.clone(),
            mapping_name(v.path.as_deref()),
            short_kind(&v.kind).to_string(),
            v.start.trim_start_matches("0x").to_string(),
            fmt_size(v.size_bytes),
        ];
        if let Some(r) = rates {
            row.push(rate(r.vma(&v.keys)));
        }
        row.extend([
            s.faults.to_string(),
            s.size_mix(),
            fallback(s),
            p99(s),
            s.fallback_reasons
                .as_ref()
                .map_or_else(|| "-".into(), |r| r.cell()),
            s.major.to_string(),
            opt(s.retry_calls),
            p50(s),
            v.end.trim_start_matches("0x").to_string(),
        ]);
        t.push(row);
    }
    t
}

/// The most frequent chains of each VMA given: what its faults tried, level by level.
pub fn chains<'a>(rows: impl IntoIterator<Item = &'a VmaReport>, per_vma: usize) -> Table {
    let mut t = Table::new(vec![
        Column::num("PID", 0),
        Column::text("MAPPING", 1).shrinks(Shrink::Middle, 10),
        Column::text("START", 0),
        Column::num("FAULTS", 0),
        Column::num("SHARE", 2),
        Column::text("CHAIN", 0).shrinks(Shrink::End, 16),
    ]);
    for v in rows {
        let Some(chains) = &v.stats.chains else {
            continue;
        };
        for c in chains.iter().take(per_vma) {
            t.push(vec![
                v.pid.to_string(),
                mapping_name(v.path.as_deref()),
                v.start.trim_start_matches("0x").to_string(),
                c.count.to_string(),
                format!(
                    "{:.1}%",
                    c.count as f64 * 100.0 / v.stats.faults.max(1) as f64
                ),
                c.chain.clone(),
            ]);
        }
    }
    t
}

/// The what-if of each VMA given that has one.
pub fn what_if<'a>(rows: impl IntoIterator<Item = &'a VmaReport>) -> Table {
    let mut t = Table::new(vec![
        Column::num("PID", 0),
        Column::text("START", 0),
        Column::text("OBSERVED", 0),
        Column::text("RANGE INSERT (MODULE)", 0),
        Column::text("RANGE INSERT (CORE MM)", 1),
    ]);
    let c =
        |x: &Option<crate::whatif::Counts>| x.as_ref().map_or_else(|| "-".into(), |c| c.describe());
    for v in rows {
        let Some(w) = &v.what_if else {
            continue;
        };
        let start = v.start.trim_start_matches("0x").to_string();
        if let Some(reason) = &w.skipped {
            t.push(vec![
                v.pid.to_string(),
                start,
                format!("not computed: {reason}"),
                String::new(),
                String::new(),
            ]);
        } else {
            t.push(vec![
                v.pid.to_string(),
                start,
                c(&w.observed),
                c(&w.module_helper),
                c(&w.core_helper),
            ]);
        }
    }
    t
}

impl Report {
    /// Whether any VMA has chains to show (the mode sees levels).
    pub fn has_chains(&self) -> bool {
        self.vmas
            .iter()
            .any(|v| v.stats.chains.as_ref().is_some_and(|c| !c.is_empty()))
    }
}
