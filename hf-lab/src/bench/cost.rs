//! What the user-space side costs per record (a replay), and its memory over a long run.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    Config, Env, Storm,
    measure::{proc_field, run_storm, start_tracer, stop_tracer},
    storms,
};

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
    let records = stop_tracer(tracer)?.records;
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
    let stopped = stop_tracer(t)?;
    let (records, drops) = (stopped.records, stopped.drops);
    Ok(Soak {
        seconds,
        storms,
        records,
        drops,
        rss_kib: rss,
    })
}
