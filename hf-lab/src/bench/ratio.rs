//! huge-fault's added time per fault as a multiple of bpftrace's, in the same boot: the
//! figure the performance targets are stated in.

use super::{Config, Sample, Summary};

/// Per storm and huge-fault configuration: the ratio of the median added times, its
/// min–max over the repetitions (each repetition's own untraced and bpftrace runs), and
/// the ratio of the kernel's BPF run time per fault (medians). Empty without bpftrace.
pub fn render_ratios(samples: &[Sample], summaries: &[Summary]) -> String {
    let mut rows = String::new();
    for s in summaries
        .iter()
        .filter(|s| !matches!(s.config, Config::Untraced | Config::Bpftrace))
    {
        let Some(b) = summaries
            .iter()
            .find(|b| b.storm == s.storm && b.config == Config::Bpftrace)
        else {
            continue;
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        let per_rep = per_rep_ratios(samples, &s.storm, s.config);
        let spread = match (per_rep.first(), per_rep.last()) {
            (Some(lo), Some(hi)) => format!("{lo:.2}–{hi:.2}"),
            _ => "–".into(),
        };
        rows.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            s.storm,
            s.config.name(),
            ratio(s.added_ns_per_fault, b.added_ns_per_fault),
            spread,
            per_rep.len(),
            ratio(s.bpf_ns_per_fault, b.bpf_ns_per_fault),
        ));
    }
    if rows.is_empty() {
        return rows;
    }
    String::from(
        "| storm | configuration | added time ÷ bpftrace's (medians) | per repetition (min–max) | repetitions | BPF ns per fault ÷ bpftrace's |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    ) + &rows
}

/// `(config - untraced) / (bpftrace - untraced)` per fault in each repetition that has all
/// three, sorted; repetitions where bpftrace added nothing are left out.
fn per_rep_ratios(samples: &[Sample], storm: &str, config: Config) -> Vec<f64> {
    let at = |c: Config, rep: u32| {
        samples
            .iter()
            .find(|s| s.storm == storm && s.config == c && s.rep == rep)
            .map(|s| s.ns as f64 / s.faults.max(1) as f64)
    };
    let mut out: Vec<f64> = samples
        .iter()
        .filter(|s| s.storm == storm && s.config == config)
        .filter_map(|s| {
            let (c, u, b) = (
                at(config, s.rep)?,
                at(Config::Untraced, s.rep)?,
                at(Config::Bpftrace, s.rep)?,
            );
            (b > u).then(|| (c - u) / (b - u))
        })
        .collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::summarize;

    fn sample(config: Config, rep: u32, ns_per_fault: u64, bpf: u64) -> Sample {
        Sample {
            storm: "pte".into(),
            config,
            rep,
            faults: 1000,
            ns: ns_per_fault * 1000,
            records: None,
            drops: None,
            misses: None,
            tracer_cpu_ns: None,
            tracer_peak_rss_kib: None,
            bpf_ns: Some(bpf * 1000),
            programs: Default::default(),
            region_faults: None,
            vma_faults: None,
        }
    }

    #[test]
    fn ratios_of_medians_and_per_repetition() {
        // Untraced 100 ns in every rep; bpftrace adds 100, 150, 200, fentry 50, 150, 200:
        // per rep 0.5, 1.0, 1.0; medians 250 and 250 over 100: 1.00×. BPF 60 ÷ 40.
        let samples = [
            sample(Config::Untraced, 0, 100, 0),
            sample(Config::Bpftrace, 0, 200, 40),
            sample(Config::Fentry, 0, 150, 60),
            sample(Config::Untraced, 1, 100, 0),
            sample(Config::Bpftrace, 1, 250, 40),
            sample(Config::Fentry, 1, 250, 60),
            sample(Config::Untraced, 2, 100, 0),
            sample(Config::Bpftrace, 2, 300, 40),
            sample(Config::Fentry, 2, 300, 60),
        ];
        let table = render_ratios(&samples, &summarize(&samples));
        let row = table.lines().nth(2).unwrap();
        assert_eq!(
            row,
            "| pte | huge-fault fentry | 1.00× | 0.50–1.00 | 3 | 1.50× |"
        );
        assert_eq!(
            table.lines().count(),
            3,
            "one row besides the header: {table}"
        );
    }

    #[test]
    fn nothing_without_bpftrace() {
        let samples = [
            sample(Config::Untraced, 0, 100, 0),
            sample(Config::Fentry, 0, 150, 60),
        ];
        assert_eq!(render_ratios(&samples, &summarize(&samples)), "");
    }
}
