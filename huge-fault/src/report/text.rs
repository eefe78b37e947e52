//! The report as terminal tables, and the attach summary.

use super::{
    Report,
    format::{fmt_size, opt},
    table::width_of,
    tables,
};
use crate::{
    analysis::Rates,
    hist::{LatencySummary, fmt_ns},
    kernel::Mode,
    run_info::{ProbeReport, ProbeStatus, Reason},
};

fn lat(s: &Option<LatencySummary>, f: fn(&LatencySummary) -> u64) -> String {
    s.as_ref().map_or_else(|| "-".into(), |s| fmt_ns(f(s)))
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

    /// The summary lines: totals, sizes, losses and aggregation, each broken at words to
    /// fit `width`.
    pub fn summary_lines(&self, width: Option<usize>) -> String {
        let t = &self.totals;
        let mut lines = vec![format!(
            "{} faults in {:.1}s ({} mode): major {}, writes {}, retry calls {}, errors {}; latency p50 {} p99 {}",
            t.faults,
            self.duration_s,
            self.mode.name(),
            t.major,
            t.writes,
            opt(t.retry_calls),
            opt(t.errors),
            lat(&t.latency_ns, |s| s.p50),
            lat(&t.latency_ns, |s| s.p99),
        )];
        if let (Some(rate), Some(_)) = (t.fallback_rate, &t.entries) {
            lines.push(format!(
                "sizes: {} ({} mapped), fallback {:.1}% of faults",
                t.size_mix(),
                fmt_size(t.bytes_mapped.unwrap_or(0)),
                rate * 100.0
            ));
        }
        if let Some(r) = t.reinserts.as_ref().filter(|r| r.pte + r.pmd + r.pud > 0) {
            lines.push(format!(
                "re-inserts over present entries (nothing mapped): {} PTE, {} PMD, {} PUD",
                r.pte, r.pmd, r.pud
            ));
        }
        if let Some(costs) = &self.program_costs {
            let by: Vec<String> = costs
                .iter()
                .map(|(p, c)| format!("{p} {:.0} ns × {}", c.ns_per_run, c.runs))
                .collect();
            lines.push(format!("kernel time per run: {}", by.join(", ")));
        }
        let l = &self.loss;
        lines.push(format!(
            "lost: {} ring-buffer drops, {} in-flight map full, {} faults beyond the VMA table, {} beyond the process table, {} malformed records",
            l.ringbuf_drops,
            l.inflight_map_full,
            l.vma_table_overflow_faults,
            l.process_table_overflow_faults,
            l.malformed_records
        ));
        if l.program_misses > 0 || self.anomalies.returns_missed > 0 {
            let by: Vec<String> = l
                .program_misses_by_program
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            lines.push(format!(
                "missed: the kernel skipped {} runs of these programs (already running on that CPU){}; {} faults counted without their return (no latency, no return value)",
                l.program_misses,
                if by.is_empty() {
                    String::new()
                } else {
                    format!(": {}", by.join(", "))
                },
                self.anomalies.returns_missed
            ));
        }
        let an = &self.anomalies;
        let reused = an.vma_reused_while_locked.unwrap_or(0);
        if an.vma_lookup_failures > 0 || reused > 0 {
            lines.push(format!(
                "VMA lookups in the kernel: {} failed (those faults were looked up in /proc/PID/maps, or counted in no VMA row), {reused} found the VMA tree locked for writing and took their thread's last VMA, which held the address",
                an.vma_lookup_failures
            ));
        }
        let g = &self.aggregation;
        if g.all {
            lines.push(format!(
                "aggregated in the kernel (--aggregate): {} calls, counted by class: no per-fault records, latency to its bucket, no retry links or what-if",
                g.calls
            ));
        } else if g.calls > 0 {
            lines.push(format!(
                "ring buffer full {} times: those calls were counted in the kernel by class and are in every number above (latency to its bucket, no retry links; their VMAs get no what-if)",
                g.ring_full
            ));
        }
        lines
            .iter()
            .map(|l| wrap_words(l, width))
            .collect::<Vec<_>>()
            .join("")
    }

    /// The report as text: summary lines, then the process, VMA, chain and what-if tables
    /// (`top` rows each), fitted to `width` (a terminal's) or at full width (`None`).
    /// `rates` adds FAULTS/S columns (interval reports).
    pub fn render(&self, top: usize, width: Option<usize>, rates: Option<&Rates>) -> String {
        let mut out = self.summary_lines(width);
        out.push('\n');
        out.push_str(&tables::processes(self.processes.iter().take(top), rates).render(width));
        more(&mut out, self.processes.len(), top, "processes");
        out.push('\n');
        out.push_str(&tables::vmas(self.vmas.iter().take(top), rates).render(width));
        more(&mut out, self.vmas.len(), top, "VMAs");
        if self.has_chains() {
            out.push_str("\nchains (levels tried and answers), most frequent per VMA:\n");
            out.push_str(&tables::chains(self.vmas.iter().take(top.min(10)), 3).render(width));
        }
        let served = self.handler_lines(top.min(10), width);
        if !served.is_empty() {
            out.push_str("\nhuge_fault handlers asked, per VMA:\n");
            out.push_str(&served);
        }
        let why = self.reason_lines(top.min(10), width);
        if !why.is_empty() {
            out.push_str("\nwhy no huge entry (the top reason per VMA):\n");
            out.push_str(&why);
        }
        if self.vmas.iter().take(top).any(|v| v.what_if.is_some()) {
            out.push_str(
                "\nwhat-if: a range insert of each VMA's contiguous pfn run (assumptions in --json)\n",
            );
            out.push_str(&tables::what_if(self.vmas.iter().take(top)).render(width));
        }
        out.push_str(&self.render_histograms(top));
        out
    }

    /// One line per VMA with a reason: where, the top reason at its level with its share,
    /// and the hint.
    fn reason_lines(&self, top: usize, width: Option<usize>) -> String {
        let mut out = String::new();
        for v in self.vmas.iter().take(top) {
            let Some(r) = &v.stats.fallback_reasons else {
                continue;
            };
            let Some(t) = &r.top else {
                continue;
            };
            let mut line = format!(
                "{}: {} at {} for {} of {} faults",
                vma_label(v),
                t.reason,
                t.level,
                t.faults,
                v.stats.faults,
            );
            if let Some(o) = r
                .pfn_offset
                .as_ref()
                .filter(|_| t.reason == "pfn-misaligned")
            {
                line.push_str(&format!(
                    "; virtual is {} past the pfn's {} alignment",
                    fmt_size(o.bytes),
                    fmt_size(o.level_bytes)
                ));
            }
            if let Some(h) = v
                .stats
                .handlers
                .as_ref()
                .and_then(|h| h.first())
                .filter(|_| t.reason == "driver")
            {
                line.push_str(&format!(" (handler {})", h.handler));
            }
            line.push_str(&format!(" — {}", t.hint));
            out.push_str(&wrap_words(&line, width));
        }
        out
    }

    /// One line per VMA whose faults asked a `huge_fault` handler: which ones (the driver
    /// or file system that served it), with their faults.
    fn handler_lines(&self, top: usize, width: Option<usize>) -> String {
        let mut out = String::new();
        for v in self.vmas.iter().take(top) {
            let Some(hs) = v.stats.handlers.as_ref().filter(|h| !h.is_empty()) else {
                continue;
            };
            let names: Vec<String> = hs
                .iter()
                .map(|h| format!("{} for {} faults", h.handler, h.faults))
                .collect();
            let line = format!("{}: {}", vma_label(v), names.join(", "));
            out.push_str(&wrap_words(&line, width));
        }
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
}

/// `(N more ROWS in --json)` when a table was cut at `top`.
/// A VMA as the per-VMA lines name it: `  PID MAPPING START`.
fn vma_label(v: &super::VmaReport) -> String {
    format!(
        "  {} {} {}",
        v.pid,
        super::tables::mapping_name(v.path.as_deref()),
        v.start.trim_start_matches("0x")
    )
}

fn more(out: &mut String, len: usize, top: usize, what: &str) {
    if len > top {
        out.push_str(&format!("({} more {what} in --json)\n", len - top));
    }
}

/// `line` broken at spaces so that no piece is wider than `width`; continuation lines are
/// indented by two spaces. A single word wider than the width stays whole.
pub fn wrap_words(line: &str, width: Option<usize>) -> String {
    let Some(width) = width else {
        return format!("{line}\n");
    };
    let mut out = String::new();
    let mut cur = String::new();
    for word in line.split(' ') {
        let indent = if out.is_empty() { "" } else { "  " };
        if !cur.is_empty() && width_of(indent) + width_of(&cur) + 1 + width_of(word) > width {
            out.push_str(indent);
            out.push_str(&cur);
            out.push('\n');
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        out.push_str(if out.is_empty() { "" } else { "  " });
        out.push_str(&cur);
        out.push('\n');
    }
    out
}
