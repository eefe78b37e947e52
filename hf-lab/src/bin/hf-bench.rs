//! `hf-bench`: the benchmarks of this machine (or the lab guest's) in the attach modes it
//! allows: fault storms untraced and traced, interleaved; the replay cost per record; and
//! optionally a soak that samples huge-fault's memory over a long storm. Prints Markdown
//! and writes JSON. Run by `cargo xtask bench`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use hf_lab::bench::{self, Config, Env};

fn main() -> ExitCode {
    let mut size = "1G".to_string();
    let mut reps = 3u32;
    let mut soak_s = 0u64;
    let mut configs = vec![
        Config::Untraced,
        Config::TracepointOnly,
        Config::TracepointAggregate,
    ];
    let mut json: Option<PathBuf> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--size", Some(v)) => size = v.clone(),
            ("--reps", Some(v)) if v.parse::<u32>().is_ok_and(|n| n > 0) => {
                reps = v.parse().expect("checked")
            }
            ("--soak", Some(v)) if v.parse::<u64>().is_ok() => soak_s = v.parse().expect("checked"),
            ("--json", Some(v)) => json = Some(v.into()),
            ("--configs", Some(v)) => {
                let parsed: Result<Vec<Config>, _> = v
                    .split(',')
                    .map(|c| serde_json::from_value(serde_json::Value::from(c)))
                    .collect();
                match parsed {
                    Ok(c) => configs = c,
                    Err(e) => {
                        eprintln!("hf-bench: --configs {v}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            _ => {
                eprintln!(
                    "usage: hf-bench [--size 1G] [--reps 3] [--soak SECONDS] [--json FILE]\n\
                     \x20               [--configs untraced,fentry,kprobe,tracepoint-only,fentry-aggregate,\n\
                     \x20                          kprobe-aggregate,tracepoint-aggregate,bpftrace]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let mut env = Env {
        baseline: None,
        huge_fault: dir.join("huge-fault"),
        workload: dir.join("hf-workload"),
        bpftrace: None,
        settle: Duration::from_secs(1),
        bpf_stats: false,
        limits: bench::Limits::default(),
    };
    // The kernel's own accounting of every program's run time, for the whole bench.
    let _stats = env.account_bpf();
    let storms: Vec<_> = bench::storms(&size)
        .into_iter()
        .filter(|s| !s.needs_device || std::path::Path::new("/dev/hfgpu").exists())
        .collect();
    let (samples, mut errors) = bench::run(&env, &storms, &configs, reps, &mut |l| {
        eprintln!("hf-bench: {l}")
    });
    errors.extend(bench::inexact(
        &samples,
        hf_lab::parse::parse_size(&size).unwrap_or(0),
    ));
    let summaries = bench::summarize(&samples);
    print!("{}", bench::render(&summaries));
    print!("\n{}", bench::render_programs(&summaries));
    let tmp = std::env::temp_dir();
    let replay = bench::replay_cost(&env, &storms[0], Config::TracepointOnly, &tmp);
    match &replay {
        Ok(r) => println!(
            "\nreplay: {} records ({} bytes) in {:.0} ms of CPU: {:.0} ns per record, {:.1}% of one core at 100,000 records/s, peak RSS {:.1} MiB",
            r.records,
            r.file_bytes,
            r.cpu_ns as f64 / 1e6,
            r.ns_per_record,
            r.cpu_pct_at_100k_per_s,
            r.peak_rss_mib
        ),
        Err(e) => eprintln!("hf-bench: replay: {e}"),
    }
    let soak = (soak_s > 0).then(|| {
        eprintln!("hf-bench: soak of {soak_s} s (64 MiB PTE storms, tracepoint-only)");
        bench::soak(
            &env,
            Config::TracepointOnly,
            soak_s,
            Duration::from_secs(10),
        )
    });
    if let Some(Ok(s)) = &soak {
        let first = s
            .rss_kib
            .iter()
            .find(|(t, _)| *t >= 10)
            .or(s.rss_kib.first());
        let max = s.rss_kib.iter().map(|x| x.1).max().unwrap_or(0);
        println!(
            "\nsoak: {} s, {} storms, {} records, {} drops; VmRSS {} KiB at {} s, {} KiB at the end, {} KiB at most",
            s.seconds,
            s.storms,
            s.records.unwrap_or(0),
            s.drops.unwrap_or(0),
            first.map_or(0, |x| x.1),
            first.map_or(0, |x| x.0),
            s.rss_kib.last().map_or(0, |x| x.1),
            max
        );
    }
    if let Some(Err(e)) = &soak {
        eprintln!("hf-bench: soak: {e}");
    }
    if let Some(path) = json {
        let doc = serde_json::json!({
            "samples": samples,
            "summaries": summaries,
            "errors": errors,
            "replay": replay.as_ref().ok(),
            "soak": soak.as_ref().and_then(|s| s.as_ref().ok()),
        });
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")) {
            eprintln!("hf-bench: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if errors.is_empty() && replay.is_ok() && !matches!(soak, Some(Err(_))) {
        ExitCode::SUCCESS
    } else {
        for e in &errors {
            eprintln!("hf-bench: error: {e}");
        }
        ExitCode::FAILURE
    }
}
