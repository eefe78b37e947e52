//! One measurement: a tracer started and attached, a storm run under it, its CPU and memory
//! read, the tracer stopped.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{BPFTRACE_SCRIPT, Config, Env, Sample, Storm};

pub(super) fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// utime + stime of a process in nanoseconds.
pub(super) fn cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
}

pub(super) struct Tracer {
    pub(super) child: Child,
    config: Config,
    stop_limit: Duration,
}

/// Starts the tracer of `config` and waits until it is attached; `extra` goes to
/// huge-fault's command line.
pub(super) fn start_tracer(
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
            let bin = match &env.baseline {
                Some(b) if config.is_baseline() => b,
                None if config.is_baseline() => return Err("no baseline huge-fault here".into()),
                _ => &env.huge_fault,
            };
            let mut c = Command::new(bin);
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
    // A tracer that never says it attached is killed at the limit: the read below then
    // ends, and the error says what its threads were waiting for.
    let dog = super::watch::Watchdog::arm(child.id(), env.limits.start);
    let attached = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break false;
        }
        seen.push_str(&line);
        if line.starts_with(marker) {
            break true;
        }
    };
    let stuck = dog.disarm();
    if !attached || stuck.is_some() {
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = child.wait();
        return Err(match stuck {
            Some(stuck) => format!(
                "{} did not attach within {} s and was killed (it printed: {}); {stuck}",
                config.name(),
                env.limits.start.as_secs(),
                seen.trim()
            ),
            None => format!(
                "{} did not start: {}{}",
                config.name(),
                seen.trim(),
                err.trim()
            ),
        });
    }
    if config == Config::Bpftrace {
        std::thread::sleep(Duration::from_secs(1));
    }
    // Keep draining what remains so the tracer never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    Ok(Some(Tracer {
        child,
        config,
        stop_limit: env.limits.stop,
    }))
}

/// What a stopped huge-fault said it accounted and lost.
#[derive(Clone, Debug, Default)]
pub(super) struct Stopped {
    /// Calls accounted: records submitted plus calls counted in the kernel.
    pub(super) records: Option<u64>,
    pub(super) drops: Option<u64>,
    /// Program runs the kernel skipped (`loss.program_misses`).
    pub(super) misses: Option<u64>,
    /// Runs and run time by program (`program_costs`).
    pub(super) programs: std::collections::BTreeMap<String, (u64, u64)>,
    /// Its VMA rows: pid, start, end, faults.
    pub(super) vmas: Vec<(u64, u64, u64, u64)>,
    /// It was huge-fault (bpftrace reports none of the above).
    pub(super) is_hf: bool,
}

/// Stops a tracer; huge-fault's final JSON gives records, drops and skipped runs.
pub(super) fn stop_tracer(t: Tracer) -> Result<Stopped, String> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGINT) };
    let is_hf = t.config != Config::Bpftrace;
    let out = super::watch::wait_limited(
        t.child,
        t.stop_limit,
        &format!("{} after SIGINT", t.config.name()),
    )?;
    if !is_hf {
        return Ok(Stopped::default());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{} printed no report: {e}", t.config.name()))?;
    let records = v["kernel_counters"]["records_submitted"]
        .as_u64()
        .zip(v["aggregation"]["calls"].as_u64())
        .map(|(r, a)| r + a);
    let programs = v["program_costs"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(name, c)| {
                    Some((
                        name.clone(),
                        (c["runs"].as_u64()?, c["run_time_ns"].as_u64()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let hex = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let vmas = v["vmas"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    Some((
                        r["pid"].as_u64()?,
                        hex(&r["start"])?,
                        hex(&r["end"])?,
                        r["faults"].as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Stopped {
        records,
        drops: v["loss"]["ringbuf_drops"].as_u64(),
        misses: v["loss"]["program_misses"].as_u64(),
        programs,
        vmas,
        is_hf: true,
    })
}

/// What a storm says of itself.
#[derive(Clone, Copy, Debug)]
pub(super) struct StormOut {
    pub(super) faults: u64,
    pub(super) ns: u64,
    /// The storm's process and mapping, and the faults its threads took in that mapping.
    pub(super) pid: u64,
    pub(super) vma: Option<(u64, u64)>,
    pub(super) region_faults: Option<u64>,
}

pub(super) fn run_storm(env: &Env, args: &[String]) -> Result<StormOut, String> {
    let child = Command::new(&env.workload)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("hf-workload: {e}"))?;
    let out = super::watch::wait_limited(
        child,
        env.limits.storm,
        &format!("hf-workload {}", args.join(" ")),
    )?;
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
        (Some(faults), Some(ns)) => Ok(StormOut {
            faults,
            ns,
            pid: v["pid"].as_u64().unwrap_or(0),
            vma: v["vma_start"].as_u64().zip(v["vma_end"].as_u64()),
            region_faults: v["region_faults"].as_u64(),
        }),
        _ => Err(format!("hf-workload output without faults/ns: {v}")),
    }
}

/// One measurement: start the tracer, run the storm, read the tracer's CPU and memory,
/// stop it, let the kernel settle.
pub fn measure(env: &Env, storm: &Storm, config: Config, rep: u32) -> Result<Sample, String> {
    let tracer = start_tracer(env, config, &[])?;
    let pid = tracer.as_ref().map(|t| t.child.id());
    let cpu_before = pid.and_then(cpu_ns);
    let bpf_before = crate::bpf_objects::total_run_time_ns().ok();
    let storm_result = run_storm(env, &storm.args);
    let bpf_after = crate::bpf_objects::total_run_time_ns().ok();
    let cpu_after = pid.and_then(cpu_ns);
    let rss = pid.and_then(|p| proc_field(p, "status", "VmHWM:"));
    let stopped = match tracer {
        Some(t) => stop_tracer(t)?,
        None => Stopped::default(),
    };
    let out = storm_result?;
    let (faults, ns) = (out.faults, out.ns);
    // The tool's faults in the storm's mapping: the row of that process whose range holds it.
    let vma_faults = out.vma.and_then(|(start, end)| {
        stopped
            .vmas
            .iter()
            .find(|r| r.0 == out.pid && r.1 <= start && end <= r.2)
            .map(|r| r.3)
    });
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
        records: stopped.records,
        drops: stopped.drops,
        misses: stopped.misses,
        tracer_cpu_ns: cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b)),
        tracer_peak_rss_kib: rss,
        bpf_ns: bpf_before
            .zip(bpf_after)
            .filter(|_| env.bpf_stats)
            .map(|(b, a)| a.saturating_sub(b)),
        programs: stopped.programs,
        region_faults: out.region_faults,
        vma_faults: vma_faults.or(stopped.is_hf.then_some(0)),
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
