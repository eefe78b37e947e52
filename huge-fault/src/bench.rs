//! Benchmarks: what watching faults costs. Fault storms (`hf-workload storm`) run untraced
//! and under each tracer, interleaved, several times, in one boot or on one host; the
//! figures are ratios taken side by side, never absolute times checked by a test.
//!
//! Used by the lab guest (`hf.bench=` on its command line) and by `hf-bench` on the host.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// One fault storm: `hf-workload storm ARGS`.
#[derive(Clone, Debug)]
pub struct Storm {
    pub name: &'static str,
    pub what: &'static str,
    pub args: Vec<String>,
    /// Runs only where /dev/hfgpu exists (the lab guest).
    pub needs_device: bool,
}

/// The storms, each over `size` bytes (`1G` for the figures, smaller for a smoke run).
pub fn storms(size: &str) -> Vec<Storm> {
    let a = |v: &[&str]| -> Vec<String> {
        ["storm", "--size", size]
            .iter()
            .chain(v)
            .map(|s| s.to_string())
            .collect()
    };
    vec![
        Storm {
            name: "pte",
            what: "anonymous, THP off: one fault per 4 KiB",
            args: a(&["--thp", "never"]),
            needs_device: false,
        },
        Storm {
            name: "pmd",
            what: "anonymous, MADV_HUGEPAGE: one fault per 2 MiB where THP allocates",
            args: a(&["--thp", "always"]),
            needs_device: false,
        },
        Storm {
            name: "bar-pmd-only",
            what: "lab driver BAR, pmd-only: a PUD FALLBACK, then PMDs",
            args: a(&["--gpu", "pmd-only"]),
            needs_device: true,
        },
        Storm {
            name: "bar-pud",
            what: "lab driver BAR, pud: PUDs",
            args: a(&["--gpu", "pud"]),
            needs_device: true,
        },
        Storm {
            name: "pte-2-threads",
            what: "anonymous, THP off, two threads on two halves at once",
            args: a(&["--thp", "never", "--threads", "2"]),
            needs_device: false,
        },
    ]
}

/// What watches the storm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Config {
    Untraced,
    Fentry,
    Kprobe,
    TracepointOnly,
    /// The same three modes with `--aggregate`: faults counted in the kernel, no records.
    FentryAggregate,
    KprobeAggregate,
    TracepointAggregate,
    /// bpftrace with a kprobe/kretprobe latency histogram of `handle_mm_fault`.
    Bpftrace,
}

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Fentry => "huge-fault fentry",
            Config::Kprobe => "huge-fault kprobe",
            Config::TracepointOnly => "huge-fault tracepoint-only",
            Config::FentryAggregate => "huge-fault fentry --aggregate",
            Config::KprobeAggregate => "huge-fault kprobe --aggregate",
            Config::TracepointAggregate => "huge-fault tracepoint-only --aggregate",
            Config::Bpftrace => "bpftrace histogram",
        }
    }

    /// huge-fault's arguments for this configuration.
    fn huge_fault_args(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Config::Fentry => &["--mode", "fentry"],
            Config::Kprobe => &["--mode", "kprobe"],
            Config::TracepointOnly => &["--mode", "tracepoint"],
            Config::FentryAggregate => &["--mode", "fentry", "--aggregate"],
            Config::KprobeAggregate => &["--mode", "kprobe", "--aggregate"],
            Config::TracepointAggregate => &["--mode", "tracepoint", "--aggregate"],
            Config::Untraced | Config::Bpftrace => return None,
        })
    }

    /// Every huge-fault configuration, in the order the tables show them.
    pub const HUGE_FAULT: [Config; 6] = [
        Config::Fentry,
        Config::Kprobe,
        Config::TracepointOnly,
        Config::FentryAggregate,
        Config::KprobeAggregate,
        Config::TracepointAggregate,
    ];
}

/// The script bpftrace runs: what a user would reach for instead of huge-fault.
pub const BPFTRACE_SCRIPT: &str = "kprobe:handle_mm_fault { @s[tid] = nsecs; } \
     kretprobe:handle_mm_fault /@s[tid]/ { @ns = hist(nsecs - @s[tid]); delete(@s[tid]); }";

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Env {
    pub huge_fault: PathBuf,
    pub workload: PathBuf,
    pub bpftrace: Option<PathBuf>,
    /// Pause after a tracer detaches before the next measurement (the kernel keeps
    /// working for a while: kprobe unoptimisation, RCU).
    pub settle: Duration,
}

/// One storm under one configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub storm: String,
    pub config: Config,
    pub rep: u32,
    pub faults: u64,
    pub ns: u64,
    /// huge-fault only: calls it accounted (records submitted plus calls counted in the
    /// kernel), ring-buffer drops.
    pub records: Option<u64>,
    pub drops: Option<u64>,
    /// The tracer's user+system CPU time during the storm (clock ticks, so 10 ms steps).
    pub tracer_cpu_ns: Option<u64>,
    /// The tracer's peak resident set (VmHWM), ring-buffer pages included.
    pub tracer_peak_rss_kib: Option<u64>,
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of a process in nanoseconds.
fn cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

struct Tracer {
    child: Child,
    config: Config,
}

/// Starts the tracer of `config` and waits until it is attached; `extra` goes to
/// huge-fault's command line.
fn start_tracer(
    env: &Env,
    config: Config,
    extra: &[std::ffi::OsString],
) -> Result<Option<Tracer>, String> {
    let mut cmd = match (config, config.huge_fault_args()) {
        (Config::Untraced, _) => return Ok(None),
        (Config::Bpftrace, _) => {
            let b = env
                .bpftrace
                .as_ref()
                .ok_or("bpftrace is not available here")?;
            let mut c = Command::new(b);
            c.args(["-e", BPFTRACE_SCRIPT]);
            c
        }
        (_, Some(args)) => {
            let mut c = Command::new(&env.huge_fault);
            c.args(args).arg("--json").args(extra);
            c
        }
        _ => unreachable!("every configuration is covered"),
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", config.name()))?;
    // Ready when huge-fault says which mode it traces in (its probes are attached by
    // then), or when bpftrace has printed that it attaches (then a second for it to do so).
    let (stream, marker): (Box<dyn std::io::Read + Send>, &str) = if config == Config::Bpftrace {
        (Box::new(child.stdout.take().expect("piped")), "Attaching")
    } else {
        (
            Box::new(child.stderr.take().expect("piped")),
            "huge-fault: tracing in ",
        )
    };
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!(
                "{} did not start: {}{}",
                config.name(),
                seen.trim(),
                err.trim()
            ));
        }
        seen.push_str(&line);
        if line.starts_with(marker) {
            break;
        }
    }
    if config == Config::Bpftrace {
        std::thread::sleep(Duration::from_secs(1));
    }
    // Keep draining what remains so the tracer never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    Ok(Some(Tracer { child, config }))
}

/// Stops a tracer; huge-fault's final JSON gives records and drops.
fn stop_tracer(t: Tracer) -> Result<(Option<u64>, Option<u64>), String> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGINT) };
    let is_hf = t.config != Config::Bpftrace;
    let out = t
        .child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", t.config.name()))?;
    if !is_hf {
        return Ok((None, None));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{} printed no report: {e}", t.config.name()))?;
    let records = v["kernel_counters"]["records_submitted"]
        .as_u64()
        .zip(v["aggregation"]["calls"].as_u64())
        .map(|(r, a)| r + a);
    Ok((records, v["loss"]["ringbuf_drops"].as_u64()))
}

fn run_storm(env: &Env, args: &[String]) -> Result<(u64, u64), String> {
    let out = Command::new(&env.workload)
        .args(args)
        .output()
        .map_err(|e| format!("hf-workload: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "hf-workload {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("hf-workload output: {e}"))?;
    match (v["faults"].as_u64(), v["ns"].as_u64()) {
        (Some(f), Some(ns)) => Ok((f, ns)),
        _ => Err(format!("hf-workload output without faults/ns: {v}")),
    }
}

/// One measurement: start the tracer, run the storm, read the tracer's CPU and memory,
/// stop it, let the kernel settle.
pub fn measure(env: &Env, storm: &Storm, config: Config, rep: u32) -> Result<Sample, String> {
    let tracer = start_tracer(env, config, &[])?;
    let pid = tracer.as_ref().map(|t| t.child.id());
    let cpu_before = pid.and_then(cpu_ns);
    let storm_result = run_storm(env, &storm.args);
    let cpu_after = pid.and_then(cpu_ns);
    let rss = pid.and_then(|p| proc_field(p, "status", "VmHWM:"));
    let (records, drops) = match tracer {
        Some(t) => stop_tracer(t)?,
        None => (None, None),
    };
    let (faults, ns) = storm_result?;
    if config != Config::Untraced {
        // After a detach the kernel keeps working for a while: wait, then a small
        // throwaway storm, so the next measurement starts from a quiet kernel.
        std::thread::sleep(env.settle);
        let _ = run_storm(
            env,
            &["storm", "--size", "16M", "--thp", "never"].map(String::from),
        );
    }
    Ok(Sample {
        storm: storm.name.into(),
        config,
        rep,
        faults,
        ns,
        records,
        drops,
        tracer_cpu_ns: cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b)),
        tracer_peak_rss_kib: rss,
    })
}

/// Every storm under every configuration, `reps` times, interleaved: each repetition runs
/// the configurations in a rotated order, so no configuration always follows another.
/// `progress` gets one line per measurement.
pub fn run(
    env: &Env,
    storms: &[Storm],
    configs: &[Config],
    reps: u32,
    progress: &mut dyn FnMut(&str),
) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    let total = storms.len() * configs.len() * reps as usize;
    let started = Instant::now();
    for storm in storms {
        // A discarded warm-up: first touches that cost once (a VM's host backing of the
        // BAR, compaction for THP) must not land on whichever configuration runs first.
        if let Err(e) = run_storm(env, &storm.args) {
            errors.push(format!("{} warm-up: {e}", storm.name));
        }
        for rep in 0..reps {
            let mut order = configs.to_vec();
            order.rotate_left(rep as usize % configs.len().max(1));
            for c in order {
                match measure(env, storm, c, rep) {
                    Ok(s) => {
                        progress(&format!(
                            "[{}/{total}, {:.0}s] {} rep {rep} {}: {} faults in {:.1} ms",
                            samples.len() + errors.len() + 1,
                            started.elapsed().as_secs_f64(),
                            storm.name,
                            c.name(),
                            s.faults,
                            s.ns as f64 / 1e6
                        ));
                        samples.push(s);
                    }
                    Err(e) => {
                        progress(&format!("{} rep {rep} {}: {e}", storm.name, c.name()));
                        errors.push(format!("{} {}: {e}", storm.name, c.name()));
                    }
                }
            }
        }
    }
    (samples, errors)
}

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
            Summary {
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
        "| storm | configuration | runs | faults | ns/fault (min–max) | added ns/fault | overhead | records/s | drops | tracer CPU | tracer peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".into(), f);
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} ({:.0}–{:.0}) | {} | {} | {} | {} | {} | {} |\n",
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
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(storm: &str, config: Config, faults: u64, ns: u64) -> Sample {
        Sample {
            storm: storm.into(),
            config,
            rep: 0,
            faults,
            ns,
            records: (config != Config::Untraced).then_some(faults),
            drops: (config != Config::Untraced).then_some(0),
            tracer_cpu_ns: (config != Config::Untraced).then_some(ns / 10),
            tracer_peak_rss_kib: (config != Config::Untraced).then_some(10240),
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

/// The user-space cost per record, measured by replaying a recording (`huge-fault report`
/// does the live run's analysis, what-if included, without the ring buffer): record a
/// storm in `mode`, then time the replay's CPU.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayCost {
    pub records: u64,
    pub file_bytes: u64,
    pub cpu_ns: u64,
    pub ns_per_record: f64,
    /// One core's share needed at 100,000 records per second.
    pub cpu_pct_at_100k_per_s: f64,
    pub peak_rss_mib: f64,
}

/// Runs a command to its end; returns its exit status, its user+system CPU and its peak
/// resident set (from `wait4`, for that child alone).
fn run_measured(cmd: &mut Command) -> Result<(i32, u64, u64), String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let mut status = 0;
    // SAFETY: wait4 on our own child, with buffers we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::wait4(child.id() as i32, &mut status, 0, &mut ru) < 0 {
            return Err(format!("wait4: {}", std::io::Error::last_os_error()));
        }
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok((code, tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64))
}

pub fn replay_cost(
    env: &Env,
    storm: &Storm,
    config: Config,
    dir: &std::path::Path,
) -> Result<ReplayCost, String> {
    let file = dir.join("bench.hfrec");
    let tracer = start_tracer(env, config, &["--record".into(), file.clone().into()])?
        .ok_or("the replay cost needs huge-fault")?;
    run_storm(env, &storm.args)?;
    let (records, _) = stop_tracer(tracer)?;
    let file_bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let measured = run_measured(
        Command::new(&env.huge_fault)
            .args(["report", "--json"])
            .arg(&file),
    );
    let _ = std::fs::remove_file(&file);
    let (code, cpu_ns, maxrss_kib) = measured?;
    if code != 0 {
        return Err(format!("huge-fault report exited with {code}"));
    }
    let maxrss_kib = maxrss_kib as f64;
    let records = records.unwrap_or(0);
    let ns_per_record = cpu_ns as f64 / records.max(1) as f64;
    Ok(ReplayCost {
        records,
        file_bytes,
        cpu_ns,
        ns_per_record,
        cpu_pct_at_100k_per_s: ns_per_record * 100_000.0 / 1e9 * 100.0,
        peak_rss_mib: maxrss_kib / 1024.0,
    })
}

/// Resident memory of a live huge-fault over a long storm: samples every `every`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Soak {
    pub seconds: u64,
    pub storms: u64,
    pub records: Option<u64>,
    pub drops: Option<u64>,
    /// (seconds since start, VmRSS KiB).
    pub rss_kib: Vec<(u64, u64)>,
}

pub fn soak(env: &Env, mode: Config, seconds: u64, every: Duration) -> Result<Soak, String> {
    let t = start_tracer(env, mode, &[])?.ok_or("the soak needs a tracer")?;
    let pid = t.child.id();
    let started = Instant::now();
    let mut next = Duration::ZERO;
    let mut rss = Vec::new();
    let args = storms("64M")[0].args.clone();
    let mut storms = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        if started.elapsed() >= next {
            if let Some(k) = proc_field(pid, "status", "VmRSS:") {
                rss.push((started.elapsed().as_secs(), k));
            }
            next += every;
        }
        run_storm(env, &args)?;
        storms += 1;
    }
    if let Some(k) = proc_field(pid, "status", "VmRSS:") {
        rss.push((started.elapsed().as_secs(), k));
    }
    let (records, drops) = stop_tracer(t)?;
    Ok(Soak {
        seconds,
        storms,
        records,
        drops,
        rss_kib: rss,
    })
}
