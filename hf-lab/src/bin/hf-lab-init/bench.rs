//! A benchmark boot, or the bench smoke of a regular boot.

use std::time::Duration;

use hf_lab::protocol::{Line, ScenarioResult, Status};

/// The configurations and storms a benchmark boot runs, by name; empty: all.
pub struct Only {
    pub configs: Vec<String>,
    pub storms: Vec<String>,
}

/// The fault storms untraced and under every tracer this guest has (bpftrace when the
/// initramfs carries it), interleaved. `full` (a benchmark boot, not the smoke) may name a
/// subset of them. Prints each sample and the summary table for the
/// host; passes when every measurement ran within its time limits, every storm faulted at
/// least once per page (per 2 MiB for THP and the BAR), huge-fault lost no record and
/// counted exactly the faults each storm took in its mapping.
pub fn bench(
    kernel: &str,
    size: &str,
    reps: u32,
    settle: Duration,
    full: Option<&Only>,
) -> ScenarioResult {
    use hf_lab::bench::{self, Config, Env};
    let bpftrace = std::path::Path::new("/bin/bpftrace");
    let baseline = std::path::Path::new("/bin/huge-fault-baseline");
    let mut env = Env {
        huge_fault: "/bin/huge-fault".into(),
        baseline: baseline.exists().then(|| baseline.into()),
        workload: "/bin/hf-workload".into(),
        bpftrace: bpftrace.exists().then(|| bpftrace.into()),
        settle,
        bpf_stats: false,
        limits: bench::Limits::default(),
    };
    // The kernel's own accounting of every program's run time, for the whole bench.
    let _stats = env.account_bpf();
    let mut configs = vec![Config::Untraced];
    configs.extend(Config::HUGE_FAULT);
    if env.baseline.is_some() {
        configs.extend(Config::BASELINE);
    }
    if env.bpftrace.is_some() {
        configs.push(Config::Bpftrace);
    }
    let mut storms = bench::storms(size);
    let mut errors = vec![];
    if let Some(only) = full {
        let picked =
            |list: &[String], name: &str| list.is_empty() || list.iter().any(|n| n == name);
        configs.retain(|c| picked(&only.configs, c.key()));
        storms.retain(|s| picked(&only.storms, s.name));
        for n in &only.configs {
            if !configs.iter().any(|c| c.key() == n) {
                errors.push(format!("no configuration {n} in this guest"));
            }
        }
        for n in &only.storms {
            if !storms.iter().any(|s| s.name == n) {
                errors.push(format!("no storm {n}"));
            }
        }
        if !configs.contains(&Config::Untraced) {
            configs.insert(0, Config::Untraced);
        }
    }
    let full = full.is_some();
    let (samples, run_errors) = bench::run(&env, &storms, &configs, reps, &mut |l| {
        println!("init: [bench] {l}")
    });
    errors.extend(run_errors);
    for s in &samples {
        if full {
            println!(
                "{}",
                Line::BenchSample(serde_json::to_string(s).expect("a sample serializes"))
            );
        }
        if s.drops.unwrap_or(0) > 0 {
            errors.push(format!(
                "{} {}: {} drops",
                s.storm,
                s.config.name(),
                s.drops.unwrap_or(0)
            ));
        }
        let bytes = hf_lab::parse::parse_size(size).unwrap_or(0);
        let min_faults = match s.storm.as_str() {
            "pte" | "pte-2-threads" => bytes >> 12,
            "bar-pud" => (bytes >> 30).max(1),
            _ => bytes >> 21,
        };
        // Every fault is accounted or its loss reported: a run the kernel skipped (the
        // program was already running on that CPU) costs at most one record.
        let misses = s.misses.unwrap_or(0);
        if s.records.is_some_and(|r| r + misses < s.faults) {
            errors.push(format!(
                "{} {}: huge-fault accounted {} calls and reported {misses} skipped program runs, fewer than the storm's {} faults",
                s.storm,
                s.config.name(),
                s.records.unwrap_or(0),
                s.faults
            ));
        }
        if misses > 0 {
            println!(
                "init: [bench] {} {} rep {}: the kernel skipped {misses} program runs (reported)",
                s.storm,
                s.config.name(),
                s.rep
            );
        }
        if s.faults < min_faults {
            errors.push(format!(
                "{} {}: {} faults, fewer than {min_faults}",
                s.storm,
                s.config.name(),
                s.faults
            ));
        }
    }
    // Every storm exactly accounted: huge-fault's count in the storm's mapping equals the
    // faults the storm's threads took there, in every configuration.
    errors.extend(bench::inexact(
        &samples,
        hf_lab::parse::parse_size(size).unwrap_or(0),
    ));
    let summaries = bench::summarize(&samples);
    let table = bench::render(&summaries)
        + "\n"
        + &bench::render_programs(&summaries)
        + "\n"
        + &bench::render_ratios(&samples, &summaries);
    for l in table.lines() {
        println!("{}", Line::BenchTable(l.to_string()));
    }
    ScenarioResult {
        scenario: if full { "bench" } else { "bench-smoke" }.into(),
        kernel: kernel.into(),
        mode: "-".into(),
        status: if errors.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        reason: (!errors.is_empty()).then(|| errors.join("; ")),
        checks: vec![],
    }
}
