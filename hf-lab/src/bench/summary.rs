//! The figures of every storm under every configuration: medians, min-max, ratios.

use serde::{Deserialize, Serialize};

use super::{Config, Sample};

/// The figures of one storm under one configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub storm: String,
    pub config: Config,
    pub runs: usize,
    pub faults: u64,
    /// Nanoseconds per fault: median, min and max over the runs.
    pub ns_per_fault: f64,
    pub ns_per_fault_min: f64,
    pub ns_per_fault_max: f64,
    /// Median added nanoseconds per fault over the untraced median, and in percent.
    pub added_ns_per_fault: Option<f64>,
    pub overhead_pct: Option<f64>,
    pub records_per_s: Option<f64>,
    pub drops: Option<u64>,
    /// The tracer's CPU during the storm, in percent of one core (median).
    pub tracer_cpu_pct: Option<f64>,
    pub tracer_peak_rss_mib: Option<f64>,
    /// Nanoseconds in BPF programs per storm fault, by the kernel's accounting (median).
    #[serde(default)]
    pub bpf_ns_per_fault: Option<f64>,
    /// huge-fault's programs: nanoseconds per run, by program (medians).
    #[serde(default)]
    pub program_ns_per_run: std::collections::BTreeMap<String, f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per storm and configuration, in the order first seen.
pub fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut keys: Vec<(String, Config)> = Vec::new();
    for s in samples {
        if !keys.contains(&(s.storm.clone(), s.config)) {
            keys.push((s.storm.clone(), s.config));
        }
    }
    let per_fault = |s: &Sample| s.ns as f64 / s.faults.max(1) as f64;
    let mut out: Vec<Summary> = keys
        .iter()
        .map(|(storm, config)| {
            let these: Vec<&Sample> = samples
                .iter()
                .filter(|s| &s.storm == storm && s.config == *config)
                .collect();
            let mut pf: Vec<f64> = these.iter().map(|s| per_fault(s)).collect();
            let ns_per_fault = median(&mut pf);
            let mut rates: Vec<f64> = these
                .iter()
                .filter_map(|s| s.records.map(|r| r as f64 * 1e9 / s.ns.max(1) as f64))
                .collect();
            // CPU is read in clock ticks around the storm: meaningless below half a second.
            let mut cpu: Vec<f64> = these
                .iter()
                .filter(|s| s.ns >= 500_000_000)
                .filter_map(|s| {
                    s.tracer_cpu_ns
                        .map(|c| c as f64 * 100.0 / s.ns.max(1) as f64)
                })
                .collect();
            let mut bpf: Vec<f64> = these
                .iter()
                .filter_map(|s| s.bpf_ns.map(|b| b as f64 / s.faults.max(1) as f64))
                .collect();
            let mut names: Vec<&String> = these.iter().flat_map(|s| s.programs.keys()).collect();
            names.sort();
            names.dedup();
            let program_ns_per_run = names
                .into_iter()
                .map(|n| {
                    let mut v: Vec<f64> = these
                        .iter()
                        .filter_map(|s| s.programs.get(n).map(|c| c.1 as f64 / c.0.max(1) as f64))
                        .collect();
                    (n.clone(), median(&mut v))
                })
                .collect();
            Summary {
                bpf_ns_per_fault: (!bpf.is_empty()).then(|| median(&mut bpf)),
                program_ns_per_run,
                storm: storm.clone(),
                config: *config,
                runs: these.len(),
                faults: these.iter().map(|s| s.faults).max().unwrap_or(0),
                ns_per_fault,
                ns_per_fault_min: pf.first().copied().unwrap_or(f64::NAN),
                ns_per_fault_max: pf.last().copied().unwrap_or(f64::NAN),
                added_ns_per_fault: None,
                overhead_pct: None,
                records_per_s: (!rates.is_empty()).then(|| median(&mut rates)),
                drops: these.iter().filter_map(|s| s.drops).max(),
                tracer_cpu_pct: (!cpu.is_empty()).then(|| median(&mut cpu)),
                tracer_peak_rss_mib: these
                    .iter()
                    .filter_map(|s| s.tracer_peak_rss_kib)
                    .max()
                    .map(|k| k as f64 / 1024.0),
            }
        })
        .collect();
    let base: Vec<(String, f64)> = out
        .iter()
        .filter(|s| s.config == Config::Untraced)
        .map(|s| (s.storm.clone(), s.ns_per_fault))
        .collect();
    for s in out.iter_mut().filter(|s| s.config != Config::Untraced) {
        if let Some((_, b)) = base.iter().find(|(n, _)| *n == s.storm) {
            s.added_ns_per_fault = Some(s.ns_per_fault - b);
            s.overhead_pct = Some((s.ns_per_fault / b - 1.0) * 100.0);
        }
    }
    out
}

/// A Markdown table of the summaries.
pub fn render(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| storm | configuration | runs | faults | ns/fault (min–max) | added ns/fault | overhead | records/s | drops | tracer CPU | tracer peak RSS | BPF ns/fault |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".into(), f);
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} ({:.0}–{:.0}) | {} | {} | {} | {} | {} | {} | {} |\n",
            s.storm,
            s.config.name(),
            s.runs,
            s.faults,
            s.ns_per_fault,
            s.ns_per_fault_min,
            s.ns_per_fault_max,
            opt(s.added_ns_per_fault, &|v| format!("{v:+.0}")),
            opt(s.overhead_pct, &|v| format!("{v:+.1}%")),
            opt(s.records_per_s, &|v| format!("{v:.0}")),
            s.drops.map_or("–".into(), |d| d.to_string()),
            opt(s.tracer_cpu_pct, &|v| format!("{v:.0}%")),
            opt(s.tracer_peak_rss_mib, &|v| format!("{v:.1} MiB")),
            opt(s.bpf_ns_per_fault, &|v| format!("{v:.0}")),
        ));
    }
    out
}

/// A Markdown table of huge-fault's programs: the kernel's run time per run, by program,
/// for each storm and configuration that reported it (the runs of the tracer's whole life:
/// its start, the storm and the processes around it).
pub fn render_programs(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| storm | configuration | ns per program run (the kernel's accounting) |\n\
         | --- | --- | --- |\n",
    );
    for s in summaries
        .iter()
        .filter(|s| !s.program_ns_per_run.is_empty())
    {
        let mut by: Vec<(&String, &f64)> = s.program_ns_per_run.iter().collect();
        by.sort_by(|a, b| b.1.total_cmp(a.1));
        let cells: Vec<String> = by
            .iter()
            .map(|(n, ns)| format!("{} {ns:.0}", n.trim_start_matches("hf_")))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            s.storm,
            s.config.name(),
            cells.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        measure::{cpu_ns, proc_field},
        storms,
    };

    fn sample(storm: &str, config: Config, faults: u64, ns: u64) -> Sample {
        Sample {
            storm: storm.into(),
            config,
            rep: 0,
            faults,
            ns,
            records: (config != Config::Untraced).then_some(faults),
            drops: (config != Config::Untraced).then_some(0),
            misses: (config != Config::Untraced).then_some(0),
            tracer_cpu_ns: (config != Config::Untraced).then_some(ns / 10),
            tracer_peak_rss_kib: (config != Config::Untraced).then_some(10240),
            bpf_ns: Some(if config == Config::Untraced {
                0
            } else {
                faults * 500
            }),
            programs: if config == Config::Untraced {
                Default::default()
            } else {
                [(
                    "hf_fexit_handle_mm_fault".to_string(),
                    (faults, faults * 300),
                )]
                .into()
            },
            region_faults: Some(faults),
            vma_faults: (config != Config::Untraced).then_some(faults),
        }
    }

    #[test]
    fn summaries_take_medians_and_ratios_against_the_untraced_run() {
        let s = vec![
            sample("pte", Config::Untraced, 100_000, 1_000_000_000),
            sample("pte", Config::Untraced, 100_000, 1_200_000_000),
            sample("pte", Config::Untraced, 100_000, 1_100_000_000),
            sample("pte", Config::Kprobe, 100_000, 1_300_000_000),
            sample("pte", Config::Kprobe, 100_000, 1_400_000_000),
            sample("pte", Config::Kprobe, 100_000, 3_000_000_000),
        ];
        let sum = summarize(&s);
        assert_eq!(sum.len(), 2);
        let (u, k) = (&sum[0], &sum[1]);
        assert_eq!(
            (u.config, u.runs, u.ns_per_fault),
            (Config::Untraced, 3, 11_000.0)
        );
        assert_eq!(
            (u.ns_per_fault_min, u.ns_per_fault_max),
            (10_000.0, 12_000.0)
        );
        assert_eq!(u.records_per_s, None);
        // The outlier does not move the median.
        assert_eq!(k.ns_per_fault, 14_000.0);
        assert_eq!(k.added_ns_per_fault, Some(3_000.0));
        assert!((k.overhead_pct.unwrap() - 27.27).abs() < 0.01);
        assert_eq!(k.tracer_cpu_pct, Some(10.0));
        assert_eq!(k.tracer_peak_rss_mib, Some(10.0));
        // CPU of storms shorter than half a second is not reported.
        let short = summarize(&[sample("pte", Config::Kprobe, 10, 1_000_000)]);
        assert_eq!(short[0].tracer_cpu_pct, None);
        assert_eq!(k.bpf_ns_per_fault, Some(500.0));
        assert_eq!(
            k.program_ns_per_run.get("hf_fexit_handle_mm_fault"),
            Some(&300.0)
        );
        assert!(
            render_programs(&sum)
                .contains("| pte | huge-fault kprobe | fexit_handle_mm_fault 300 |"),
            "{}",
            render_programs(&sum)
        );
        let table = render(&sum);
        assert!(
            table.contains(
                "| pte | huge-fault kprobe | 3 | 100000 | 14000 (13000–30000) | +3000 | +27.3% |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| pte | untraced | 3 | 100000 | 11000 (10000–12000) | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn the_storms_scale_and_know_what_they_need() {
        let s = storms("64M");
        assert!(s.iter().all(|s| s.args[..3] == ["storm", "--size", "64M"]));
        assert_eq!(s.iter().filter(|s| s.needs_device).count(), 2);
        assert!(
            s.iter()
                .any(|s| s.args.ends_with(&["--threads".into(), "2".into()]))
        );
    }

    #[test]
    fn proc_stat_parsing() {
        let me = std::process::id();
        assert!(cpu_ns(me).is_some());
        assert!(proc_field(me, "status", "VmHWM:").is_some_and(|k| k > 0));
    }
}
