//! The report as terminal tables, and the attach summary.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::Report;
use crate::{
    hist::{LatencySummary, fmt_ns},
    kernel::Mode,
    run_info::{ProbeReport, ProbeStatus, Reason},
};

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
        let mut modes: Vec<Mode> = Vec::new();
        for p in probes {
            if !modes.contains(&p.mode) {
                modes.push(p.mode);
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
            let line = if m == mode {
                let mut l = format!("attached {}", attached_unique.join(", "));
                for p in these.iter().filter(|p| {
                    p.status != ProbeStatus::Attached && p.reason != Some(Reason::NotInKernel)
                }) {
                    l.push_str(&format!(
                        "; without {} ({})",
                        p.target,
                        p.reason
                            .as_ref()
                            .map_or_else(|| "unavailable".into(), Reason::to_string)
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
                            p.reason
                                .as_ref()
                                .map_or_else(|| "unknown".into(), Reason::to_string)
                        )
                    }
                    Some(p) => format!(
                        "skipped: {}",
                        p.reason
                            .as_ref()
                            .map_or_else(|| "not needed".into(), Reason::to_string)
                    ),
                    None => "skipped".into(),
                }
            };
            out.push_str(&format!("  {:<16} {line}\n", m.name()));
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
